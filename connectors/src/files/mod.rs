//! File connectors: one reader per format, all streaming records to a sink.
//!
//! Every reader calls `sink(record, bytes_read)` once per record, in file order, and
//! returns the number of records delivered. A reader that meets a broken file part-way
//! (truncated XML, invalid JSON) has already delivered every record before the break and
//! then returns a [`ReadError`] naming where the break is, so nothing read is lost.

mod csv_reader;
mod excel;
mod json;
mod tabular;
mod xml;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Location, RawRecord};

/// The container format of a feed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Xlsx,
    Xls,
    Xml,
    Json,
}

/// The character encoding of a text file. XML files always honour their own declaration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextEncoding {
    /// UTF-8 when the first 64 KiB are valid UTF-8 (or a UTF-8 BOM is present), else GB18030.
    #[default]
    Auto,
    #[serde(alias = "utf8")]
    Utf8,
    #[serde(alias = "gbk", alias = "gb2312")]
    Gb18030,
}

/// Where the header row of a spreadsheet or CSV file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderLocation {
    /// The header is this 1-based row.
    Row(u64),
    /// The header is the first row (among the first 50) holding a cell equal to this text;
    /// everything above it (title rows, notes) is skipped.
    RowContaining(String),
}

/// How to read one file: everything a mapping says about the container, nothing about fields.
#[derive(Debug, Clone)]
pub struct ReadSpec {
    pub format: FileFormat,
    pub encoding: TextEncoding,
    pub header: HeaderLocation,
    /// Data rows whose first non-empty cell starts with one of these are skipped (`合计`).
    pub skip_rows_starting_with: Vec<String>,
    /// Worksheet name; the first sheet when absent.
    pub sheet: Option<String>,
    /// XML: local name of the element that holds one record.
    pub record_element: String,
    /// JSON: `/`-separated path to the array of records; empty for a top-level array or JSON lines.
    pub record_path: String,
}

impl ReadSpec {
    pub fn new(format: FileFormat) -> Self {
        ReadSpec {
            format,
            encoding: TextEncoding::Auto,
            header: HeaderLocation::Row(1),
            skip_rows_starting_with: Vec::new(),
            sheet: None,
            record_element: String::new(),
            record_path: String::new(),
        }
    }
}

/// A file that could not be read, or could be read only up to a point.
#[derive(Debug, thiserror::Error)]
pub struct ReadError {
    pub path: PathBuf,
    pub location: Option<Location>,
    pub message: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(loc) => write!(f, "{}: {}: {}", self.path.display(), loc, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl ReadError {
    pub(crate) fn new(path: &Path, location: Option<Location>, message: impl Into<String>) -> Self {
        ReadError {
            path: path.to_path_buf(),
            location,
            message: message.into(),
        }
    }
}

/// The receiver of records: `(record, bytes of the file consumed so far)`.
pub type Sink<'a> = dyn FnMut(RawRecord, u64) + 'a;

/// Reads `path` as `spec` says, streaming every record to `sink`; returns how many were delivered.
pub fn read_file(path: &Path, spec: &ReadSpec, sink: &mut Sink<'_>) -> Result<u64, ReadError> {
    match spec.format {
        FileFormat::Csv => csv_reader::read(path, spec, sink),
        FileFormat::Xlsx => excel::read_xlsx(path, spec, sink),
        FileFormat::Xls => excel::read_xls(path, spec, sink),
        FileFormat::Xml => xml::read(path, spec, sink),
        FileFormat::Json => json::read(path, spec, sink),
    }
}

/// Convenience for tests and small files: every record in a vector.
pub fn read_all(path: &Path, spec: &ReadSpec) -> Result<Vec<RawRecord>, ReadError> {
    let mut out = Vec::new();
    read_file(path, spec, &mut |r, _| out.push(r))?;
    Ok(out)
}

/// Counts bytes as they are read, for progress reporting.
pub(crate) struct CountingReader<R> {
    inner: R,
    pub(crate) count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: std::io::Read> CountingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        CountingReader {
            inner,
            count: Default::default(),
        }
    }
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

impl<R: std::io::BufRead> std::io::BufRead for CountingReader<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.count.set(self.count.get() + amt as u64);
        self.inner.consume(amt)
    }
}

#[cfg(test)]
mod tests;
