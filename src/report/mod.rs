//! The discrepancy report of SPEC.md in JSON lines, CSV, xlsx and HTML.

mod html;
mod xlsx;

use std::io::Write;

use serde::Serialize;

use crate::model::{DiscrepancyKind, FieldDiff, SourceRef};
use crate::store::StoredDiscrepancy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Csv,
    Xlsx,
    Html,
}

/// One report line, field order as SPEC.md shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: String,
    pub kind: DiscrepancyKind,
    pub period: String,
    pub division: Option<String>,
    pub severity: &'static str,
    pub status: String,
    pub score: f64,
    pub sources: Vec<SourceRef>,
    pub registry_key: Option<String>,
    pub fields: Vec<FieldDiff>,
    pub explanation: String,
}

impl From<&StoredDiscrepancy> for Entry {
    fn from(s: &StoredDiscrepancy) -> Self {
        let d = &s.discrepancy;
        Entry {
            id: s.id.clone(),
            kind: d.kind,
            period: d.period.clone(),
            division: d.division.clone(),
            severity: d.severity.name(),
            status: s.status.clone(),
            score: d.score,
            sources: d.sources.clone(),
            registry_key: d.registry_key.clone(),
            fields: d.fields.clone(),
            explanation: d.explanation.clone(),
        }
    }
}

impl Entry {
    /// `feed:key;…`, as the CSV and the spreadsheet show sources.
    pub fn sources_text(&self) -> String {
        self.sources
            .iter()
            .map(|s| format!("{}:{}", s.feed, s.key))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// `field=registry->source;…`, empty sides left blank.
    pub fn fields_text(&self) -> String {
        self.fields
            .iter()
            .map(|f| {
                format!(
                    "{}={}->{}",
                    f.field,
                    f.registry.as_deref().unwrap_or(""),
                    f.source.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(";")
    }
}

pub const CSV_COLUMNS: [&str; 11] = [
    "id",
    "kind",
    "period",
    "division",
    "severity",
    "status",
    "score",
    "sources",
    "registry_key",
    "fields",
    "explanation",
];

pub fn write_json(entries: &[Entry], out: &mut dyn Write) -> anyhow::Result<()> {
    for e in entries {
        serde_json::to_writer(&mut *out, e)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

pub fn write_csv(entries: &[Entry], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_COLUMNS)?;
    for e in entries {
        w.write_record([
            e.id.as_str(),
            e.kind.name(),
            &e.period,
            e.division.as_deref().unwrap_or(""),
            e.severity,
            &e.status,
            &format!("{:.2}", e.score),
            &e.sources_text(),
            e.registry_key.as_deref().unwrap_or(""),
            &e.fields_text(),
            &e.explanation,
        ])?;
    }
    w.flush()?;
    Ok(())
}

pub use html::write_html;
pub use xlsx::{write_xlsx, xlsx_bytes};

#[cfg(test)]
mod tests;
