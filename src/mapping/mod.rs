//! Declarative mappings: one TOML file says how one feed layout becomes canonical records.
//!
//! A mapping names the container (format, encoding, header row, rows to skip, XML record
//! element, JSON record path) and, for every canonical field, the source column or path it
//! comes from and the clean-up applied to it. A new agency layout is a new mapping file.

mod builtin;
mod canonical;
mod dates;
mod rule;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use vitalhub_connectors::files::{FileFormat, HeaderLocation, ReadSpec, TextEncoding};
use vitalhub_connectors::RawRecord;

use crate::model::{Feed, Record};

pub use builtin::{builtin, builtin_names};
pub use dates::parse_date;
use rule::{FieldRule, ListRule};

/// Why a mapping file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingFileError {
    #[error("cannot read mapping {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("mapping {name}: {message}")]
    Invalid { name: String, message: String },
}

/// Why one record could not be mapped: the canonical field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// How the container format is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    Fixed(FileFormat),
    /// By file extension: `.xlsx`, `.xls`, `.csv`, `.xml`, `.json`/`.jsonl`.
    ByExtension,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    feed: String,
    #[serde(default)]
    description: String,
    format: String,
    #[serde(default)]
    encoding: TextEncoding,
    header_row: Option<u64>,
    header_contains: Option<String>,
    #[serde(default)]
    skip_rows_starting_with: Vec<String>,
    sheet: Option<String>,
    record_element: Option<String>,
    #[serde(default)]
    record_path: String,
    date_formats: Option<Vec<String>>,
    fields: BTreeMap<String, FieldRule>,
    #[serde(default)]
    lists: BTreeMap<String, ListRule>,
}

/// A loaded mapping, ready to turn raw records of its layout into canonical records.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub name: String,
    pub description: String,
    pub feed: Feed,
    format: FormatChoice,
    read: ReadSpec,
    date_formats: Vec<String>,
    fields: BTreeMap<String, FieldRule>,
    lists: BTreeMap<String, ListRule>,
}

impl Mapping {
    /// Parses a mapping from TOML text; `name` identifies it in messages and in the store.
    pub fn from_toml(name: &str, text: &str) -> Result<Mapping, MappingFileError> {
        let invalid = |message: String| MappingFileError::Invalid {
            name: name.to_owned(),
            message,
        };
        let file: MappingFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let feed = Feed::from_name(&file.feed)
            .ok_or_else(|| invalid(format!("unknown feed '{}'", file.feed)))?;
        let format = match file.format.as_str() {
            "auto" => FormatChoice::ByExtension,
            other => FormatChoice::Fixed(
                serde_json::from_value(serde_json::Value::String(other.to_owned())).map_err(
                    |_| {
                        invalid(format!(
                            "unknown format '{other}' (csv, xlsx, xls, xml, json, auto)"
                        ))
                    },
                )?,
            ),
        };
        if file.format == "xml" && file.record_element.is_none() {
            return Err(invalid("an xml mapping needs record_element".into()));
        }
        let mut read = ReadSpec::new(FileFormat::Csv);
        read.encoding = file.encoding;
        read.header = match (file.header_row, file.header_contains) {
            (_, Some(marker)) => HeaderLocation::RowContaining(marker),
            (Some(row), None) => HeaderLocation::Row(row),
            (None, None) => HeaderLocation::Row(1),
        };
        read.skip_rows_starting_with = file.skip_rows_starting_with;
        read.sheet = file.sheet;
        read.record_element = file.record_element.unwrap_or_default();
        read.record_path = file.record_path;
        for (field, rule) in &file.fields {
            rule.check()
                .map_err(|m| invalid(format!("field {field}: {m}")))?;
        }
        canonical::check_fields(feed, file.fields.keys(), &file.lists).map_err(invalid)?;
        Ok(Mapping {
            name: name.to_owned(),
            description: file.description,
            feed,
            format,
            read,
            date_formats: file.date_formats.unwrap_or_else(dates::default_formats),
            fields: file.fields,
            lists: file.lists,
        })
    }

    /// Loads a mapping file from disk, or a built-in one as `builtin:NAME`.
    pub fn load(reference: &str) -> Result<Mapping, MappingFileError> {
        if let Some(name) = reference.strip_prefix("builtin:") {
            let text = builtin(name).ok_or_else(|| MappingFileError::Invalid {
                name: reference.to_owned(),
                message: format!(
                    "no built-in mapping '{name}' (have: {})",
                    builtin_names().join(", ")
                ),
            })?;
            return Mapping::from_toml(reference, text);
        }
        let text = std::fs::read_to_string(reference).map_err(|source| MappingFileError::Io {
            path: reference.to_owned(),
            source,
        })?;
        Mapping::from_toml(reference, &text)
    }

    /// How to read `path` with this mapping.
    pub fn read_spec(&self, path: &Path) -> Result<ReadSpec, String> {
        let format = match self.format {
            FormatChoice::Fixed(f) => f,
            FormatChoice::ByExtension => {
                let ext = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                match ext.as_str() {
                    "csv" | "txt" => FileFormat::Csv,
                    "xlsx" | "xlsm" => FileFormat::Xlsx,
                    "xls" => FileFormat::Xls,
                    "xml" => FileFormat::Xml,
                    "json" | "jsonl" => FileFormat::Json,
                    _ => {
                        return Err(format!(
                            "cannot tell the format of '{}' from its extension",
                            path.display()
                        ))
                    }
                }
            }
        };
        let mut spec = self.read.clone();
        spec.format = format;
        Ok(spec)
    }

    /// Maps one raw record to a canonical record, or says which field failed and why.
    pub fn apply(&self, raw: &RawRecord) -> Result<Record, FieldError> {
        let mut values = BTreeMap::new();
        for (field, rule) in &self.fields {
            if let Some(v) = rule.extract(raw, "") {
                values.insert(field.clone(), v);
            }
        }
        let mut lists = BTreeMap::new();
        for (name, rule) in &self.lists {
            lists.insert(name.clone(), rule.extract(raw));
        }
        canonical::build(
            self.feed,
            &canonical::Fields::new(&values, &lists, &self.date_formats),
        )
    }
}

#[cfg(test)]
mod tests;
