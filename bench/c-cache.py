#!/usr/bin/env python3
"""Times the plain compiler, ccache and rcc on real C sources in one run and prints a Markdown table.

Projects (sources from ../shared/corpus/get, copied to a temporary directory):
  lua      every .c of Lua 5.4, compiled one after another by a shell loop (like make -j1), gcc -O2;
  sqlite   sqlite3.c, one 9 MB translation unit, gcc -O2 (-O0 with --quick);
  zlib-ng  CMake + Ninja, CMAKE_C_COMPILER_LAUNCHER=ccache|rcc, built with ninja -j2.

Phases per tool and round:
  cold    empty cache and no rcc daemon (stopped before every cold phase): a first build, including the
          daemon's start and the compiler's identification;
  warm    objects deleted, full rebuild through the same build driver: all hits, checked against the
          tool's own statistics (a WARNING line if not);
  serial  every compile command run once more, one after another from a shell script, without the build
          tool (for zlib-ng: without ninja and its -j2): all hits.
per hit = warm / compiles; serial hit = serial / compiles. Rounds alternate the tools so that drift of the
machine hits them alike; the table shows medians. The objects of ccache and rcc (miss and hit) are compared
byte for byte with the plain compiler's. One CSV line per measurement is appended, as it is taken, to
bench/runs/c-cache-<date>-<time>.csv. Each measurement also gauges the CPU time other processes of the
machine used meanwhile; those above 10 % of the wall time are marked busy (the figures are then skewed).

Usage: bench/c-cache.sh [--quick] [--rounds N] [--sqlite-rounds N] [--only lua,sqlite,zlib-ng] [--no-rcc]
"""
import argparse
import filecmp
import json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Csv, NoiseGauge, first_line  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RCC = Path(os.environ.get("RCC_BIN", ROOT / "target" / "release" / "rcc")).absolute()
CORPUS = ROOT.parent / "shared" / "corpus" / "get"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, quiet=True, **kw):
    """Runs a command; on failure shows its output (hidden otherwise when quiet) and raises."""
    r = subprocess.run(cmd, capture_output=quiet, text=True, **kw)
    if r.returncode != 0:
        if quiet:
            sys.stderr.write((r.stdout or "")[-4000:] + (r.stderr or "")[-4000:])
        raise SystemExit(f"c-cache: command failed ({r.returncode}): {shlex.join(map(str, cmd))}")
    return r


def corpus(name):
    return Path(sh([str(CORPUS), name]).stdout.strip())


GAUGE = NoiseGauge()  # CPU time the rest of the machine used during each measurement; rccd of this run is ours


def timed(fn):
    """Wall time of fn; GAUGE.foreign: CPU time the rest of the machine used meanwhile."""
    return GAUGE.timed(fn)[0]


def busy(elapsed):
    """Whether other work on the machine took enough CPU during the last measurement to skew it."""
    return GAUGE.busy(elapsed, 0.05)


def base_env():
    """The caller's environment without settings of either cache: each tool gets only its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCACHE_", "RCC_"))}
    env["LC_ALL"] = "C"
    return env


def stop_rcc_daemons(tools):
    for t in tools:
        if t.name == "rcc":
            subprocess.run([str(RCC), "--stop-daemon"], env=t.env, capture_output=True)


class Tool:
    """How one tool compiles: a prefix for each compile and an environment with its own cache."""

    def __init__(self, name, work):
        self.name = name
        self.cache = work / f"cache-{name}"
        self.env = base_env()
        if name == "rcc":
            self.env["RCC_DIR"] = str(self.cache)
            GAUGE.add_server("rccd", "RCC_DIR", str(self.cache))
            self.env["RCC_CONFIG"] = str(work / "rcc-config-absent.toml")  # defaults, not ~/.config/rcc
            self.prefix = [str(RCC)]
        elif name == "ccache":
            self.env["CCACHE_DIR"] = str(self.cache)  # Debian's ccache, default settings (direct mode)
            self.prefix = ["ccache"]
        else:
            self.prefix = []

    def reset(self):
        """Empty cache: what a first build meets."""
        shutil.rmtree(self.cache, ignore_errors=True)
        self.cache.mkdir(parents=True, exist_ok=True)

    def zero(self):
        if self.name == "rcc":
            sh([str(RCC), "stats", "--zero"], env=self.env)
        elif self.name == "ccache":
            sh(["ccache", "--zero-stats"], env=self.env)

    def stats(self):
        """(hits, misses, other results, cache bytes) since the last zero; None for the plain compiler."""
        if self.name == "rcc":
            s = json.loads(sh([str(RCC), "stats", "--json"], env=self.env).stdout)
            c = s["counters"]
            other = sum(c.get("uncacheable", {}).values()) + sum(c.get("errors", {}).values())
            return c["hits_direct"] + c["hits_preprocessor"], c["misses"], other, s.get("cache_bytes", 0)
        if self.name == "ccache":
            out = sh(["ccache", "--print-stats"], env=self.env).stdout
            st = {k: int(v) for k, v in (l.split("\t", 1) for l in out.splitlines() if "\t" in l) if v.isdigit()}
            hits = st.get("direct_cache_hit", 0) + st.get("preprocessed_cache_hit", 0)
            uncacheable = ("called_for_link", "called_for_preprocessing", "compile_failed", "internal_error",
                           "bad_compiler_arguments", "compiler_produced_stdout", "unsupported_compiler_option",
                           "unsupported_source_language", "no_input_file", "output_to_stdout",
                           "could_not_find_compiler", "multiple_source_files", "preprocessor_error",
                           "unsupported_code_directive", "missing_cache_file", "error_hashing_extra_file")
            other = sum(st.get(k, 0) for k in uncacheable)
            return hits, st.get("cache_miss", 0), other, st.get("cache_size_kibibyte", 0) * 1024
        return None


class LoopProject:
    """Compile every listed source of a directory one after another, as make -j1 would."""

    def __init__(self, name, src, sources, flags):
        self.name, self.src, self.sources, self.flags = name, src, sources, flags

    def prepare(self, work):
        self.dir = work / self.name
        shutil.copytree(self.src, self.dir)  # copy2: timestamps kept
        return self

    def configure(self, tool):
        pass

    def clean(self):
        for o in self.dir.glob("*.o"):
            o.unlink()

    def script(self, tool):
        # One shell script, one line per compile: process start-up costs every tool the same.
        lines = [shlex.join(tool.prefix + ["gcc"] + self.flags + ["-c", s, "-o", Path(s).stem + ".o"])
                 for s in self.sources]
        path = self.dir.parent / f"{self.name}-build-{tool.name}.sh"
        path.write_text("set -e\n" + "\n".join(lines) + "\n")
        return path

    def build(self, tool):
        sh(["sh", str(self.script(tool))], cwd=self.dir, env=tool.env)

    def serial(self, tool):
        """Every compile once more, one after another (the same loop: all hits once warm)."""
        self.clean()
        return timed(lambda: self.build(tool))

    def objects(self, tool):
        return sorted(self.dir.glob("*.o"))

    def compiles(self):
        return len(self.sources)


class CMakeProject:
    """A CMake project configured with Ninja and the tool as C compiler launcher."""

    def __init__(self, name, src, options, jobs=2):
        self.name, self.src, self.options, self.jobs = name, src, options, jobs

    def prepare(self, work):
        self.dir = work / self.name
        shutil.copytree(self.src, self.dir)
        return self

    def build_dir(self, tool):
        return self.dir / f"build-{tool.name}"

    def configure(self, tool):
        """Configures once per tool (untimed; CMake's own compiler checks do not use the launcher)."""
        b = self.build_dir(tool)
        if not (b / "build.ninja").exists():
            launcher = [f"-DCMAKE_C_COMPILER_LAUNCHER={tool.prefix[0]}"] if tool.prefix else []
            sh(["cmake", "-S", str(self.dir), "-B", str(b), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release"]
               + self.options + launcher, env=tool.env)

    def clean(self):
        for b in self.dir.glob("build-*"):
            if (b / "build.ninja").exists():
                sh(["ninja", "-C", str(b), "-t", "clean"])

    def build(self, tool):
        sh(["ninja", "-C", str(self.build_dir(tool)), f"-j{self.jobs}"], env=tool.env)

    def compile_lines(self, tool):
        out = sh(["ninja", "-C", str(self.build_dir(tool)), "-t", "commands"]).stdout
        return [line for line in out.splitlines() if " -c " in line]

    def compiles(self):
        return len(self.compile_lines(Tool("plain", self.dir)))

    def serial(self, tool):
        """The build's compile commands one after another, without ninja (all hits once warm)."""
        b = self.build_dir(tool)
        script = self.dir.parent / f"{self.name}-serial-{tool.name}.sh"
        script.write_text("set -e\n" + "\n".join(self.compile_lines(tool)) + "\n")
        return timed(lambda: sh(["sh", str(script)], cwd=b, env=tool.env))

    def objects(self, tool):
        b = self.build_dir(tool)
        return sorted(p for p in b.rglob("*.o") if any(part.endswith(".dir") for part in p.relative_to(b).parts))


CSV_FIELDS = ["run", "project", "tool", "round", "phase", "seconds", "compiles", "hits", "misses", "other",
              "cache_bytes", "foreign_cpu_s", "flags", "rcc_rev", "gcc", "ccache", "cpu", "nproc"]



def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rev = first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    return {"cpu": cpu, "nproc": nproc, "gcc": first_line(["gcc", "--version"]),
            "ccache": first_line(["ccache", "--version"]), "rcc_rev": rev}


def compare(reference, project, tool):
    """(identical, total, first differing names) of the tool's objects against the plain compiler's."""
    base = project.build_dir(tool) if isinstance(project, CMakeProject) else project.dir
    objs = {str(p.relative_to(base)): p for p in project.objects(tool)}
    same = [n for n, ref in reference.items() if n in objs and filecmp.cmp(ref, objs[n], shallow=False)]
    return len(same), len(reference), sorted(set(reference) - set(same))[:3]


def snapshot(project, tool, dest):
    """Copies the plain compiler's objects aside (the reference for byte-for-byte comparisons)."""
    base = project.build_dir(tool) if isinstance(project, CMakeProject) else project.dir
    ref = {}
    for p in project.objects(tool):
        rel = str(p.relative_to(base))
        ref[rel] = dest / rel
        ref[rel].parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, ref[rel])
    return ref


def fmt(v, f):
    return "-" if v is None else format(v, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="sqlite3.c at -O0 instead of -O2")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (medians are shown)")
    ap.add_argument("--sqlite-rounds", type=int, default=1, help="rounds for sqlite3.c at -O2 (~40 s a compile)")
    ap.add_argument("--only", default="lua,sqlite,zlib-ng", help="comma-separated projects to run")
    ap.add_argument("--no-rcc", action="store_true", help="plain and ccache only (rcc not built yet)")
    args = ap.parse_args()
    only = set(args.only.split(","))

    names = ["plain", "ccache"] + ([] if args.no_rcc else ["rcc"])
    if not args.no_rcc and not os.access(RCC, os.X_OK):
        raise SystemExit(f"c-cache: {RCC} is not an executable (build it, or run with --no-rcc)")
    sqlite_opt = "-O0" if args.quick else "-O2"
    projects = []
    if "lua" in only:
        lua = corpus("lua")
        sources = sorted(p.name for p in lua.glob("*.c") if p.name not in ("lua.c", "luac.c", "onelua.c"))
        projects.append(LoopProject("lua", lua, sources, ["-O2"]))
    if "sqlite" in only:
        projects.append(LoopProject("sqlite", corpus("sqlite"), ["sqlite3.c"], [sqlite_opt]))
    if "zlib-ng" in only:
        # ZLIB_ENABLE_TESTS is deprecated in this zlib-ng: BUILD_TESTING=OFF turns tests, gtest, fuzzers and
        # benchmarks off. Static library only: 49 compiles.
        projects.append(CMakeProject("zlib-ng", corpus("zlib-ng"),
                                     ["-DZLIB_COMPAT=ON", "-DBUILD_TESTING=OFF", "-DBUILD_SHARED_LIBS=OFF"]))

    work = Path(tempfile.mkdtemp(prefix="rcc-bench-"))
    tools = [Tool(n, work) for n in names]
    m = machine()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Csv(ROOT / "bench" / "runs" / f"c-cache-{stamp}.csv", CSV_FIELDS, {"run": stamp, **m})
    log(f"c-cache: work in {work}; raw numbers in {out.path.relative_to(ROOT)}")
    rows, checks, warnings = [], [], []

    def warn(msg):
        warnings.append(msg)
        log("WARNING: " + msg)

    skewed = []

    def noisy(elapsed, phase):
        if not busy(elapsed):
            return ""
        skewed.append(phase)
        return f" (busy: +{GAUGE.foreign:.2f} CPU s elsewhere)"

    try:
        for project in projects:
            project.prepare(work)
            flags = " ".join(project.flags) if isinstance(project, LoopProject) else "-DCMAKE_BUILD_TYPE=Release"
            for tool in tools:
                project.configure(tool)
            n = project.compiles()
            rounds = args.sqlite_rounds if project.name == "sqlite" and not args.quick else args.rounds
            cold = {t.name: [] for t in tools}
            warm = {t.name: [] for t in tools}
            serial = {t.name: [] for t in tools}
            reference, identical = None, {}
            for r in range(rounds):
                for tool in tools:
                    stop_rcc_daemons(tools)  # every cold phase starts without a daemon, rcc's includes the start
                    tool.reset()
                    project.clean()
                    t = timed(lambda: project.build(tool))
                    cold[tool.name].append(t)
                    st = tool.stats()
                    out.add(project=project.name, tool=tool.name, round=r, phase="cold", seconds=f"{t:.4f}",
                            compiles=n, hits=st and st[0], misses=st and st[1], other=st and st[2],
                            cache_bytes=st and st[3], flags=flags, foreign_cpu_s=f"{GAUGE.foreign:.2f}")
                    line = f"  {project.name:8} {tool.name:7} round {r}: cold {t:7.2f} s" + noisy(t, "cold")
                    if r == 0:
                        if tool.name == "plain":
                            reference = snapshot(project, tool, work / f"ref-{project.name}")
                        else:
                            identical[(tool.name, "miss")] = compare(reference, project, tool)
                    if tool.name != "plain":
                        for phase, run in (("warm", lambda: timed(lambda: project.build(tool))),
                                           ("serial", lambda: project.serial(tool))):
                            if phase == "warm":
                                project.clean()
                            tool.zero()
                            t = run()
                            (warm if phase == "warm" else serial)[tool.name].append(t)
                            hits, misses, other, size = tool.stats()
                            out.add(project=project.name, tool=tool.name, round=r, phase=phase,
                                    seconds=f"{t:.4f}", compiles=n, hits=hits, misses=misses, other=other,
                                    cache_bytes=size, flags=flags, foreign_cpu_s=f"{GAUGE.foreign:.2f}")
                            line += f" | {phase} {t:6.3f} s, {hits}/{n} hits" + noisy(t, phase)
                            if hits != n or misses or other:
                                warn(f"{tool.name} {phase} {project.name} round {r}: {hits} hits of {n} compiles, "
                                     f"{misses} misses, {other} uncacheable/errors: not all hits")
                            if phase == "warm" and r == 0:
                                identical[(tool.name, "hit")] = compare(reference, project, tool)
                    log(line)
            for (name, kind), (same, total, diff) in identical.items():
                ok = same == total
                msg = (f"{project.name}: {name} objects ({kind}) byte-identical to plain gcc: "
                       f"{'yes' if ok else 'NO'} ({same}/{total})" + ("" if ok else f", e.g. {', '.join(diff)}"))
                checks.append(msg)
                log("  " + msg)
                if not ok and name == "rcc":
                    warn(msg)
            med = {k: statistics.median(v) for k, v in cold.items()}
            ph = {k: statistics.median(v) / n * 1000 for k, v in warm.items() if v}
            sh_ = {k: statistics.median(v) / n * 1000 for k, v in serial.items() if v}
            for tool in tools:
                k = tool.name
                w = statistics.median(warm[k]) if warm[k] else None
                rows.append((project.name + ("" if isinstance(project, CMakeProject) else f" {flags}"), k, n,
                             med[k], w, ph.get(k), sh_.get(k), (med[k] / med["plain"] - 1) * 100,
                             ph[k] / ph["ccache"] if k in ph and "ccache" in ph else None))
    finally:
        stop_rcc_daemons(tools)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nmachine: {m['nproc']} cores, {m['cpu']}; {platform.platform()}")
    print(f"{m['gcc']}; {m['ccache']}; rcc {'not run' if args.no_rcc else m['rcc_rev']}; rounds: {args.rounds} (medians)"
          + ("" if args.quick or "sqlite" not in only else f"; sqlite -O2: {args.sqlite_rounds}") + "\n")
    print("| project | tool | compiles | cold s | warm s | per-hit ms | serial hit ms | cold vs plain | hit vs ccache |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for p, t, n, c, w, hit, ser, over, vs in rows:
        print(f"| {p} | {t} | {n} | {c:.2f} | {fmt(w, '.3f')} | {fmt(hit, '.2f')} | {fmt(ser, '.2f')} | "
              f"{'-' if t == 'plain' else format(over, '+.1f') + ' %'} | {fmt(vs, '.2f')} |")
    print("\nper-hit = warm / compiles (zlib-ng: ninja -j2); serial hit = the compile commands again, one by one,"
          " without the build tool.\ncold vs plain: target for rcc < +3 %; hit vs ccache (per-hit): target <= 0.5.")
    print()
    for c in checks:
        print(c)
    for w in warnings:
        print("WARNING: " + w)
    if skewed:
        print(f"WARNING: other processes used the CPU during {len(skewed)} of the measurements (marked 'busy' above"
              " and in the CSV's foreign_cpu_s): figures are skewed; rerun on an idle machine")
    print(f"\nraw numbers: {out.path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
