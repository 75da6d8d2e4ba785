"""What the benchmark scripts share: the raw CSV they append to, the first line of a command's output, and the
noise gauge (CPU time the rest of the machine used during a measurement)."""

import csv
import os
import subprocess
import time


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


TICK = os.sysconf("SC_CLK_TCK")


def machine_busy():
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / TICK


class NoiseGauge:
    """CPU time the rest of the machine uses while something is measured: the machine's busy time minus this
    process's and its children's, and minus the cache servers of this run (rccd, sccache: not our children,
    so their time is not in os.times()). `foreign` is the figure of the last measurement."""

    def __init__(self):
        self.servers = {}  # executable name -> (environment variable, set of values naming this run's caches)
        self.foreign = 0.0

    def add_server(self, exe, var, value):
        """Counts the processes named `exe` whose `var` is `value` as this run's own."""
        self.servers.setdefault(exe, (var, set()))[1].add(value)

    def _servers_cpu(self):
        """CPU seconds of each server of this run, with the children it waited for."""
        cpu = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
                if exe not in self.servers:
                    continue
                var, values = self.servers[exe]
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
                if env.get(var.encode(), b"").decode() not in values:
                    continue
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu[pid] = sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime
            except (OSError, ValueError):
                continue
        return cpu

    def _sample(self):
        return machine_busy(), self._servers_cpu(), os.times()

    def _foreign_since(self, before):
        (busy0, d0, t0), (busy1, d1, t1) = before, self._sample()
        ours = sum(t1[i] - t0[i] for i in range(4)) + sum(c - d0.get(p, 0.0) for p, c in d1.items())
        return max(0.0, busy1 - busy0 - ours)

    def timed(self, fn):
        """(wall seconds, result) of fn; sets `foreign`."""
        before = self._sample()
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        self.foreign = self._foreign_since(before)
        return elapsed, result

    def foreign_over(self, seconds):
        """CPU seconds the rest of the machine uses over the next `seconds`."""
        before = self._sample()
        time.sleep(seconds)
        return self._foreign_since(before)

    def busy(self, elapsed, floor):
        """Whether the last measurement's foreign CPU (at least `floor` s, or 10 % of it) skews it."""
        return self.foreign >= max(floor, 0.1 * elapsed)
