//! Code tables shared by every feed: sex (GB/T 2261.1), marital status (GB/T 2261.2) and
//! administrative divisions (GB/T 2260).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// GB/T 2261.1 sex code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Sex {
    Unknown,
    Male,
    Female,
    Unspecified,
}

impl Sex {
    pub fn code(self) -> &'static str {
        match self {
            Sex::Unknown => "0",
            Sex::Male => "1",
            Sex::Female => "2",
            Sex::Unspecified => "9",
        }
    }

    /// Whether the code says something: `0` and `9` never conflict with anything.
    pub fn is_known(self) -> bool {
        matches!(self, Sex::Male | Sex::Female)
    }
}

impl FromStr for Sex {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "0" | "未知" | "未知的性别" => Sex::Unknown,
            "1" | "男" | "男性" | "M" | "m" => Sex::Male,
            "2" | "女" | "女性" | "F" | "f" => Sex::Female,
            "9" | "未说明" | "未说明的性别" => Sex::Unspecified,
            other => return Err(format!("'{other}' is not a sex code (0, 1, 2, 9, 男, 女)")),
        })
    }
}

impl TryFrom<String> for Sex {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Sex> for String {
    fn from(s: Sex) -> Self {
        s.code().to_owned()
    }
}

impl fmt::Display for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// GB/T 2261.2 marital status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MaritalStatus {
    Unmarried,
    Married,
    FirstMarriage,
    Remarriage,
    RemarriedAfterDivorce,
    Widowed,
    Divorced,
    NotStated,
}

impl MaritalStatus {
    pub fn code(self) -> &'static str {
        match self {
            MaritalStatus::Unmarried => "10",
            MaritalStatus::Married => "20",
            MaritalStatus::FirstMarriage => "21",
            MaritalStatus::Remarriage => "22",
            MaritalStatus::RemarriedAfterDivorce => "23",
            MaritalStatus::Widowed => "30",
            MaritalStatus::Divorced => "40",
            MaritalStatus::NotStated => "90",
        }
    }

    /// `20` and its refinements `21`-`23`.
    pub fn is_married(self) -> bool {
        matches!(
            self,
            MaritalStatus::Married
                | MaritalStatus::FirstMarriage
                | MaritalStatus::Remarriage
                | MaritalStatus::RemarriedAfterDivorce
        )
    }
}

impl FromStr for MaritalStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "10" | "未婚" => MaritalStatus::Unmarried,
            "20" | "已婚" => MaritalStatus::Married,
            "21" | "初婚" => MaritalStatus::FirstMarriage,
            "22" | "再婚" => MaritalStatus::Remarriage,
            "23" | "复婚" => MaritalStatus::RemarriedAfterDivorce,
            "30" | "丧偶" => MaritalStatus::Widowed,
            "40" | "离婚" => MaritalStatus::Divorced,
            "90" | "未说明的婚姻状况" | "未说明" => MaritalStatus::NotStated,
            other => {
                return Err(format!(
                    "'{other}' is not a GB/T 2261.2 marital status code"
                ))
            }
        })
    }
}

impl TryFrom<String> for MaritalStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<MaritalStatus> for String {
    fn from(m: MaritalStatus) -> Self {
        m.code().to_owned()
    }
}

impl fmt::Display for MaritalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The significant prefix of a division code: trailing `00` pairs dropped, at least two digits
/// kept (`410600` -> `4106`, `410000` -> `41`, `410611` unchanged).
pub fn division_prefix(code: &str) -> &str {
    let mut p = code.trim();
    while p.len() > 2 && p.ends_with("00") {
        p = &p[..p.len() - 2];
    }
    p
}

/// A 6-digit GB/T 2260 administrative division code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Division(String);

impl Division {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this division lies inside `prefix` (`4106` the prefecture, `410611` the county).
    pub fn within(&self, prefix: &str) -> bool {
        self.0.starts_with(division_prefix(prefix))
    }

    /// The prefecture (city) this division belongs to, as a 4-digit prefix.
    pub fn prefecture(&self) -> &str {
        &self.0[..4]
    }
}

impl FromStr for Division {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Division(s.to_owned()))
        } else {
            Err(format!("'{s}' is not a 6-digit division code"))
        }
    }
}

impl TryFrom<String> for Division {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Division> for String {
    fn from(d: Division) -> Self {
        d.0
    }
}

impl fmt::Display for Division {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_from_numbers_and_chinese() {
        assert_eq!("男".parse::<Sex>().unwrap(), Sex::Male);
        assert_eq!(" 2 ".parse::<Sex>().unwrap(), Sex::Female);
        assert!("3".parse::<Sex>().is_err());
        assert!("22".parse::<MaritalStatus>().unwrap().is_married());
        assert!(!"40".parse::<MaritalStatus>().unwrap().is_married());
        assert_eq!(
            "离婚".parse::<MaritalStatus>().unwrap(),
            MaritalStatus::Divorced
        );
    }

    #[test]
    fn divisions_nest_by_prefix() {
        let d: Division = "410611".parse().unwrap();
        assert!(d.within("4106"));
        assert!(d.within("410600"));
        assert!(d.within("410611"));
        assert!(!d.within("410621"));
        assert_eq!(d.prefecture(), "4106");
        assert_eq!(division_prefix("410600"), "4106");
        assert_eq!(division_prefix("410000"), "41");
        assert_eq!(division_prefix("410611"), "410611");
        assert!("41061".parse::<Division>().is_err());
    }
}
