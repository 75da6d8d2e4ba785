#!/usr/bin/env bash
# Plain gcc vs ccache vs rcc on real C sources (Lua, sqlite3.c, zlib-ng): cold build, warm rebuild, time per
# hit, in one run on the same machine and files. Prints a Markdown table; raw numbers in bench/runs/.
# About 5 minutes on a 2-core VM (--quick: sqlite3.c at -O0, about 3).
#   bash bench/c-cache.sh [--quick] [--rounds N] [--sqlite-rounds N] [--only lua,sqlite,zlib-ng] [--no-rcc]
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc, cmake, ninja, ccache (and clang, make) from apt if missing, with sudo unless root; needs cargo.
bash scripts/install-deps
if ! command -v python3 >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "c-cache: installing python3" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >&2
fi

no_rcc=0
for arg in "$@"; do [ "$arg" = "--no-rcc" ] && no_rcc=1; done
# The project's build settings (host triple, static C runtime): the binaries land in $RCC_TARGET_DIR/release.
source scripts/cargo-env
if [ "$no_rcc" = 0 ]; then
  # Only the two binaries timed here (rcc starts rccd from its own directory): a half-written
  # other workspace member must not stop the benchmark.
  cargo build --release --bins -p rcc -p rccd
fi
RCC_BIN="$RCC_TARGET_DIR/release/rcc" exec python3 bench/c-cache.py "$@"
