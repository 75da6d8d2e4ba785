#!/usr/bin/env bash
# Rust: `cargo build --release` of bench/rust-graph (60+ crates.io crates, proc-macros, a bin, C through the
# cc crate) with no wrapper, with sccache and with rcc as RUSTC_WRAPPER (cold and warm cache each), in one
# run. Prints a Markdown table (wall time, hit rate, ratios); raw numbers in bench/runs/rust-<date>-<time>.csv.
# About 10 minutes on a 2-core VM (five release builds of about 100 s each), plus sccache's install once.
#   bash bench/rust.sh [--rounds N] [--no-rcc] [--no-sccache] [--separate-target-dirs] [--idle-wait S] [--keep]
# sccache: ${RCC_BENCH_TOOLS:-~/.cache/rcc-bench}/sccache/bin/sccache, installed there with
# `cargo install sccache --locked` if missing (about 10 minutes once).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps

no_rcc=0 no_sccache=0
for arg in "$@"; do
  case "$arg" in
    --no-rcc) no_rcc=1 ;;
    --no-sccache) no_sccache=1 ;;
  esac
done

tools="${RCC_BENCH_TOOLS:-$HOME/.cache/rcc-bench}"
sccache="$tools/sccache/bin/sccache"
if [ "$no_sccache" = 0 ] && [ ! -x "$sccache" ]; then
  # An install into the same root already under way (another run, a background job): wait for it.
  while pgrep -f "cargo install sccache .*--root $tools/sccache" >/dev/null 2>&1; do
    echo "rust: waiting for a running 'cargo install sccache' into $tools/sccache" >&2
    sleep 20
  done
  if [ ! -x "$sccache" ]; then
    echo "rust: installing sccache into $tools/sccache (cargo install sccache --locked; once)" >&2
    cargo install sccache --locked --root "$tools/sccache" >&2
  fi
  [ -x "$sccache" ] || { echo "rust: no sccache at $sccache after installing it" >&2; exit 1; }
fi

rcc_bin=""
if [ "$no_rcc" = 0 ]; then
  # In a subshell: scripts/cargo-env's settings (host triple, static C runtime) are for rcc's own build, not
  # for the benchmarked graph. Only the two binaries timed here: a half-written workspace member must not stop it.
  rcc_bin=$(source scripts/cargo-env && cargo build --release --bins -p rcc -p rccd >&2 && echo "$RCC_TARGET_DIR/release/rcc")
  [ -x "$rcc_bin" ] || { echo "rust: rcc was not built at $rcc_bin" >&2; exit 1; }
fi

RCC_BIN="$rcc_bin" SCCACHE_BIN="$sccache" exec python3 bench/rust.py "$@"
