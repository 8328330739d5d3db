"""A month of registry changes for benchmarks (docs/benchmarks.md, "Sixth session").

From a simulated registry.csv, writes the records a monthly re-export would change: every 50th
person's record updated (a new updated_at) and every 200th moved to the next county of the
province. Usage: python3 benches/registry_changes.py m2/registry.csv reg2/registry.csv
"""

import csv
import sys


def main(src: str, out: str) -> None:
    rows = csv.reader(open(src, newline="", encoding="utf-8"))
    header = next(rows)
    hd, up = header.index("hukou_division"), header.index("updated_at")
    counties, picked = set(), []
    for i, r in enumerate(rows):
        counties.add(r[hd])
        if i % 50 == 7 or i % 200 == 3:
            picked.append((i, r))
    ordered = sorted(counties)
    following = {c: ordered[(k + 1) % len(ordered)] for k, c in enumerate(ordered)}
    moved = 0
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i, r in picked:
            r[up] = "2026-11-01T00:00:00+08:00"
            if i % 200 == 3:
                r[hd] = following[r[hd]]
                moved += 1
            w.writerow(r)
    print(f"{len(picked)} records changed, {moved} of them moved", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
