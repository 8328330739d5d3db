//! The discrepancy report of SPEC.md in JSON lines, CSV, xlsx and HTML.

mod html;
mod xlsx;

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};

use serde::Serialize;

use crate::model::{DiscrepancyKind, FieldDiff, SourceRef};
use crate::store::{Store, StoreError, StoredDiscrepancy};

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

/// The period's open discrepancies, as reports list them.
pub fn open_entries(store: &Store, period: &str) -> Result<Vec<Entry>, StoreError> {
    Ok(store
        .discrepancies(period, Some("open"))?
        .iter()
        .map(Entry::from)
        .collect())
}

/// Writes a report in `format` to `output`, or to stdout (not for xlsx).
pub fn write_report(
    entries: &[Entry],
    period: &str,
    region: &str,
    format: Format,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    match (format, output) {
        (Format::Xlsx, Some(path)) => write_xlsx(entries, period, path)?,
        (Format::Xlsx, None) => bail!("--format xlsx needs --output FILE"),
        (Format::Html, out) => {
            let page = write_html(entries, period, region)?;
            match out {
                Some(path) => std::fs::write(path, page)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout()
                    .write_all(page.as_bytes())
                    .context("writing the report to stdout")?,
            }
        }
        (f, out) => {
            let mut sink: Box<dyn Write> = match out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            if f == Format::Json {
                write_json(entries, &mut sink)?;
            } else {
                write_csv(entries, &mut sink)?;
            }
            sink.flush()?;
        }
    }
    Ok(())
}
