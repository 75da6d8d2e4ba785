#!/usr/bin/env python3
"""The remote pool on a real build, in one run: libgit2 (CMake, Unix Makefiles, Release, ~217 compiles) built
with `make -j J` by

  plain          gcc, no launcher;
  ccache         CMAKE_C_COMPILER_LAUNCHER=ccache, empty cache (a cold build: what a cache costs on misses);
  rcc local      CMAKE_C_COMPILER_LAUNCHER=rcc, empty cache, no pool;
  rcc pool N     the same with a scheduler and N `rccd worker` processes on this machine (slots: the cores
                 shared between them), RCC_LOCAL_JOBS=0 so that every miss is compiled on the pool.

All workers share this machine's cores, so on one machine the pool cannot beat plain make: the rows show what
the pool costs, and the overhead column says how much of each remote action is not the compile itself:

  overhead/action = (client's time per remote compile) - (queue wait per action, from the scheduler)
                    - (worker's time per action: inputs, sandboxed compile, output upload, from its log)

that is the client's preprocessing-to-result path outside the worker: uploads, the Execute round trip,
dispatch, result download. Every build's objects are compared with the plain build's (Release: no debug
information, so they must be byte-identical). One CSV line per build goes to bench/runs/pool-<time>.csv.

Usage: bench/pool.sh [--rounds N] [--workers 1,2,4] [--jobs J] [--project libgit2|zlib-ng]
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Csv, first_line  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("RCC_BIN_DIR", ROOT / "target" / "release")).absolute()
CORPUS = ROOT.parent / "shared" / "corpus" / "get"
CMAKE_FLAGS = {
    "libgit2": ["-DUSE_HTTPS=OFF", "-DUSE_SSH=OFF", "-DBUILD_TESTS=OFF", "-DBUILD_CLI=OFF",
                "-DREGEX_BACKEND=builtin", "-DUSE_BUNDLED_ZLIB=ON"],
    "zlib-ng": ["-DZLIB_COMPAT=ON", "-DBUILD_TESTING=OFF", "-DBUILD_SHARED_LIBS=OFF"],
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
        raise SystemExit(f"pool bench: command failed ({r.returncode}): {' '.join(map(str, cmd))}")
    return r


def base_env(work):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CCACHE_", "RCC_"))}
    env.update({"LC_ALL": "C", "RCC_CONFIG": str(work / "rcc-config-absent.toml")})
    return env


class Pool:
    """A scheduler and N workers on loopback, each worker a separate process with its own directory."""

    def __init__(self, work, workers, slots):
        self.state = work / "scheduler"
        self.state.mkdir()
        sched = BIN / "rcc-scheduler"
        self.procs = [subprocess.Popen([str(sched), "--state", str(self.state), "serve", "--listen", "127.0.0.1:0",
                                        "--heartbeat-ms", "1000"], stderr=subprocess.DEVNULL)]
        addr_file = self.state / "listen.addr"
        for _ in range(200):
            if addr_file.exists() and addr_file.read_text().strip():
                break
            time.sleep(0.05)
        self.addr = addr_file.read_text().strip()
        self.fingerprint = re.search(r"[0-9a-f]{64}", sh([sched, "--state", self.state, "fingerprint"]).stdout).group(0)
        token = lambda scopes: sh([sched, "--state", self.state, "token", "create", "--scope", scopes]).stdout.strip()
        self.client_token = token("read,write,execute")
        worker_token = token("worker,read,write")
        self.logs = []
        for i in range(workers):
            d = work / f"worker-{i}"
            d.mkdir(mode=0o755)
            log_path = work / f"worker-{i}.log"
            self.logs.append(log_path)
            self.procs.append(subprocess.Popen(
                [str(BIN / "rccd"), "worker", "--scheduler", self.addr, "--fingerprint", self.fingerprint,
                 "--name", f"w{i}", "--slots", str(slots), "--dir", str(d)],
                env={**os.environ, "RCC_LOG_LEVEL": "info", "RCC_TOKEN": worker_token}, stdout=subprocess.DEVNULL, stderr=open(log_path, "w")))
        for _ in range(600):
            if len(self.status()["workers"]) == workers:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("pool bench: the workers did not register")

    def status(self):
        return json.loads(sh([BIN / "rcc-scheduler", "--state", self.state, "status", "--json"]).stdout)

    def client_env(self, env):
        return {**env, "RCC_SCHEDULER": self.addr, "RCC_SCHEDULER_FINGERPRINT": self.fingerprint,
                "RCC_TOKEN": self.client_token, "RCC_LOCAL_JOBS": "0"}

    def worker_millis(self):
        """Milliseconds the workers spent on actions (fetching inputs, compiling, uploading), from their logs."""
        total = 0
        for path in self.logs:
            for line in path.read_text(errors="replace").splitlines():
                if "action ended" in line:
                    m = re.search(r"millis=(\d+)", line)
                    total += int(m.group(1)) if m else 0
        return total

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def objects(build):
    return {p.relative_to(build): p.read_bytes() for p in build.rglob("*.o")}


def build(name, src, work, project, launcher, env, jobs):
    """Configures (untimed) and builds (timed) in a fresh directory; the wall time and the objects."""
    b = work / f"build-{name}"
    cmd = ["cmake", "-S", src, "-B", b, "-G", "Unix Makefiles", "-DCMAKE_BUILD_TYPE=Release"] + CMAKE_FLAGS[project]
    if launcher:
        cmd.append(f"-DCMAKE_C_COMPILER_LAUNCHER={launcher}")
    sh(cmd, env=env)
    t = time.perf_counter()
    sh(["make", "-C", b, f"-j{jobs}"], env=env)
    return time.perf_counter() - t, objects(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--jobs", type=int, default=2 * (os.cpu_count() or 1))
    ap.add_argument("--project", default="libgit2", choices=sorted(CMAKE_FLAGS))
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    counts = [int(n) for n in args.workers.split(",") if n]
    src = Path(sh([CORPUS, args.project]).stdout.strip())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    machine = {"cores": cores, "cpu": platform.processor() or platform.machine(),
               "gcc": first_line(["gcc", "--version"]), "rev": first_line(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])}
    out = Csv(ROOT / "bench" / "runs" / f"pool-{stamp}.csv",
              ["config", "round", "seconds", "compiles", "remote", "fallbacks", "overhead_ms", "identical"] + list(machine),
              machine)
    rows = {}
    for rnd in range(args.rounds):
        configs = ["plain", "ccache", "rcc local"] + [f"rcc pool {n}" for n in counts]
        for config in configs:
            work = Path(tempfile.mkdtemp(prefix="rcc-pool-bench-"))
            os.chmod(work, 0o755)
            env = base_env(work)
            pool = None
            try:
                launcher = None
                if config == "ccache":
                    env["CCACHE_DIR"] = str(work / "ccache")
                    launcher = "ccache"
                elif config.startswith("rcc"):
                    env["RCC_DIR"] = str(work / "rcc")
                    launcher = str(BIN / "rcc")
                    if config.startswith("rcc pool"):
                        n = int(config.split()[-1])
                        pool = Pool(work, n, max(1, cores // n))
                        env = pool.client_env(env)
                log(f"round {rnd + 1}: {config} ...")
                secs, objs = build(config.replace(" ", "-"), src, work, args.project, launcher, env, args.jobs)
                row = {"seconds": secs, "compiles": len(objs), "remote": "", "fallbacks": "", "overhead_ms": ""}
                if launcher and launcher.endswith("rcc"):
                    stats = json.loads(sh([BIN / "rcc", "stats", "--json"], env=env).stdout)["counters"]
                    row["remote"] = stats.get("remote_compiles", 0)
                    row["fallbacks"] = sum(stats.get("remote_fallbacks", {}).values())
                    if pool and row["remote"]:
                        counters = pool.status()["counters"]
                        per = (stats["remote_millis"] - counters["queued_millis"] - pool.worker_millis()) / row["remote"]
                        row["overhead_ms"] = round(per, 1)
                    subprocess.run([str(BIN / "rcc"), "--stop-daemon"], env=env, capture_output=True)
                if config == "plain":
                    rows.setdefault("_plain_objects", objs)
                plain_objs = rows["_plain_objects"]
                row["identical"] = objs.keys() == plain_objs.keys() and all(objs[k] == plain_objs[k] for k in objs)
                out.add(config=config, round=rnd + 1, **row)
                rows.setdefault(config, []).append(row)
            finally:
                if pool:
                    pool.stop()
                shutil.rmtree(work, ignore_errors=True)
    plain = statistics.median(r["seconds"] for r in rows["plain"])
    print(f"\n{args.project}, `make -j{args.jobs}`, {cores} cores, {args.rounds} round(s), medians; "
          f"rev {machine['rev']}, {machine['gcc']}\n")
    print("| config | wall s | speed-up vs plain | compiles | remote | local fallbacks | overhead/action ms | objects = plain |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for config in [c for c in rows if not c.startswith("_")]:
        rs = rows[config]
        secs = statistics.median(r["seconds"] for r in rs)
        last = rs[-1]
        print(f"| {config} | {secs:.1f} | {plain / secs:.2f}x | {last['compiles']} | {last['remote']} | "
              f"{last['fallbacks']} | {last['overhead_ms']} | {'yes' if all(r['identical'] for r in rs) else 'NO'} |")


if __name__ == "__main__":
    main()
