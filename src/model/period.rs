//! Reporting periods (calendar months written `YYYY-MM`) and the date forms feeds use.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Months, NaiveDate};

/// The date forms of SPEC.md, tried in order (`%m`/`%d` accept one or two digits).
pub const DATE_FORMATS: [&str; 5] = ["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"];

/// A date written `YYYY-MM-DD` or `YYYYMMDD`, the forms stored records and identity numbers
/// use, read without chrono's format parser (which reads its format string again on every
/// call: a share of a month's linkage); `None` for any other form or an impossible date.
pub fn fixed_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let (y, m, d) = match b.len() {
        10 if b[4] == b'-' && b[7] == b'-' => (digits(0..4)?, digits(5..7)?, digits(8..10)?),
        8 => (digits(0..4)?, digits(4..6)?, digits(6..8)?),
        _ => return None,
    };
    NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    first: NaiveDate,
}

impl Period {
    pub fn containing(date: NaiveDate) -> Period {
        Period {
            first: date.with_day(1).expect("day 1 exists"),
        }
    }

    pub fn first_day(self) -> NaiveDate {
        self.first
    }

    pub fn last_day(self) -> NaiveDate {
        self.next()
            .first
            .pred_opt()
            .expect("a day before the next month exists")
    }

    pub fn next(self) -> Period {
        Period {
            first: self.first + Months::new(1),
        }
    }

    pub fn previous(self) -> Period {
        Period {
            first: self.first - Months::new(1),
        }
    }

    pub fn contains(self, date: NaiveDate) -> bool {
        date.year() == self.first.year() && date.month() == self.first.month()
    }

    /// `YYYYMM`, as feed file names write it.
    pub fn compact(self) -> String {
        self.first.format("%Y%m").to_string()
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NaiveDate::parse_from_str(&format!("{}-01", s.trim()), "%Y-%m-%d")
            .map(|first| Period { first })
            .map_err(|_| format!("'{s}' is not a period (YYYY-MM)"))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.first.format("%Y-%m"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Read by hand, a date of either fixed form is what chrono reads, valid or not.
        #[test]
        fn fixed_dates_read_as_chrono_reads_them(
            y in 0u32..10_000, m in 0u32..100, d in 0u32..100, dashed: bool
        ) {
            let (text, format) = if dashed {
                (format!("{y:04}-{m:02}-{d:02}"), "%Y-%m-%d")
            } else {
                (format!("{y:04}{m:02}{d:02}"), "%Y%m%d")
            };
            proptest::prop_assert_eq!(
                fixed_date(&text),
                NaiveDate::parse_from_str(&text, format).ok()
            );
        }
    }

    #[test]
    fn other_forms_are_not_fixed_dates() {
        for text in [
            "2026-1-05",
            "2026/01/05",
            "2026-01-0x",
            "+2026-01-05",
            "202601051",
            "",
        ] {
            assert_eq!(fixed_date(text), None, "{text}");
        }
        assert_eq!(
            fixed_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        assert_eq!(fixed_date("2023-02-29"), None);
    }

    #[test]
    fn periods_parse_and_bound_their_days() {
        let p: Period = "2026-02".parse().unwrap();
        assert_eq!(p.last_day(), NaiveDate::from_ymd_opt(2026, 2, 28).unwrap());
        assert!(p.contains(NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()));
        assert!(!p.contains(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()));
        assert_eq!(p.to_string(), "2026-02");
        assert_eq!(p.compact(), "202602");
        assert_eq!(p.next().to_string(), "2026-03");
        assert!("2026-13".parse::<Period>().is_err());
    }
}
