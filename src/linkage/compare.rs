//! Comparisons with ordered levels, best first, Splink-style. Level 0 is "null": one side has
//! no value, so the comparison gives no evidence either way.

use chrono::{Datelike, NaiveDate};
use pinyin::ToPinyinMulti;
use serde::{Deserialize, Serialize};

use crate::model::IdNumber;

/// How two values of one column are compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Method {
    /// Exact | legacy 15-digit form of the same number | one substituted digit | two adjacent
    /// digits swapped | else.
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

impl Method {
    /// Labels of levels 1..=n (level 0 is null).
    pub fn level_labels(&self) -> Vec<String> {
        let fixed = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        match self {
            Method::IdNumber => fixed(&[
                "exact",
                "legacy 15-digit form",
                "one digit substituted",
                "adjacent digits swapped",
                "different",
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

    /// The level of a pair of values: 0 when either is empty, else 1 (best) ..= level_count().
    pub fn compare(&self, a: &str, b: &str) -> u8 {
        let (a, b) = (a.trim(), b.trim());
        if a.is_empty() || b.is_empty() {
            return 0;
        }
        match self {
            Method::IdNumber => id_level(a, b),
            Method::ChineseName => name_level(a, b),
            Method::Date => date_level(a, b),
            Method::Division => {
                if a == b {
                    1
                } else if a.len() >= 4 && b.len() >= 4 && a[..4] == b[..4] {
                    2
                } else {
                    3
                }
            }
            Method::Exact => {
                if a == b {
                    1
                } else {
                    2
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
        }
    }
}

fn id_level(a: &str, b: &str) -> u8 {
    let (na, nb) = (IdNumber::parse(a), IdNumber::parse(b));
    let (na, nb) = match (&na, &nb) {
        (Some(x), Some(y)) => (x.as_str(), y.as_str()),
        _ => (a, b),
    };
    if na == nb {
        return if a.chars().count() == b.chars().count() {
            1
        } else {
            2
        };
    }
    let (x, y): (Vec<char>, Vec<char>) = (na.chars().collect(), nb.chars().collect());
    if x.len() != y.len() {
        return 5;
    }
    // A typo leaves the written check character as it was, so a mistyped number differs from
    // the true one in one position (or two swapped); two different valid numbers with the same
    // birth date differ in the sequence and in the check character as well.
    let diffs: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
    match diffs.as_slice() {
        [_] => 3,
        [i, j] if *j == i + 1 && x[*i] == y[*j] && x[*j] == y[*i] => 4,
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

fn readings(c: char, first: bool) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = c
        .to_pinyin_multi()
        .map(|m| m.into_iter().map(|p| p.plain()).collect())
        .unwrap_or_default();
    if first {
        out.extend(
            SURNAME_READINGS
                .iter()
                .filter(|(s, _)| *s == c)
                .map(|(_, r)| *r),
        );
    }
    out
}

pub fn same_pinyin(a: &[char], b: &[char]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).enumerate().all(|(i, (x, y))| {
            if x == y {
                return true;
            }
            let rx = readings(*x, i == 0);
            let ry = readings(*y, i == 0);
            !rx.is_empty() && rx.iter().any(|r| ry.contains(r))
        })
}

fn name_level(a: &str, b: &str) -> u8 {
    if a == b {
        return 1;
    }
    let x: Vec<char> = a.chars().filter(|c| !c.is_whitespace()).collect();
    let y: Vec<char> = b.chars().filter(|c| !c.is_whitespace()).collect();
    if x == y {
        return 1;
    }
    let mut sx = x.clone();
    let mut sy = y.clone();
    sx.sort_unstable();
    sy.sort_unstable();
    if sx == sy {
        return 2;
    }
    if same_pinyin(&x, &y) {
        return 3;
    }
    if strsim::generic_levenshtein(&x, &y) == 1 {
        return 4;
    }
    5
}

pub fn parse_any_date(s: &str) -> Option<NaiveDate> {
    const FORMATS: [&str; 5] = ["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"];
    FORMATS
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
}

fn date_level(a: &str, b: &str) -> u8 {
    let (Some(x), Some(y)) = (parse_any_date(a), parse_any_date(b)) else {
        return if a == b { 1 } else { 5 };
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
        assert_eq!(m.compare("41062219900101231X", "110105194912310021"), 5);
        // Two valid numbers of people born the same day: sequence and check differ.
        assert_eq!(m.compare("410622199105224771", "410622199105220770"), 5);
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
