//! Discrepancies: what reconciliation finds and operators review.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of SPEC.md, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyKind {
    UnreportedBirth,
    UnregisteredChild,
    BirthConflict,
    RegistryBirthUnconfirmed,
    MarriageNotRecorded,
    UnknownPerson,
    MigrantInflowNotRecorded,
    MovedOutNotRecorded,
    DuplicateRegistryRecord,
    InvalidIdentifier,
}

impl DiscrepancyKind {
    pub const ALL: [DiscrepancyKind; 10] = [
        DiscrepancyKind::UnreportedBirth,
        DiscrepancyKind::UnregisteredChild,
        DiscrepancyKind::BirthConflict,
        DiscrepancyKind::RegistryBirthUnconfirmed,
        DiscrepancyKind::MarriageNotRecorded,
        DiscrepancyKind::UnknownPerson,
        DiscrepancyKind::MigrantInflowNotRecorded,
        DiscrepancyKind::MovedOutNotRecorded,
        DiscrepancyKind::DuplicateRegistryRecord,
        DiscrepancyKind::InvalidIdentifier,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DiscrepancyKind::UnreportedBirth => "unreported_birth",
            DiscrepancyKind::UnregisteredChild => "unregistered_child",
            DiscrepancyKind::BirthConflict => "birth_conflict",
            DiscrepancyKind::RegistryBirthUnconfirmed => "registry_birth_unconfirmed",
            DiscrepancyKind::MarriageNotRecorded => "marriage_not_recorded",
            DiscrepancyKind::UnknownPerson => "unknown_person",
            DiscrepancyKind::MigrantInflowNotRecorded => "migrant_inflow_not_recorded",
            DiscrepancyKind::MovedOutNotRecorded => "moved_out_not_recorded",
            DiscrepancyKind::DuplicateRegistryRecord => "duplicate_registry_record",
            DiscrepancyKind::InvalidIdentifier => "invalid_identifier",
        }
    }

    /// The clerk-facing Chinese name, used in the xlsx sheets and the HTML report.
    pub fn label_zh(self) -> &'static str {
        match self {
            DiscrepancyKind::UnreportedBirth => "出生未入库",
            DiscrepancyKind::UnregisteredChild => "出生未落户",
            DiscrepancyKind::BirthConflict => "出生信息不一致",
            DiscrepancyKind::RegistryBirthUnconfirmed => "库内出生无来源印证",
            DiscrepancyKind::MarriageNotRecorded => "婚姻变动未更新",
            DiscrepancyKind::UnknownPerson => "库内查无此人",
            DiscrepancyKind::MigrantInflowNotRecorded => "流动人口变动未更新",
            DiscrepancyKind::MovedOutNotRecorded => "迁出或死亡未更新",
            DiscrepancyKind::DuplicateRegistryRecord => "库内重复记录",
            DiscrepancyKind::InvalidIdentifier => "身份证号码无效",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for DiscrepancyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// A record a discrepancy rests on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceRef {
    pub feed: String,
    pub key: String,
}

impl SourceRef {
    pub fn new(feed: impl Into<String>, key: impl Into<String>) -> Self {
        SourceRef {
            feed: feed.into(),
            key: key.into(),
        }
    }
}

/// One field on which the registry and a source disagree (or the value found wanting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub field: String,
    pub registry: Option<String>,
    pub source: Option<String>,
    /// Which source feed `source` came from, when several took part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<String>,
}

/// A discrepancy as reconciliation finds it, before it has an id or a review status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Discrepancy {
    pub kind: DiscrepancyKind,
    pub period: String,
    pub division: Option<String>,
    pub severity: Severity,
    pub score: f64,
    pub sources: Vec<SourceRef>,
    pub registry_key: Option<String>,
    pub fields: Vec<FieldDiff>,
    pub explanation: String,
    /// What identifies this discrepancy across runs of the same period (with `kind`): the
    /// key of the record it is about. Its id is assigned once for this pair and kept.
    pub anchor: String,
    /// Why records were (or were not) linked: the match-weight waterfall of the best pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<serde_json::Value>,
    /// A probable but unsure link: shown as "possible match, please confirm".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub possible_match: bool,
}
