//! Field rules: where a canonical field comes from and how its text is cleaned.

use std::collections::BTreeMap;

use serde::Deserialize;
use vitalhub_connectors::RawRecord;

use crate::model::IdNumber;

/// A clean-up step applied to a field's text, in the order listed. Text is always trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    Trim,
    Upper,
    Lower,
    /// Full-width ASCII letters, digits and the ideographic space to their half-width forms.
    Halfwidth,
    /// Drops every space, including ideographic ones.
    RemoveSpaces,
    /// A person's name: half-width, no spaces, any dot-like separator as the middle dot `·`.
    Name,
    /// An identity number in its normalised form (see `model::IdNumber`); invalid ones kept.
    IdNumber,
    /// The date part only of a date-time text (`2026-10-03 00:00:00` -> `2026-10-03`).
    DatePart,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FromSpec {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullRule {
    from: Option<FromSpec>,
    #[serde(default)]
    transforms: Vec<Transform>,
    #[serde(default)]
    map: BTreeMap<String, String>,
    default: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RuleSpec {
    Path(String),
    Full(FullRule),
}

/// `field = "Column"` or `field = { from = ["A", "B"], transforms = [...], map = {...}, default = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RuleSpec")]
pub struct FieldRule {
    /// Source paths tried in order; the first non-empty value wins.
    from: Vec<String>,
    transforms: Vec<Transform>,
    /// Exact-value replacements after the transforms (`男 -> 1`); unlisted values pass through.
    map: BTreeMap<String, String>,
    default: Option<String>,
}

impl From<RuleSpec> for FieldRule {
    fn from(spec: RuleSpec) -> Self {
        match spec {
            RuleSpec::Path(p) => FieldRule {
                from: vec![p],
                transforms: Vec::new(),
                map: BTreeMap::new(),
                default: None,
            },
            RuleSpec::Full(r) => FieldRule {
                from: match r.from {
                    None => Vec::new(),
                    Some(FromSpec::One(p)) => vec![p],
                    Some(FromSpec::Many(ps)) => ps,
                },
                transforms: r.transforms,
                map: r.map,
                default: r.default,
            },
        }
    }
}

impl FieldRule {
    pub(super) fn check(&self) -> Result<(), String> {
        if self.from.is_empty() && self.default.is_none() {
            return Err("needs `from` or `default`".into());
        }
        Ok(())
    }

    /// The cleaned value of this field in `raw`, reading paths under `prefix` (for list items).
    pub(super) fn extract(&self, raw: &RawRecord, prefix: &str) -> Option<String> {
        let found = self.from.iter().find_map(|path| {
            let full = if prefix.is_empty() {
                path.clone()
            } else {
                format!("{prefix}/{path}")
            };
            raw.get(&full).map(str::trim).filter(|v| !v.is_empty())
        });
        let mut value = match found {
            Some(v) => v.to_owned(),
            None => return self.default.clone(),
        };
        for t in &self.transforms {
            value = apply(*t, &value);
        }
        if let Some(mapped) = self.map.get(&value) {
            value = mapped.clone();
        }
        (!value.is_empty()).then_some(value)
    }
}

/// A repeated group inside a record, such as a migrant's children.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRule {
    from: String,
    pub(super) fields: BTreeMap<String, FieldRule>,
}

impl ListRule {
    pub(super) fn extract(&self, raw: &RawRecord) -> Vec<BTreeMap<String, String>> {
        raw.list_indices(&self.from)
            .into_iter()
            .map(|i| {
                let prefix = format!("{}/{i}", self.from);
                self.fields
                    .iter()
                    .filter_map(|(name, rule)| {
                        rule.extract(raw, &prefix).map(|v| (name.clone(), v))
                    })
                    .collect()
            })
            .collect()
    }
}

pub fn apply(t: Transform, value: &str) -> String {
    match t {
        Transform::Trim => value.trim().to_owned(),
        Transform::Upper => value.to_uppercase(),
        Transform::Lower => value.to_lowercase(),
        Transform::Halfwidth => halfwidth(value),
        Transform::RemoveSpaces => value.chars().filter(|c| !c.is_whitespace()).collect(),
        Transform::Name => halfwidth(value)
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| match c {
                '.' | '•' | '・' | '．' | '‧' | '∙' | '⋅' | '･' => '·',
                c => c,
            })
            .collect(),
        Transform::IdNumber => IdNumber::parse(value).map(String::from).unwrap_or_default(),
        Transform::DatePart => value.split([' ', 'T']).next().unwrap_or(value).to_owned(),
    }
}

fn halfwidth(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .collect()
}
