//! `vitalhub link`: link two CSV files (or deduplicate one) with a settings file, write the
//! scored pairs, and measure precision, recall and F1 when a truth column is given.

use foldhash::{HashMap, HashMapExt};
use std::path::Path;
use std::time::Instant;

use super::fs::{Decision, Linker, Model, Scored, Settings, Table};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LinkReport {
    pub left_records: usize,
    pub right_records: usize,
    pub candidate_pairs: usize,
    pub pairs_per_rule: Vec<u64>,
    pub matches: usize,
    pub reviews: usize,
    pub blocking_seconds: f64,
    pub train_seconds: f64,
    pub score_seconds: f64,
    pub total_seconds: f64,
    pub pairs_per_second_per_core: f64,
    /// The same with generating the candidate pairs counted in, as Splink's predict() does.
    pub pairs_per_second_per_core_with_blocking: f64,
    pub truth: Option<Accuracy>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Accuracy {
    pub true_pairs: u64,
    pub blocking_recall: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

pub struct LinkJob<'a> {
    pub settings: Settings,
    pub left: &'a Table,
    pub right: Option<&'a Table>,
    /// Score with this model instead of training one.
    pub model: Option<Model>,
    pub truth_column: Option<String>,
}

/// Every scored candidate pair with what was decided for it, best first.
pub type Decided = Vec<(Scored, Decision)>;

/// Runs a link or dedupe job; returns the report, the model used and the decided pairs.
pub fn run(job: LinkJob) -> anyhow::Result<(LinkReport, Model, Decided)> {
    let started = Instant::now();
    let linker = Linker::new(job.settings.clone(), job.left, job.right)?;
    let t = Instant::now();
    let cand = linker.candidates();
    let blocking_seconds = t.elapsed().as_secs_f64();
    // Each pair is compared once; training and scoring share the levels. Comparing is part of
    // scoring: that is the work a model does for every new pair.
    let t = Instant::now();
    let gammas = linker.compare_all(&cand.pairs);
    let compare_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let model = match job.model {
        Some(m) => m,
        None => linker.train_with(&cand.pairs, &gammas),
    };
    let train_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut scored = linker.score_with(&model, &cand.pairs, &gammas);
    drop(gammas);
    let score_seconds = compare_seconds + t.elapsed().as_secs_f64();
    scored.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then(a.left.cmp(&b.left))
            .then(a.right.cmp(&b.right))
    });
    let one_to_one = job.settings.one_to_one && job.right.is_some();
    let (mut used_l, mut used_r) = (
        vec![false; job.left.rows.len()],
        vec![false; job.right.unwrap_or(job.left).rows.len()],
    );
    let mut decided = Vec::new();
    for s in scored {
        let mut d = linker.decide(s.probability);
        if one_to_one && d != Decision::NonMatch {
            if used_l[s.left as usize] || used_r[s.right as usize] {
                d = Decision::NonMatch;
            } else if d == Decision::Match {
                used_l[s.left as usize] = true;
                used_r[s.right as usize] = true;
            }
        }
        decided.push((s, d));
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let mut report = LinkReport {
        left_records: job.left.rows.len(),
        right_records: job.right.unwrap_or(job.left).rows.len(),
        candidate_pairs: cand.pairs.len(),
        pairs_per_rule: cand.per_rule,
        matches: decided
            .iter()
            .filter(|(_, d)| *d == Decision::Match)
            .count(),
        reviews: decided
            .iter()
            .filter(|(_, d)| *d == Decision::Review)
            .count(),
        blocking_seconds,
        train_seconds,
        score_seconds,
        total_seconds: 0.0,
        pairs_per_second_per_core: cand.pairs.len() as f64 / score_seconds.max(1e-9) / cores,
        pairs_per_second_per_core_with_blocking: cand.pairs.len() as f64
            / (score_seconds + blocking_seconds).max(1e-9)
            / cores,
        truth: None,
    };
    if let Some(col) = &job.truth_column {
        report.truth = Some(accuracy(job.left, job.right, col, &cand.pairs, &decided)?);
    }
    report.total_seconds = started.elapsed().as_secs_f64();
    Ok((report, model, decided))
}

fn accuracy(
    left: &Table,
    right: Option<&Table>,
    col: &str,
    candidates: &[(u32, u32)],
    decided: &[(Scored, Decision)],
) -> anyhow::Result<Accuracy> {
    let lc = left
        .column(col)
        .ok_or_else(|| anyhow::anyhow!("no truth column '{col}' on the left"))?;
    let rt = right.unwrap_or(left);
    let rc = rt
        .column(col)
        .ok_or_else(|| anyhow::anyhow!("no truth column '{col}' on the right"))?;
    fn count(t: &Table, c: usize) -> HashMap<&str, u64> {
        let mut m: HashMap<&str, u64> = HashMap::new();
        for row in &t.rows {
            if !row[c].is_empty() {
                *m.entry(row[c].as_str()).or_default() += 1;
            }
        }
        m
    }
    let lcounts = count(left, lc);
    let true_pairs: u64 = if right.is_none() {
        lcounts.values().map(|n| n * n.saturating_sub(1) / 2).sum()
    } else {
        let rcounts = count(rt, rc);
        lcounts
            .iter()
            .map(|(v, n)| n * rcounts.get(v).copied().unwrap_or(0))
            .sum()
    };
    let same = |i: u32, j: u32| {
        let (a, b) = (&left.rows[i as usize][lc], &rt.rows[j as usize][rc]);
        !a.is_empty() && a == b
    };
    let blocked_true = candidates.iter().filter(|&&(i, j)| same(i, j)).count() as u64;
    let predicted = decided
        .iter()
        .filter(|(_, d)| *d == Decision::Match)
        .count() as u64;
    let tp = decided
        .iter()
        .filter(|(s, d)| *d == Decision::Match && same(s.left, s.right))
        .count() as u64;
    let precision = if predicted == 0 {
        1.0
    } else {
        tp as f64 / predicted as f64
    };
    let recall = if true_pairs == 0 {
        1.0
    } else {
        tp as f64 / true_pairs as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Ok(Accuracy {
        true_pairs,
        blocking_recall: if true_pairs == 0 {
            1.0
        } else {
            blocked_true as f64 / true_pairs as f64
        },
        precision,
        recall,
        f1,
    })
}

/// Writes decided pairs (matches and reviews) as CSV: ids, weight, probability, decision.
pub fn write_pairs(
    path: &Path,
    linker_ids: (&Table, &Table, &str),
    decided: &[(Scored, Decision)],
) -> anyhow::Result<()> {
    let (left, right, id) = linker_ids;
    let (li, ri) = (left.column(id).unwrap_or(0), right.column(id).unwrap_or(0));
    let mut w = csv::Writer::from_path(path)?;
    w.write_record([
        "left_id",
        "right_id",
        "match_weight",
        "match_probability",
        "decision",
    ])?;
    for (s, d) in decided.iter().filter(|(_, d)| *d != Decision::NonMatch) {
        let decision = match d {
            Decision::Match => "match",
            Decision::Review => "review",
            Decision::NonMatch => "non_match",
        };
        w.write_record([
            left.rows[s.left as usize][li].as_str(),
            right.rows[s.right as usize][ri].as_str(),
            &format!("{:.3}", s.weight),
            &format!("{:.6}", s.probability),
            decision,
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// Groups records linked by matches into clusters (deduplication): a cluster id per record,
/// the smallest record index in its cluster.
pub fn clusters(records: usize, decided: &[(Scored, Decision)]) -> Vec<usize> {
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut parent: Vec<usize> = (0..records).collect();
    for (s, d) in decided {
        if *d == Decision::Match {
            let (a, b) = (
                find(&mut parent, s.left as usize),
                find(&mut parent, s.right as usize),
            );
            let (lo, hi) = (a.min(b), a.max(b));
            parent[hi] = lo;
        }
    }
    (0..records).map(|i| find(&mut parent, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(l: u32, r: u32) -> (Scored, Decision) {
        (
            Scored {
                left: l,
                right: r,
                weight: 10.0,
                probability: 0.99,
            },
            Decision::Match,
        )
    }

    #[test]
    fn matches_chain_into_clusters() {
        let decided = vec![
            scored(0, 3),
            scored(3, 5),
            scored(1, 2),
            (
                Scored {
                    left: 4,
                    right: 6,
                    weight: -3.0,
                    probability: 0.1,
                },
                Decision::NonMatch,
            ),
        ];
        assert_eq!(clusters(7, &decided), vec![0, 1, 1, 0, 4, 0, 6]);
    }
}
