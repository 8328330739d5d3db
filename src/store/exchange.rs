//! What was sent to partner regions, what waits for the broker's confirm, and what came in.

use std::collections::HashMap;

use super::sql::{args, Conn};

use super::{now, FileWriter, Result, Store};

/// A batch waiting in (or confirmed from) the outbox.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub message_id: String,
    pub partner: String,
    pub body: Vec<u8>,
    pub signature: String,
    pub records: u64,
    pub created_at: String,
    pub confirmed_at: Option<String>,
    pub attempts: u64,
    pub last_error: Option<String>,
}

/// One received message as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    pub message_id: String,
    pub sender: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub received_at: String,
}

/// Counts for `vitalhub exchange status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeCounts {
    pub outbox_pending: u64,
    pub outbox_confirmed: u64,
    pub inbox_applied: u64,
    pub inbox_rejected: u64,
}

impl Store {
    /// Person key -> fingerprint of the record last sent to `partner`.
    pub fn exchange_sent(&self, partner: &str) -> Result<HashMap<String, String>> {
        self.conn
            .query(
                "SELECT person_key, fingerprint FROM exchange_sent WHERE partner = ?1",
                args![partner],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    /// Records a batch as sent, in one transaction.
    pub fn record_exchange_sent(
        &mut self,
        partner: &str,
        message_id: &str,
        sent: &[(String, String)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        mark_sent(&tx, partner, message_id, sent)?;
        tx.commit()?;
        Ok(())
    }

    /// Puts a signed batch in the outbox and records its persons as sent, in one transaction:
    /// from here on the batch is the outbox's to deliver, however often the broker goes away.
    /// A batch already in the outbox (same message id) is left as it is.
    pub fn queue_outbound(
        &mut self,
        partner: &str,
        message_id: &str,
        body: &[u8],
        signature: &str,
        records: u64,
        sent: &[(String, String)],
    ) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let added = tx.execute(
            "INSERT INTO exchange_outbox (message_id, partner, body, signature, records, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (message_id) DO NOTHING",
            args![message_id, partner, body, signature, records, now()],
        )? == 1;
        mark_sent(&tx, partner, message_id, sent)?;
        tx.commit()?;
        Ok(added)
    }

    /// Batches not yet confirmed by the broker, oldest first.
    pub fn outbox_pending(&self) -> Result<Vec<OutboxEntry>> {
        self.outbox_where("confirmed_at IS NULL")
    }

    pub fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        self.outbox_where("1 = 1")
    }

    fn outbox_where(&self, condition: &str) -> Result<Vec<OutboxEntry>> {
        self.conn
            .query(
                &format!(
                    "SELECT message_id, partner, body, signature, records, created_at, confirmed_at, attempts, last_error
                     FROM exchange_outbox WHERE {condition} ORDER BY created_at, message_id"
                ),
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(OutboxEntry {
                    message_id: r.get(0)?,
                    partner: r.get(1)?,
                    body: r.get(2)?,
                    signature: r.get(3)?,
                    records: r.get(4)?,
                    created_at: r.get(5)?,
                    confirmed_at: r.get(6)?,
                    attempts: r.get(7)?,
                    last_error: r.get(8)?,
                })
            })
            .collect()
    }

    /// The broker confirmed the batch (or `error` says why this attempt failed).
    pub fn outbox_attempted(&mut self, message_id: &str, error: Option<&str>) -> Result<()> {
        match error {
            None => self.conn.execute(
                "UPDATE exchange_outbox SET confirmed_at = ?2, attempts = attempts + 1, last_error = NULL WHERE message_id = ?1",
                args![message_id, now()],
            )?,
            Some(e) => self.conn.execute(
                "UPDATE exchange_outbox SET attempts = attempts + 1, last_error = ?2 WHERE message_id = ?1",
                args![message_id, e],
            )?,
        };
        Ok(())
    }

    /// Whether a received message with this id was applied.
    pub fn inbox_applied(&self, message_id: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_opt(
                "SELECT 1 FROM exchange_inbox WHERE message_id = ?1 AND status = 'applied'",
                args![message_id],
            )?
            .is_some())
    }

    /// Received messages, newest first.
    pub fn inbox(&self) -> Result<Vec<InboxEntry>> {
        self.conn
            .query(
                "SELECT message_id, sender, status, reason, received_at FROM exchange_inbox ORDER BY id DESC",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(InboxEntry {
                    message_id: r.get(0)?,
                    sender: r.get(1)?,
                    status: r.get(2)?,
                    reason: r.get(3)?,
                    received_at: r.get(4)?,
                })
            })
            .collect()
    }

    /// Records a received message outside of a file's transaction (content landed before).
    pub fn record_inbox(
        &mut self,
        message_id: &str,
        sender: Option<&str>,
        reason: Option<&str>,
        file_id: Option<i64>,
    ) -> Result<()> {
        insert_inbox(&self.conn, message_id, sender, reason, file_id)
    }

    pub fn exchange_counts(&self) -> Result<ExchangeCounts> {
        let r = self.conn.query_one(
            "SELECT (SELECT COUNT(*) FROM exchange_outbox WHERE confirmed_at IS NULL),
                    (SELECT COUNT(*) FROM exchange_outbox WHERE confirmed_at IS NOT NULL),
                    (SELECT COUNT(*) FROM exchange_inbox WHERE status = 'applied'),
                    (SELECT COUNT(*) FROM exchange_inbox WHERE status = 'rejected')",
            &[],
        )?;
        Ok(ExchangeCounts {
            outbox_pending: r.get(0)?,
            outbox_confirmed: r.get(1)?,
            inbox_applied: r.get(2)?,
            inbox_rejected: r.get(3)?,
        })
    }
}

impl FileWriter<'_> {
    /// Records the message this file arrived in, committed with its records: applied when
    /// `reason` is `None`, else rejected with it.
    pub fn record_message(
        &mut self,
        message_id: &str,
        sender: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        insert_inbox(&self.tx, message_id, sender, reason, Some(self.file_id))
    }
}

fn insert_inbox(
    conn: &Conn,
    message_id: &str,
    sender: Option<&str>,
    reason: Option<&str>,
    file_id: Option<i64>,
) -> Result<()> {
    let status = if reason.is_none() {
        "applied"
    } else {
        "rejected"
    };
    // An applied id is recorded once; a second apply of the same id is a no-op by design.
    conn.execute(
        "INSERT INTO exchange_inbox (message_id, sender, status, reason, file_id, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        args![message_id, sender, status, reason, file_id, now()],
    )?;
    Ok(())
}

fn mark_sent(tx: &Conn, partner: &str, message_id: &str, sent: &[(String, String)]) -> Result<()> {
    let at = now();
    for (key, fingerprint) in sent {
        tx.execute(
            "INSERT INTO exchange_sent (partner, person_key, fingerprint, message_id, sent_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (partner, person_key) DO UPDATE SET fingerprint = excluded.fingerprint,
               message_id = excluded.message_id, sent_at = excluded.sent_at",
            args![partner, key, fingerprint, message_id, at],
        )?;
    }
    Ok(())
}
