//! The embedded store: SQLite with versioned migrations.
//!
//! It holds raw landing (which files were ingested), canonical records, the quarantine and
//! the discrepancies. Each ingested file is written in one transaction, so a crash leaves
//! either the whole file or none of it.

mod discrepancies;
mod exchange;
mod files;
mod jobs;
mod quarantine;

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{Feed, Record};

pub use discrepancies::{HistoryEntry, SaveSummary, StoredDiscrepancy, UNRESOLVED_STATUSES};
pub use exchange::{ExchangeCounts, InboxEntry, OutboxEntry};
pub use files::{FileWriter, LandedFile, UpsertOutcome};
pub use jobs::{JobOutcome, JobRun, PullState};
pub use quarantine::{QuarantineEntry, QuarantineStatus};

/// Migrations in order; the version is the position, starting at 1. Never edit a shipped one.
const MIGRATIONS: &[(&str, &str)] = &[
    ("init", include_str!("migrations/0001_init.sql")),
    (
        "linkage_models",
        include_str!("migrations/0002_linkage_models.sql"),
    ),
    (
        "exchange_sent",
        include_str!("migrations/0003_exchange_sent.sql"),
    ),
    (
        "exchange_amqp",
        include_str!("migrations/0004_exchange_amqp.sql"),
    ),
    (
        "pulls_and_jobs",
        include_str!("migrations/0005_pulls_and_jobs.sql"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database migration {version} ({name}): {source}")]
    Migration {
        version: usize,
        name: &'static str,
        source: rusqlite::Error,
    },
    #[error("database is at schema version {found}, newer than this vitalhub ({known}); upgrade vitalhub")]
    TooNew { found: usize, known: usize },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored record {feed}/{key} is unreadable: {source}")]
    Corrupt {
        feed: String,
        key: String,
        source: serde_json::Error,
    },
    #[error("{0}")]
    NotFound(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Connection,
}

/// A canonical record as stored, with where it came from.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub record: Record,
    pub file: Option<String>,
    pub location: Option<String>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Self::init(conn)
    }

    /// A private in-memory database, for tests and dry runs.
    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )?;
        let current: usize = self.conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        if current > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                found: current,
                known: MIGRATIONS.len(),
            });
        }
        for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current) {
            let version = i + 1;
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)
                .map_err(|source| StoreError::Migration {
                    version,
                    name,
                    source,
                })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                params![version, name, now()],
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<usize> {
        Ok(self
            .conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })?)
    }

    /// Every current (not retired) record of a feed, in key order.
    pub fn records(&self, feed: Feed) -> Result<Vec<StoredRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT r.record_key, r.data, f.path, r.location FROM records r LEFT JOIN landed_files f ON f.id = r.file_id
             WHERE r.feed = ?1 AND r.retired = 0 ORDER BY r.record_key",
        )?;
        let rows = stmt.query_map(params![feed.name()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, data, file, location) = row?;
            let record = serde_json::from_str(&data).map_err(|source| StoreError::Corrupt {
                feed: feed.name().to_owned(),
                key,
                source,
            })?;
            out.push(StoredRecord {
                record,
                file,
                location,
            });
        }
        Ok(out)
    }

    /// Counts of current records per feed.
    pub fn record_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT feed, COUNT(*) FROM records WHERE retired = 0 GROUP BY feed ORDER BY feed",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One stored record by feed and key, retired or not.
    pub fn record(&self, feed: Feed, key: &str) -> Result<Option<Record>> {
        let data: Option<String> = self
            .conn
            .query_row(
                "SELECT data FROM records WHERE feed = ?1 AND record_key = ?2",
                params![feed.name(), key],
                |r| r.get(0),
            )
            .optional()?;
        data.map(|d| {
            serde_json::from_str(&d).map_err(|source| StoreError::Corrupt {
                feed: feed.name().to_owned(),
                key: key.to_owned(),
                source,
            })
        })
        .transpose()
    }
}

impl Store {
    /// A saved linkage model (JSON) and when it was trained.
    pub fn linkage_model(&self, name: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT model, trained_at FROM linkage_models WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    pub fn save_linkage_model(&mut self, name: &str, model_json: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO linkage_models (name, trained_at, model) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET trained_at = excluded.trained_at, model = excluded.model",
            params![name, now(), model_json],
        )?;
        Ok(())
    }
}

/// Timestamps are stored as RFC 3339 UTC text, which sorts in time order.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests;
