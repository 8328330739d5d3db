//! A Fellegi–Sunter linkage engine over any two tables of text columns.
//!
//! Blocking rules give candidate pairs (each pair once, by the first rule that finds it);
//! comparisons put each pair on ordered levels; u probabilities come from random pairs, m
//! probabilities from EM on the blocked pairs (each rule's session leaves out the comparisons
//! its own keys fix, as Splink does); the prior from the expected matches EM finds. Exact
//! matches on term-frequency columns are weighted by how common the value is.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};

use pinyin::ToPinyin;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::compare::{Method, Prepared};

/// A table of text values, one row per record.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    pub fn read_csv(path: &std::path::Path) -> anyhow::Result<Table> {
        let mut r = csv::ReaderBuilder::new().flexible(true).from_path(path)?;
        let columns = r
            .headers()?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect::<Vec<_>>();
        let mut rows = Vec::new();
        for rec in r.records() {
            let rec = rec?;
            let mut row: Vec<String> = rec.iter().map(|v| v.trim().to_owned()).collect();
            row.resize(columns.len(), String::new());
            rows.push(row);
        }
        Ok(Table { columns, rows })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonSpec {
    pub name: String,
    /// Column in the left table (and in the right one unless `right` names another).
    pub column: String,
    #[serde(default)]
    pub right: Option<String>,
    pub method: Method,
    /// Weight exact matches by the value's frequency (`张伟` is weak evidence, `欧阳娜娜` strong).
    #[serde(default)]
    pub tf: bool,
}

/// A blocking rule: pairs whose key expressions all agree (and are not empty) are compared.
/// An expression is a column name or `prefix(col, n)`, `suffix(col, n)`, `pinyin(col)`,
/// `year(col)`, `sorted(col)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockingRule {
    pub keys: Vec<String>,
}

fn default_match() -> f64 {
    0.95
}
fn default_review() -> f64 {
    0.5
}
fn default_u_sample() -> usize {
    1_000_000
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Column holding each record's id, written to the output.
    pub unique_id: String,
    pub blocking: Vec<BlockingRule>,
    pub comparisons: Vec<ComparisonSpec>,
    /// Match probability at or above which a pair is a match.
    #[serde(default = "default_match")]
    pub match_threshold: f64,
    /// Match probability at or above which a pair needs a person to look at it.
    #[serde(default = "default_review")]
    pub review_threshold: f64,
    /// Random pairs used to estimate u.
    #[serde(default = "default_u_sample")]
    pub u_sample: usize,
    /// In linking, each record matches at most one on the other side.
    #[serde(default)]
    pub one_to_one: bool,
}

impl Settings {
    pub fn from_toml(text: &str) -> anyhow::Result<Settings> {
        Ok(toml::from_str(text)?)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedComparison {
    pub spec: ComparisonSpec,
    pub labels: Vec<String>,
    pub m: Vec<f64>,
    pub u: Vec<f64>,
}

/// A trained model: settings, m and u per comparison level, and the prior.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub settings: Settings,
    pub comparisons: Vec<TrainedComparison>,
    /// Probability that two random records match.
    pub prior: f64,
}

impl Model {
    pub fn save(&self, path: &std::path::Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?)?;
        Ok(())
    }

    pub fn load(path: &std::path::Path) -> anyhow::Result<Model> {
        Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Match,
    Review,
    NonMatch,
}

/// A scored candidate pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub left: u32,
    pub right: u32,
    pub weight: f64,
    pub probability: f64,
}

/// Why a pair got its weight: the prior, then each comparison's contribution (a waterfall).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub prior_weight: f64,
    pub terms: Vec<Term>,
    pub weight: f64,
    pub probability: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Term {
    pub comparison: String,
    pub level: String,
    pub left: String,
    pub right: String,
    pub weight: f64,
}

#[derive(Debug, Clone, Copy)]
enum Func {
    Plain,
    Prefix(usize),
    Suffix(usize),
    Pinyin,
    Year,
    Sorted,
}

#[derive(Debug, Clone)]
struct KeyExpr {
    func: Func,
    left: usize,
    right: usize,
}

fn parse_expr(
    expr: &str,
    left: &Table,
    right: &Table,
    right_names: &HashMap<String, String>,
) -> anyhow::Result<KeyExpr> {
    let expr = expr.trim();
    let (func, args) = match expr.find('(') {
        Some(open) if expr.ends_with(')') => (&expr[..open], &expr[open + 1..expr.len() - 1]),
        _ => ("", expr),
    };
    let mut parts = args.split(',').map(str::trim);
    let col = parts.next().unwrap_or("");
    let n: Option<usize> = parts.next().and_then(|n| n.parse().ok());
    let func = match (func, n) {
        ("", _) => Func::Plain,
        ("prefix", Some(n)) => Func::Prefix(n),
        ("suffix", Some(n)) => Func::Suffix(n),
        ("pinyin", _) => Func::Pinyin,
        ("year", _) => Func::Year,
        ("sorted", _) => Func::Sorted,
        _ => anyhow::bail!("blocking key '{expr}': unknown function (prefix(col, n), suffix(col, n), pinyin, year, sorted)"),
    };
    let l = left
        .column(col)
        .ok_or_else(|| anyhow::anyhow!("blocking key '{expr}': no column '{col}' on the left"))?;
    let rcol = right_names.get(col).map(String::as_str).unwrap_or(col);
    let r = right
        .column(rcol)
        .ok_or_else(|| anyhow::anyhow!("blocking key '{expr}': no column '{rcol}' on the right"))?;
    Ok(KeyExpr {
        func,
        left: l,
        right: r,
    })
}

fn apply_func(func: Func, v: &str) -> String {
    match func {
        Func::Plain => v.to_owned(),
        Func::Prefix(n) => v.chars().take(n).collect(),
        Func::Suffix(n) => {
            let c: Vec<char> = v.chars().collect();
            c[c.len().saturating_sub(n)..].iter().collect()
        }
        Func::Pinyin => v
            .chars()
            .map(|c| {
                c.to_pinyin()
                    .map(|p| p.plain().to_owned())
                    .unwrap_or_else(|| c.to_string())
            })
            .collect::<Vec<_>>()
            .join(" "),
        Func::Year => super::compare::parse_any_date(v)
            .map(|d| d.format("%Y").to_string())
            .unwrap_or_default(),
        Func::Sorted => {
            let mut c: Vec<char> = v.chars().collect();
            c.sort_unstable();
            c.into_iter().collect()
        }
    }
}

/// The population a right side is drawn from when it holds only the left records'
/// block-mates: what training and scoring would otherwise take from a right side holding the
/// whole population (its size for the prior, u-probabilities from random pairs, and value
/// frequencies), measured once on the population and kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Population {
    /// Records in the population.
    pub size: u64,
    /// Per comparison, the share of each level among random pairs of the population.
    pub u: Vec<Vec<f64>>,
    /// Per comparison with `tf`, how many records hold each value.
    pub counts: Vec<Option<BTreeMap<String, u64>>>,
}

impl Population {
    /// Measures `table` (every record of the population) under `settings`: counts of every
    /// value, and u from `settings.u_sample` random pairs among an even sample of at most
    /// `sample` records (preparing millions of records for comparison takes gigabytes).
    pub fn measure(
        settings: &Settings,
        table: &Table,
        sample: usize,
    ) -> anyhow::Result<Population> {
        let stride = table.rows.len().div_ceil(sample.max(1)).max(1);
        let sampled;
        let pairs_from = if stride == 1 {
            table
        } else {
            sampled = Table {
                columns: table.columns.clone(),
                rows: table.rows.iter().step_by(stride).cloned().collect(),
            };
            &sampled
        };
        let linker = Linker::new(settings.clone(), pairs_from, None)?;
        let u = linker.random_u();
        Ok(Population {
            size: table.rows.len() as u64,
            u,
            counts: tf_counts(settings, table)?,
        })
    }

    /// This population's u-probabilities with the size and value counts of `table`: for a
    /// population that changed a little since it was measured. Counts are exact; u is a
    /// sample's estimate, which a few changed records do not move (measuring it again is what
    /// costs, and a new sample of a changed population would differ anyway).
    pub fn recounted(&self, settings: &Settings, table: &Table) -> anyhow::Result<Population> {
        Ok(Population {
            size: table.rows.len() as u64,
            u: self.u.clone(),
            counts: tf_counts(settings, table)?,
        })
    }
}

/// Per comparison with `tf`, how many records of `table` hold each value.
fn tf_counts(
    settings: &Settings,
    table: &Table,
) -> anyhow::Result<Vec<Option<BTreeMap<String, u64>>>> {
    settings
        .comparisons
        .iter()
        .map(|c| {
            if !c.tf {
                return Ok(None);
            }
            let col = table.column(&c.column).ok_or_else(|| {
                anyhow::anyhow!("comparison {}: no column '{}'", c.name, c.column)
            })?;
            Ok(Some(
                value_counts(&table.rows, col)
                    .into_iter()
                    .map(|(v, n)| (v.to_owned(), n))
                    .collect(),
            ))
        })
        .collect()
}

/// How many of `rows` hold each value of column `col` (trimmed; empty values are not counted).
fn value_counts(rows: &[Vec<String>], col: usize) -> HashMap<&str, u64> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for row in rows {
        let v = row[col].trim();
        if !v.is_empty() {
            *counts.entry(v).or_default() += 1;
        }
    }
    counts
}

/// Each left record's share of the `total` values counted, by its value in column `col`.
fn shares(left: &Table, col: usize, count: impl Fn(&str) -> u64, total: u64) -> Vec<f64> {
    let total = (total as f64).max(1.0);
    left.rows
        .iter()
        .map(|row| count(row[col].trim()) as f64 / total)
        .collect()
}

/// Links two tables (or deduplicates one, when `right` is `None`).
pub struct Linker<'a> {
    pub settings: Settings,
    left: &'a Table,
    right: &'a Table,
    dedupe: bool,
    cols: Vec<(usize, usize)>,
    methods: Vec<Method>,
    rules: Vec<Vec<KeyExpr>>,
    /// Per comparison, every left and right value prepared once for comparison.
    prep_left: Vec<Vec<Prepared>>,
    prep_right: Option<Vec<Vec<Prepared>>>,
    /// Where each record's values are in the prepared columns.
    pos_left: Vec<u32>,
    pos_right: Option<Vec<u32>>,
    /// Right records in layout order: candidates are generated in this order, block by block,
    /// so that comparing them walks memory in order.
    order_right: Vec<u32>,
    /// Per comparison with `tf`: for each left record, the share of records holding its value.
    tf_left: Vec<Option<Vec<f64>>>,
    left_ids: usize,
    right_ids: usize,
    /// Set when the right side holds only block-mates from this population.
    population: Option<&'a Population>,
}

/// Blocking keys of every record under every rule, `[rule][record]`.
type RuleKeys = Vec<Vec<Option<u64>>>;

/// Candidate pairs and how many each blocking rule contributed.
pub struct Candidates {
    pub pairs: Vec<(u32, u32)>,
    pub per_rule: Vec<u64>,
}

/// The comparison levels of many pairs, `width` levels per pair, in pair order.
pub struct Gammas {
    pub width: usize,
    pub levels: Vec<u8>,
}

impl Gammas {
    pub fn of(&self, pair: usize) -> &[u8] {
        &self.levels[pair * self.width..(pair + 1) * self.width]
    }
}

const FLOOR: f64 = 1e-9;
/// m of a level that rules a match out (two valid, different identity numbers).
const IMPOSSIBLE_M: f64 = 1e-6;

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Runs `f` over chunks of `items` on all cores and concatenates the results in order.
/// `f` gets each chunk with the position of its first item in `items`.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &[T]) -> Vec<R> + Sync) -> Vec<R> {
    let chunk = items.len().div_ceil(threads()).max(1);
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| s.spawn(move || f(n * chunk, part)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker threads do not panic"))
            .collect()
    })
}

/// Packs a pattern of levels (each below 16, at most 16 comparisons) into one key.
fn pack(levels: &[u8]) -> u64 {
    levels
        .iter()
        .enumerate()
        .fold(0, |k, (c, &l)| k | (u64::from(l) << (4 * c)))
}

fn unpack(key: u64, c: usize) -> u8 {
    ((key >> (4 * c)) & 0xF) as u8
}

impl<'a> Linker<'a> {
    pub fn new(
        settings: Settings,
        left: &'a Table,
        right: Option<&'a Table>,
    ) -> anyhow::Result<Linker<'a>> {
        anyhow::ensure!(settings.comparisons.len() <= 16, "at most 16 comparisons");
        let dedupe = right.is_none();
        let right = right.unwrap_or(left);
        let right_names: HashMap<String, String> = settings
            .comparisons
            .iter()
            .filter_map(|c| c.right.clone().map(|r| (c.column.clone(), r)))
            .collect();
        let mut cols = Vec::new();
        for c in &settings.comparisons {
            anyhow::ensure!(
                c.method.level_count() < 16,
                "comparison {}: too many levels",
                c.name
            );
            let l = left.column(&c.column).ok_or_else(|| {
                anyhow::anyhow!(
                    "comparison {}: no column '{}' on the left",
                    c.name,
                    c.column
                )
            })?;
            let rname = c.right.as_deref().unwrap_or(&c.column);
            let r = right.column(rname).ok_or_else(|| {
                anyhow::anyhow!("comparison {}: no column '{rname}' on the right", c.name)
            })?;
            cols.push((l, r));
        }
        let rules = settings
            .blocking
            .iter()
            .map(|rule| {
                rule.keys
                    .iter()
                    .map(|k| parse_expr(k, left, right, &right_names))
                    .collect()
            })
            .collect::<anyhow::Result<Vec<Vec<KeyExpr>>>>()?;
        let left_ids = left
            .column(&settings.unique_id)
            .ok_or_else(|| anyhow::anyhow!("no id column '{}' on the left", settings.unique_id))?;
        let right_ids = right
            .column(&settings.unique_id)
            .ok_or_else(|| anyhow::anyhow!("no id column '{}' on the right", settings.unique_id))?;
        let methods: Vec<Method> = settings
            .comparisons
            .iter()
            .map(|c| c.method.clone())
            .collect();
        // Values are laid out in the order of the first blocking rule's key, so that the
        // members of a block, compared with each other, sit next to each other in memory.
        let layout = |t: &Table, left_side: bool| -> (Vec<u32>, Vec<u32>) {
            let mut order: Vec<u32> = (0..t.rows.len() as u32).collect();
            if let Some(rule) = rules.first() {
                let keys: Vec<Option<u64>> = t
                    .rows
                    .iter()
                    .map(|row| Self::key(rule, row, left_side))
                    .collect();
                order.sort_by(|&a, &b| keys[a as usize].cmp(&keys[b as usize]).then(a.cmp(&b)));
            }
            let mut pos = vec![0u32; order.len()];
            for (p, &row) in order.iter().enumerate() {
                pos[row as usize] = p as u32;
            }
            (order, pos)
        };
        // Values are read in the rows' own order and placed in the layout's: read in the
        // layout's order, every value was a cache miss (most of preparing 170,000 persons).
        let prepare =
            |t: &Table, pos: &[u32], side: fn(&(usize, usize)) -> usize| -> Vec<Vec<Prepared>> {
                std::thread::scope(|s| {
                    let handles: Vec<_> = methods
                        .iter()
                        .zip(&cols)
                        .map(|(m, c)| {
                            let col = side(c);
                            s.spawn(move || {
                                let mut out: Vec<Prepared> =
                                    (0..t.rows.len()).map(|_| Prepared::Empty).collect();
                                for (row, &p) in t.rows.iter().zip(pos) {
                                    out[p as usize] = m.prepare(&row[col]);
                                }
                                out
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("preparing values does not panic"))
                        .collect()
                })
            };
        let (order_left, pos_left) = layout(left, true);
        let mut prep_left = prepare(left, &pos_left, |c| c.0);
        let (order_right, pos_right, mut prep_right) = if dedupe {
            (order_left.clone(), None, None)
        } else {
            let (order_right, pos_right) = layout(right, false);
            let prepared = prepare(right, &pos_right, |c| c.1);
            (order_right, Some(pos_right), Some(prepared))
        };
        // Exact values and divisions become integer codes, shared by both sides.
        for (c, m) in methods.iter().enumerate().filter(|(_, m)| m.uses_codes()) {
            let mut codes: HashMap<Box<str>, u32> = HashMap::new();
            let mut intern = |text: &str| {
                let next = codes.len() as u32;
                *codes.entry(text.into()).or_insert(next)
            };
            let columns =
                std::iter::once(&mut prep_left[c]).chain(prep_right.as_mut().map(|p| &mut p[c]));
            for column in columns {
                for value in column.iter_mut() {
                    if let Prepared::Text(text) = value {
                        let prefix: String = text.chars().take(4).collect();
                        let full = intern(text);
                        let prefix = if matches!(m, Method::Division) {
                            intern(&prefix)
                        } else {
                            full
                        };
                        *value = Prepared::Code { full, prefix };
                    }
                }
            }
        }
        let mut tf_left = Vec::new();
        for (c, &(l, r)) in settings.comparisons.iter().zip(&cols) {
            if !c.tf {
                tf_left.push(None);
                continue;
            }
            let mut counts = value_counts(&left.rows, l);
            if !dedupe {
                for (v, n) in value_counts(&right.rows, r) {
                    *counts.entry(v).or_default() += n;
                }
            }
            let total = counts.values().sum();
            let count = |v: &str| counts.get(v).copied().unwrap_or(0);
            tf_left.push(Some(shares(left, l, count, total)));
        }
        Ok(Linker {
            settings,
            left,
            right,
            dedupe,
            cols,
            methods,
            rules,
            prep_left,
            prep_right,
            pos_left,
            pos_right,
            order_right,
            tf_left,
            left_ids,
            right_ids,
            population: None,
        })
    }

    /// Links `left` with `right`, the block-mates of its records drawn from `population`:
    /// training and scoring are as against the whole population (value frequencies, the
    /// prior's pair count, u-probabilities), comparing only the block-mates.
    pub fn with_population(
        settings: Settings,
        left: &'a Table,
        right: &'a Table,
        population: &'a Population,
    ) -> anyhow::Result<Linker<'a>> {
        anyhow::ensure!(
            population.u.len() == settings.comparisons.len()
                && population.counts.len() == settings.comparisons.len(),
            "the population was measured under other settings"
        );
        let mut linker = Linker::new(settings, left, Some(right))?;
        for (c, counts) in population.counts.iter().enumerate() {
            let Some(counts) = counts else { continue };
            // As a right side holding the population counts its values with the left's.
            let l = linker.cols[c].0;
            let own = value_counts(&left.rows, l);
            let total = counts.values().sum::<u64>() + own.values().sum::<u64>();
            let count =
                |v: &str| counts.get(v).copied().unwrap_or(0) + own.get(v).copied().unwrap_or(0);
            linker.tf_left[c] = Some(shares(left, l, count, total));
        }
        linker.population = Some(population);
        Ok(linker)
    }

    pub fn left_id(&self, i: u32) -> &str {
        &self.left.rows[i as usize][self.left_ids]
    }

    pub fn right_id(&self, j: u32) -> &str {
        &self.right.rows[j as usize][self.right_ids]
    }

    /// A record's blocking key under `rule`, hashed (no key when a part is empty). Hashing
    /// instead of building strings keeps blocking cheap; a collision only adds a pair to compare.
    fn key(rule: &[KeyExpr], row: &[String], left_side: bool) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for e in rule {
            let v = row[if left_side { e.left } else { e.right }].trim();
            match e.func {
                Func::Plain if !v.is_empty() => v.hash(&mut h),
                Func::Plain => return None,
                f => {
                    let t = apply_func(f, v);
                    if t.is_empty() {
                        return None;
                    }
                    t.hash(&mut h);
                }
            }
        }
        Some(h.finish())
    }

    /// Every record's key under every blocking rule: `[rule][record]`, left side then right.
    fn rule_keys(&self) -> (RuleKeys, RuleKeys) {
        let keys = |t: &Table, left_side: bool| -> RuleKeys {
            self.rules
                .iter()
                .map(|r| {
                    t.rows
                        .iter()
                        .map(|row| Self::key(r, row, left_side))
                        .collect()
                })
                .collect()
        };
        let lk = keys(self.left, true);
        let rk = if self.dedupe {
            lk.clone()
        } else {
            keys(self.right, false)
        };
        (lk, rk)
    }

    /// Candidate pairs from all blocking rules, each pair once.
    pub fn candidates(&self) -> Candidates {
        self.candidates_among(|_| true, |_| true)
    }

    /// The candidate pairs of the left and right records `left` and `right` accept, in the
    /// order [`Linker::candidates`] gives them (scoring with a model already trained needs only
    /// the records still open; records left out are never paired, so cost nothing).
    pub fn candidates_among(
        &self,
        left: impl Fn(u32) -> bool,
        right: impl Fn(u32) -> bool,
    ) -> Candidates {
        let (lk, rk) = self.rule_keys();
        let mut pairs = Vec::new();
        let mut per_rule = vec![0u64; self.rules.len()];
        for r in 0..self.rules.len() {
            let mut index: HashMap<u64, Vec<u32>> = HashMap::new();
            for (i, k) in lk[r].iter().enumerate() {
                if let Some(k) = k.filter(|_| left(i as u32)) {
                    index.entry(k).or_default().push(i as u32);
                }
            }
            let seen_before = |i: u32, j: u32| {
                (0..r).any(|q| matches!((&lk[q][i as usize], &rk[q][j as usize]), (Some(a), Some(b)) if a == b))
            };
            for &j in self.order_right.iter().filter(|&&j| right(j)) {
                let j = j as usize;
                let Some(k) = &rk[r][j] else { continue };
                let Some(lefts) = index.get(k) else {
                    continue;
                };
                for &i in lefts {
                    if self.dedupe && i >= j as u32 {
                        continue;
                    }
                    if !seen_before(i, j as u32) {
                        pairs.push((i, j as u32));
                        per_rule[r] += 1;
                    }
                }
            }
        }
        Candidates { pairs, per_rule }
    }

    fn prepared_left(&self, c: usize, i: u32) -> &Prepared {
        &self.prep_left[c][self.pos_left[i as usize] as usize]
    }

    fn prepared_right(&self, c: usize, j: u32) -> &Prepared {
        let pos = self.pos_right.as_ref().unwrap_or(&self.pos_left)[j as usize] as usize;
        &self.prep_right.as_ref().unwrap_or(&self.prep_left)[c][pos]
    }

    /// The comparison levels of one pair.
    pub fn gamma(&self, i: u32, j: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.methods.len());
        self.gamma_into(i, j, &mut out);
        out
    }

    fn gamma_into(&self, i: u32, j: u32, out: &mut Vec<u8>) {
        for (c, m) in self.methods.iter().enumerate() {
            out.push(m.compare_prepared(self.prepared_left(c, i), self.prepared_right(c, j)));
        }
    }

    /// The levels of every pair, compared once on all cores.
    pub fn compare_all(&self, pairs: &[(u32, u32)]) -> Gammas {
        let levels = parallel_map(pairs, |_, part| {
            let mut out = Vec::with_capacity(part.len() * self.methods.len());
            for &(i, j) in part {
                self.gamma_into(i, j, &mut out);
            }
            out
        });
        Gammas {
            width: self.methods.len(),
            levels,
        }
    }

    fn total_pairs(&self) -> f64 {
        let n = self.left.rows.len() as f64;
        let m = self
            .population
            .map_or(self.right.rows.len() as f64, |p| p.size as f64);
        if self.dedupe {
            n * (n - 1.0) / 2.0
        } else {
            n * m
        }
    }

    /// u: each comparison's level shares among random pairs, almost all of which are
    /// non-matches.
    fn random_u(&self) -> Vec<Vec<f64>> {
        let levels: Vec<usize> = self.methods.iter().map(Method::level_count).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
        let (n, m) = (self.left.rows.len(), self.right.rows.len());
        let samples = self
            .settings
            .u_sample
            .min((self.total_pairs() as usize).max(1));
        let mut random_pairs = Vec::with_capacity(samples);
        if n > 0 && m > 0 {
            for _ in 0..samples {
                let (i, j) = (rng.random_range(0..n) as u32, rng.random_range(0..m) as u32);
                if !(self.dedupe && i == j) {
                    random_pairs.push((i, j));
                }
            }
        }
        let random = self.compare_all(&random_pairs);
        let mut u_counts: Vec<Vec<f64>> = levels.iter().map(|&l| vec![0.0; l + 1]).collect();
        for p in 0..random_pairs.len() {
            for (c, &g) in random.of(p).iter().enumerate() {
                u_counts[c][g as usize] += 1.0;
            }
        }
        u_counts.iter().map(|c| normalise(&c[1..], 0.5)).collect()
    }

    /// Trains u on random pairs and m and the prior by EM on `candidates`.
    pub fn train(&self, candidates: &[(u32, u32)]) -> Model {
        let gammas = self.compare_all(candidates);
        self.train_with(candidates, &gammas)
    }

    /// As [`Linker::train`], with the candidates' levels already computed.
    pub fn train_with(&self, candidates: &[(u32, u32)], gammas: &Gammas) -> Model {
        let levels: Vec<usize> = self.methods.iter().map(Method::level_count).collect();
        let u = match self.population {
            Some(p) => p.u.clone(),
            None => self.random_u(),
        };

        // Patterns of levels with their counts: EM works on these, not on every pair. Every
        // rule's session sees all the pairs that rule blocks, not only those it was first to
        // find: otherwise a later rule's pairs are biased against earlier keys.
        let (lk, rk) = self.rule_keys();
        let mut patterns: HashMap<u64, f64> = HashMap::new();
        let mut rule_patterns: Vec<HashMap<u64, f64>> = vec![HashMap::new(); self.rules.len()];
        for (p, &(i, j)) in candidates.iter().enumerate() {
            let key = pack(gammas.of(p));
            for (q, session) in rule_patterns.iter_mut().enumerate() {
                if matches!((&lk[q][i as usize], &rk[q][j as usize]), (Some(a), Some(b)) if a == b)
                {
                    *session.entry(key).or_default() += 1.0;
                }
            }
            *patterns.entry(key).or_default() += 1.0;
        }
        let mut m: Vec<Vec<f64>> = levels
            .iter()
            .map(|&l| {
                normalise(
                    &(0..l)
                        .map(|k| 0.9f64.powi(k as i32 * 3 + 1))
                        .collect::<Vec<_>>(),
                    0.0,
                )
            })
            .collect();
        let mut m_sum: Vec<Vec<f64>> = levels.iter().map(|&l| vec![0.0; l]).collect();
        let mut m_sessions = vec![0.0f64; levels.len()];
        for (r, pats) in rule_patterns.iter().enumerate() {
            if pats.is_empty() {
                continue;
            }
            let free: Vec<bool> = self
                .cols
                .iter()
                .map(|&(l, _)| !self.rules[r].iter().any(|e| e.left == l))
                .collect();
            let (session_m, _) = em(pats, &u, m.clone(), &free, &free, 0.3);
            for c in (0..levels.len()).filter(|&c| free[c]) {
                for (acc, v) in m_sum[c].iter_mut().zip(&session_m[c]) {
                    *acc += v;
                }
                m_sessions[c] += 1.0;
            }
        }
        for c in 0..levels.len() {
            if m_sessions[c] > 0.0 {
                m[c] = m_sum[c].iter().map(|v| v / m_sessions[c]).collect();
            }
            // Twins and other look-alikes teach EM that this level happens among "matches";
            // it cannot: two valid, different identity numbers are two people.
            if let Some(level) = self.methods[c].impossible_level() {
                let k = level as usize - 1;
                m[c][k] = 0.0;
                let rest: f64 = m[c].iter().sum();
                m[c].iter_mut()
                    .for_each(|v| *v = *v / rest.max(FLOOR) * (1.0 - IMPOSSIBLE_M));
                m[c][k] = IMPOSSIBLE_M;
            }
        }
        // With m and u fixed, the share of matches among the candidates gives the prior.
        let (none, all) = (vec![false; levels.len()], vec![true; levels.len()]);
        let (_, lambda) = em(&patterns, &u, m.clone(), &none, &all, 0.3);
        let expected_matches = lambda * candidates.len() as f64;
        let prior = (expected_matches / self.total_pairs().max(1.0)).clamp(FLOOR, 1.0 - FLOOR);
        let comparisons = self
            .settings
            .comparisons
            .iter()
            .zip(m)
            .zip(u)
            .map(|((spec, m), u)| TrainedComparison {
                spec: spec.clone(),
                labels: spec.method.level_labels(),
                m,
                u,
            })
            .collect();
        Model {
            settings: self.settings.clone(),
            comparisons,
            prior,
        }
    }

    fn term_weight(&self, model: &Model, c: usize, level: u8, left_row: u32) -> f64 {
        if level == 0 {
            return 0.0;
        }
        let tc = &model.comparisons[c];
        let k = level as usize - 1;
        let u = match (&self.tf_left[c], level) {
            (Some(shares), 1) if shares[left_row as usize] > 0.0 => shares[left_row as usize],
            _ => tc.u[k],
        };
        (tc.m[k].max(FLOOR) / u.max(FLOOR)).log2()
    }

    fn prior_weight(model: &Model) -> f64 {
        (model.prior / (1.0 - model.prior)).log2()
    }

    fn score_levels(&self, model: &Model, i: u32, j: u32, levels: &[u8]) -> Scored {
        let mut weight = Self::prior_weight(model);
        for (c, &level) in levels.iter().enumerate() {
            weight += self.term_weight(model, c, level, i);
        }
        Scored {
            left: i,
            right: j,
            weight,
            probability: probability(weight),
        }
    }

    pub fn score_pair(&self, model: &Model, i: u32, j: u32) -> Scored {
        self.score_levels(model, i, j, &self.gamma(i, j))
    }

    /// Scores every candidate pair on all cores.
    pub fn score(&self, model: &Model, candidates: &[(u32, u32)]) -> Vec<Scored> {
        let gammas = self.compare_all(candidates);
        self.score_with(model, candidates, &gammas)
    }

    /// As [`Linker::score`], with the candidates' levels already computed.
    pub fn score_with(
        &self,
        model: &Model,
        candidates: &[(u32, u32)],
        gammas: &Gammas,
    ) -> Vec<Scored> {
        parallel_map(candidates, |first, part| {
            part.iter()
                .enumerate()
                .map(|(n, &(i, j))| self.score_levels(model, i, j, gammas.of(first + n)))
                .collect()
        })
    }

    pub fn explain(&self, model: &Model, i: u32, j: u32) -> Explanation {
        let g = self.gamma(i, j);
        let (a, b) = (&self.left.rows[i as usize], &self.right.rows[j as usize]);
        let prior_weight = Self::prior_weight(model);
        let mut weight = prior_weight;
        let terms = g
            .into_iter()
            .enumerate()
            .map(|(c, level)| {
                let (l, r) = self.cols[c];
                let w = self.term_weight(model, c, level, i);
                weight += w;
                let tc = &model.comparisons[c];
                Term {
                    comparison: tc.spec.name.clone(),
                    level: if level == 0 {
                        "null".into()
                    } else {
                        tc.labels[level as usize - 1].clone()
                    },
                    left: a[l].clone(),
                    right: b[r].clone(),
                    weight: w,
                }
            })
            .collect();
        Explanation {
            prior_weight,
            terms,
            weight,
            probability: probability(weight),
        }
    }

    pub fn decide(&self, p: f64) -> Decision {
        if p >= self.settings.match_threshold {
            Decision::Match
        } else if p >= self.settings.review_threshold {
            Decision::Review
        } else {
            Decision::NonMatch
        }
    }
}

pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

fn normalise(counts: &[f64], smoothing: f64) -> Vec<f64> {
    let total: f64 = counts.iter().sum::<f64>() + smoothing * counts.len() as f64;
    counts
        .iter()
        .map(|c| ((c + smoothing) / total.max(FLOOR)).max(FLOOR))
        .collect()
}

/// Expectation-maximisation over level patterns and their counts, with u fixed: re-estimates
/// m for the comparisons in `train` and the match share, using the comparisons in `use_c` as
/// evidence (a blocking rule's own comparisons say nothing about its pairs).
fn em(
    patterns: &HashMap<u64, f64>,
    u: &[Vec<f64>],
    mut m: Vec<Vec<f64>>,
    train: &[bool],
    use_c: &[bool],
    mut lambda: f64,
) -> (Vec<Vec<f64>>, f64) {
    let width = u.len();
    // In key order: sums over a hash map's order differ in the last bits from process to
    // process, and a re-run on unchanged data must store the same evidence.
    let mut keys: Vec<(&u64, &f64)> = patterns.iter().collect();
    keys.sort_unstable_by_key(|(k, _)| **k);
    let pats: Vec<(Vec<u8>, f64)> = keys
        .into_iter()
        .map(|(k, v)| ((0..width).map(|c| unpack(*k, c)).collect(), *v))
        .collect();
    let total: f64 = pats.iter().map(|(_, n)| n).sum();
    for _ in 0..60 {
        let mut m_acc: Vec<Vec<f64>> = m.iter().map(|l| vec![0.0; l.len()]).collect();
        let mut matches = 0.0;
        for (g, n) in &pats {
            let (mut pm, mut pu) = (lambda, 1.0 - lambda);
            for (c, &level) in g.iter().enumerate() {
                if level > 0 && use_c[c] {
                    pm *= m[c][level as usize - 1];
                    pu *= u[c][level as usize - 1];
                }
            }
            let post = pm / (pm + pu).max(f64::MIN_POSITIVE);
            matches += post * n;
            for (c, &level) in g.iter().enumerate() {
                if level > 0 {
                    m_acc[c][level as usize - 1] += post * n;
                }
            }
        }
        let new_lambda = (matches / total.max(1.0)).clamp(FLOOR, 1.0 - FLOOR);
        for c in 0..m.len() {
            if train[c] {
                m[c] = normalise(&m_acc[c], 1e-3);
            }
        }
        let done = (new_lambda - lambda).abs() < 1e-9;
        lambda = new_lambda;
        if done {
            break;
        }
    }
    (m, lambda)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[[&str; 4]]) -> Table {
        Table {
            columns: ["id", "name", "dob", "town"].map(String::from).to_vec(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| (*v).to_owned()).collect())
                .collect(),
        }
    }

    fn settings() -> Settings {
        Settings::from_toml(
            r#"
unique_id = "id"
u_sample = 5000
[[blocking]]
keys = ["dob"]
[[blocking]]
keys = ["prefix(name, 1)"]
[[comparisons]]
name = "name"
column = "name"
method = { type = "chinese_name" }
tf = true
[[comparisons]]
name = "dob"
column = "dob"
method = { type = "date" }
[[comparisons]]
name = "town"
column = "town"
method = { type = "exact" }
"#,
        )
        .unwrap()
    }

    /// A population of 600 persons: 200 names over 30 birth dates and 3 towns.
    fn population_table() -> Table {
        let surnames = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"];
        let given = [
            "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
            "涛", "明", "超", "秀", "霞", "平",
        ];
        let mut rows = Vec::new();
        for i in 0..600 {
            let name = format!("{}{}", surnames[i % 10], given[(i / 10) % 20]);
            rows.push(vec![
                format!("R{i}"),
                name,
                format!("1990-01-{:02}", 1 + i % 28),
                ["淇县", "浚县", "山城"][i % 3].to_owned(),
            ]);
        }
        Table {
            columns: ["id", "name", "dob", "town"].map(String::from).to_vec(),
            rows,
        }
    }

    #[test]
    fn block_mates_with_their_population_score_as_the_whole_population_does() {
        let whole = population_table();
        // Probes: two persons of the population with a typo each, one nobody.
        let left = table(&[
            ["L1", "王伟", "1990-01-01", "淇县"],
            ["L2", "李芳", "1990-01-03", "浚县"],
            ["L3", "欧阳修", "1990-02-20", "山城"],
        ]);
        let full = Linker::new(settings(), &left, Some(&whole)).unwrap();
        let full_pairs = full.candidates().pairs;
        let full_model = full.train(&full_pairs);
        let mates: std::collections::HashSet<u32> = full_pairs.iter().map(|p| p.1).collect();
        let right = Table {
            columns: whole.columns.clone(),
            rows: (0..whole.rows.len() as u32)
                .filter(|j| mates.contains(j))
                .map(|j| whole.rows[j as usize].clone())
                .collect(),
        };
        assert!(
            right.rows.len() < whole.rows.len() / 2,
            "{}",
            right.rows.len()
        );
        let population = Population::measure(&settings(), &whole, 1_000).unwrap();
        assert_eq!(population.size, 600);
        let part = Linker::with_population(settings(), &left, &right, &population).unwrap();
        let part_pairs = part.candidates().pairs;
        assert_eq!(part_pairs.len(), full_pairs.len());
        let part_model = part.train(&part_pairs);
        // The prior counts the population's pairs, not the block-mates'.
        let ratio = part_model.prior / full_model.prior;
        assert!((0.5..2.0).contains(&ratio), "{ratio}");
        let best = |linker: &Linker, model: &Model, pairs: &[(u32, u32)]| {
            let mut best: std::collections::BTreeMap<String, (String, f64)> = Default::default();
            for s in linker.score(model, pairs) {
                let entry = best
                    .entry(linker.left_id(s.left).to_owned())
                    .or_insert((String::new(), f64::MIN));
                if s.weight > entry.1 {
                    *entry = (linker.right_id(s.right).to_owned(), s.weight);
                }
            }
            best
        };
        let (a, b) = (
            best(&full, &full_model, &full_pairs),
            best(&part, &part_model, &part_pairs),
        );
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (left, (right, weight)) in &a {
            assert_eq!(&b[left].0, right, "best match of {left}");
            // u comes from pairs of the population rather than of the probes with it.
            assert!(
                (b[left].1 - weight).abs() < 2.5,
                "{left}: {weight} vs {}",
                b[left].1
            );
        }
        // Measured under other settings, a population is refused.
        let mut other = population.clone();
        other.u.pop();
        assert!(Linker::with_population(settings(), &left, &right, &other).is_err());
    }

    #[test]
    fn each_candidate_pair_is_generated_once_and_counted_by_its_rule() {
        let left = table(&[
            ["1", "王伟", "2001-01-01", "a"],
            ["2", "王芳", "2001-01-01", "b"],
        ]);
        let right = table(&[
            ["x", "王伟", "2001-01-01", "a"],
            ["y", "李娜", "2001-01-01", "b"],
            ["z", "王娜", "1999-01-01", "c"],
        ]);
        let linker = Linker::new(settings(), &left, Some(&right)).unwrap();
        let c = linker.candidates();
        let mut pairs = c.pairs.clone();
        pairs.sort_unstable();
        pairs.dedup();
        assert_eq!(pairs.len(), c.pairs.len(), "no pair twice");
        // dob: (1,x) (1,y) (2,x) (2,y); then name prefix 王 adds (1,z) (2,z) only.
        assert_eq!(c.per_rule, vec![4, 2]);
    }

    #[test]
    fn training_twice_on_the_same_pairs_gives_the_same_model_to_the_last_bit() {
        // Enough rows for dozens of level patterns, so that a sum taken in hash-map order
        // would differ between runs.
        let surnames = ["王", "李", "张", "刘", "陈", "杨"];
        let given = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊"];
        let rows = |shift: usize| -> Vec<[String; 4]> {
            (0..240)
                .map(|i| {
                    [
                        format!("{i}"),
                        format!("{}{}", surnames[i % 6], given[(i / 6 + shift) % 8]),
                        format!("200{}-0{}-1{}", i % 3, 1 + (i + shift) % 9, i % 10),
                        format!("t{}", (i + shift) % 5),
                    ]
                })
                .collect()
        };
        let as_table = |rows: Vec<[String; 4]>| Table {
            columns: ["id", "name", "dob", "town"].map(String::from).to_vec(),
            rows: rows.into_iter().map(|r| r.to_vec()).collect(),
        };
        let (left, right) = (as_table(rows(0)), as_table(rows(1)));
        let linker = Linker::new(settings(), &left, Some(&right)).unwrap();
        let pairs = linker.candidates().pairs;
        let first = linker.train(&pairs);
        for _ in 0..20 {
            let again = linker.train(&pairs);
            assert_eq!(again.prior.to_bits(), first.prior.to_bits());
            assert_eq!(again, first);
        }
    }

    #[test]
    fn the_waterfall_adds_up_and_a_saved_model_scores_the_same() {
        let left = table(&[
            ["1", "王梓涵", "2001-01-01", "a"],
            ["2", "李娜", "1990-05-06", "b"],
            ["3", "张伟", "1985-02-03", "c"],
        ]);
        let right = table(&[
            ["x", "王子涵", "2001-01-01", "a"],
            ["y", "李娜", "1990-05-06", "b"],
            ["z", "张伟", "1970-07-07", "d"],
        ]);
        let linker = Linker::new(settings(), &left, Some(&right)).unwrap();
        let cand = linker.candidates();
        let model = linker.train(&cand.pairs);
        let e = linker.explain(&model, 0, 0);
        let sum: f64 = e.prior_weight + e.terms.iter().map(|t| t.weight).sum::<f64>();
        assert!((sum - e.weight).abs() < 1e-9);
        assert_eq!(e.terms[0].level, "same pinyin");
        assert!(
            e.terms[1].weight > 0.0,
            "an exact birth date is evidence for a match: {e:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        model.save(&path).unwrap();
        let reloaded = Model::load(&path).unwrap();
        assert_eq!(reloaded, model);
        for &(i, j) in &cand.pairs {
            assert_eq!(
                linker.score_pair(&model, i, j),
                linker.score_pair(&reloaded, i, j)
            );
        }
    }
}
