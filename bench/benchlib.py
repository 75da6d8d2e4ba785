"""What the benchmark scripts share: the raw CSV they append to and the first line of a command's output."""

import csv
import subprocess


class Csv:
    """One line per measurement, appended and flushed as it is taken: a run cut short keeps what it measured."""

    def __init__(self, path, fields, common):
        self.path, self.common = path, common
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        self.f = open(path, "a", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=fields)
        if new:
            self.w.writeheader()

    def add(self, **row):
        self.w.writerow({**self.common, **row})
        self.f.flush()


def first_line(cmd, env=None):
    """The first line a command prints, or `?` when it cannot run or prints nothing."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env).stdout.splitlines()[0].strip()
    except (OSError, IndexError):
        return "?"
