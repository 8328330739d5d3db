use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use calamine::{open_workbook, DataType, Reader, Xls, Xlsx};

use super::tabular::{RowOutcome, TabularAssembler};
use super::{ReadError, ReadSpec, Sink};
use crate::Location;

/// Sheets larger than this are refused: a hostile file can declare a huge used range.
const MAX_ROWS: u32 = 2_000_000;
const MAX_COLUMNS: u32 = 512;

pub(super) fn read_xlsx(
    path: &Path,
    spec: &ReadSpec,
    sink: &mut Sink<'_>,
) -> Result<u64, ReadError> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut book: Xlsx<BufReader<File>> = open_workbook(path)
        .map_err(|e| ReadError::new(path, None, format!("not a readable xlsx workbook: {e}")))?;
    let sheet = sheet_name(path, spec, book.sheet_names())?;
    let mut cells = book
        .worksheet_cells_reader(&sheet)
        .map_err(|e| ReadError::new(path, None, format!("sheet '{sheet}': {e}")))?;
    let dims = cells.dimensions();
    check_dimensions(path, dims.end.0.saturating_sub(dims.start.0), dims.end.1)?;
    let total_rows = u64::from(dims.end.0.max(1));

    let mut assembler = TabularAssembler::new(spec);
    let mut delivered = 0;
    let mut current: Option<(u32, Vec<String>)> = None;
    let mut emit = |row: u32, cells: Vec<String>, assembler: &mut TabularAssembler| {
        let row_no = u64::from(row) + 1;
        match assembler.row(row_no, cells) {
            Ok(RowOutcome::Record(rec)) => {
                delivered += 1;
                sink(rec, size * row_no / total_rows.max(row_no));
                Ok(())
            }
            Ok(RowOutcome::Skipped) => Ok(()),
            Err(m) => Err(ReadError::new(path, Some(Location::Row(row_no)), m)),
        }
    };
    loop {
        let cell = cells.next_cell().map_err(|e| {
            let loc = current
                .as_ref()
                .map(|(r, _)| Location::Row(u64::from(*r) + 1));
            ReadError::new(path, loc, format!("broken worksheet: {e}"))
        })?;
        let Some(cell) = cell else { break };
        let (row, col) = cell.get_position();
        if col >= MAX_COLUMNS {
            return Err(ReadError::new(
                path,
                Some(Location::Row(u64::from(row) + 1)),
                format!(
                    "cell in column {} is beyond the {MAX_COLUMNS}-column limit",
                    col + 1
                ),
            ));
        }
        let text = cell_text(cell.get_value());
        match &mut current {
            Some((r, row_cells)) if *r == row => place(row_cells, col, text),
            _ => {
                if let Some((r, row_cells)) = current.take() {
                    emit(r, row_cells, &mut assembler)?;
                }
                let mut row_cells = Vec::new();
                place(&mut row_cells, col, text);
                current = Some((row, row_cells));
            }
        }
    }
    if let Some((r, row_cells)) = current.take() {
        emit(r, row_cells, &mut assembler)?;
    }
    assembler
        .finish()
        .map_err(|m| ReadError::new(path, None, m))?;
    Ok(delivered)
}

pub(super) fn read_xls(
    path: &Path,
    spec: &ReadSpec,
    sink: &mut Sink<'_>,
) -> Result<u64, ReadError> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut book: Xls<BufReader<File>> = open_workbook(path)
        .map_err(|e| ReadError::new(path, None, format!("not a readable xls workbook: {e}")))?;
    let sheet = sheet_name(path, spec, book.sheet_names())?;
    let range = book
        .worksheet_range(&sheet)
        .map_err(|e| ReadError::new(path, None, format!("sheet '{sheet}': {e}")))?;
    let Some((start_row, start_col)) = range.start() else {
        return TabularAssembler::new(spec)
            .finish()
            .map(|_| 0)
            .map_err(|m| ReadError::new(path, None, m));
    };
    let (height, width) = range.get_size();
    check_dimensions(path, height as u32, start_col + width as u32)?;
    let mut assembler = TabularAssembler::new(spec);
    let mut delivered = 0;
    for (i, row) in range.rows().enumerate() {
        let row_no = u64::from(start_row) + i as u64 + 1;
        let mut cells = vec![String::new(); start_col as usize];
        cells.extend(row.iter().map(cell_text));
        match assembler
            .row(row_no, cells)
            .map_err(|m| ReadError::new(path, Some(Location::Row(row_no)), m))?
        {
            RowOutcome::Record(rec) => {
                delivered += 1;
                sink(rec, size * (i as u64 + 1) / (height as u64).max(1));
            }
            RowOutcome::Skipped => {}
        }
    }
    assembler
        .finish()
        .map_err(|m| ReadError::new(path, None, m))?;
    Ok(delivered)
}

fn sheet_name(path: &Path, spec: &ReadSpec, names: Vec<String>) -> Result<String, ReadError> {
    match &spec.sheet {
        Some(wanted) if names.iter().any(|n| n == wanted) => Ok(wanted.clone()),
        Some(wanted) => Err(ReadError::new(
            path,
            None,
            format!("no sheet named '{wanted}' (sheets: {})", names.join(", ")),
        )),
        None => names
            .into_iter()
            .next()
            .ok_or_else(|| ReadError::new(path, None, "workbook has no sheets")),
    }
}

fn check_dimensions(path: &Path, rows: u32, cols: u32) -> Result<(), ReadError> {
    if rows > MAX_ROWS || cols > MAX_COLUMNS {
        return Err(ReadError::new(
            path,
            None,
            format!("sheet declares {rows} rows x {cols} columns, beyond the {MAX_ROWS} x {MAX_COLUMNS} limit"),
        ));
    }
    Ok(())
}

fn place(row: &mut Vec<String>, col: u32, text: String) {
    let col = col as usize;
    if row.len() <= col {
        row.resize(col + 1, String::new());
    }
    row[col] = text;
}

/// The text a clerk sees in the cell: whole numbers without `.0`, dates as ISO dates.
fn cell_text<T: DataType>(value: &T) -> String {
    if let Some(i) = value.get_int() {
        return i.to_string();
    }
    if let Some(f) = value.get_float() {
        return if f.fract() == 0.0 && f.abs() < 1e15 {
            format!("{}", f as i64)
        } else {
            f.to_string()
        };
    }
    if let Some(s) = value.get_string() {
        return s.to_owned();
    }
    if let Some(dt) = value.get_datetime() {
        if let Some(ndt) = dt.as_datetime() {
            return if ndt.time() == chrono::NaiveTime::MIN {
                ndt.date().format("%Y-%m-%d").to_string()
            } else {
                ndt.format("%Y-%m-%d %H:%M:%S").to_string()
            };
        }
        return dt.as_f64().to_string();
    }
    if let Some(s) = value.get_datetime_iso().or(value.get_duration_iso()) {
        return s.to_owned();
    }
    if let Some(b) = value.get_bool() {
        return b.to_string();
    }
    if let Some(e) = value.get_error() {
        return e.to_string();
    }
    String::new()
}
