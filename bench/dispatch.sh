#!/usr/bin/env bash
# The scheduler's dispatch core alone (no network): thousands of simulated workers and a million queued
# actions on a simulated clock; dispatch decisions per second and p50/p99 latency per decision, for 1,000
# and 10,000 workers. Prints a Markdown table; raw figures in bench/runs/dispatch-<date>-<time>.csv.
# About a minute on a 2-core VM.
#
#   bash bench/dispatch.sh [--workers "1000 10000"] [--actions N] [--pools N] [--seed S]
set -euo pipefail
cd "$(dirname "$0")/.."

workers_list="1000 10000"
actions=1000000
pools=4
seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers_list="$2"; shift 2 ;;
    --actions) actions="$2"; shift 2 ;;
    --pools) pools="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) echo "usage: $0 [--workers \"1000 10000\"] [--actions N] [--pools N] [--seed S]" >&2; exit 2 ;;
  esac
done

source scripts/cargo-env
cargo build --release -p rcc-bench --bin rcc-bench >&2
bin="$RCC_TARGET_DIR/release/rcc-bench"

stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/runs
csv="bench/runs/dispatch-$stamp.csv"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 | tr -d ',')
cores=$(nproc)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

echo "| workers | actions | pools | decisions/s | p50 µs | p99 µs | max µs | twins | sim loop s | target (≥ 50k/s, p99 < 1 ms) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
first=1
for w in $workers_list; do
  out=$("$bin" dispatch --workers "$w" --actions "$actions" --pools "$pools" --seed "$seed" --csv)
  header=$(head -n 1 <<<"$out")
  row=$(tail -n 1 <<<"$out")
  if [ "$first" = 1 ]; then
    echo "run,$header,rcc_rev,cpu,nproc" > "$csv"
    first=0
  fi
  echo "$stamp,$row,$rev,$cpu,$cores" >> "$csv"
  # Columns by name from the binary's own header, so the table survives new columns.
  awk -F, -v h="$header" -v r="$row" 'BEGIN {
    n = split(h, names, ","); split(r, vals, ",");
    for (i = 1; i <= n; i++) v[names[i]] = vals[i];
    ok = (v["decisions_per_s"] >= 50000 && v["p99_us"] < 1000) ? "met" : "MISSED";
    if (v["delivered"] != v["actions"]) ok = ok " (WARNING: " v["delivered"] " delivered)";
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", v["workers"], v["actions"], v["pools"],
      v["decisions_per_s"], v["p50_us"], v["p99_us"], v["max_us"], v["twins"], v["loop_s"], ok
  }'
done
echo
echo "machine: $cores cores, $cpu; rcc $rev; raw figures: $csv"
