//! Precision and recall of a report against the simulator's `truth.jsonl`.
//!
//! A report entry matches a truth line when the kinds agree and the truth's `(feed, key)` is
//! among the entry's records: its sources, and its registry key as `registry`. A duplicate
//! pair is keyed `KEY1|KEY2`, the two person keys in order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct TruthLine {
    pub kind: String,
    pub feed: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
struct ReportLine {
    kind: String,
    sources: Vec<Ref>,
    registry_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Ref {
    feed: String,
    key: String,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct KindScore {
    pub expected: u64,
    pub reported: u64,
    pub true_positives: u64,
    pub found: u64,
}

impl KindScore {
    pub fn precision(&self) -> f64 {
        if self.reported == 0 {
            1.0
        } else {
            self.true_positives as f64 / self.reported as f64
        }
    }
    pub fn recall(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.found as f64 / self.expected as f64
        }
    }
}

/// Scores per kind, plus `overall`.
pub fn evaluate(
    truth: &[TruthLine],
    report: &[String],
) -> anyhow::Result<BTreeMap<String, KindScore>> {
    let truth_set: BTreeSet<&TruthLine> = truth.iter().collect();
    let mut scores: BTreeMap<String, KindScore> = BTreeMap::new();
    for t in &truth_set {
        scores.entry(t.kind.clone()).or_default().expected += 1;
    }
    // Looked up by what a report line refers to: scanning the truth for every line took
    // minutes for a province's month (147,546 x 147,546).
    let mut by_ref: std::collections::HashMap<(&str, &str, &str), Vec<&TruthLine>> =
        std::collections::HashMap::new();
    for t in &truth_set {
        by_ref
            .entry((t.kind.as_str(), t.feed.as_str(), t.key.as_str()))
            .or_default()
            .push(t);
    }
    let mut found: BTreeSet<&TruthLine> = BTreeSet::new();
    for (n, line) in report
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let entry: ReportLine =
            serde_json::from_str(line).with_context(|| format!("report line {}", n + 1))?;
        let mut refs: Vec<(String, String)> = entry
            .sources
            .iter()
            .map(|r| (r.feed.clone(), r.key.clone()))
            .collect();
        if let Some(k) = &entry.registry_key {
            refs.push(("registry".into(), k.clone()));
            if entry.kind == "duplicate_registry_record" {
                for r in &entry.sources {
                    let mut pair = [k.clone(), r.key.clone()];
                    pair.sort();
                    refs.push(("registry".into(), pair.join("|")));
                }
            }
        }
        let matches: BTreeSet<&TruthLine> = refs
            .iter()
            .filter_map(|(f, k)| by_ref.get(&(entry.kind.as_str(), f.as_str(), k.as_str())))
            .flatten()
            .copied()
            .collect();
        let s = scores.entry(entry.kind.clone()).or_default();
        s.reported += 1;
        if !matches.is_empty() {
            s.true_positives += 1;
        }
        found.extend(matches);
    }
    for t in &found {
        scores.entry(t.kind.clone()).or_default().found += 1;
    }
    let mut overall = KindScore::default();
    for s in scores.values() {
        overall.expected += s.expected;
        overall.reported += s.reported;
        overall.true_positives += s.true_positives;
        overall.found += s.found;
    }
    scores.insert("overall".into(), overall);
    Ok(scores)
}

pub fn read_truth(path: &Path) -> anyhow::Result<Vec<TruthLine>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

pub fn format_table(scores: &BTreeMap<String, KindScore>) -> String {
    let mut out = format!(
        "{:<30} {:>8} {:>8} {:>9} {:>7}\n",
        "kind", "expected", "reported", "precision", "recall"
    );
    for (kind, s) in scores
        .iter()
        .filter(|(k, _)| *k != "overall")
        .chain(scores.get_key_value("overall"))
    {
        out += &format!(
            "{:<30} {:>8} {:>8} {:>9.3} {:>7.3}\n",
            kind,
            s.expected,
            s.reported,
            s.precision(),
            s.recall()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(kind: &str, feed: &str, key: &str) -> TruthLine {
        TruthLine {
            kind: kind.into(),
            feed: feed.into(),
            key: key.into(),
        }
    }

    #[test]
    fn report_lines_match_truth_by_kind_and_any_record_they_name() {
        let truth = vec![
            truth("unreported_birth", "health.births", "B1"),
            truth("unregistered_child", "registry", "P7"),
            truth("duplicate_registry_record", "registry", "P1|P2"),
            truth("unreported_birth", "health.births", "B9"),
        ];
        let report: Vec<String> = [
            // By a source.
            r#"{"kind":"unreported_birth","sources":[{"feed":"health.births","key":"B1"}],"registry_key":null}"#,
            // By its registry key.
            r#"{"kind":"unregistered_child","sources":[],"registry_key":"P7"}"#,
            // A duplicate pair, named from either side.
            r#"{"kind":"duplicate_registry_record","sources":[{"feed":"registry","key":"P1"}],"registry_key":"P2"}"#,
            // The right record under another kind is no match.
            r#"{"kind":"conflicting_birth_data","sources":[{"feed":"health.births","key":"B9"}],"registry_key":null}"#,
        ]
        .map(String::from)
        .to_vec();
        let scores = evaluate(&truth, &report).unwrap();
        let overall = &scores["overall"];
        assert_eq!(
            (
                overall.expected,
                overall.reported,
                overall.true_positives,
                overall.found
            ),
            (4, 4, 3, 3)
        );
        assert_eq!(scores["unreported_birth"].recall(), 0.5);
        assert_eq!(scores["conflicting_birth_data"].precision(), 0.0);
    }
}
