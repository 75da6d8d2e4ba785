#!/usr/bin/env python3
"""Shared cache over loopback: time per file of a plain compile, a local hit and a remote hit (Lua, one file
after another), and blob put/get throughput for many small and a few large blobs, in one run.

Usage: bench/remote.sh [--rounds N]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("RCC_BIN_DIR", ROOT / "target" / "release"))
CORPUS = ROOT.parent / "shared" / "corpus" / "get"


def lua_sources():
    src = Path(subprocess.run([str(CORPUS), "lua"], check=True, capture_output=True, text=True).stdout.strip())
    return src, sorted(p.name for p in src.glob("*.c") if p.name not in ("lua.c", "luac.c", "onelua.c"))


def start_scheduler(state):
    proc = subprocess.Popen([str(BIN / "rcc-scheduler"), "--state", str(state), "serve", "--listen", "127.0.0.1:0"],
                            stderr=subprocess.PIPE, text=True)
    addr = fingerprint = None
    for line in proc.stderr:
        if "listening" in line:
            for word in line.split():
                if word.startswith("addr="):
                    addr = word[5:]
                if word.startswith("fingerprint="):
                    fingerprint = word[12:]
            break
    token = subprocess.run([str(BIN / "rcc-scheduler"), "--state", str(state), "token", "create", "--scope",
                            "read,write"], check=True, capture_output=True, text=True).stdout.strip()
    return proc, addr, fingerprint, token


def machine_env(work, name, addr, fingerprint, token):
    env = dict(os.environ)
    env.update({"RCC_DIR": str(work / f"cache-{name}"), "RCC_SCHEDULER": addr,
                "RCC_SCHEDULER_FINGERPRINT": fingerprint, "RCC_TOKEN": token})
    return env


def build(dir, sources, prefix, env):
    lines = [" ".join(prefix + ["gcc", "-O2", "-c", s, "-o", s[:-2] + ".o"]) for s in sources]
    script = dir / "build.sh"
    script.write_text("set -e\n" + "\n".join(lines) + "\n")
    for o in dir.glob("*.o"):
        o.unlink()
    t = time.perf_counter()
    subprocess.run(["sh", str(script)], cwd=dir, env=env, check=True)
    return time.perf_counter() - t


def stats(env):
    out = subprocess.run([str(BIN / "rcc"), "stats", "--json"], env=env, capture_output=True, text=True)
    return json.loads(out.stdout)["counters"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rcc-remote-bench-"))
    src, sources = lua_sources()
    n = len(sources)
    rcc = [str(BIN / "rcc")]
    plain, local, remote = [], [], []
    for r in range(args.rounds):
        state = work / f"state{r}"
        proc, addr, fp, token = start_scheduler(state)
        try:
            a_dir, b_dir = work / f"a{r}", work / f"b{r}"
            shutil.copytree(src, a_dir)
            shutil.copytree(src, b_dir)
            env_a = machine_env(work, f"a{r}", addr, fp, token)
            env_b = machine_env(work, f"b{r}", addr, fp, token)
            plain.append(build(a_dir, sources, [], dict(os.environ)))
            build(a_dir, sources, rcc, env_a)  # cold: misses, uploads
            deadline = time.time() + 120
            while stats(env_a).get("uploads", 0) < n and time.time() < deadline:
                time.sleep(0.1)
            local.append(build(a_dir, sources, rcc, env_a))
            # Warm machine b's daemon (start, compiler identity) on an unrelated compile first.
            (b_dir / "warm.c").write_text("int warm(void) { return 0; }\n")
            subprocess.run(rcc + ["gcc", "-c", "warm.c", "-o", "warm.o"], cwd=b_dir, env=env_b, check=True)
            remote.append(build(b_dir, sources, rcc, env_b))
            s = stats(env_b)
            if s["hits_remote"] != n:
                print(f"WARNING: round {r}: {s['hits_remote']} remote hits of {n}", file=sys.stderr)
            print(f"  round {r}: plain {plain[-1]:.2f}s local-hit {local[-1]:.3f}s remote-hit {remote[-1]:.3f}s "
                  f"(downloaded {s['bytes_down'] / 1024:.0f} KiB)", file=sys.stderr)
            if r == args.rounds - 1:
                print("\nBlob throughput (rcc-bench client, loopback):\n")
                subprocess.run([str(BIN / "rcc-bench"), "client", "--addr", addr, "--fingerprint", fp],
                               env={**os.environ, "RCC_TOKEN": token}, check=True)
            for env in (env_a, env_b):
                subprocess.run(rcc + ["--stop-daemon"], env=env, capture_output=True)
        finally:
            proc.kill()
            proc.wait()
    med = lambda v: statistics.median(v) / n * 1000
    print(f"\nLua, {n} files one after another, gcc -O2, medians of {args.rounds} rounds ({os.cpu_count()} cores):\n")
    print("| path | per file ms | vs plain |")
    print("|---|---:|---:|")
    for name, v in (("plain compile", plain), ("local hit", local), ("remote hit (loopback)", remote)):
        print(f"| {name} | {med(v):.2f} | {med(v) / med(plain):.3f} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
