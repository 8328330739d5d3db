//! Raw landing and record upserts.

use super::sql::{args, Conn, Row, Tx};

use super::{now, sha256_hex, Result, Store};
use crate::model::Record;

/// A file as recorded in raw landing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LandedFile {
    pub id: i64,
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub feed: String,
    pub mapping: String,
    pub ingested_at: String,
    pub records_read: u64,
    pub upserted: u64,
    pub unchanged: u64,
    pub quarantined: u64,
    pub error: Option<String>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    Inserted,
    Updated,
    /// The same content was already stored.
    Unchanged,
    /// An older version than the one stored (by the source's `updated_at`); ignored.
    Stale,
}

impl UpsertOutcome {
    pub fn changed(self) -> bool {
        matches!(self, UpsertOutcome::Inserted | UpsertOutcome::Updated)
    }
}

impl Store {
    /// The landed file with this content for this feed, if it was ingested before.
    pub fn landed_file_by_sha(&self, sha256: &str, feed: &str) -> Result<Option<LandedFile>> {
        self.conn
            .query_opt(
                &format!("{SELECT_FILE} WHERE sha256 = ?1 AND feed = ?2"),
                args![sha256, feed],
            )?
            .map(|r| file_row(&r))
            .transpose()
    }

    pub fn landed_file(&self, id: i64) -> Result<Option<LandedFile>> {
        self.conn
            .query_opt(&format!("{SELECT_FILE} WHERE id = ?1"), args![id])?
            .map(|r| file_row(&r))
            .transpose()
    }

    pub fn landed_files(&self) -> Result<Vec<LandedFile>> {
        self.conn
            .query(&format!("{SELECT_FILE} ORDER BY id"), &[])?
            .iter()
            .map(file_row)
            .collect()
    }

    /// Starts writing one file in one transaction. A file whose content was landed before
    /// keeps its landing row (re-processing after a mapping fix).
    pub fn begin_file(
        &mut self,
        path: &str,
        sha256: &str,
        size: u64,
        feed: &str,
        mapping: &str,
    ) -> Result<FileWriter<'_>> {
        let tx = self.conn.transaction()?;
        let existing: Option<i64> = tx
            .query_opt(
                "SELECT id FROM landed_files WHERE sha256 = ?1 AND feed = ?2",
                args![sha256, feed],
            )?
            .map(|r| r.get(0))
            .transpose()?;
        let file_id = match existing {
            Some(id) => {
                tx.execute(
                    "UPDATE landed_files SET path = ?2, mapping = ?3, ingested_at = ?4 WHERE id = ?1",
                    args![id, path, mapping, now()],
                )?;
                id
            }
            None => tx
                .query_one(
                    "INSERT INTO landed_files (path, sha256, size, feed, mapping, ingested_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                    args![path, sha256, size, feed, mapping, now()],
                )?
                .get(0)?,
        };
        Ok(FileWriter {
            tx,
            file_id,
            file_path: path.to_owned(),
            feed: feed.to_owned(),
            mapping: mapping.to_owned(),
            upserted: 0,
            unchanged: 0,
            quarantined: 0,
        })
    }
}

/// Writes the records of one file; nothing is visible to others until [`FileWriter::finish`].
pub struct FileWriter<'a> {
    pub(super) tx: Tx<'a>,
    pub(super) file_id: i64,
    file_path: String,
    feed: String,
    mapping: String,
    upserted: u64,
    unchanged: u64,
    quarantined: u64,
}

impl FileWriter<'_> {
    pub fn upsert(&mut self, record: &Record, location: &str) -> Result<UpsertOutcome> {
        let outcome = upsert_record(&self.tx, record, Some(self.file_id), location)?;
        if outcome.changed() {
            self.upserted += 1;
        } else {
            self.unchanged += 1;
        }
        Ok(outcome)
    }

    /// Quarantines a record (`raw` is its raw fields as JSON) or, with `raw = None`, a part
    /// of the file that could not be read at all.
    pub fn quarantine(
        &mut self,
        location: &str,
        field: Option<&str>,
        reason: &str,
        raw: Option<&str>,
    ) -> Result<()> {
        // A record that is still bad on re-ingest keeps its one open entry.
        let already: Option<i64> = self
            .tx
            .query_opt(
                "SELECT id FROM quarantine WHERE file_id = ?1 AND location = ?2 AND status = 'open'",
                args![self.file_id, location],
            )?
            .map(|r| r.get(0))
            .transpose()?;
        match already {
            Some(id) => {
                self.tx.execute(
                    "UPDATE quarantine SET field = ?2, reason = ?3, raw = ?4, mapping = ?5 WHERE id = ?1",
                    args![id, field, reason, raw, self.mapping],
                )?;
            }
            None => {
                self.tx.execute(
                    "INSERT INTO quarantine (file_id, file_path, feed, mapping, location, field, reason, raw, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    args![self.file_id, self.file_path, self.feed, self.mapping, location, field, reason, raw, now()],
                )?;
            }
        }
        self.quarantined += 1;
        Ok(())
    }

    /// Records the file's counts and commits everything written for it.
    pub fn finish(self, records_read: u64, error: Option<&str>) -> Result<i64> {
        self.tx.execute(
            "UPDATE landed_files SET records_read = ?2, upserted = ?3, unchanged = ?4, quarantined = ?5, error = ?6 WHERE id = ?1",
            args![self.file_id, records_read, self.upserted, self.unchanged, self.quarantined, error],
        )?;
        self.tx.commit()?;
        Ok(self.file_id)
    }
}

/// Inserts or replaces the stored version of `record` by its key. An older source version never
/// replaces a newer one, and identical content is left alone.
pub(super) fn upsert_record(
    conn: &Conn,
    record: &Record,
    file_id: Option<i64>,
    location: &str,
) -> Result<UpsertOutcome> {
    let feed = record.feed().name();
    let key = record.key();
    let data = serde_json::to_string(record).expect("canonical records always serialise");
    let hash = sha256_hex(data.as_bytes());
    let version = record.version();
    let existing: Option<(String, Option<String>)> = conn
        .query_opt(
            "SELECT content_hash, version FROM records WHERE feed = ?1 AND record_key = ?2",
            args![feed, key],
        )?
        .map(|r| Ok::<_, super::StoreError>((r.get(0)?, r.get(1)?)))
        .transpose()?;
    let outcome = match &existing {
        None => UpsertOutcome::Inserted,
        Some((h, _)) if *h == hash => return Ok(UpsertOutcome::Unchanged),
        Some((_, Some(stored))) if version.is_some_and(|v| is_older(v, stored)) => {
            return Ok(UpsertOutcome::Stale)
        }
        Some(_) => UpsertOutcome::Updated,
    };
    let period = record.period_date().map(|d| d.to_string());
    conn.execute(
        "INSERT INTO records (feed, record_key, period_date, version, retired, content_hash, data, file_id, location, changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (feed, record_key) DO UPDATE SET period_date = excluded.period_date, version = excluded.version,
           retired = excluded.retired, content_hash = excluded.content_hash, data = excluded.data,
           file_id = excluded.file_id, location = excluded.location, changed_at = excluded.changed_at",
        args![feed, key, period, version, record.is_retired(), hash, data, file_id, location, now()],
    )?;
    Ok(outcome)
}

/// Compares source timestamps as instants when both are RFC 3339, else as text.
fn is_older(candidate: &str, stored: &str) -> bool {
    use chrono::DateTime;
    match (
        DateTime::parse_from_rfc3339(candidate),
        DateTime::parse_from_rfc3339(stored),
    ) {
        (Ok(a), Ok(b)) => a < b,
        _ => candidate < stored,
    }
}

const SELECT_FILE: &str = "SELECT id, path, sha256, size, feed, mapping, ingested_at, records_read, upserted, unchanged, quarantined, error FROM landed_files";

fn file_row(r: &Row) -> Result<LandedFile> {
    Ok(LandedFile {
        id: r.get(0)?,
        path: r.get(1)?,
        sha256: r.get(2)?,
        size: r.get(3)?,
        feed: r.get(4)?,
        mapping: r.get(5)?,
        ingested_at: r.get(6)?,
        records_read: r.get(7)?,
        upserted: r.get(8)?,
        unchanged: r.get(9)?,
        quarantined: r.get(10)?,
        error: r.get(11)?,
    })
}
