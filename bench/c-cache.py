#!/usr/bin/env python3
"""Times the plain compiler, ccache and rcc on real C sources in one run and prints a table.

Phases per tool: cold build (empty cache, daemon not running), warm rebuild (objects deleted, all hits, through
the build tool) and the time per hit (every compile command run once more, one after another, from a shell
script: all hits, without the build tool's own time). Projects: Lua (each .c compiled by a loop, like make -j1), sqlite3.c (one big unit) and
zlib-ng (CMake + Ninja, -j2). Rounds alternate the tools so that drift of the machine hits them alike; the
table shows medians. Raw numbers go to bench/runs/c-cache-<time>.csv.

Usage: bench/c-cache.sh [--quick] [--rounds N]
"""
import argparse
import csv
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RCC = Path(os.environ.get("RCC_BIN", ROOT / "target" / "release" / "rcc"))
CORPUS = ROOT.parent / "shared" / "corpus" / "get"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def corpus(name):
    out = subprocess.run([str(CORPUS), name], check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


class Tool:
    """How one tool compiles: a prefix for each compile and an environment with its own cache."""

    def __init__(self, name, work):
        self.name = name
        self.cache = work / f"cache-{name}"
        self.env = dict(os.environ)
        self.env.pop("RCC_DISABLE", None)
        if name == "rcc":
            self.env["RCC_DIR"] = str(self.cache)
            self.prefix = [str(RCC)]
        elif name == "ccache":
            self.env["CCACHE_DIR"] = str(self.cache)
            self.env["CCACHE_NOHASHDIR"] = "1"
            self.prefix = ["ccache"]
        else:
            self.prefix = []

    def reset(self):
        """Empty cache, no daemon: what a first build meets."""
        if self.name == "rcc":
            subprocess.run([str(RCC), "--stop-daemon"], env=self.env, capture_output=True)
        shutil.rmtree(self.cache, ignore_errors=True)
        self.cache.mkdir(parents=True, exist_ok=True)

    def hits(self):
        if self.name == "rcc":
            import json
            out = subprocess.run([str(RCC), "stats", "--json"], env=self.env, capture_output=True, text=True)
            c = json.loads(out.stdout)["counters"]
            return c["hits_direct"] + c["hits_preprocessor"], c["misses"]
        if self.name == "ccache":
            out = subprocess.run(["ccache", "--print-stats"], env=self.env, capture_output=True, text=True).stdout
            stats = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
            hits = int(stats.get("direct_cache_hit", 0)) + int(stats.get("preprocessed_cache_hit", 0))
            return hits, int(stats.get("cache_miss", 0))
        return None, None

    def zero(self):
        if self.name == "rcc":
            subprocess.run([str(RCC), "stats", "--zero"], env=self.env, capture_output=True)
        elif self.name == "ccache":
            subprocess.run(["ccache", "--zero-stats"], env=self.env, capture_output=True)


class LoopProject:
    """Compile every source of a directory one after another, as make -j1 would."""

    def configure(self, tool):
        pass

    def __init__(self, name, src, sources, flags):
        self.name, self.src, self.sources, self.flags = name, src, sources, flags

    def prepare(self, work):
        self.dir = work / self.name
        if not self.dir.exists():
            shutil.copytree(self.src, self.dir)
        return self

    def clean(self):
        for o in self.dir.glob("*.o"):
            o.unlink()

    def build(self, tool):
        # One shell script, one line per compile: process start-up costs every tool the same.
        lines = [shlex.join(tool.prefix + ["gcc"] + self.flags + ["-c", s, "-o", Path(s).stem + ".o"])
                 for s in self.sources]
        script = self.dir / f"build-{tool.name}.sh"
        script.write_text("set -e\n" + "\n".join(lines) + "\n")
        sh(["sh", str(script)], cwd=self.dir, env=tool.env)

    def replay(self, tool):
        """Time every compile one after another (all hits once warm)."""
        self.clean()
        return timed(lambda: self.build(tool))

    def objects(self):
        return {o.name: o.read_bytes() for o in sorted(self.dir.glob("*.o"))}

    def compiles(self):
        return len(self.sources)


class CMakeProject:
    """A CMake project configured with Ninja and the tool as compiler launcher."""

    def __init__(self, name, src, options):
        self.name, self.src, self.options = name, src, options

    def prepare(self, work):
        self.dir = work / self.name
        if not self.dir.exists():
            shutil.copytree(self.src, self.dir)
        self.builds = {}
        return self

    def build_dir(self, tool):
        return self.dir / f"build-{tool.name}"

    def clean(self):
        for b in self.dir.glob("build-*"):
            if (b / "build.ninja").exists():
                sh(["ninja", "-C", str(b), "-t", "clean"], capture_output=True)

    def configure(self, tool):
        b = self.build_dir(tool)
        if not (b / "build.ninja").exists():
            launcher = [f"-DCMAKE_C_COMPILER_LAUNCHER={tool.prefix[0]}"] if tool.prefix else []
            sh(["cmake", "-S", str(self.dir), "-B", str(b), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release"]
               + self.options + launcher, env=tool.env, capture_output=True)
        sh(["ninja", "-C", str(b), "-t", "clean"], capture_output=True)

    def build(self, tool):
        b = self.build_dir(tool)
        sh(["ninja", "-C", str(b), "-j2"], env=tool.env, capture_output=True)
        self.builds[tool.name] = b

    def compile_lines(self, b):
        out = subprocess.run(["ninja", "-C", str(b), "-t", "commands"], capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if " -c " in line]

    def compiles(self):
        return len(self.compile_lines(next(iter(self.builds.values()))))

    def replay(self, tool):
        """Time the build's compile commands one after another (all hits once warm), without ninja."""
        b = self.build_dir(tool)
        script = b / "replay.sh"
        script.write_text("set -e\n" + "\n".join(self.compile_lines(b)) + "\n")
        return timed(lambda: sh(["sh", str(script)], cwd=b, env=tool.env, capture_output=True))


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="Lua and zlib-ng only, sqlite at -O0")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rcc-bench-"))
    lua = corpus("lua")
    lua_sources = sorted(p.name for p in lua.glob("*.c") if p.name not in ("lua.c", "luac.c", "onelua.c"))
    projects = [LoopProject("lua", lua, lua_sources, ["-O2"])]
    sqlite = corpus("sqlite")
    projects.append(LoopProject("sqlite", sqlite, ["sqlite3.c"], ["-O0" if args.quick else "-O2"]))
    zlib = corpus("zlib-ng")
    projects.append(CMakeProject("zlib-ng", zlib, ["-DZLIB_COMPAT=ON", "-DZLIB_ENABLE_TESTS=OFF", "-DWITH_GTEST=OFF",
                                                   "-DBUILD_TESTING=OFF", "-DBUILD_SHARED_LIBS=OFF",
                                                   "-DWITH_FUZZERS=OFF", "-DWITH_BENCHMARKS=OFF"]))
    tools = [Tool(n, work) for n in ("plain", "ccache", "rcc")]
    rows = []
    raw = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for project in projects:
        project.prepare(work)
        cold = {t.name: [] for t in tools}
        warm = {t.name: [] for t in tools}
        replay = {t.name: [] for t in tools}
        for r in range(args.rounds if project.name != "sqlite" or args.quick else 1):
            for tool in tools:
                project.configure(tool)
                tool.reset()
                project.clean()
                cold[tool.name].append(timed(lambda: project.build(tool)))
                if tool.name != "plain":
                    tool.zero()
                    project.clean()
                    warm[tool.name].append(timed(lambda: project.build(tool)))
                    replay[tool.name].append(project.replay(tool))
                    hits, misses = tool.hits()
                    if misses:
                        print(f"WARNING: {tool.name} warm {project.name} build had {misses} misses", file=sys.stderr)
                    raw.append((project.name, tool.name, r, cold[tool.name][-1], warm[tool.name][-1], hits, misses))
                else:
                    raw.append((project.name, tool.name, r, cold[tool.name][-1], "", "", ""))
                print(f"  {project.name:8} {tool.name:7} round {r}: cold {cold[tool.name][-1]:.2f}s"
                      + (f" warm {warm[tool.name][-1]:.3f}s" if warm[tool.name] else ""), file=sys.stderr)
        if isinstance(project, LoopProject):
            # rcc's objects must be the plain compiler's, byte for byte.
            project.clean()
            project.build(tools[0])
            plain_objs = project.objects()
            project.clean()
            project.build(tools[2])
            same = plain_objs == project.objects()
            print(f"  {project.name}: rcc objects identical to plain: {same}", file=sys.stderr)
        n = project.compiles()
        med = {k: statistics.median(v) for k, v in cold.items()}
        wmed = {k: statistics.median(v) for k, v in warm.items() if v}
        hmed = {k: statistics.median(v) / n * 1000 for k, v in replay.items() if v}
        for tool in tools:
            name = tool.name
            rows.append((project.name, name, n, med[name], wmed.get(name), hmed.get(name),
                         (med[name] / med["plain"] - 1) * 100,
                         (hmed[name] / hmed["ccache"]) if name in hmed else None))
    for tool in tools:
        tool.reset()

    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    ccache = subprocess.run(["ccache", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"\nmachine: {os.cpu_count()} cores, {cpu}; {platform.platform()}")
    print(f"{gcc}; {ccache}; rounds: {args.rounds} (medians)\n")
    print("| project | tool | compiles | cold s | warm s | per hit ms | cold vs plain | hit vs ccache |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for p, t, n, c, w, ph, over, vs in rows:
        fmt = lambda v, f: "-" if v is None else format(v, f)
        print(f"| {p} | {t} | {n} | {c:.2f} | {fmt(w, '.3f')} | {fmt(ph, '.2f')} | {over:+.1f} % | {fmt(vs, '.2f')} |")
    runs = ROOT / "bench" / "runs"
    runs.mkdir(exist_ok=True)
    with open(runs / f"c-cache-{stamp}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["project", "tool", "round", "cold_s", "warm_s", "warm_hits", "warm_misses"])
        w.writerows(raw)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
