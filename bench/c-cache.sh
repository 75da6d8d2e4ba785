#!/usr/bin/env bash
# Plain gcc vs ccache vs rcc on real C sources (Lua, sqlite3.c, zlib-ng): cold build, warm rebuild, time per
# hit, in one run. Prints a Markdown table; raw numbers in bench/runs/. Takes ~10 minutes (--quick: ~4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps
source scripts/cargo-env
cargo build --release --bins
RCC_BIN="$RCC_TARGET_DIR/release/rcc" exec python3 bench/c-cache.py "$@"
