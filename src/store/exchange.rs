//! What was sent to partner regions.

use std::collections::HashMap;

use rusqlite::params;

use super::{now, Result, Store};

impl Store {
    /// Person key -> fingerprint of the record last sent to `partner`.
    pub fn exchange_sent(&self, partner: &str) -> Result<HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT person_key, fingerprint FROM exchange_sent WHERE partner = ?1")?;
        let rows = stmt.query_map(params![partner], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a batch as sent, in one transaction.
    pub fn record_exchange_sent(
        &mut self,
        partner: &str,
        message_id: &str,
        sent: &[(String, String)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        let at = now();
        for (key, fingerprint) in sent {
            tx.execute(
                "INSERT INTO exchange_sent (partner, person_key, fingerprint, message_id, sent_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (partner, person_key) DO UPDATE SET fingerprint = excluded.fingerprint,
                   message_id = excluded.message_id, sent_at = excluded.sent_at",
                params![partner, key, fingerprint, message_id, at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}
