use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use encoding_rs::{Encoding, GB18030, UTF_8};
use encoding_rs_io::DecodeReaderBytesBuilder;

use super::tabular::{RowOutcome, TabularAssembler};
use super::{CountingReader, ReadError, ReadSpec, Sink, TextEncoding};
use crate::Location;

const SNIFF_BYTES: usize = 64 * 1024;

pub(super) fn read(path: &Path, spec: &ReadSpec, sink: &mut Sink<'_>) -> Result<u64, ReadError> {
    let open =
        || File::open(path).map_err(|e| ReadError::new(path, None, format!("cannot open: {e}")));
    let encoding = match spec.encoding {
        TextEncoding::Utf8 => UTF_8,
        TextEncoding::Gb18030 => GB18030,
        TextEncoding::Auto => sniff_encoding(&mut open()?)
            .map_err(|e| ReadError::new(path, None, format!("cannot read: {e}")))?,
    };
    let counting = CountingReader::new(BufReader::new(open()?));
    let consumed = counting.count.clone();
    let decoded = DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .bom_override(true)
        .build(counting);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(decoded);
    let mut assembler = TabularAssembler::new(spec);
    let mut delivered = 0;
    let mut record = csv::StringRecord::new();
    loop {
        let more = reader.read_record(&mut record).map_err(|e| {
            let loc = e.position().map(|p| Location::Row(p.line()));
            ReadError::new(path, loc, format!("malformed CSV: {e}"))
        })?;
        if !more {
            break;
        }
        let row_no = record.position().map(|p| p.line()).unwrap_or(0);
        let cells = record.iter().map(str::to_owned).collect();
        match assembler
            .row(row_no, cells)
            .map_err(|m| ReadError::new(path, Some(Location::Row(row_no)), m))?
        {
            RowOutcome::Record(rec) => {
                delivered += 1;
                sink(rec, consumed.get());
            }
            RowOutcome::Skipped => {}
        }
    }
    assembler
        .finish()
        .map_err(|m| ReadError::new(path, None, m))?;
    Ok(delivered)
}

/// UTF-8 if the start of the file is valid UTF-8 (a character cut at the sniff boundary is fine).
fn sniff_encoding(file: &mut File) -> std::io::Result<&'static Encoding> {
    let mut buf = Vec::with_capacity(SNIFF_BYTES);
    file.take(SNIFF_BYTES as u64).read_to_end(&mut buf)?;
    if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Ok(UTF_8);
    }
    Ok(match std::str::from_utf8(&buf) {
        Ok(_) => UTF_8,
        Err(e) if e.error_len().is_none() => UTF_8,
        Err(_) => GB18030,
    })
}
