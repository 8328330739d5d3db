//! The quarantine: records that could not be mapped, with where they were and why.

use super::sql::{args, Row};

use super::files::{upsert_record, Touched};
use super::{now, Result, Store, StoreError, UpsertOutcome};
use crate::model::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineStatus {
    Open,
    Resolved,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QuarantineEntry {
    pub id: i64,
    pub file_id: Option<i64>,
    pub file_path: String,
    pub feed: String,
    pub mapping: String,
    /// `row 12`, `element 3`, `item 4`, or `file` for a file that could not be read on.
    pub location: String,
    pub field: Option<String>,
    pub reason: String,
    /// The raw fields as JSON; absent when the file itself could not be read there.
    pub raw: Option<String>,
    pub status: QuarantineStatus,
    pub created_at: String,
    pub resolved_at: Option<String>,
}

const SELECT: &str = "SELECT id, file_id, file_path, feed, mapping, location, field, reason, raw, status, created_at, resolved_at FROM quarantine";

fn row(r: &Row) -> Result<QuarantineEntry> {
    let status: String = r.get(9)?;
    Ok(QuarantineEntry {
        id: r.get(0)?,
        file_id: r.get(1)?,
        file_path: r.get(2)?,
        feed: r.get(3)?,
        mapping: r.get(4)?,
        location: r.get(5)?,
        field: r.get(6)?,
        reason: r.get(7)?,
        raw: r.get(8)?,
        status: if status == "open" {
            QuarantineStatus::Open
        } else {
            QuarantineStatus::Resolved
        },
        created_at: r.get(10)?,
        resolved_at: r.get(11)?,
    })
}

impl Store {
    pub fn quarantine_entries(&self, include_resolved: bool) -> Result<Vec<QuarantineEntry>> {
        let sql = if include_resolved {
            format!("{SELECT} ORDER BY id")
        } else {
            format!("{SELECT} WHERE status = 'open' ORDER BY id")
        };
        self.conn.query(&sql, &[])?.iter().map(row).collect()
    }

    pub fn quarantine_entry(&self, id: i64) -> Result<QuarantineEntry> {
        self.conn
            .query_opt(&format!("{SELECT} WHERE id = ?1"), args![id])?
            .map(|r| row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("no quarantine entry {id}")))
    }

    /// Stores the record a retried entry now maps to and closes the entry, in one transaction.
    pub fn resolve_quarantined(&mut self, id: i64, record: &Record) -> Result<UpsertOutcome> {
        let entry = self.quarantine_entry(id)?;
        let tx = self.conn.transaction()?;
        let mut touched = Touched::default();
        let outcome = upsert_record(&tx, record, entry.file_id, &entry.location, &mut touched)?;
        touched.save(&tx)?;
        tx.execute(
            "UPDATE quarantine SET status = 'resolved', resolved_at = ?2 WHERE id = ?1",
            args![id, now()],
        )?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Closes an entry whose content was re-processed some other way (a whole file re-read).
    pub fn close_quarantined(&mut self, id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE quarantine SET status = 'resolved', resolved_at = ?2 WHERE id = ?1",
            args![id, now()],
        )?;
        Ok(())
    }

    /// Records a new reason for an entry that still fails.
    pub fn update_quarantine_reason(
        &mut self,
        id: i64,
        field: Option<&str>,
        reason: &str,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE quarantine SET field = ?2, reason = ?3 WHERE id = ?1",
            args![id, field, reason],
        )?;
        Ok(())
    }
}
