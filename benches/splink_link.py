"""Splink + DuckDB on the same task as `vitalhub link`, for the comparison in docs/benchmarks.md.

Usage: python benches/splink_link.py febrl4|febrl4-no-ssn|registry-dedupe LEFT.csv [RIGHT.csv]
Prints one JSON line: candidate pairs, training and scoring time, pairs scored per second per
core, precision, recall and F1 against the `true_id` column (`truth` for the registry).
The settings mirror benches/febrl4*.toml and benches/registry-dedupe.toml.
"""
import csv
import json
import os
import sys
import time

import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

task, left = sys.argv[1], sys.argv[2]
right = sys.argv[3] if len(sys.argv) > 3 else None
cores = os.cpu_count() or 1
started = time.perf_counter()

def jw(col, tf=False):
    c = cl.JaroWinklerAtThresholds(col, [0.92, 0.8])
    return c.configure(term_frequency_adjustments=True) if tf else c

if task.startswith("febrl4"):
    uid, truth = "rec_id", "true_id"
    comparisons = [jw("given_name", True), jw("surname", True), cl.LevenshteinAtThresholds("date_of_birth", [1, 2])]
    if task == "febrl4":
        comparisons.append(cl.LevenshteinAtThresholds("soc_sec_id", [1, 2]))
    comparisons += [cl.LevenshteinAtThresholds("street_number", [1]), jw("address_1"), jw("suburb"),
                    cl.LevenshteinAtThresholds("postcode", [1]), cl.ExactMatch("state")]
    rules = [block_on("date_of_birth")]
    if task == "febrl4":
        rules.append(block_on("soc_sec_id"))
    rules += [block_on("given_name", "surname"), block_on("postcode", "substr(surname, 1, 2)"), block_on("street_number", "postcode")]
    if task == "febrl4-no-ssn":
        rules += [block_on("given_name", "postcode"), block_on("surname", "suburb"),
                  block_on("substr(date_of_birth, 1, 4)", "substr(given_name, 1, 1)", "substr(surname, 1, 1)"),
                  block_on("address_1", "street_number"), block_on("substr(date_of_birth, 5, 4)", "substr(surname, 1, 3)")]
    deterministic = [block_on("given_name", "surname", "date_of_birth")]
    em_rules = [block_on("date_of_birth"), block_on("given_name", "surname")]
    link_type = "link_only"
else:
    uid, truth = "person_key", "truth"
    comparisons = [cl.LevenshteinAtThresholds("id_number", [1]), cl.ExactMatch("name").configure(term_frequency_adjustments=True),
                   cl.DateOfBirthComparison("birth_date", input_is_string=True), cl.ExactMatch("sex"),
                   cl.ExactMatch("hukou_division"), cl.ExactMatch("mother_id_number")]
    rules = [block_on("birth_date", "sex")]
    deterministic = [block_on("id_number")]
    em_rules = [block_on("birth_date", "sex"), block_on("name")]
    link_type = "dedupe_only"

import pyarrow as pa
import pyarrow.csv as pacsv

def as_text(path):
    # Every column as text, as `vitalhub link` reads it (no numeric guessing).
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    opts = pacsv.ConvertOptions(column_types={c: pa.string() for c in header}, strings_can_be_null=True)
    return pacsv.read_csv(path, convert_options=opts)

db = DuckDBAPI()
frames = [db.register(as_text(left))] + ([db.register(as_text(right))] if right else [])
settings = SettingsCreator(link_type=link_type, unique_id_column_name=uid, comparisons=comparisons,
                           blocking_rules_to_generate_predictions=rules, retain_intermediate_calculation_columns=False)
linker = Linker(frames if right else frames[0], settings, log_level=None)
t = time.perf_counter()
linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.8)
linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
for rule in em_rules:
    linker.training.estimate_parameters_using_expectation_maximisation(rule)
train_s = time.perf_counter() - t
t = time.perf_counter()
pairs = linker.inference.predict().as_duckdbpyrelation()
n_pairs = pairs.count("*").fetchall()[0][0]
score_s = time.perf_counter() - t
matched = pairs.filter("match_probability >= 0.5").select(f"{uid}_l, {uid}_r").fetchall()

def ids(path):
    with open(path, newline="") as f:
        return {row[uid]: row[truth] for row in csv.DictReader(f)}
lt = ids(left)
rt = ids(right) if right else lt
tp = sum(1 for a, b in matched if lt.get(a) and lt.get(a) == rt.get(b))
if right:
    from collections import Counter
    rc = Counter(rt.values())
    true_pairs = sum(rc[v] for v in lt.values() if v)
else:
    from collections import Counter
    c = Counter(v for v in lt.values() if v)
    true_pairs = sum(n * (n - 1) // 2 for n in c.values())
precision = tp / len(matched) if matched else 1.0
recall = tp / true_pairs if true_pairs else 1.0
f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
print(json.dumps({"tool": "splink " + __import__("splink").__version__, "task": task, "candidate_pairs": n_pairs,
                  "train_seconds": round(train_s, 3), "score_seconds": round(score_s, 3),
                  "pairs_per_second_per_core": round(n_pairs / score_s / cores),
                  "total_seconds": round(time.perf_counter() - started, 3),
                  "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}))
