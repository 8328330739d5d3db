//! Turns rows of cells (from CSV or a worksheet) into raw records keyed by header.

use super::{HeaderLocation, ReadSpec};
use crate::{Location, RawRecord};

/// How many rows may stand above the header before we give up looking for it.
const HEADER_SEARCH_ROWS: u64 = 50;

pub(crate) struct TabularAssembler<'s> {
    spec: &'s ReadSpec,
    header: Option<Vec<String>>,
}

pub(crate) enum RowOutcome {
    Record(RawRecord),
    Skipped,
}

impl<'s> TabularAssembler<'s> {
    pub(crate) fn new(spec: &'s ReadSpec) -> Self {
        TabularAssembler { spec, header: None }
    }

    /// Feeds one row (1-based number, cells by 0-based column); returns a record for data rows.
    pub(crate) fn row(&mut self, row_no: u64, cells: Vec<String>) -> Result<RowOutcome, String> {
        let Some(header) = &self.header else {
            let is_header = match &self.spec.header {
                HeaderLocation::Row(n) => row_no == *n,
                HeaderLocation::RowContaining(marker) => {
                    cells.iter().any(|c| c.trim() == marker.as_str())
                }
            };
            if is_header {
                self.header = Some(cells.iter().map(|c| normalise_header(c)).collect());
            } else if row_no > HEADER_SEARCH_ROWS
                || matches!(self.spec.header, HeaderLocation::Row(n) if row_no > n)
            {
                return Err(match &self.spec.header {
                    HeaderLocation::Row(n) => format!("header row {n} not found"),
                    HeaderLocation::RowContaining(m) => {
                        format!("no header row with a column named '{m}' in the first {HEADER_SEARCH_ROWS} rows")
                    }
                });
            }
            return Ok(RowOutcome::Skipped);
        };
        let first = cells.iter().map(|c| c.trim()).find(|c| !c.is_empty());
        let Some(first) = first else {
            return Ok(RowOutcome::Skipped);
        };
        if self
            .spec
            .skip_rows_starting_with
            .iter()
            .any(|p| first.starts_with(p.as_str()))
        {
            return Ok(RowOutcome::Skipped);
        }
        let mut rec = RawRecord::new(Location::Row(row_no));
        for (i, cell) in cells.into_iter().enumerate() {
            if cell.is_empty() {
                continue;
            }
            let name = match header.get(i) {
                Some(h) if !h.is_empty() => h.clone(),
                _ => format!("#{}", i + 1),
            };
            rec.push(name, cell);
        }
        Ok(RowOutcome::Record(rec))
    }

    /// Called at end of input: an input whose header never appeared is an error.
    pub(crate) fn finish(&self) -> Result<(), String> {
        if self.header.is_some() {
            return Ok(());
        }
        Err(match &self.spec.header {
            HeaderLocation::Row(n) => format!("header row {n} not found (file has fewer rows)"),
            HeaderLocation::RowContaining(m) => format!("no header row with a column named '{m}'"),
        })
    }
}

/// Header cells are matched after trimming and folding inner whitespace, since agency
/// templates put stray spaces and line breaks in column titles.
fn normalise_header(cell: &str) -> String {
    cell.split_whitespace().collect::<Vec<_>>().join("")
}
