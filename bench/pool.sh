#!/usr/bin/env bash
# The remote pool on a real build: libgit2 (~217 compiles, CMake + make) built plain, through ccache and rcc
# with no pool, and through rcc on a loopback pool of 1, 2 and 4 workers (local jobs 0: every miss remote).
# Prints wall time, speed-up and the pool's overhead per action; raw numbers in bench/runs/.
# About 10 minutes on a 2-core VM.
#   bash bench/pool.sh [--rounds N] [--workers 1,2,4] [--jobs J] [--project libgit2|zlib-ng]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps
source scripts/cargo-env
cargo build --release --bins -p rcc -p rccd -p rcc-scheduler
RCC_BIN_DIR="$RCC_TARGET_DIR/release" exec python3 bench/pool.py "$@"
