//! Raw landing and record upserts.

use super::sql::{args, Conn, Param, Row, Tx};

use super::{now, sha256_hex, Result, Store};
use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Feed, Record};

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
        let tx = if is_bulk_load(&self.conn, feed, size)? {
            self.conn.bulk_transaction()?
        } else {
            self.conn.transaction()?
        };
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
        // A first load of a large file builds the secondary indexes once at the end instead of
        // inserting ten million random keys into each (SQLite: 20+ min -> minutes for a
        // province's registry). Only when the feed has no records yet: then nobody can be
        // relying on finding them through these indexes meanwhile.
        // And only when the table holds fewer records than the file likely brings: rebuilding
        // the indexes of a province's registry for a month's births costs more than it saves.
        // Asked again inside the transaction: another writer may have stored records since.
        lock_feed(&tx, feed)?;
        if tx.is_postgres() {
            // A plan made for the feed's name uses the statistics, taken before this file
            // when the feed had few records or none: the planner then expects none, and found
            // the look-up of a batch's keys cheapest by reading every record of the feed
            // (a month's household file: half a second per batch of 4,000, growing with the
            // file). A generic plan takes a feed for a fifth of the table and looks the keys up
            // in the primary key (30-50 ms).
            tx.batch("SET LOCAL plan_cache_mode = force_generic_plan")?;
        }
        let bulk = is_bulk_load(&tx, feed, size)?;
        if bulk {
            for (name, _) in SECONDARY_INDEXES {
                tx.batch(&format!("DROP INDEX IF EXISTS {name}"))?;
            }
        }
        // Statistics taken when the table held many more rows than this file is likely to
        // write still describe it: taking them again cost a month's feeds 8.5 s of 60.
        let next_analyze = if tx.is_postgres() {
            let known: f64 = tx
                .query_one(
                    "SELECT GREATEST(reltuples, 0)::FLOAT8 FROM pg_class WHERE oid = 'records'::regclass",
                    &[],
                )?
                .get(0)?;
            FIRST_ANALYZE.max(known as u64)
        } else {
            FIRST_ANALYZE
        };
        Ok(FileWriter {
            tx,
            bulk,
            pending: Vec::new(),
            next_analyze,
            file_id,
            file_path: path.to_owned(),
            feed: feed.to_owned(),
            mapping: mapping.to_owned(),
            upserted: 0,
            unchanged: 0,
            quarantined: 0,
            touched: if bulk {
                Touched::without_keys()
            } else {
                Touched::default()
            },
            seen: bulk.then(SeenKeys::default),
        })
    }
}

/// Writes the records of one file; nothing is visible to others until [`FileWriter::finish`].
pub struct FileWriter<'a> {
    pub(super) tx: Tx<'a>,
    /// The secondary indexes were dropped for this file and are built at [`FileWriter::finish`].
    bulk: bool,
    /// Records given to [`FileWriter::add`], stored a batch at a time.
    pending: Vec<(Record, String)>,
    /// PostgreSQL: records written after which the table's statistics are taken again.
    next_analyze: u64,
    pub(super) file_id: i64,
    file_path: String,
    feed: String,
    mapping: String,
    upserted: u64,
    unchanged: u64,
    quarantined: u64,
    touched: Touched,
    /// In a bulk load, the keys stored so far (hashed): the feed was empty, so a key not among
    /// them is new and needs no look-up (PostgreSQL then keeps one COPY going for the file).
    seen: Option<SeenKeys>,
}

/// The counties whose records of each feed a write changed (where a record was and where it
/// is now): their versions move on when the write commits, which tells a reconciliation that
/// what it kept about a county is out of date. Of the registry it also logs which persons
/// changed in each county, from which a county's digest is brought up to date instead of made
/// again from the whole county.
pub(super) struct Touched {
    divisions: BTreeMap<&'static str, BTreeSet<String>>,
    /// Per county, the registry keys this write changed there; `None` once more than
    /// [`MAX_LOGGED`] (the county's digest is then made again).
    registry_keys: BTreeMap<String, Option<BTreeSet<String>>>,
    /// A bulk load logs no keys: the feed was empty, so every county is read whole anyway.
    log_keys: bool,
}

/// More registry persons than this changed in one county by one write are not listed: reading
/// that many by key costs what reading the county does. (Small in unit tests, to reach it.)
pub(super) const MAX_LOGGED: usize = if cfg!(test) { 100 } else { 50_000 };

impl Default for Touched {
    fn default() -> Touched {
        Touched {
            divisions: BTreeMap::new(),
            registry_keys: BTreeMap::new(),
            log_keys: true,
        }
    }
}

impl Touched {
    /// For a bulk load, which logs no registry keys.
    fn without_keys() -> Touched {
        Touched {
            log_keys: false,
            ..Touched::default()
        }
    }

    /// Notes that the record of `feed` with `key` changed in `division`.
    fn add(&mut self, feed: &'static str, division: &str, key: &str) {
        let divisions = self.divisions.entry(feed).or_default();
        if !divisions.contains(division) {
            divisions.insert(division.to_owned());
        }
        if !self.log_keys || feed != Feed::Registry.name() {
            return;
        }
        if !self.registry_keys.contains_key(division) {
            self.registry_keys
                .insert(division.to_owned(), Some(BTreeSet::new()));
        }
        if let Some(logged) = self.registry_keys.get_mut(division) {
            match logged {
                Some(keys) if keys.len() >= MAX_LOGGED => *logged = None,
                Some(keys) => {
                    keys.insert(key.to_owned());
                }
                None => {}
            }
        }
    }

    /// Moves each touched county's version on, and logs the registry keys changed at the new
    /// version, inside the write's transaction.
    pub(super) fn save(&self, conn: &Conn) -> Result<()> {
        for (feed, divisions) in &self.divisions {
            for division in divisions {
                let version: i64 = conn
                    .query_one(
                        "INSERT INTO division_versions (feed, division, version) VALUES (?1, ?2, 1)
                         ON CONFLICT (feed, division) DO UPDATE SET version = division_versions.version + 1
                         RETURNING version",
                        args![*feed, division],
                    )?
                    .get(0)?;
                if *feed == Feed::Registry.name() {
                    if let Some(Some(keys)) = self.registry_keys.get(division) {
                        log_registry_changes(conn, division, version, keys)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Logs that the registry persons with `keys` changed in `division` at its `version`.
fn log_registry_changes(
    conn: &Conn,
    division: &str,
    version: i64,
    keys: &BTreeSet<String>,
) -> Result<()> {
    if conn.is_postgres() {
        let keys: Vec<Option<&str>> = keys.iter().map(|k| Some(k.as_str())).collect();
        for chunk in keys.chunks(10_000) {
            conn.execute(
                "INSERT INTO registry_changes (division, version, record_key)
                 SELECT ?1, ?2, unnest(?3::TEXT[])",
                &[
                    Param::Text(division),
                    Param::Int(version),
                    Param::Texts(chunk),
                ],
            )?;
        }
    } else {
        for key in keys {
            conn.execute(
                "INSERT INTO registry_changes (division, version, record_key) VALUES (?1, ?2, ?3)",
                args![division, version, key],
            )?;
        }
    }
    Ok(())
}

/// Hashes of the keys a bulk load stored. Two keys with one hash only cost a look-up.
#[derive(Default)]
struct SeenKeys(std::collections::HashSet<u64>);

impl SeenKeys {
    /// Whether (`feed`, `key`) may have been stored before; notes it as stored.
    fn check(&mut self, feed: &str, key: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        (feed, key).hash(&mut hasher);
        !self.0.insert(hasher.finish())
    }
}

/// Records stored per batch: one lookup and one multi-row upsert each, instead of two round
/// trips per record (which is what made PostgreSQL slow).
const BATCH: usize = 400;

/// A generous guess at the bytes one record takes in a source file (registry CSV rows are
/// about 130), to compare a file with the table it goes into.
const BYTES_PER_RECORD: u64 = 200;

/// Records per batch on PostgreSQL, where a batch's values go as one array per column (or by
/// COPY), not a parameter each.
const POSTGRES_BATCH: usize = 4_000;

/// Files at least this large loaded into an empty feed get their indexes built at the end.
const BULK_BYTES: u64 = 64 << 20;

/// The indexes of `records` besides its key, as the migrations create them (a test checks
/// that a bulk load leaves the same schema as the migrations).
const SECONDARY_INDEXES: [(&str, &str); 3] = [
    (
        "records_by_division",
        "ON records(feed, division, record_key)",
    ),
    (
        "records_by_id_number",
        "ON records(id_number, division) WHERE id_number IS NOT NULL AND retired = 0",
    ),
    (
        "records_by_mother_id",
        "ON records(mother_id) WHERE mother_id IS NOT NULL",
    ),
];

/// A table never analysed has no statistics, and PostgreSQL then picked the `(feed, period_date)`
/// index (dropped since) for the key lookup and reads every record of the feed (3,500 records/s at 680k).
/// `ANALYZE` inside the file's transaction counts its own new rows, so taking statistics at
/// 2,000, 8,000, 32,000... records written (starting from the rows the last statistics
/// counted, when more) keeps the lookup on the primary key.
const FIRST_ANALYZE: u64 = 2_000;

impl FileWriter<'_> {
    /// Stores `record` with the next batch; the same result as [`FileWriter::upsert`], in
    /// the same order, by the time the file is finished.
    pub fn add(&mut self, record: Record, location: &str) -> Result<()> {
        self.pending.push((record, location.to_owned()));
        // PostgreSQL pays a round trip per statement whatever its size: it is sent more at once.
        let batch = if self.tx.is_postgres() {
            POSTGRES_BATCH
        } else {
            BATCH
        };
        if self.pending.len() >= batch {
            self.flush()?;
        }
        Ok(())
    }

    /// Whether this file is a bulk load (indexes built at the end).
    pub fn is_bulk(&self) -> bool {
        self.bulk
    }

    fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.pending);
        let (changed, unchanged) = upsert_batch(
            &self.tx,
            &batch,
            (self.file_id, &self.feed),
            self.seen.as_mut(),
            &mut self.touched,
        )?;
        self.upserted += changed;
        self.unchanged += unchanged;
        if self.tx.is_postgres() && self.upserted >= self.next_analyze {
            self.tx.batch("ANALYZE records")?;
            self.next_analyze = self.upserted.saturating_mul(4);
        }
        Ok(())
    }

    pub fn upsert(&mut self, record: &Record, location: &str) -> Result<UpsertOutcome> {
        self.flush()?;
        if let Some(seen) = &mut self.seen {
            seen.check(record.feed().name(), &record.key());
        }
        let outcome = upsert_record(
            &self.tx,
            record,
            Some(self.file_id),
            location,
            &mut self.touched,
        )?;
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
    pub fn finish(mut self, records_read: u64, error: Option<&str>) -> Result<i64> {
        self.flush()?;
        if self.bulk {
            for (name, definition) in SECONDARY_INDEXES {
                self.tx
                    .batch(&format!("CREATE INDEX IF NOT EXISTS {name} {definition}"))?;
            }
        }
        self.touched.save(&self.tx)?;
        self.tx.execute(
            "UPDATE landed_files SET records_read = ?2, upserted = ?3, unchanged = ?4, quarantined = ?5, error = ?6 WHERE id = ?1",
            args![self.file_id, records_read, self.upserted, self.unchanged, self.quarantined, error],
        )?;
        self.tx.commit()?;
        Ok(self.file_id)
    }
}

/// PostgreSQL: makes this transaction the only one writing records of `feed` until it ends
/// (SQLite has one writer at a time anyway). A batch's key look-up then stays true until its
/// records are stored, so records it found new can go by `COPY`: no conflict check, which was a
/// fifth of the server's time per record.
fn lock_feed(conn: &Conn, feed: &str) -> Result<()> {
    if conn.is_postgres() {
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(?1))",
            args![format!("vitalhub.records.{feed}")],
        )?;
    }
    Ok(())
}

/// Whether a file of `size` bytes for `feed` is loaded in bulk, its indexes built at the end.
fn is_bulk_load(conn: &Conn, feed: &str, size: u64) -> Result<bool> {
    Ok(size >= BULK_BYTES
        && conn
            .query_opt("SELECT 1 FROM records WHERE feed = ?1 LIMIT 1", args![feed])?
            .is_none()
        && conn
            .query_opt(
                "SELECT 1 FROM records LIMIT 1 OFFSET ?1",
                args![(size / BYTES_PER_RECORD) as i64],
            )?
            .is_none())
}

/// Inserts or replaces the stored version of `record` by its key. An older source version never
/// replaces a newer one, and identical content is left alone.
pub(super) fn upsert_record(
    conn: &Conn,
    record: &Record,
    file_id: Option<i64>,
    location: &str,
    touched: &mut Touched,
) -> Result<UpsertOutcome> {
    let row = RecordRow::new(record, location);
    lock_feed(conn, row.feed)?;
    let existing: Option<((String, Option<String>), String)> = conn
        .query_opt(
            "SELECT content_hash, version, division FROM records WHERE feed = ?1 AND record_key = ?2",
            args![row.feed, row.key],
        )?
        .map(|r| Ok::<_, super::StoreError>(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .transpose()?;
    let outcome = decide(
        existing.as_ref().map(|(stored, _)| stored),
        &row.hash,
        row.version.as_deref(),
    );
    if outcome.changed() {
        conn.execute(&upsert_sql(1), &row.params(file_id, &now()))?;
        touched.add(row.feed, &row.division, &row.key);
        if let Some((_, before)) = &existing {
            touched.add(row.feed, before, &row.key);
        }
    }
    Ok(outcome)
}

/// What storing content with `hash` and source `version` does to the stored (hash, version).
fn decide(
    existing: Option<&(String, Option<String>)>,
    hash: &str,
    version: Option<&str>,
) -> UpsertOutcome {
    match existing {
        None => UpsertOutcome::Inserted,
        Some((h, _)) if h == hash => UpsertOutcome::Unchanged,
        Some((_, Some(stored))) if version.is_some_and(|v| is_older(v, stored)) => {
            UpsertOutcome::Stale
        }
        Some(_) => UpsertOutcome::Updated,
    }
}

/// A record as stored: its columns, computed once.
struct RecordRow {
    feed: &'static str,
    key: String,
    period: Option<String>,
    version: Option<String>,
    retired: bool,
    hash: String,
    data: String,
    location: String,
    division: String,
    id_number: Option<String>,
    mother_id: Option<String>,
}

impl RecordRow {
    fn new(record: &Record, location: &str) -> RecordRow {
        let data = serde_json::to_string(record).expect("canonical records always serialise");
        let (id_number, mother_id) = record.registry_ids();
        RecordRow {
            feed: record.feed().name(),
            key: record.key(),
            period: record.period_date().map(|d| d.to_string()),
            version: record.version().map(str::to_owned),
            retired: record.is_retired(),
            hash: sha256_hex(data.as_bytes()),
            data,
            location: location.to_owned(),
            division: record.division().to_owned(),
            id_number: id_number.map(str::to_owned),
            mother_id: mother_id.map(str::to_owned),
        }
    }

    /// Its values in [`INSERT_COLUMNS`] order.
    fn params<'a>(&'a self, file_id: Option<i64>, at: &'a str) -> Vec<Param<'a>> {
        let text = |v: &'a Option<String>| v.as_deref().map_or(Param::Null, Param::Text);
        vec![
            Param::Text(self.feed),
            Param::Text(&self.key),
            text(&self.period),
            text(&self.version),
            Param::Int(self.retired.into()),
            Param::Text(&self.hash),
            Param::Text(&self.data),
            file_id.map_or(Param::Null, Param::Int),
            Param::Text(&self.location),
            Param::Text(at),
            Param::Text(&self.division),
            text(&self.id_number),
            text(&self.mother_id),
        ]
    }
}

/// Values per record in [`upsert_sql`].
const COLUMNS: usize = 13;

/// The columns of a stored record, in the order [`upsert_sql`] and bulk loads give them.
const INSERT_COLUMNS: &str = "feed, record_key, period_date, version, retired, content_hash, data, file_id, location, changed_at, division, id_number, mother_id";

/// What an upsert sets when the key is stored already.
const ON_CONFLICT: &str = "ON CONFLICT (feed, record_key) DO UPDATE SET period_date = excluded.period_date, version = excluded.version,
   retired = excluded.retired, content_hash = excluded.content_hash, data = excluded.data,
   file_id = excluded.file_id, location = excluded.location, changed_at = excluded.changed_at,
   division = excluded.division, id_number = excluded.id_number, mother_id = excluded.mother_id";

/// PostgreSQL: upserts `rows` (one version per key) given as one text array per column.
fn upsert_columns(conn: &Conn, rows: &[RecordRow], file_id: i64, at: &str) -> Result<()> {
    let file_id = file_id.to_string();
    // In INSERT_COLUMNS order, as the statement below names them.
    let columns: [Vec<Option<&str>>; COLUMNS] = [
        rows.iter().map(|r| Some(r.feed)).collect(),
        rows.iter().map(|r| Some(r.key.as_str())).collect(),
        rows.iter().map(|r| r.period.as_deref()).collect(),
        rows.iter().map(|r| r.version.as_deref()).collect(),
        rows.iter()
            .map(|r| Some(if r.retired { "1" } else { "0" }))
            .collect(),
        rows.iter().map(|r| Some(r.hash.as_str())).collect(),
        rows.iter().map(|r| Some(r.data.as_str())).collect(),
        rows.iter().map(|_| Some(file_id.as_str())).collect(),
        rows.iter().map(|r| Some(r.location.as_str())).collect(),
        rows.iter().map(|_| Some(at)).collect(),
        rows.iter().map(|r| Some(r.division.as_str())).collect(),
        rows.iter().map(|r| r.id_number.as_deref()).collect(),
        rows.iter().map(|r| r.mother_id.as_deref()).collect(),
    ];
    let arrays: Vec<String> = (1..=COLUMNS).map(|c| format!("?{c}::TEXT[]")).collect();
    let params: Vec<Param> = columns.iter().map(|c| Param::Texts(c)).collect();
    conn.execute(
        &format!(
            "INSERT INTO records ({INSERT_COLUMNS})
             SELECT feed, record_key, period_date, version, retired::BIGINT, content_hash, data,
                    file_id::BIGINT, location, changed_at, division, id_number, mother_id
             FROM unnest({}) AS t({INSERT_COLUMNS})
             {ON_CONFLICT}",
            arrays.join(", ")
        ),
        &params,
    )?;
    Ok(())
}

/// An upsert of `rows` records ([`COLUMNS`] values each).
fn upsert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=COLUMNS)
                .map(|c| format!("?{}", r * COLUMNS + c))
                .collect();
            format!("({})", p.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO records ({INSERT_COLUMNS}) VALUES {} {ON_CONFLICT}",
        values.join(", ")
    )
}

/// Stores a batch in order, as one `upsert_record` per record would: returns (changed,
/// unchanged or stale). A key seen twice in the batch is decided against its earlier version.
///
/// Records new to the table go by plain inserts on SQLite (a multi-row upsert writes a
/// statement journal: a month's feeds stored 5-25 % faster without), and by `COPY` on
/// PostgreSQL.
fn upsert_batch(
    conn: &Conn,
    batch: &[(Record, String)],
    (file_id, locked): (i64, &str),
    mut seen: Option<&mut SeenKeys>,
    touched: &mut Touched,
) -> Result<(u64, u64)> {
    if batch.is_empty() {
        return Ok((0, 0));
    }
    let mut stored: std::collections::HashMap<(&'static str, String), (String, Option<String>)> =
        std::collections::HashMap::new();
    let mut stored_division: std::collections::HashMap<(&'static str, String), String> =
        std::collections::HashMap::new();
    let mut by_feed: std::collections::BTreeMap<&'static str, Vec<String>> = Default::default();
    for (record, _) in batch {
        let (feed, key) = (record.feed().name(), record.key());
        if seen.as_mut().is_none_or(|seen| seen.check(feed, &key)) {
            by_feed.entry(feed).or_default().push(key);
        }
    }
    for (feed, keys) in &by_feed {
        const LOOKUP: &str =
            "SELECT record_key, content_hash, version, division FROM records WHERE feed = ?1 AND";
        let found = if conn.is_postgres() {
            let keys: Vec<Option<&str>> = keys.iter().map(|k| Some(k.as_str())).collect();
            conn.query(
                &format!("{LOOKUP} record_key = ANY(?2)"),
                &[Param::Text(feed), Param::Texts(&keys)],
            )?
        } else {
            let marks: Vec<String> = (0..keys.len()).map(|i| format!("?{}", i + 2)).collect();
            let mut params = vec![Param::Text(feed)];
            params.extend(keys.iter().map(|k| Param::Text(k)));
            conn.query(
                &format!("{LOOKUP} record_key IN ({})", marks.join(", ")),
                &params,
            )?
        };
        for r in found {
            let key: String = r.get(0)?;
            stored.insert((feed, key.clone()), (r.get(1)?, r.get(2)?));
            stored_division.insert((feed, key), r.get(3)?);
        }
    }
    let in_table: std::collections::HashSet<(&'static str, String)> =
        stored.keys().cloned().collect();
    let (mut changed, mut unchanged) = (0, 0);
    // The last change of each key wins, as it would one upsert at a time.
    let mut rows: Vec<RecordRow> = Vec::new();
    let mut row_of: std::collections::HashMap<(&'static str, String), usize> = Default::default();
    for (record, location) in batch {
        let row = RecordRow::new(record, location);
        let id = (row.feed, row.key.clone());
        if !decide(stored.get(&id), &row.hash, row.version.as_deref()).changed() {
            unchanged += 1;
            continue;
        }
        changed += 1;
        touched.add(row.feed, &row.division, &row.key);
        if let Some(before) = stored_division.get(&id) {
            touched.add(row.feed, before, &row.key);
        }
        stored.insert(id.clone(), (row.hash.clone(), row.version.clone()));
        match row_of.get(&id) {
            Some(&i) => rows[i] = row,
            None => {
                row_of.insert(id, rows.len());
                rows.push(row);
            }
        }
    }
    let at = now();
    // Of the feed whose writers wait for this one (see `lock_feed`), a record the look-up did
    // not find is new until this transaction ends.
    let (new_rows, rows): (Vec<RecordRow>, Vec<RecordRow>) = rows
        .into_iter()
        .partition(|r| r.feed == locked && !in_table.contains(&(r.feed, r.key.clone())));
    if !new_rows.is_empty() {
        let values: Vec<Vec<Param>> = new_rows
            .iter()
            .map(|r| r.params(Some(file_id), &at))
            .collect();
        match conn.copy_in(&format!("records ({INSERT_COLUMNS})"), &values) {
            Some(copied) => copied?,
            // SQLite: one cached single-row INSERT each. A multi-row statement would need a
            // statement journal (a temp file written for every batch: 15% of a bulk load).
            None => {
                let insert = format!(
                    "INSERT INTO records ({INSERT_COLUMNS}) VALUES ({})",
                    (1..=COLUMNS)
                        .map(|c| format!("?{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                for params in &values {
                    conn.execute(&insert, params)?;
                }
            }
        }
    }
    if !rows.is_empty() && conn.is_postgres() {
        upsert_columns(conn, &rows, file_id, &at)?;
    } else if !rows.is_empty() {
        let params: Vec<Param> = rows
            .iter()
            .flat_map(|r| r.params(Some(file_id), &at))
            .collect();
        conn.execute(&upsert_sql(rows.len()), &params)?;
    }
    Ok((changed, unchanged))
}

/// Fills the partition columns of records stored before they existed, a page at a time in key
/// order (a province's records do not fit in memory at once).
pub(super) fn fill_partition_columns(tx: &Tx) -> Result<()> {
    const PAGE: i64 = 5_000;
    let (mut after_feed, mut after_key) = (String::new(), String::new());
    loop {
        let rows = tx.query(
            "SELECT feed, record_key, data FROM records
             WHERE (feed, record_key) > (?1, ?2)
             ORDER BY feed, record_key LIMIT ?3",
            args![after_feed, after_key, PAGE],
        )?;
        let full = rows.len() as i64 == PAGE;
        for row in rows {
            let (feed, key, data): (String, String, String) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            let record = super::decode_record(&feed, key.clone(), &data)?;
            let (id_number, mother_id) = record.registry_ids();
            tx.execute(
                "UPDATE records SET division = ?3, id_number = ?4, mother_id = ?5 WHERE feed = ?1 AND record_key = ?2",
                args![feed, key, record.division(), id_number, mother_id],
            )?;
            (after_feed, after_key) = (feed, key);
        }
        if !full {
            return Ok(());
        }
    }
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
