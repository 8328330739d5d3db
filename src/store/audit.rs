//! The audit trail: who looked at whose data, who changed what, every export and login.
//!
//! Entries are chained: each stores the hash of the one before it and a hash over its own
//! fields and that previous hash. Editing an entry breaks its own hash; removing one breaks the
//! link of the next. Removing the newest entries leaves a shorter valid chain, which is why
//! `verify` reports the head hash: kept elsewhere (a ticket, the monthly report), it pins the end.

use super::sql::{args, Param, Row};
use super::{now, sha256_hex, Result, Store};

/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Entries whose target starts with this (a discrepancy id, a person key).
    pub target: Option<String>,
    /// RFC 3339 or a date: entries at or after it.
    pub since: Option<String>,
    pub limit: usize,
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheck {
    pub entries: u64,
    pub head: String,
    /// The first entry that does not fit the chain, and why.
    pub broken: Option<(i64, String)>,
}

fn entry_hash(
    prev: &str,
    id: i64,
    at: &str,
    actor: &str,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
) -> String {
    // Length-prefixed fields, so no two different entries hash the same text.
    let mut text = String::new();
    for field in [
        prev,
        &id.to_string(),
        at,
        actor,
        action,
        target.unwrap_or("\u{0}"),
        detail.unwrap_or("\u{0}"),
    ] {
        text.push_str(&field.len().to_string());
        text.push(':');
        text.push_str(field);
    }
    sha256_hex(text.as_bytes())
}

fn entry_row(r: &Row) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        detail: r.get(5)?,
        prev_hash: r.get(6)?,
        hash: r.get(7)?,
    })
}

const SELECT: &str = "SELECT id, at, actor, action, target, detail, prev_hash, hash FROM audit_log";

impl Store {
    /// Appends one entry to the chain and returns its id.
    pub fn audit(
        &mut self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: Option<&str>,
    ) -> Result<i64> {
        let postgres = self.conn.is_postgres();
        let tx = self.conn.transaction()?;
        if postgres {
            // Appends are serialised, so two never chain to the same predecessor.
            tx.execute("SELECT pg_advisory_xact_lock(7351003)", &[])?;
        }
        let last = tx.query_opt(
            "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1",
            &[],
        )?;
        let (id, prev) = match last {
            Some(r) => (r.get::<i64>(0)? + 1, r.get::<String>(1)?),
            None => (1, GENESIS.to_owned()),
        };
        let at = now();
        let hash = entry_hash(&prev, id, &at, actor, action, target, detail);
        tx.execute(
            "INSERT INTO audit_log (id, at, actor, action, target, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            args![id, at, actor, action, target, detail, prev, hash],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Entries matching the filter, newest first.
    pub fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut conditions = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        let target_prefix = filter.target.as_ref().map(|t| format!("{t}%"));
        for (column, op, value) in [
            ("actor", "=", filter.actor.as_deref()),
            ("action", "=", filter.action.as_deref()),
            ("target", "LIKE", target_prefix.as_deref()),
            ("at", ">=", filter.since.as_deref()),
        ] {
            if let Some(v) = value {
                params.push(Param::Text(v));
                conditions.push(format!("{column} {op} ?{}", params.len()));
            }
        }
        let mut sql = SELECT.to_owned();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", filter.limit.max(1)));
        self.conn
            .query(&sql, &params)?
            .iter()
            .map(entry_row)
            .collect()
    }

    /// Walks the whole chain from the first entry.
    pub fn verify_audit(&self) -> Result<AuditCheck> {
        let mut prev = GENESIS.to_owned();
        let mut expected_id = 1;
        let mut entries = 0;
        for r in self
            .conn
            .query(&format!("{SELECT} ORDER BY id"), &[])?
            .iter()
        {
            let e = entry_row(r)?;
            entries += 1;
            let broken = if e.id != expected_id {
                Some(format!(
                    "entry {expected_id} is missing (the chain goes on at {})",
                    e.id
                ))
            } else if e.prev_hash != prev {
                Some("its link to the previous entry does not match: the previous entry was changed or removed".to_owned())
            } else if e.hash
                != entry_hash(
                    &e.prev_hash,
                    e.id,
                    &e.at,
                    &e.actor,
                    &e.action,
                    e.target.as_deref(),
                    e.detail.as_deref(),
                )
            {
                Some("its content does not match its hash: the entry was edited".to_owned())
            } else {
                None
            };
            if let Some(why) = broken {
                return Ok(AuditCheck {
                    entries,
                    head: prev,
                    broken: Some((e.id, why)),
                });
            }
            prev = e.hash;
            expected_id = e.id + 1;
        }
        Ok(AuditCheck {
            entries,
            head: prev,
            broken: None,
        })
    }
}
