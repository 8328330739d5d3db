//! The store: SQLite (embedded default) or PostgreSQL (production), with versioned migrations.
//!
//! It holds raw landing (which files were ingested), canonical records, the quarantine and
//! the discrepancies. Each ingested file is written in one transaction, so a crash leaves
//! either the whole file or none of it. Both databases run the same queries and the same
//! migrations through [`sql::Conn`].

mod audit;
mod discrepancies;
mod exchange;
mod files;
mod jobs;
mod operators;
mod partitions;
mod quarantine;
mod review;
pub(crate) mod sql;
#[doc(hidden)]
pub mod testing;

use std::path::{Path, PathBuf};

use crate::model::{Feed, Record};
use sql::{args, Conn};

pub use audit::{AuditCheck, AuditEntry, AuditFilter};
pub use discrepancies::{HistoryEntry, SaveSummary, StoredDiscrepancy, UNRESOLVED_STATUSES};
pub use exchange::{ExchangeCounts, InboxEntry, OutboxEntry};
pub use files::{FileWriter, LandedFile, UpsertOutcome};
pub use jobs::{JobOutcome, JobRun, PullState};
pub use operators::{Role, User};
pub use partitions::{PartitionResultRow, PartitionRun, RegistryId};
pub use quarantine::{QuarantineEntry, QuarantineStatus};
pub use review::{Dashboard, ListQuery, ListRow, ReviewItem, Scope};

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
    (
        "operators_and_audit",
        include_str!("migrations/0006_operators_and_audit.sql"),
    ),
    ("partitions", include_str!("migrations/0007_partitions.sql")),
    (
        "covering_id_index",
        include_str!("migrations/0008_covering_id_index.sql"),
    ),
    (
        "registry_digests",
        include_str!("migrations/0009_registry_digests.sql"),
    ),
    (
        "byte_order_keys",
        include_str!("migrations/0010_byte_order_keys.sql"),
    ),
    (
        "no_record_file_trigger",
        include_str!("migrations/0011_no_record_file_trigger.sql"),
    ),
    (
        "divisions_listed",
        include_str!("migrations/0012_divisions_listed.sql"),
    ),
    (
        "registry_changes",
        include_str!("migrations/0013_registry_changes.sql"),
    ),
    (
        "discrepancies_leave_room",
        include_str!("migrations/0014_discrepancies_leave_room.sql"),
    ),
];

/// The migration whose new columns are filled from the stored records (see
/// [`files::fill_partition_columns`]).
const PARTITIONS_MIGRATION: usize = 7;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Connect(String),
    #[error("database migration {version} ({name}): {source}")]
    Migration {
        version: usize,
        name: &'static str,
        source: Box<StoreError>,
    },
    #[error("database is at schema version {found}, newer than this vitalhub ({known}); upgrade vitalhub")]
    TooNew { found: usize, known: usize },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database column {index}: expected {expected}, found {found}")]
    Column {
        index: usize,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{0}")]
    Unsupported(String),
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

/// Which database a store lives in.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    /// A `postgres://` URL.
    Postgres(String),
}

impl Target {
    /// A `postgres://` or `postgresql://` URL names a PostgreSQL database; anything else is the
    /// path of an SQLite file.
    pub fn parse(text: &str) -> Target {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Target::Postgres(text.to_owned())
        } else {
            Target::Sqlite(PathBuf::from(text))
        }
    }
}

impl std::fmt::Display for Target {
    /// Never shows a password written in a URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Sqlite(p) => write!(f, "{}", p.display()),
            Target::Postgres(url) => {
                let shown = match (url.find("://"), url.rfind('@')) {
                    (Some(scheme), Some(at)) if at > scheme => {
                        let userinfo = &url[scheme + 3..at];
                        let user = userinfo.split(':').next().unwrap_or("");
                        format!("{}{user}{}", &url[..scheme + 3], &url[at..])
                    }
                    _ => url.clone(),
                };
                f.write_str(&shown)
            }
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({self})")
    }
}

pub struct Store {
    conn: Conn,
}

/// A canonical record as stored, with where it came from.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub record: Record,
    pub file: Option<String>,
    pub location: Option<String>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = rusqlite::Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Self::init_sqlite(conn)
    }

    /// Opens either database and brings its schema up to date.
    pub fn connect(target: &Target) -> Result<Store> {
        match target {
            Target::Sqlite(path) => Self::open(path),
            Target::Postgres(url) => {
                let mut store = Store {
                    conn: Conn::Postgres(Box::new(sql::Postgres::connect(url)?)),
                };
                store.migrate()?;
                Ok(store)
            }
        }
    }

    /// A private in-memory database, for tests and dry runs.
    pub fn open_in_memory() -> Result<Store> {
        Self::init_sqlite(rusqlite::Connection::open_in_memory()?)
    }

    fn init_sqlite(conn: rusqlite::Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A province's registry has five indexes of ten million entries each; with SQLite's
        // 2 MB default every insert into them reads pages back from the file. Pages are
        // allocated only as used, so a small database stays small in memory.
        conn.pragma_update(None, "cache_size", -524_288)?;
        // Building an index sorts every row of the table (three times at the end of a
        // registry's first load): helper threads sort runs in parallel.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        conn.pragma_update(None, "threads", threads as i64)?;
        let mut store = Store {
            conn: Conn::Sqlite(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn is_postgres(&self) -> bool {
        self.conn.is_postgres()
    }

    fn migrate(&mut self) -> Result<()> {
        let postgres = self.conn.is_postgres();
        self.conn.batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )?;
        // Opening an up-to-date database must not take the write lock: readers (a status
        // check, a test polling) would queue behind every writer.
        if self.schema_version()? == MIGRATIONS.len() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        if postgres {
            // Several processes (workers, a daemon) may start at once on one database: the
            // first migrates, the others wait here and then find nothing left to do.
            tx.execute("SELECT pg_advisory_xact_lock(7351001)", &[])?;
        }
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )?
            .get(0)?;
        let current = usize::try_from(current).unwrap_or(0);
        if current > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                found: current,
                known: MIGRATIONS.len(),
            });
        }
        for (i, (name, text)) in MIGRATIONS.iter().enumerate().skip(current) {
            let version = i + 1;
            let script = if postgres {
                sql::postgres_dialect(text)
            } else {
                (*text).to_owned()
            };
            tx.batch(&script).map_err(|source| StoreError::Migration {
                version,
                name,
                source: Box::new(source),
            })?;
            if version == PARTITIONS_MIGRATION {
                files::fill_partition_columns(&tx)?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                args![version, name, now()],
            )?;
        }
        tx.commit()
    }

    /// The newest migration applied; 0 for a new database.
    pub fn schema_version(&self) -> Result<usize> {
        let v: i64 = self
            .conn
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )?
            .get(0)?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// Every current (not retired) record of a feed, in key order.
    pub fn records(&self, feed: Feed) -> Result<Vec<StoredRecord>> {
        let rows = self.conn.query(
            "SELECT r.record_key, r.data, f.path, r.location FROM records r LEFT JOIN landed_files f ON f.id = r.file_id
             WHERE r.feed = ?1 AND r.retired = 0 ORDER BY r.record_key",
            args![feed.name()],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let record = decode_record(feed.name(), row.get(0)?, &row.get::<String>(1)?)?;
            out.push(StoredRecord {
                record,
                file: row.get(2)?,
                location: row.get(3)?,
            });
        }
        Ok(out)
    }

    /// Counts of current records per feed.
    pub fn record_counts(&self) -> Result<Vec<(String, u64)>> {
        self.conn
            .query(
                "SELECT feed, COUNT(*) FROM records WHERE retired = 0 GROUP BY feed ORDER BY feed",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    /// One stored record by feed and key, retired or not.
    pub fn record(&self, feed: Feed, key: &str) -> Result<Option<Record>> {
        let row = self.conn.query_opt(
            "SELECT data FROM records WHERE feed = ?1 AND record_key = ?2",
            args![feed.name(), key],
        )?;
        row.map(|r| decode_record(feed.name(), key.to_owned(), &r.get::<String>(0)?))
            .transpose()
    }
}

/// A stored record's JSON body, read back; a body that does not parse names its record.
fn decode_record(feed: &str, key: String, data: &str) -> Result<Record> {
    // The row names the feed, so the body goes straight into its variant: read through the
    // enum's "feed" tag, serde first copies every value into a buffer to find the tag (a
    // tenth of a province's month of partition jobs). The tag left in the body is ignored.
    let decoded = match Feed::from_name(feed) {
        Some(Feed::Registry) => serde_json::from_str(data).map(Record::Person),
        Some(Feed::HealthBirths) => serde_json::from_str(data).map(Record::Birth),
        Some(Feed::PoliceHukou) => serde_json::from_str(data).map(Record::Hukou),
        Some(Feed::CivilMarriages) => serde_json::from_str(data).map(Record::Marriage),
        Some(Feed::ExchangeMigrants) => serde_json::from_str(data).map(Record::Migrant),
        None => serde_json::from_str(data),
    };
    decoded.map_err(|source| StoreError::Corrupt {
        feed: feed.to_owned(),
        key,
        source,
    })
}

impl Store {
    /// A saved linkage model (JSON) and when it was trained.
    pub fn linkage_model(&self, name: &str) -> Result<Option<(String, String)>> {
        self.conn
            .query_opt(
                "SELECT model, trained_at FROM linkage_models WHERE name = ?1",
                args![name],
            )?
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .transpose()
    }

    pub fn save_linkage_model(&mut self, name: &str, model_json: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO linkage_models (name, trained_at, model) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET trained_at = excluded.trained_at, model = excluded.model",
            args![name, now(), model_json],
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
