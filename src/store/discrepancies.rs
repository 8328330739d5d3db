//! Discrepancies with stable ids and a review history.

use std::collections::HashMap;

use super::sql::{args, Param, Row, Tx};

use super::{now, sha256_hex, Result, Store, StoreError};
use crate::model::Discrepancy;

/// Stamps the discrepancies `ids` as seen `at`. On PostgreSQL by thousands at a time: one
/// statement each was a round trip per discrepancy of a province's month (147,546).
fn mark_seen(tx: &Tx, ids: &[&str], at: &str) -> Result<()> {
    if tx.is_postgres() {
        for chunk in ids.chunks(10_000) {
            let chunk: Vec<Option<&str>> = chunk.iter().copied().map(Some).collect();
            tx.execute(
                "UPDATE discrepancies SET last_seen = ?2 WHERE id = ANY(?1)",
                &[Param::Texts(&chunk), Param::Text(at)],
            )?;
        }
    } else {
        for id in ids {
            tx.execute(
                "UPDATE discrepancies SET last_seen = ?2 WHERE id = ?1",
                args![id, at],
            )?;
        }
    }
    Ok(())
}

/// A discrepancy's fingerprint: `FACTS:BODY`, hashes of what its review rests on (everything
/// but the match weights) and of its whole stored body. The weights (`score`, `evidence`) move
/// when a county's u-probabilities are measured again although no record changed; that must not
/// reopen what an operator resolved. Fingerprints stored before this had the body's hash only.
struct Fingerprint {
    facts: String,
    body: String,
}

impl Fingerprint {
    fn of(d: &Discrepancy, body: &str) -> Fingerprint {
        #[derive(serde::Serialize)]
        struct Facts<'a> {
            kind: crate::model::DiscrepancyKind,
            period: &'a str,
            division: &'a Option<String>,
            severity: crate::model::Severity,
            sources: &'a [crate::model::SourceRef],
            registry_key: &'a Option<String>,
            fields: &'a [crate::model::FieldDiff],
            explanation: &'a str,
            anchor: &'a str,
            possible_match: bool,
        }
        let facts = Facts {
            kind: d.kind,
            period: &d.period,
            division: &d.division,
            severity: d.severity,
            sources: &d.sources,
            registry_key: &d.registry_key,
            fields: &d.fields,
            explanation: &d.explanation,
            anchor: &d.anchor,
            possible_match: d.possible_match,
        };
        let facts = serde_json::to_vec(&facts).expect("discrepancies always serialise");
        Fingerprint {
            facts: sha256_hex(&facts),
            body: sha256_hex(body.as_bytes()),
        }
    }

    fn stored(&self) -> String {
        format!("{}:{}", self.facts, self.body)
    }

    /// How a stored fingerprint compares with this one.
    fn against(&self, stored: &str) -> Sameness {
        let (facts, body) = match stored.split_once(':') {
            Some((facts, body)) => (Some(facts), body),
            None => (None, stored),
        };
        if body == self.body {
            if facts.is_some() {
                Sameness::Same
            } else {
                Sameness::SameInOldForm
            }
        } else if facts == Some(self.facts.as_str()) {
            Sameness::Reweighed
        } else {
            Sameness::Changed
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sameness {
    Same,
    /// The same body, under a fingerprint stored before the facts had their own hash.
    SameInOldForm,
    /// Only the match weights differ.
    Reweighed,
    Changed,
}

/// Stores fingerprints of the current form for `(id, fingerprint)`s (once per discrepancy
/// stored before it; on PostgreSQL 10,000 a statement).
fn set_fingerprints(tx: &Tx, prints: &[(String, String)]) -> Result<()> {
    if tx.is_postgres() {
        for chunk in prints.chunks(10_000) {
            let ids: Vec<Option<&str>> = chunk.iter().map(|(id, _)| Some(id.as_str())).collect();
            let fps: Vec<Option<&str>> = chunk.iter().map(|(_, f)| Some(f.as_str())).collect();
            tx.execute(
                "UPDATE discrepancies AS d SET fingerprint = v.fp
                 FROM unnest(?1::TEXT[], ?2::TEXT[]) AS v(id, fp) WHERE d.id = v.id",
                &[Param::Texts(&ids), Param::Texts(&fps)],
            )?;
        }
    } else {
        for (id, fp) in prints {
            tx.execute(
                "UPDATE discrepancies SET fingerprint = ?2 WHERE id = ?1",
                args![id, fp],
            )?;
        }
    }
    Ok(())
}

/// New discrepancies are stored this many at a time (on PostgreSQL by `COPY`: a new month's
/// findings one statement each were two round trips per discrepancy, 295,000 for a province).
pub(super) const NEW_BATCH: usize = 5_000;

/// A discrepancy found for the first time, waiting to be stored.
struct NewDiscrepancy<'a> {
    id: String,
    seq: i64,
    found: &'a Discrepancy,
    body: String,
    fingerprint: String,
}

/// Stores `fresh` (emptied) and notes their ids and first statuses in `created`.
fn insert_new(
    tx: &Tx,
    period: &str,
    at: &str,
    fresh: &mut Vec<NewDiscrepancy>,
    created: &mut Vec<(String, &'static str)>,
) -> Result<()> {
    let rows: Vec<Vec<Param>> = fresh
        .iter()
        .map(|n| {
            let d = n.found;
            vec![
                Param::Text(&n.id),
                Param::Text(period),
                Param::Int(n.seq),
                Param::Text(d.kind.name()),
                Param::Text(&d.anchor),
                d.division.as_deref().map_or(Param::Null, Param::Text),
                Param::Text(d.severity.name()),
                Param::Text(initial_status(d)),
                Param::Real(d.score),
                d.registry_key.as_deref().map_or(Param::Null, Param::Text),
                Param::Text(&n.body),
                Param::Text(&n.fingerprint),
                Param::Text(at),
                Param::Text(at),
            ]
        })
        .collect();
    const COLUMNS: &str = "discrepancies (id, period, seq, kind, anchor, division, severity, status, score, registry_key, body, fingerprint, first_seen, last_seen)";
    match tx.copy_in(COLUMNS, &rows) {
        Some(copied) => copied?,
        None => {
            let sql = format!(
                "INSERT INTO {COLUMNS} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            );
            for row in &rows {
                tx.execute(&sql, row)?;
            }
        }
    }
    created.extend(fresh.drain(..).map(|n| (n.id, initial_status(n.found))));
    Ok(())
}

/// The first history entry of each discrepancy in `created` (after the discrepancies
/// themselves, which the entries refer to).
fn record_creation(tx: &Tx, at: &str, created: &[(String, &'static str)]) -> Result<()> {
    const COLUMNS: &str =
        "discrepancy_history (discrepancy_id, at, actor, from_status, to_status, note)";
    for chunk in created.chunks(NEW_BATCH) {
        let rows: Vec<Vec<Param>> = chunk
            .iter()
            .map(|(id, status)| {
                vec![
                    Param::Text(id),
                    Param::Text(at),
                    Param::Text("system"),
                    Param::Null,
                    Param::Text(status),
                    Param::Text("found by reconciliation"),
                ]
            })
            .collect();
        match tx.copy_in(COLUMNS, &rows) {
            Some(copied) => copied?,
            None => {
                let sql = format!("INSERT INTO {COLUMNS} VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
                for row in &rows {
                    tx.execute(&sql, row)?;
                }
            }
        }
    }
    Ok(())
}

/// A stored discrepancy: what was found plus its id and review status.
#[derive(Debug, Clone)]
pub struct StoredDiscrepancy {
    pub id: String,
    pub status: String,
    pub discrepancy: Discrepancy,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryEntry {
    pub at: String,
    pub actor: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub note: Option<String>,
}

/// What saving one reconciliation run changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SaveSummary {
    pub new: u64,
    pub unchanged: u64,
    pub updated: u64,
    pub reopened: u64,
    pub gone: u64,
}

/// Review statuses an operator may set.
pub const REVIEW_STATUSES: &[&str] = &["open", "confirmed", "resolved", "dismissed"];

/// Statuses that still want an operator's attention, as the report lists them.
pub const UNRESOLVED_STATUSES: &[&str] = &["open", "possible_match", "confirmed"];

impl Store {
    /// Saves the discrepancies found for `period`, keeping ids stable: one already known by
    /// (kind, anchor) keeps its id and, if its content is unchanged, its review status. A
    /// resolved or dismissed one whose content changed is reopened; an open one no longer found
    /// becomes `gone`.
    pub fn save_discrepancies(
        &mut self,
        period: &str,
        found: &[Discrepancy],
    ) -> Result<SaveSummary> {
        let tx = self.conn.transaction()?;
        let mut known: HashMap<(String, String), (String, String, String)> = HashMap::new();
        // Unchanged ones whose fingerprint predates the facts' own hash, with the new one.
        let mut legacy: Vec<(String, String)> = Vec::new();
        for r in tx.query(
            "SELECT id, kind, anchor, status, fingerprint FROM discrepancies WHERE period = ?1",
            args![period],
        )? {
            known.insert((r.get(1)?, r.get(2)?), (r.get(0)?, r.get(3)?, r.get(4)?));
        }
        let mut seq: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(seq), 0) FROM discrepancies WHERE period = ?1",
                args![period],
            )?
            .get(0)?;
        let mut ordered: Vec<&Discrepancy> = found.iter().collect();
        ordered.sort_by(|a, b| (a.kind, &a.anchor).cmp(&(b.kind, &b.anchor)));
        let mut summary = SaveSummary::default();
        let at = now();
        let mut seen = std::collections::HashSet::new();
        let mut still_found: Vec<&str> = Vec::new();
        let mut fresh: Vec<NewDiscrepancy> = Vec::with_capacity(NEW_BATCH);
        let mut created: Vec<(String, &'static str)> = Vec::new();
        for d in ordered {
            let body = serde_json::to_string(d).expect("discrepancies always serialise");
            let print = Fingerprint::of(d, &body);
            let fingerprint = print.stored();
            let k = (d.kind.name().to_owned(), d.anchor.clone());
            if !seen.insert(k.clone()) {
                continue;
            }
            match known
                .get(&k)
                .map(|(id, status, old)| (id, status, print.against(old)))
            {
                Some((id, status, sameness)) if sameness != Sameness::Changed => {
                    match sameness {
                        Sameness::SameInOldForm => legacy.push((id.clone(), fingerprint.clone())),
                        // The current weights replace the old, quietly: nothing to review.
                        Sameness::Reweighed => {
                            tx.execute(
                                "UPDATE discrepancies SET score = ?2, body = ?3, fingerprint = ?4 WHERE id = ?1",
                                args![id, d.score, body, fingerprint],
                            )?;
                        }
                        Sameness::Same | Sameness::Changed => {}
                    }
                    still_found.push(id);
                    if status == "gone" {
                        reopen(&tx, id, status, "observed again", &at)?;
                        summary.reopened += 1;
                    } else {
                        summary.unchanged += 1;
                    }
                }
                Some((id, status, _)) => {
                    tx.execute(
                        "UPDATE discrepancies SET division = ?2, severity = ?3, score = ?4, registry_key = ?5, body = ?6,
                           fingerprint = ?7, last_seen = ?8 WHERE id = ?1",
                        args![id, d.division, d.severity.name(), d.score, d.registry_key, body, fingerprint, at],
                    )?;
                    if matches!(status.as_str(), "resolved" | "dismissed" | "gone") {
                        reopen(&tx, id, status, "source data changed", &at)?;
                        summary.reopened += 1;
                    } else {
                        summary.updated += 1;
                    }
                }
                None => {
                    seq += 1;
                    fresh.push(NewDiscrepancy {
                        id: format!("d-{period}-{seq:06}"),
                        seq,
                        found: d,
                        body,
                        fingerprint,
                    });
                    if fresh.len() == NEW_BATCH {
                        insert_new(&tx, period, &at, &mut fresh, &mut created)?;
                    }
                    summary.new += 1;
                }
            }
        }
        insert_new(&tx, period, &at, &mut fresh, &mut created)?;
        record_creation(&tx, &at, &created)?;
        mark_seen(&tx, &still_found, &at)?;
        set_fingerprints(&tx, &legacy)?;
        for (k, (id, status, _)) in &known {
            if !seen.contains(k) && UNRESOLVED_STATUSES.contains(&status.as_str()) {
                set_status(
                    &tx,
                    id,
                    status,
                    "gone",
                    "system",
                    Some("no longer found by reconciliation"),
                    &at,
                )?;
                summary.gone += 1;
            }
        }
        tx.commit()?;
        Ok(summary)
    }

    /// Discrepancies of a period, optionally only those with one status, in id order.
    pub fn discrepancies(
        &self,
        period: &str,
        status: Option<&str>,
    ) -> Result<Vec<StoredDiscrepancy>> {
        let rows = self.conn.query(
            "SELECT id, status, body FROM discrepancies WHERE period = ?1 AND (CAST(?2 AS TEXT) IS NULL OR status = ?2) ORDER BY seq",
            args![period, status],
        )?;
        rows.iter().map(stored_discrepancy).collect()
    }

    /// Sets a review status, keeping the change in the history.
    pub fn review_discrepancy(
        &mut self,
        id: &str,
        to_status: &str,
        actor: &str,
        note: Option<&str>,
    ) -> Result<()> {
        if !REVIEW_STATUSES.contains(&to_status) {
            return Err(StoreError::NotFound(format!(
                "'{to_status}' is not a review status ({})",
                REVIEW_STATUSES.join(", ")
            )));
        }
        let tx = self.conn.transaction()?;
        let from: String = tx
            .query_opt("SELECT status FROM discrepancies WHERE id = ?1", args![id])?
            .ok_or_else(|| StoreError::NotFound(format!("no discrepancy {id}")))?
            .get(0)?;
        set_status(&tx, id, &from, to_status, actor, note, &now())?;
        tx.commit()?;
        Ok(())
    }

    pub fn discrepancy_history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        self.conn
            .query(
                "SELECT at, actor, from_status, to_status, note FROM discrepancy_history WHERE discrepancy_id = ?1 ORDER BY id",
                args![id],
            )?
            .iter()
            .map(|r| {
                Ok(HistoryEntry {
                    at: r.get(0)?,
                    actor: r.get(1)?,
                    from_status: r.get(2)?,
                    to_status: r.get(3)?,
                    note: r.get(4)?,
                })
            })
            .collect()
    }

    /// Keeps a summary of a reconciliation run.
    pub fn record_reconcile_run(
        &mut self,
        period: &str,
        as_of: &str,
        started_at: &str,
        summary: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO reconcile_runs (period, as_of, started_at, finished_at, summary) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![period, as_of, started_at, now(), summary],
        )?;
        Ok(())
    }
}

/// A row of (id, status, body) as a stored discrepancy.
pub(super) fn stored_discrepancy(row: &Row) -> Result<StoredDiscrepancy> {
    let id: String = row.get(0)?;
    let body: String = row.get(2)?;
    let discrepancy = serde_json::from_str(&body).map_err(|source| StoreError::Corrupt {
        feed: "discrepancies".into(),
        key: id.clone(),
        source,
    })?;
    Ok(StoredDiscrepancy {
        id,
        status: row.get(1)?,
        discrepancy,
    })
}

/// New discrepancies are `open`, or `possible_match` when they rest on an unsure link.
fn initial_status(d: &Discrepancy) -> &'static str {
    if d.possible_match {
        "possible_match"
    } else {
        "open"
    }
}

/// Reopened by reconciliation itself, with the reason in the history.
fn reopen(tx: &Tx, id: &str, from: &str, why: &str, at: &str) -> Result<()> {
    set_status(tx, id, from, "open", "system", Some(why), at)
}

fn set_status(
    tx: &Tx,
    id: &str,
    from: &str,
    to: &str,
    actor: &str,
    note: Option<&str>,
    at: &str,
) -> Result<()> {
    tx.execute(
        "UPDATE discrepancies SET status = ?2 WHERE id = ?1",
        args![id, to],
    )?;
    tx.execute(
        "INSERT INTO discrepancy_history (discrepancy_id, at, actor, from_status, to_status, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![id, at, actor, from, to, note],
    )?;
    Ok(())
}
