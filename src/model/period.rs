//! Reporting periods (calendar months written `YYYY-MM`) and the date forms feeds use.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Months, NaiveDate};

/// The date forms of SPEC.md, tried in order (`%m`/`%d` accept one or two digits).
pub const DATE_FORMATS: [&str; 5] = ["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"];

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
