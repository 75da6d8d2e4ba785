#!/usr/bin/env bash
# Shared cache over loopback: per-file time of plain compile, local hit and remote hit (Lua), and blob
# put/get throughput. Prints Markdown tables. Takes about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps
source scripts/cargo-env
cargo build --release --bins
RCC_BIN_DIR="$RCC_TARGET_DIR/release" exec python3 bench/remote.py "$@"
