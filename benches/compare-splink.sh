#!/usr/bin/env bash
# vitalhub link and Splink 5 + DuckDB on the same data, same machine, same run:
# FEBRL4 (with and without soc_sec_id) and the deduplication of a simulated registry of
# about 1,000,000 persons. Prints one line per tool and task; results go in docs/benchmarks.md.
# Usage: benches/compare-splink.sh [FAMILIES]   (default 290000, about 1,000,000 persons)
set -euo pipefail
cd "$(dirname "$0")/.."
families=${1:-290000}
benches/febrl4.sh >/dev/null   # fetches FEBRL4 and builds the release binary
venv=benches/out/splink-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "splink==5.0.0"
fi
bin=target/release/vitalhub
data=benches/data/febrl4
reg=benches/out/registry-$families
if [ ! -f "$reg/registry-truth.csv" ]; then
  "$bin" simulate --out "$reg" --families "$families" --seed 1 >/dev/null
  # truth: duplicates injected by the simulator share the smaller person key of their pair.
  python3 - "$reg" <<'PY'
import csv, json, sys
d = sys.argv[1]
same = {}
for line in open(f"{d}/truth.jsonl"):
    t = json.loads(line)
    if t["kind"] == "duplicate_registry_record":
        a, b = t["key"].split("|")
        same[b] = a
with open(f"{d}/registry.csv", newline="") as f, open(f"{d}/registry-truth.csv", "w", newline="") as g:
    r = csv.DictReader(f)
    w = csv.DictWriter(g, fieldnames=r.fieldnames + ["truth"])
    w.writeheader()
    for row in r:
        row["truth"] = same.get(row["person_key"], row["person_key"])
        w.writerow(row)
PY
fi
run() { /usr/bin/time -f "  wall %e s, peak RSS %M KiB" "$@" 2>&1; }
for t in febrl4 febrl4-no-ssn; do
  echo "== $t: vitalhub"
  run "$bin" link --left $data/a.csv --right $data/b.csv --settings benches/$t.toml --output benches/out/$t-pairs.csv --truth-column true_id | grep -E "pairs|time|truth|wall"
  echo "== $t: splink"
  run "$venv/bin/python" benches/splink_link.py $t $data/a.csv $data/b.csv | tail -2
done
echo "== registry dedupe ($(($(wc -l < "$reg/registry-truth.csv") - 1)) persons): vitalhub"
run "$bin" link --left "$reg/registry-truth.csv" --dedupe --settings benches/registry-dedupe.toml --output benches/out/dedupe-pairs.csv --truth-column truth | grep -E "pairs|time|truth|clusters|wall"
echo "== registry dedupe: splink"
run "$venv/bin/python" benches/splink_link.py registry-dedupe "$reg/registry-truth.csv" | tail -2
