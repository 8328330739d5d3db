//! Comparisons with ordered levels, best first, Splink-style. Level 0 is "null": one side has
//! no value, so the comparison gives no evidence either way.
//!
//! Values are prepared once per record ([`Method::prepare`]: identity numbers normalised,
//! dates parsed, names split into characters with their pinyin readings) so that comparing a
//! pair allocates nothing; millions of pairs are compared per run.

use std::hash::{Hash, Hasher};

use chrono::{Datelike, NaiveDate};
use pinyin::ToPinyinMulti;
use serde::{Deserialize, Serialize};

use crate::model::IdNumber;

/// How two values of one column are compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Method {
    /// Exact | legacy 15-digit form of the same number | one substituted character | two
    /// adjacent characters swapped | different | both valid and different (two people: a person
    /// holds one number, so this level is never a match).
    IdNumber,
    /// Exact | same characters in another order | same pinyin (every reading, with the surname
    /// readings of 曾 单 仇 区 解) | one character different | else. Characters, not bytes.
    ChineseName,
    /// Exact | one day apart | month and day swapped | same year and month | else.
    Date,
    /// Same county | same prefecture | else (6-digit division codes).
    Division,
    /// Exact | else.
    Exact,
    /// Exact | Jaro-Winkler similarity at or above each threshold, in order | else.
    JaroWinkler { thresholds: Vec<f64> },
    /// Exact | Levenshtein distance (in characters) at or below each bound, in order | else.
    Levenshtein { bounds: Vec<usize> },
}

/// A value ready for comparison. Kept small and mostly inline: a run compares millions of
/// pairs whose values lie scattered over memory.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    Empty,
    Text(Box<str>),
    /// An exact or division value interned to integer codes (whole value, 4-character prefix).
    Code {
        full: u32,
        prefix: u32,
    },
    Id(IdValue),
    Name(Box<NameValue>),
    Date(Option<NaiveDate>, Box<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdValue {
    bytes: [u8; 18],
    len: u8,
    raw_len: u8,
    valid: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NameValue {
    chars: Box<[char]>,
    sorted: Box<[char]>,
    readings: Box<[Box<[u64]>]>,
}

/// The level of an identity-number comparison that can never be a match.
pub const ID_BOTH_VALID_DIFFERENT: u8 = 6;

impl Method {
    /// Labels of levels 1..=n (level 0 is null).
    pub fn level_labels(&self) -> Vec<String> {
        let fixed = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        match self {
            Method::IdNumber => fixed(&[
                "exact",
                "legacy 15-digit form",
                "one character substituted",
                "adjacent characters swapped",
                "different",
                "both valid and different",
            ]),
            Method::ChineseName => fixed(&[
                "exact",
                "same characters reordered",
                "same pinyin",
                "one character different",
                "different",
            ]),
            Method::Date => fixed(&[
                "exact",
                "one day apart",
                "month and day swapped",
                "same year and month",
                "different",
            ]),
            Method::Division => fixed(&["same county", "same prefecture", "different"]),
            Method::Exact => fixed(&["exact", "different"]),
            Method::JaroWinkler { thresholds } => std::iter::once("exact".to_owned())
                .chain(thresholds.iter().map(|t| format!("jaro-winkler >= {t}")))
                .chain(std::iter::once("different".to_owned()))
                .collect(),
            Method::Levenshtein { bounds } => std::iter::once("exact".to_owned())
                .chain(bounds.iter().map(|b| format!("levenshtein <= {b}")))
                .chain(std::iter::once("different".to_owned()))
                .collect(),
        }
    }

    pub fn level_count(&self) -> usize {
        self.level_labels().len()
    }

    /// A level whose m probability is fixed near zero whatever EM says, because it rules a
    /// match out: two valid, different identity numbers are two people (twins look alike
    /// otherwise).
    pub fn impossible_level(&self) -> Option<u8> {
        matches!(self, Method::IdNumber).then_some(ID_BOTH_VALID_DIFFERENT)
    }

    /// Prepares one value for comparison.
    pub fn prepare(&self, value: &str) -> Prepared {
        let v = value.trim();
        if v.is_empty() {
            return Prepared::Empty;
        }
        match self {
            Method::IdNumber => {
                let raw_len = v.chars().filter(|c| !c.is_whitespace()).count().min(255) as u8;
                match IdNumber::parse(v) {
                    Some(id) => {
                        let text = id.as_str().as_bytes();
                        let mut bytes = [0u8; 18];
                        let len = text.len().min(18);
                        bytes[..len].copy_from_slice(&text[..len]);
                        // Longer junk keeps a length of its own, so it never equals a number.
                        let len = if text.len() > 18 { 255 } else { len as u8 };
                        Prepared::Id(IdValue {
                            bytes,
                            len,
                            raw_len,
                            valid: id.is_valid(),
                        })
                    }
                    None => Prepared::Empty,
                }
            }
            Method::ChineseName => {
                let chars: Box<[char]> = v.chars().filter(|c| !c.is_whitespace()).collect();
                let mut sorted = chars.to_vec();
                sorted.sort_unstable();
                let readings = chars
                    .iter()
                    .enumerate()
                    .map(|(i, c)| readings(*c, i == 0))
                    .collect();
                Prepared::Name(Box::new(NameValue {
                    chars,
                    sorted: sorted.into(),
                    readings,
                }))
            }
            Method::Date => Prepared::Date(parse_any_date(v), v.into()),
            _ => Prepared::Text(v.into()),
        }
    }

    /// The level of a pair of values: 0 when either is empty, else 1 (best) ..= level_count().
    pub fn compare(&self, a: &str, b: &str) -> u8 {
        self.compare_prepared(&self.prepare(a), &self.prepare(b))
    }

    /// Whether this method compares interned codes (exact values and divisions).
    pub fn uses_codes(&self) -> bool {
        matches!(self, Method::Exact | Method::Division)
    }

    pub fn compare_prepared(&self, a: &Prepared, b: &Prepared) -> u8 {
        match (a, b) {
            (Prepared::Empty, _) | (_, Prepared::Empty) => 0,
            (Prepared::Id(x), Prepared::Id(y)) => id_level(x, y),
            (Prepared::Name(x), Prepared::Name(y)) => name_level(
                &x.chars,
                &x.sorted,
                &x.readings,
                &y.chars,
                &y.sorted,
                &y.readings,
            ),
            (
                Prepared::Code {
                    full: a,
                    prefix: pa,
                },
                Prepared::Code {
                    full: b,
                    prefix: pb,
                },
            ) => match self {
                Method::Division if a == b => 1,
                Method::Division if pa == pb => 2,
                Method::Division => 3,
                _ if a == b => 1,
                _ => 2,
            },
            (Prepared::Date(x, tx), Prepared::Date(y, ty)) => date_level(*x, tx, *y, ty),
            (Prepared::Text(a), Prepared::Text(b)) => self.text_level(a, b),
            _ => 0,
        }
    }

    fn text_level(&self, a: &str, b: &str) -> u8 {
        match self {
            Method::Division => {
                if a == b {
                    1
                } else if a.len() >= 4 && b.len() >= 4 && a.as_bytes()[..4] == b.as_bytes()[..4] {
                    2
                } else {
                    3
                }
            }
            Method::JaroWinkler { thresholds } => {
                if a == b {
                    return 1;
                }
                let s = strsim::jaro_winkler(a, b);
                thresholds
                    .iter()
                    .position(|t| s >= *t)
                    .map(|i| i as u8 + 2)
                    .unwrap_or(thresholds.len() as u8 + 2)
            }
            Method::Levenshtein { bounds } => {
                if a == b {
                    return 1;
                }
                let d = strsim::levenshtein(a, b);
                bounds
                    .iter()
                    .position(|m| d <= *m)
                    .map(|i| i as u8 + 2)
                    .unwrap_or(bounds.len() as u8 + 2)
            }
            _ => {
                if a == b {
                    1
                } else {
                    2
                }
            }
        }
    }
}

fn id_level(a: &IdValue, b: &IdValue) -> u8 {
    if a.len == b.len && a.bytes == b.bytes {
        return if a.raw_len == b.raw_len { 1 } else { 2 };
    }
    if a.valid && b.valid {
        return ID_BOTH_VALID_DIFFERENT;
    }
    if a.len != b.len || a.len == 255 {
        return 5;
    }
    let (x, y) = (&a.bytes[..a.len as usize], &b.bytes[..b.len as usize]);
    // A typo leaves the written check character as it was, so a mistyped number differs from
    // the true one in one position (or two swapped).
    let mut diffs = (0..x.len()).filter(|&i| x[i] != y[i]);
    match (diffs.next(), diffs.next(), diffs.next()) {
        (Some(_), None, _) => 3,
        (Some(i), Some(j), None) if j == i + 1 && x[i] == y[j] && x[j] == y[i] => 4,
        _ => 5,
    }
}

/// Surnames whose reading as a surname is not their most common reading.
const SURNAME_READINGS: &[(char, &str)] = &[
    ('曾', "zeng"),
    ('单', "shan"),
    ('仇', "qiu"),
    ('区', "ou"),
    ('解', "xie"),
    ('查', "zha"),
    ('朴', "piao"),
    ('盖', "ge"),
];

fn reading_hash(r: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    r.hash(&mut h);
    h.finish()
}

/// Every toneless reading of a character (as hashes), with its surname reading first in a name.
fn readings(c: char, first: bool) -> Box<[u64]> {
    let mut out: Vec<u64> = c
        .to_pinyin_multi()
        .map(|m| m.into_iter().map(|p| reading_hash(p.plain())).collect())
        .unwrap_or_default();
    if first {
        out.extend(
            SURNAME_READINGS
                .iter()
                .filter(|(s, _)| *s == c)
                .map(|(_, r)| reading_hash(r)),
        );
    }
    out.into()
}

fn same_pinyin(x: &[char], rx: &[Box<[u64]>], y: &[char], ry: &[Box<[u64]>]) -> bool {
    x.len() == y.len()
        && (0..x.len())
            .all(|i| x[i] == y[i] || (!rx[i].is_empty() && rx[i].iter().any(|r| ry[i].contains(r))))
}

fn name_level(
    x: &[char],
    sx: &[char],
    rx: &[Box<[u64]>],
    y: &[char],
    sy: &[char],
    ry: &[Box<[u64]>],
) -> u8 {
    if x == y {
        return 1;
    }
    if sx == sy {
        return 2;
    }
    if same_pinyin(x, rx, y, ry) {
        return 3;
    }
    if one_edit_apart(x, y) {
        return 4;
    }
    5
}

/// Whether one substitution, insertion or deletion turns `x` into `y`.
fn one_edit_apart(x: &[char], y: &[char]) -> bool {
    let (short, long) = if x.len() <= y.len() { (x, y) } else { (y, x) };
    match long.len() - short.len() {
        0 => x.iter().zip(y).filter(|(a, b)| a != b).count() == 1,
        1 => {
            let first = short
                .iter()
                .zip(long)
                .position(|(a, b)| a != b)
                .unwrap_or(short.len());
            short[first..] == long[first + 1..]
        }
        _ => false,
    }
}

pub fn parse_any_date(s: &str) -> Option<NaiveDate> {
    crate::model::fixed_date(s).or_else(|| {
        crate::model::DATE_FORMATS
            .iter()
            .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
    })
}

fn date_level(x: Option<NaiveDate>, tx: &str, y: Option<NaiveDate>, ty: &str) -> u8 {
    let (Some(x), Some(y)) = (x, y) else {
        return if tx == ty { 1 } else { 5 };
    };
    if x == y {
        1
    } else if (x - y).num_days().abs() == 1 {
        2
    } else if x.year() == y.year() && x.month() == y.day() && x.day() == y.month() {
        3
    } else if x.year() == y.year() && x.month() == y.month() {
        4
    } else {
        5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_number_levels() {
        let m = Method::IdNumber;
        assert_eq!(m.compare("41062219900101231X", "41062219900101231x"), 1);
        assert_eq!(m.compare("410622900101231", "41062219900101231X"), 2);
        assert_eq!(m.compare("41062219900101231X", "41062219900101241X"), 3);
        assert_eq!(m.compare("41062219900101231X", "41062219900110231X"), 4);
        assert_eq!(m.compare("41062219900101231X", "4106221990010123"), 5);
        assert_eq!(
            m.compare("41062219900101231X", "110105194912310021"),
            5,
            "the second is invalid"
        );
        // Two valid numbers of people born the same day: two people, whatever else agrees.
        assert_eq!(
            m.compare("410622199105224771", "410622199105220770"),
            ID_BOTH_VALID_DIFFERENT
        );
        assert_eq!(m.compare("", "110105194912310021"), 0);
    }

    #[test]
    fn chinese_name_levels_compare_characters() {
        let m = Method::ChineseName;
        assert_eq!(m.compare("王梓涵", "王梓涵"), 1);
        assert_eq!(m.compare("王梓涵", "王涵梓"), 2);
        assert_eq!(m.compare("王梓涵", "王子涵"), 3, "homophone");
        assert_eq!(m.compare("曾伟", "增伟"), 3, "曾 read zeng as a surname");
        assert_eq!(m.compare("单丽", "善丽"), 3, "单 read shan as a surname");
        assert_eq!(m.compare("王梓涵", "王梓林"), 4);
        assert_eq!(m.compare("欧阳娜", "欧阳娜娜"), 4, "one character more");
        assert_eq!(m.compare("王梓涵", "李娜"), 5);
    }

    #[test]
    fn date_levels() {
        let m = Method::Date;
        assert_eq!(m.compare("2026-10-03", "20261003"), 1);
        assert_eq!(m.compare("2026-10-03", "2026-10-04"), 2);
        assert_eq!(m.compare("2026-10-03", "2026-03-10"), 3);
        assert_eq!(m.compare("2026-10-03", "2026-10-20"), 4);
        assert_eq!(m.compare("2026-10-03", "2025-10-03"), 5);
    }

    #[test]
    fn string_levels() {
        let jw = Method::JaroWinkler {
            thresholds: vec![0.92, 0.8],
        };
        assert_eq!(jw.compare("katherine", "katherine"), 1);
        assert_eq!(jw.compare("katherine", "katharine"), 2);
        assert_eq!(jw.compare("smith", "zzzzz"), 4);
        let lev = Method::Levenshtein { bounds: vec![1, 2] };
        assert_eq!(lev.compare("2612", "2621"), 3);
        assert_eq!(lev.compare("2612", "2613"), 2);
    }
}
