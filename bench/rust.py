#!/usr/bin/env python3
"""Times `cargo build --release` of bench/rust-graph (60+ crates.io crates) plain, with sccache and with rcc as
RUSTC_WRAPPER, in one run, and prints a Markdown table.

Builds, each from an empty target directory (CARGO_INCREMENTAL=0, cargo's default -j):
  plain          no wrapper;
  sccache cold   RUSTC_WRAPPER=sccache, empty SCCACHE_DIR;
  sccache warm   the same cache, target directory deleted (a clean rebuild);
  rcc cold       RUSTC_WRAPPER=rcc, empty RCC_DIR;
  rcc warm       the same cache, target directory deleted.
Before every build the tool's server is stopped (sccache --stop-server, rcc --stop-daemon), started again
untimed, and its statistics zeroed: a warm build meets a cache on disk and a freshly started server, as the
next CI job or the next morning would. C compiled by build scripts (zstd-sys, through the `cc` crate) goes
through the tool too: the cc crate wraps the C compiler with sccache by itself when RUSTC_WRAPPER is sccache;
for rcc the script sets CC="<rcc> cc", CXX="<rcc> c++" and CC_KNOWN_WRAPPER_CUSTOM=rcc.

Every build writes to the same path (<work>/target, deleted before each build; --separate-target-dirs gives
each build its own), so binaries can be compared byte for byte with the plain build's.

hits / misses / uncached come from the tool's own statistics (`sccache --show-stats --stats-format json`,
`rcc stats --json`); hit rate = hits / (hits + misses + uncached), where uncached counts the compile calls
the tool passed to the compiler without caching (sccache: proc-macros, bins, build scripts, stdin probes;
rcc: whatever it reports as uncacheable or error). rust hit rate: the same for rustc calls alone (the units
and the rustc probes some build scripts compile; sccache does not say which language an uncacheable call was:
they are all rustc here). Units = rustc compiles cargo reported (compiler-artifact
messages, not fresh). One CSV line per build is appended, as it is taken, to bench/runs/rust-<date>-<time>.csv.

Usage: bench/rust.sh [--rounds N] [--no-rcc] [--no-sccache] [--separate-target-dirs] [--idle-wait S] [--keep]
"""
import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Csv, NoiseGauge, first_line  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "bench" / "rust-graph"
RCC = Path(os.environ.get("RCC_BIN", ROOT / "target" / "release" / "rcc")).absolute()
SCCACHE = Path(os.environ.get("SCCACHE_BIN", "sccache"))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, quiet=True, check=True, **kw):
    """Runs a command; on failure shows its output (hidden otherwise when quiet) and raises."""
    r = subprocess.run([str(c) for c in cmd], capture_output=quiet, text=True, **kw)
    if check and r.returncode != 0:
        if quiet:
            sys.stderr.write((r.stdout or "")[-4000:] + (r.stderr or "")[-4000:])
        raise SystemExit(f"rust: command failed ({r.returncode}): {shlex.join(map(str, cmd))}")
    return r


# ---- noise gauge: CPU time the rest of the machine used during a measurement ----

GAUGE = NoiseGauge()


def wait_idle(limit):
    """Waits (at most limit seconds) until the rest of the machine uses under 0.3 cores over 3 s; returns the
    seconds waited (another build or test run on the machine would skew a multi-minute build)."""
    start = time.monotonic()
    while True:
        foreign = GAUGE.foreign_over(3)
        waited = time.monotonic() - start
        if foreign < 0.9 or waited >= limit:
            return waited


def busy(elapsed):
    return GAUGE.busy(elapsed, 0.5)


# ---- the tools ----

DROP_PREFIXES = ("RCC_", "SCCACHE_", "CCACHE_", "CARGO_BUILD_", "CARGO_TARGET_", "CARGO_PROFILE_", "CARGO_ENCODED_")
DROP = {"RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "RUSTFLAGS", "CC", "CXX", "CFLAGS", "CXXFLAGS",
        "CC_KNOWN_WRAPPER_CUSTOM", "CARGO_INCREMENTAL", "CARGO_TARGET_DIR", "RUSTC"}


def base_env():
    """The caller's environment without any cache's or build's settings (scripts/cargo-env's among them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP_PREFIXES) and k not in DROP}
    env.update(LC_ALL="C", CARGO_INCREMENTAL="0", CARGO_TERM_COLOR="never", CARGO_TERM_PROGRESS_WHEN="never")
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tool:
    def __init__(self, name, work):
        self.name = name
        self.cache = work / f"cache-{name}"
        self.env = base_env()
        if name == "rcc":
            self.env.update(RUSTC_WRAPPER=str(RCC), RCC_DIR=str(self.cache),
                            RCC_CONFIG=str(work / "rcc-config-absent.toml"),
                            # build scripts' C compiles (cc crate): `rcc cc …`
                            CC=f"{RCC} cc", CXX=f"{RCC} c++", CC_KNOWN_WRAPPER_CUSTOM="rcc")
            GAUGE.add_server("rccd", "RCC_DIR", str(self.cache))
        elif name == "sccache":
            # Own cache, own port (never a server someone else started), no user config file.
            # The cc crate wraps C compiles in sccache itself when RUSTC_WRAPPER's name is sccache.
            self.env.update(RUSTC_WRAPPER=str(SCCACHE), SCCACHE_DIR=str(self.cache),
                            SCCACHE_CONF=str(work / "sccache-config-absent.toml"),
                            SCCACHE_SERVER_PORT=str(free_port()), SCCACHE_IDLE_TIMEOUT="0",
                            SCCACHE_CACHE_SIZE="20G")
            GAUGE.add_server("sccache", "SCCACHE_DIR", str(self.cache))

    def stop(self):
        if self.name == "rcc":
            subprocess.run([str(RCC), "--stop-daemon"], env=self.env, capture_output=True)
        elif self.name == "sccache":
            subprocess.run([str(SCCACHE), "--stop-server"], env=self.env, capture_output=True)

    def reset(self):
        shutil.rmtree(self.cache, ignore_errors=True)
        self.cache.mkdir(parents=True, exist_ok=True)

    def start_and_zero(self):
        """Starts the server (untimed) and zeroes its statistics."""
        if self.name == "rcc":
            sh([RCC, "stats", "--zero"], env=self.env)
        elif self.name == "sccache":
            sh([SCCACHE, "--start-server"], env=self.env)
            sh([SCCACHE, "--zero-stats"], env=self.env)

    def stats(self):
        """{hits, misses, uncached, rust_hits, cache_bytes, detail} since the last zero; None for plain.
        uncached: compile calls run without the cache (cargo's probes of rustc, which compile nothing, left out)."""
        if self.name == "rcc":
            s = json.loads(sh([RCC, "stats", "--json"], env=self.env).stdout)
            c = s["counters"]
            r = c.get("rust") or {}
            real = lambda m: sum(v for k, v in (m or {}).items() if k != "rustc-probe")
            rust_hits = r.get("hits", 0) + r.get("hits_remote", 0)
            hits = c.get("hits_direct", 0) + c.get("hits_preprocessor", 0) + c.get("hits_remote", 0) + rust_hits
            misses = c.get("misses", 0) + r.get("misses", 0)
            unc = real(c.get("uncacheable")) + real(c.get("errors")) + real(r.get("uncacheable")) + real(r.get("errors"))
            detail = {"c": {k: c[k] for k in ("hits_direct", "hits_preprocessor", "misses", "uncacheable", "errors")
                            if c.get(k)},
                      "rust": {k: v for k, v in r.items() if k in ("hits", "hits_remote", "misses", "stored", "uncacheable",
                                                                     "errors") and v}}
            rust_calls = rust_hits + r.get("misses", 0) + real(r.get("uncacheable")) + real(r.get("errors"))
            return dict(hits=hits, misses=misses, uncached=unc, rust_hits=rust_hits, rust_calls=rust_calls,
                        cache_bytes=s.get("cache_bytes", 0), detail=detail)
        if self.name == "sccache":
            s = json.loads(sh([SCCACHE, "--show-stats", "--stats-format", "json"], env=self.env).stdout)
            st = s.get("stats", s)
            counts = lambda k: (st.get(k) or {}).get("counts", {}) if isinstance(st.get(k), dict) else {}
            hits, misses = sum(counts("cache_hits").values()), sum(counts("cache_misses").values())
            unc = (st.get("requests_not_cacheable", 0) + st.get("requests_unsupported_compiler", 0)
                   + sum(counts("cache_errors").values()))
            detail = {"hits": counts("cache_hits"), "misses": counts("cache_misses"),
                      "not_cached": st.get("not_cached", {}), "errors": counts("cache_errors"),
                      "requests_not_cacheable": st.get("requests_not_cacheable"),
                      "requests_not_compile": st.get("requests_not_compile"),
                      "requests_unsupported_compiler": st.get("requests_unsupported_compiler")}
            # sccache's requests_not_cacheable has no language: here they are all rustc calls (bins,
            # proc-macros, build scripts' probes), the cc crate's C compiles being cacheable.
            rh = counts("cache_hits").get("Rust", 0)
            rust_calls = (rh + counts("cache_misses").get("Rust", 0) + counts("cache_errors").get("Rust", 0)
                          + st.get("requests_not_cacheable", 0))
            return dict(hits=hits, misses=misses, uncached=unc, rust_hits=rh, rust_calls=rust_calls,
                        cache_bytes=s.get("cache_size") or 0, detail=detail)
        return None


# ---- the build ----

def crate_count(env):
    out = sh(["cargo", "tree", "--prefix", "none", "--locked", "--offline", "-e", "normal,build"],
             cwd=GRAPH, env=env).stdout
    names = {l.replace(" (*)", "").replace(" (proc-macro)", "").strip() for l in out.splitlines() if l.strip()}
    local = {n for n in names if "(" in n}  # path crates show their directory
    return len(names), len(names) - len(local)


def build(tool, target, logfile):
    """cargo build --release into target; returns (ok, units compiled, build scripts run)."""
    env = dict(tool.env, CARGO_TARGET_DIR=str(target))
    with open(logfile, "w") as f:
        r = subprocess.run(["cargo", "build", "--release", "--locked", "--offline",
                            "--message-format", "json-render-diagnostics"],
                           cwd=GRAPH, env=env, stdout=subprocess.PIPE, stderr=f, text=True)
    units = scripts = 0
    for line in r.stdout.splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") == "compiler-artifact" and not m.get("fresh"):
            units += 1
        elif m.get("reason") == "build-script-executed":
            scripts += 1
    return r.returncode == 0, units, scripts


def disk_bytes(path):
    """Bytes the files under path occupy (the cache's size on disk, measured alike for every tool)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


RUST_FIELDS = ["run", "tool", "round", "phase", "ok", "seconds", "units", "build_scripts", "hits", "misses",
              "uncached", "hit_rate", "rust_hits", "rust_hit_rate", "cache_bytes", "bin_same_as_plain", "foreign_cpu_s", "crates", "rustc",
              "sccache", "rcc_rev", "cpu", "nproc", "detail"]



def fmt(v, f):
    return "-" if v is None else format(v, f)


def pct(v):
    return "-" if v is None else f"{v * 100:.0f} %"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=1, help="rounds (medians are shown); a build takes minutes")
    ap.add_argument("--no-rcc", action="store_true", help="plain and sccache only")
    ap.add_argument("--no-sccache", action="store_true", help="plain and rcc only")
    ap.add_argument("--separate-target-dirs", action="store_true",
                    help="each build its own target directory path (default: one path, emptied before each build)")
    ap.add_argument("--idle-wait", type=float, default=180,
                    help="before each build, wait at most this many seconds for other processes to go quiet")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (build logs, caches)")
    args = ap.parse_args()

    names = ["plain"] + ([] if args.no_sccache else ["sccache"]) + ([] if args.no_rcc else ["rcc"])
    if "rcc" in names and not os.access(RCC, os.X_OK):
        raise SystemExit(f"rust: {RCC} is not an executable (build it, or run with --no-rcc)")
    if "sccache" in names and not shutil.which(str(SCCACHE)):
        raise SystemExit(f"rust: {SCCACHE} is not an executable (install it, or run with --no-sccache)")

    work = Path(tempfile.mkdtemp(prefix="rcc-bench-rust-"))
    tools = [Tool(n, work) for n in names]
    env0 = base_env()
    log("rust: fetching the graph's sources (untimed; offline if already in ~/.cargo/registry)")
    sh(["cargo", "fetch", "--locked"], cwd=GRAPH, env=env0)
    crates, from_registry = crate_count(env0)
    m = {"cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
         "nproc": len(os.sched_getaffinity(0)),
         "rustc": first_line(["rustc", "--version"], env0),
         "sccache": first_line([str(SCCACHE), "--version"], env0) if "sccache" in names else "-",
         "rcc_rev": first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]) if "rcc" in names else "-",
         "crates": crates}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Csv(ROOT / "bench" / "runs" / f"rust-{stamp}.csv", RUST_FIELDS, {"run": stamp, **m})
    log(f"rust: {crates} crates in the graph ({from_registry} from crates.io); work in {work}; "
        f"raw numbers in {out.path.relative_to(ROOT)}")

    results = {}  # (tool, phase) -> list of dicts
    warnings, skewed = [], []
    plain_bin = None

    def warn(msg):
        warnings.append(msg)
        log("WARNING: " + msg)

    try:
        for r in range(args.rounds):
            for tool in tools:
                for phase in (["build"] if tool.name == "plain" else ["cold", "warm"]):
                    for t in tools:
                        t.stop()
                    if phase == "cold":
                        tool.reset()
                    tool.start_and_zero()
                    target = work / (f"target-{tool.name}-{phase}-{r}" if args.separate_target_dirs else "target")
                    shutil.rmtree(target, ignore_errors=True)
                    logfile = work / f"build-{tool.name}-{phase}-{r}.log"
                    if args.idle_wait > 0:
                        waited = wait_idle(args.idle_wait)
                        if waited >= 10:
                            log(f"  (waited {waited:.0f} s for the machine to be idle"
                                f"{'' if waited < args.idle_wait else ': it is not, going on'})")
                    secs, (ok, units, scripts) = GAUGE.timed(lambda: build(tool, target, logfile))
                    foreign = GAUGE.foreign
                    st = tool.stats()
                    tool.stop()
                    binary = target / "release" / "rust-graph"
                    same = None
                    if ok:
                        run = subprocess.run([str(binary), "--count", "100"], capture_output=True, text=True)
                        if run.returncode != 0 or '"words"' not in run.stdout:
                            warn(f"{tool.name} {phase}: the built program does not run properly: {run.stderr[-500:]}")
                        digest = sha256(binary)
                        if tool.name == "plain":
                            plain_bin = plain_bin or digest
                        elif plain_bin:
                            same = digest == plain_bin
                    else:
                        tail = logfile.read_text(errors="replace")[-3000:]
                        warn(f"{tool.name} {phase} round {r}: cargo build FAILED (log {logfile}):\n{tail}")
                    calls = st and st["hits"] + st["misses"] + st["uncached"]
                    rate = st["hits"] / calls if st and calls else None
                    rust_rate = st["rust_hits"] / st["rust_calls"] if st and st["rust_calls"] else None
                    row = dict(tool=tool.name, phase=phase, ok=ok, seconds=secs, units=units, scripts=scripts,
                               stats=st, rate=rate, rust_rate=rust_rate, same=same,
                               cache_mb=disk_bytes(tool.cache) / 1e6 if st else None)
                    results.setdefault((tool.name, phase), []).append(row)
                    out.add(tool=tool.name, round=r, phase=phase, ok=ok, seconds=f"{secs:.3f}", units=units,
                            build_scripts=scripts, hits=st and st["hits"], misses=st and st["misses"],
                            uncached=st and st["uncached"], hit_rate=fmt(rate, ".4f") if st else "",
                            rust_hits=st and st["rust_hits"], rust_hit_rate=fmt(rust_rate, ".4f") if st else "",
                            cache_bytes=round(row["cache_mb"] * 1e6) if st else "", bin_same_as_plain="" if same is None else same,
                            foreign_cpu_s=f"{foreign:.2f}", detail=json.dumps(st["detail"]) if st else "")
                    line = f"  {tool.name:7} {phase:5} round {r}: {secs:7.1f} s, {units} units"
                    if st:
                        line += (f", {st['hits']} hits / {st['misses']} misses / {st['uncached']} uncached"
                                 f" ({pct(rate)}), {st['rust_hits']} rust hits ({pct(rust_rate)} of rustc compiles)")
                    if busy(secs):
                        skewed.append(f"{tool.name} {phase}")
                        line += f" (busy: +{foreign:.1f} CPU s elsewhere)"
                    log(line)
                    if st:
                        log(f"          detail: {json.dumps(st['detail'])}")
                    if not args.keep:
                        shutil.rmtree(target, ignore_errors=True)
    finally:
        for t in tools:
            t.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"rust: work directory kept: {work}")

    def med(tool, phase, key):
        rows = results.get((tool, phase), [])
        vals = [r[key] for r in rows if r[key] is not None]
        return statistics.median(vals) if vals else None

    plain = med("plain", "build", "seconds")
    print(f"\nmachine: {m['nproc']} cores, {m['cpu']}; {platform.platform()}")
    print(f"{m['rustc']}; {m['sccache']}; rcc {m['rcc_rev']}; graph: bench/rust-graph, {crates} crates "
          f"({from_registry} from crates.io); cargo build --release -j{m['nproc']}, CARGO_INCREMENTAL=0; "
          f"rounds: {args.rounds}" + (" (medians)" if args.rounds > 1 else "") + "\n")
    print("| tool | cache | wall s | vs plain | units | hits | misses | uncached | hit rate | rust hit rate |"
          " cache MB | bin = plain |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for tool in names:
        for phase in (["build"] if tool == "plain" else ["cold", "warm"]):
            rows = results.get((tool, phase))
            if not rows:
                continue
            s = med(tool, phase, "seconds")
            failed = not all(r["ok"] for r in rows)
            st = [r["stats"] for r in rows if r["stats"]]
            pick = lambda k: statistics.median(x[k] for x in st) if st else None
            same = rows[-1]["same"]
            print(f"| {tool} | {'-' if tool == 'plain' else phase} | {s:.1f}{' FAILED' if failed else ''} | "
                  f"{fmt(s / plain if plain else None, '.2f')} | {rows[-1]['units']} | {fmt(pick('hits'), '.0f')} | "
                  f"{fmt(pick('misses'), '.0f')} | {fmt(pick('uncached'), '.0f')} | "
                  f"{pct(med(tool, phase, 'rate'))} | {pct(med(tool, phase, 'rust_rate'))} | "
                  f"{fmt(med(tool, phase, 'cache_mb'), '.0f')} | "
                  f"{'-' if same is None else ('yes' if same else 'no')} |")
    print("\nunits: rustc compiles cargo ran (libs, proc-macros, build scripts, the bin); hits, misses and uncached"
          " (compile calls run without the cache;\ncargo's probes of rustc left out) from the tool's own statistics,"
          " C compiles of build scripts included;\nhit rate = hits / (hits + misses + uncached); rust hit rate: the same for rustc"
          " alone (its compiles: the units and\nbuild scripts' own rustc probes; sccache does not say which"
          " language an uncacheable call was: all rustc here).")
    ws, wr = med("sccache", "warm", "seconds"), med("rcc", "warm", "seconds")
    if ws and wr:
        rs, rr = med("sccache", "warm", "rust_rate"), med("rcc", "warm", "rust_rate")
        ratio = wr / ws
        ok = ratio <= 0.8 and rr is not None and rs is not None and rr > rs
        print(f"\nwarm rcc / warm sccache: {ratio:.2f} (target <= 0.80), rust hit rate {pct(rr)} vs {pct(rs)} (target: higher): {'met' if ok else 'NOT met'}")
    for w in warnings:
        print("WARNING: " + w.splitlines()[0])
    if skewed:
        print(f"WARNING: other processes used the CPU during {', '.join(skewed)} (foreign_cpu_s in the CSV): "
              "figures are skewed; rerun on an idle machine")
    print(f"\nraw numbers: {out.path.relative_to(ROOT)}")
    if any(not r["ok"] for rows in results.values() for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
