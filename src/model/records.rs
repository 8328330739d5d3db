//! Canonical records, one type per feed.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Division, IdNumber, MaritalStatus, Sex};

/// The feeds of SPEC.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Feed {
    #[serde(rename = "registry")]
    Registry,
    #[serde(rename = "health.births")]
    HealthBirths,
    #[serde(rename = "police.hukou")]
    PoliceHukou,
    #[serde(rename = "civil.marriages")]
    CivilMarriages,
    #[serde(rename = "exchange.migrants")]
    ExchangeMigrants,
}

impl Feed {
    pub const ALL: [Feed; 5] = [
        Feed::Registry,
        Feed::HealthBirths,
        Feed::PoliceHukou,
        Feed::CivilMarriages,
        Feed::ExchangeMigrants,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feed::Registry => "registry",
            Feed::HealthBirths => "health.births",
            Feed::PoliceHukou => "police.hukou",
            Feed::CivilMarriages => "civil.marriages",
            Feed::ExchangeMigrants => "exchange.migrants",
        }
    }

    pub fn from_name(name: &str) -> Option<Feed> {
        Feed::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonStatus {
    Resident,
    MovedOut,
    Deceased,
}

/// The registry export's columns (SPEC.md section 5), which are also `Person`'s field names.
pub const REGISTRY_COLUMNS: [&str; 13] = [
    "person_key",
    "id_number",
    "name",
    "sex",
    "birth_date",
    "hukou_division",
    "residence_division",
    "marital_status",
    "spouse_id_number",
    "mother_id_number",
    "father_id_number",
    "status",
    "updated_at",
];

/// A person in the population registry, the system of record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub person_key: String,
    pub id_number: Option<IdNumber>,
    pub name: String,
    pub sex: Sex,
    pub birth_date: Option<NaiveDate>,
    pub hukou_division: Option<Division>,
    pub residence_division: Option<Division>,
    pub marital_status: Option<MaritalStatus>,
    pub spouse_id_number: Option<IdNumber>,
    pub mother_id_number: Option<IdNumber>,
    pub father_id_number: Option<IdNumber>,
    pub status: PersonStatus,
    pub updated_at: Option<String>,
}

impl Person {
    /// The county the person belongs to (household registration, else residence): the
    /// partition their record is reconciled in.
    pub fn division(&self) -> &str {
        self.hukou_division
            .as_ref()
            .or(self.residence_division.as_ref())
            .map(Division::as_str)
            .unwrap_or("")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertStatus {
    Issued,
    Reissued,
    Void,
}

/// A Birth Medical Certificate notification from the health commission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BirthNotification {
    pub cert_no: String,
    pub status: CertStatus,
    /// Empty when the child had not been named yet.
    pub child_name: String,
    pub child_sex: Sex,
    pub birth_date: NaiveDate,
    pub birth_time: Option<String>,
    pub birth_division: Option<Division>,
    pub hospital_code: Option<String>,
    pub hospital_name: Option<String>,
    pub mother_name: String,
    pub mother_id: Option<IdNumber>,
    pub mother_division: Option<Division>,
    pub father_name: Option<String>,
    pub father_id: Option<IdNumber>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HukouEventKind {
    #[serde(rename = "出生登记")]
    Birth,
    #[serde(rename = "迁入")]
    MoveIn,
    #[serde(rename = "迁出")]
    MoveOut,
    #[serde(rename = "死亡注销")]
    Death,
    #[serde(rename = "变更更正")]
    Correction,
}

impl HukouEventKind {
    pub fn label(self) -> &'static str {
        match self {
            HukouEventKind::Birth => "出生登记",
            HukouEventKind::MoveIn => "迁入",
            HukouEventKind::MoveOut => "迁出",
            HukouEventKind::Death => "死亡注销",
            HukouEventKind::Correction => "变更更正",
        }
    }

    pub fn from_label(s: &str) -> Option<Self> {
        [
            HukouEventKind::Birth,
            HukouEventKind::MoveIn,
            HukouEventKind::MoveOut,
            HukouEventKind::Death,
            HukouEventKind::Correction,
        ]
        .into_iter()
        .find(|k| k.label() == s.trim())
    }
}

impl HukouEvent {
    /// The record key of SPEC.md: `{id number}|{event}|{registration date}`.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.id_number,
            self.event.label(),
            self.reg_date
        )
    }
}

/// A household registration event from the police.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HukouEvent {
    pub event: HukouEventKind,
    pub id_number: IdNumber,
    pub name: String,
    pub sex: Sex,
    pub birth_date: Option<NaiveDate>,
    pub hukou_division: Option<Division>,
    pub cert_no: Option<String>,
    pub father_name: Option<String>,
    pub father_id: Option<IdNumber>,
    pub mother_name: Option<String>,
    pub mother_id: Option<IdNumber>,
    pub reg_date: NaiveDate,
    pub office: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarriageKind {
    #[serde(rename = "结婚")]
    Marriage,
    #[serde(rename = "离婚")]
    Divorce,
    #[serde(rename = "补领")]
    Reissue,
}

impl MarriageKind {
    pub fn from_label(s: &str) -> Option<Self> {
        match s.trim() {
            "结婚" => Some(MarriageKind::Marriage),
            "离婚" => Some(MarriageKind::Divorce),
            "补领" => Some(MarriageKind::Reissue),
            _ => None,
        }
    }
}

/// One spouse in a marriage registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    pub id_number: Option<IdNumber>,
    pub birth_date: Option<NaiveDate>,
}

/// A marriage, divorce or certificate reissue registered by civil affairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarriageRegistration {
    pub reg_no: String,
    pub kind: MarriageKind,
    pub reg_date: NaiveDate,
    pub office: Option<Division>,
    pub husband: Party,
    pub wife: Party,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrantEvent {
    Inflow,
    Outflow,
    Return,
}

impl MigrantEvent {
    /// The name the exchange format uses.
    pub fn name(self) -> &'static str {
        match self {
            MigrantEvent::Inflow => "inflow",
            MigrantEvent::Outflow => "outflow",
            MigrantEvent::Return => "return",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrantChild {
    pub name: String,
    pub sex: Sex,
    pub birth_date: Option<NaiveDate>,
    pub id_number: Option<IdNumber>,
}

/// A migrant reported by a partner region (the street address is not kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrantRecord {
    pub message_id: Option<String>,
    pub from_region: Option<Division>,
    pub to_region: Option<Division>,
    pub id_number: IdNumber,
    pub name: String,
    pub sex: Sex,
    pub birth_date: Option<NaiveDate>,
    pub marital_status: Option<MaritalStatus>,
    pub hukou_division: Option<Division>,
    pub residence_division: Option<Division>,
    pub event: MigrantEvent,
    pub event_date: NaiveDate,
    pub children: Vec<MigrantChild>,
}

impl MigrantRecord {
    /// `{id number}|{event}|{event date}`: one event of one person.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.id_number,
            self.event.name(),
            self.event_date
        )
    }
}

/// Any canonical record, tagged with its feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "feed")]
pub enum Record {
    #[serde(rename = "registry")]
    Person(Person),
    #[serde(rename = "health.births")]
    Birth(BirthNotification),
    #[serde(rename = "police.hukou")]
    Hukou(HukouEvent),
    #[serde(rename = "civil.marriages")]
    Marriage(MarriageRegistration),
    #[serde(rename = "exchange.migrants")]
    Migrant(MigrantRecord),
}

impl Record {
    pub fn feed(&self) -> Feed {
        match self {
            Record::Person(_) => Feed::Registry,
            Record::Birth(_) => Feed::HealthBirths,
            Record::Hukou(_) => Feed::PoliceHukou,
            Record::Marriage(_) => Feed::CivilMarriages,
            Record::Migrant(_) => Feed::ExchangeMigrants,
        }
    }

    /// The record key of SPEC.md: a new version of a record replaces the one with this key.
    pub fn key(&self) -> String {
        match self {
            Record::Person(p) => p.person_key.clone(),
            Record::Birth(b) => b.cert_no.clone(),
            Record::Hukou(h) => h.key(),
            Record::Marriage(m) => m.reg_no.clone(),
            Record::Migrant(m) => m.key(),
        }
    }

    /// The source's own version stamp, where it has one: an older version never replaces a newer.
    pub fn version(&self) -> Option<&str> {
        match self {
            Record::Person(p) => p.updated_at.as_deref(),
            Record::Birth(b) => b.updated_at.as_deref(),
            _ => None,
        }
    }

    /// A retired record stays stored (for history) but no longer takes part in reconciliation.
    pub fn is_retired(&self) -> bool {
        matches!(self, Record::Birth(b) if b.status == CertStatus::Void)
    }

    /// The county a record belongs to, which partitions reconciliation: where a registry
    /// person's household is registered, where a birth's mother lives (else where the child
    /// was born), the household or marriage office, a migrant's household (else residence).
    /// Empty when the record names none.
    pub fn division(&self) -> &str {
        let d = match self {
            Record::Person(p) => return p.division(),
            Record::Birth(b) => b.mother_division.as_ref().or(b.birth_division.as_ref()),
            Record::Hukou(h) => h.hukou_division.as_ref(),
            Record::Marriage(m) => m.office.as_ref(),
            Record::Migrant(m) => m.hukou_division.as_ref().or(m.residence_division.as_ref()),
        };
        d.map(Division::as_str).unwrap_or("")
    }

    /// A registry person's own and mother's identity numbers, which other counties' records
    /// find them by; `None` for other feeds and numbers that fail their checks.
    pub fn registry_ids(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Record::Person(p) => {
                fn valid(id: &Option<IdNumber>) -> Option<&str> {
                    id.as_ref().filter(|i| i.is_valid()).map(IdNumber::as_str)
                }
                (valid(&p.id_number), valid(&p.mother_id_number))
            }
            _ => (None, None),
        }
    }

    /// The date that places the record in a reporting period.
    pub fn period_date(&self) -> Option<NaiveDate> {
        match self {
            Record::Person(p) => p.birth_date,
            Record::Birth(b) => Some(b.birth_date),
            Record::Hukou(h) => Some(h.reg_date),
            Record::Marriage(m) => Some(m.reg_date),
            Record::Migrant(m) => Some(m.event_date),
        }
    }
}
