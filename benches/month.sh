#!/usr/bin/env bash
# Ingest and reconcile one simulated month on the embedded default (SQLite), and report
# throughput per file format, reconcile time, peak memory and accuracy.
# Usage: benches/month.sh [FAMILIES ...]   (default: 4000 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/vitalhub
out=benches/out
mkdir -p "$out"
for families in "${@:-4000 100000}"; do
  for n in $families; do
    work="$out/month-$n"
    rm -rf "$work"
    "$bin" simulate --out "$work/feeds" --families "$n" --seed 1 >/dev/null
    echo "== $n families ($(du -sh "$work/feeds" | cut -f1) of feeds)"
    /usr/bin/time -f "ingest: wall %e s, peak RSS %M KiB" "$bin" --db "$work/v.db" ingest "$work/feeds" | grep -v '^skipped'
    /usr/bin/time -f "reconcile: wall %e s, peak RSS %M KiB" "$bin" --db "$work/v.db" reconcile --period 2026-10 --as-of 2026-11-20 | head -1
    "$bin" --db "$work/v.db" report --period 2026-10 --output "$work/report.jsonl"
    "$bin" evaluate --truth "$work/feeds/truth.jsonl" --report "$work/report.jsonl" | tail -1
  done
done
