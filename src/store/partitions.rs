//! Reading records one county at a time, finding registry persons by identity number across
//! counties, and the bookkeeping of partitioned reconciliation runs (whose jobs may be done by
//! several worker processes on one PostgreSQL database).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::sql::{args, Param, Row};
use super::{decode_record, now, Result, Store, StoreError};
use crate::model::{Feed, Record};

/// Records read per query while streaming a county: bounded memory for the rows in flight.
const PAGE: i64 = 5_000;

/// Identity numbers per `IN (...)` lookup.
const LOOKUP: usize = 500;

/// Which stored identity number a registry lookup matches.
#[derive(Debug, Clone, Copy)]
pub enum RegistryId {
    /// The person's own number.
    Own,
    /// Their mother's number (finds her children).
    Mother,
}

/// One partitioned run as the coordinator created it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionRun {
    pub run: String,
    pub period: String,
    pub as_of: String,
    pub retrain: bool,
    pub partitions: Vec<String>,
    pub merged_at: Option<String>,
}

/// What a partition job stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionResultRow {
    pub division: String,
    pub findings: String,
    pub worker: String,
    pub seconds: f64,
    pub error: Option<String>,
}

impl Store {
    /// The counties records belong to, in order (`""` for records naming none).
    pub fn divisions(&self) -> Result<Vec<String>> {
        // Every write gives the counties of its records a version (migration 12 gave those
        // stored before), so the small table lists them all.
        let rows = self
            .conn
            .query("SELECT DISTINCT division FROM division_versions", &[])?;
        // In byte order on both stores, whatever PostgreSQL's collation.
        let divisions = rows
            .into_iter()
            .map(|row| row.get::<String>(0))
            .collect::<Result<std::collections::BTreeSet<String>>>()?;
        Ok(divisions.into_iter().collect())
    }

    /// Calls `visit` with every current record of `feed` in `division`, in key order, reading
    /// a page at a time; with `dates`, only records whose period date lies within them.
    pub fn for_each_in_division(
        &self,
        feed: Feed,
        division: &str,
        dates: Option<(NaiveDate, NaiveDate)>,
        mut visit: impl FnMut(Record),
    ) -> Result<u64> {
        let (from, to) = match dates {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => (String::new(), "9999".to_owned()),
        };
        let mut after = String::new();
        let mut seen = 0;
        loop {
            // Records without a period date only match when no window is asked for.
            let rows = self.conn.query(
                "SELECT record_key, data FROM records
                 WHERE feed = ?1 AND division = ?2 AND record_key > ?3 AND retired = 0
                   AND COALESCE(period_date, '') >= ?4 AND COALESCE(period_date, '') <= ?5
                 ORDER BY record_key LIMIT ?6",
                args![feed.name(), division, after, from, to, PAGE],
            )?;
            let Some(last) = rows.last() else {
                return Ok(seen);
            };
            after = last.get(0)?;
            let full = rows.len() as i64 == PAGE;
            for row in rows {
                let key: String = row.get(0)?;
                let data: String = row.get(1)?;
                visit(decode_record(feed.name(), key, &data)?);
                seen += 1;
            }
            if !full {
                return Ok(seen);
            }
        }
    }

    /// Current registry persons holding (own or as mother's) any of `ids`, in any county.
    /// Only registry rows have these columns filled, so the query names no feed: with one,
    /// SQLite (no statistics) read the whole feed through the county index instead of the
    /// number index (142 s for one county of a province).
    pub fn registry_by_ids(&self, which: RegistryId, ids: &[&str]) -> Result<Vec<Record>> {
        let column = match which {
            RegistryId::Own => "id_number",
            RegistryId::Mother => "mother_id",
        };
        self.current_where("", column, ids)
    }

    /// Current registry persons by their keys (absent keys are left out).
    pub fn registry_by_keys(&self, keys: &[&str]) -> Result<Vec<Record>> {
        self.current_where("feed = 'registry' AND ", "record_key", keys)
    }

    /// Current registry records, under `filter`, whose `column` is any of `values`.
    fn current_where(&self, filter: &str, column: &str, values: &[&str]) -> Result<Vec<Record>> {
        let sql = |among: &str| {
            format!(
                "SELECT record_key, data FROM records WHERE {filter}{column} {among} AND retired = 0"
            )
        };
        let mut out = Vec::new();
        self.rows_among(values, sql, |row| {
            out.push(decode_record(
                "registry",
                row.get(0)?,
                &row.get::<String>(1)?,
            )?);
            Ok(())
        })?;
        Ok(out)
    }

    /// How many times the records of `feed` in `division` have changed since versions were
    /// kept (0: not since).
    pub fn division_version(&self, feed: Feed, division: &str) -> Result<i64> {
        self.conn
            .query_opt(
                "SELECT version FROM division_versions WHERE feed = ?1 AND division = ?2",
                args![feed.name(), division],
            )?
            .map(|r| r.get(0))
            .transpose()
            .map(|v| v.unwrap_or(0))
    }

    /// The digest kept for a county's registry: the registry version it was made at, and its body.
    pub fn registry_digest(&self, division: &str) -> Result<Option<(i64, String)>> {
        self.conn
            .query_opt(
                "SELECT version, body FROM registry_digests WHERE division = ?1",
                args![division],
            )?
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .transpose()
    }

    /// Keeps a county's registry digest made at `version`, replacing the one before.
    pub fn save_registry_digest(&mut self, division: &str, version: i64, body: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO registry_digests (division, version, body, made_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (division) DO UPDATE SET version = excluded.version, body = excluded.body, made_at = excluded.made_at",
            args![division, version, body, now()],
        )?;
        Ok(())
    }

    /// The registry version each kept digest was made at, by county (without the bodies).
    pub fn registry_digest_versions(&self) -> Result<BTreeMap<String, i64>> {
        self.conn
            .query("SELECT division, version FROM registry_digests", &[])?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    /// Each county's version of `feed` (see [`Store::division_version`]).
    pub fn division_versions(&self, feed: Feed) -> Result<BTreeMap<String, i64>> {
        self.conn
            .query(
                "SELECT division, version FROM division_versions WHERE feed = ?1",
                args![feed.name()],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    /// Forgets the registry changes logged in each county up to the version given for it:
    /// what everything that reads the log has taken in.
    pub fn forget_registry_changes(&mut self, upto: &BTreeMap<String, i64>) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (division, version) in upto {
            tx.execute(
                "DELETE FROM registry_changes WHERE division = ?1 AND version <= ?2",
                args![division, version],
            )?;
        }
        tx.commit()
    }

    /// The keys of the registry persons a county's writes changed after its registry version
    /// `since` up to `until`, in key order; `None` when a write in between did not log them
    /// (a bulk load, or one that changed too many to list) and the county has to be read
    /// whole.
    pub fn registry_changes(
        &self,
        division: &str,
        since: i64,
        until: i64,
    ) -> Result<Option<Vec<String>>> {
        let rows = self.conn.query(
            "SELECT version, record_key FROM registry_changes
             WHERE division = ?1 AND version > ?2 AND version <= ?3",
            args![division, since, until],
        )?;
        let mut versions = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for row in rows {
            versions.insert(row.get::<i64>(0)?);
            keys.insert(row.get::<String>(1)?);
        }
        // Every write moving the version on logs at least one key at its version.
        let complete = i64::try_from(versions.len()).ok() == Some(until - since);
        Ok(complete.then(|| keys.into_iter().collect()))
    }

    /// The valid identity numbers of the current registry persons with `keys`.
    pub fn registry_ids_of_keys(&self, keys: &[&str]) -> Result<Vec<String>> {
        self.texts_for(keys, |among| {
            format!(
                "SELECT id_number FROM records WHERE feed = 'registry' AND record_key {among}
                 AND id_number IS NOT NULL AND retired = 0"
            )
        })
    }

    /// Those of `ids` that registry persons of more than one county hold, in order.
    pub fn ids_in_several_divisions_among(&self, ids: &[&str]) -> Result<Vec<String>> {
        let mut out = self.texts_for(ids, |among| {
            format!(
                "SELECT id_number FROM records WHERE id_number {among} AND retired = 0
                 GROUP BY id_number HAVING COUNT(DISTINCT division) > 1"
            )
        })?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The first column of `sql(among)` run over `values` (see [`Store::rows_among`]).
    fn texts_for(&self, values: &[&str], sql: impl Fn(&str) -> String) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.rows_among(values, sql, |row| {
            out.push(row.get(0)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `visit` with every row of `sql(among)` run for many of `values` at a time,
    /// `among` the condition that a column is one of them: on PostgreSQL one array parameter
    /// for 10,000 (a round trip per 500 cost seconds for a province's month of changes), on
    /// SQLite [`LOOKUP`] placeholders.
    fn rows_among(
        &self,
        values: &[&str],
        sql: impl Fn(&str) -> String,
        mut visit: impl FnMut(&Row) -> Result<()>,
    ) -> Result<()> {
        if self.conn.is_postgres() {
            let sql = sql("= ANY(?1)");
            let values: Vec<Option<&str>> = values.iter().map(|v| Some(*v)).collect();
            for chunk in values.chunks(10_000) {
                for row in self.conn.query(&sql, &[Param::Texts(chunk)])? {
                    visit(&row)?;
                }
            }
            return Ok(());
        }
        for chunk in values.chunks(LOOKUP) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 1)).collect();
            let params: Vec<Param> = chunk.iter().map(|v| Param::Text(v)).collect();
            let sql = sql(&format!("IN ({})", marks.join(", ")));
            for row in self.conn.query(&sql, &params)? {
                visit(&row)?;
            }
        }
        Ok(())
    }

    /// Identity numbers that registry persons of more than one county hold: the only
    /// duplicates no single county can see.
    pub fn ids_in_several_divisions(&self) -> Result<Vec<String>> {
        self.conn
            .query(
                "SELECT id_number FROM records WHERE id_number IS NOT NULL AND retired = 0
                 GROUP BY id_number HAVING COUNT(DISTINCT division) > 1 ORDER BY id_number",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    pub fn create_partition_run(&mut self, run: &PartitionRun) -> Result<()> {
        let partitions = serde_json::to_string(&run.partitions).expect("strings serialise");
        self.conn.execute(
            "INSERT INTO partition_runs (run, period, as_of, retrain, partitions, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![run.run, run.period, run.as_of, run.retrain, partitions, now()],
        )?;
        Ok(())
    }

    pub fn partition_run(&self, run: &str) -> Result<Option<PartitionRun>> {
        let Some(row) = self.conn.query_opt(
            "SELECT run, period, as_of, retrain, partitions, merged_at FROM partition_runs WHERE run = ?1",
            args![run],
        )?
        else {
            return Ok(None);
        };
        let partitions: String = row.get(4)?;
        Ok(Some(PartitionRun {
            run: row.get(0)?,
            period: row.get(1)?,
            as_of: row.get(2)?,
            retrain: row.get::<i64>(3)? != 0,
            partitions: serde_json::from_str(&partitions).map_err(|source| {
                StoreError::Corrupt {
                    feed: "partition_runs".into(),
                    key: run.to_owned(),
                    source,
                }
            })?,
            merged_at: row.get(5)?,
        }))
    }

    /// Stores a partition's result unless one is stored already (a job done twice after a
    /// redelivery is stored once); returns whether this call stored it.
    pub fn save_partition_result(
        &mut self,
        run: &str,
        result: &PartitionResultRow,
    ) -> Result<bool> {
        let stored = self.conn.execute(
            "INSERT INTO partition_results (run, division, findings, worker, seconds, finished_at, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (run, division) DO NOTHING",
            args![
                run,
                result.division,
                result.findings,
                result.worker,
                result.seconds,
                now(),
                result.error
            ],
        )?;
        Ok(stored > 0)
    }

    /// The counties of `run` with a stored result.
    pub fn finished_partitions(&self, run: &str) -> Result<Vec<String>> {
        self.conn
            .query(
                "SELECT division FROM partition_results WHERE run = ?1 ORDER BY division",
                args![run],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    pub fn partition_results(&self, run: &str) -> Result<Vec<PartitionResultRow>> {
        self.conn
            .query(
                "SELECT division, findings, worker, seconds, error FROM partition_results WHERE run = ?1 ORDER BY division",
                args![run],
            )?
            .iter()
            .map(|r| {
                Ok(PartitionResultRow {
                    division: r.get(0)?,
                    findings: r.get(1)?,
                    worker: r.get(2)?,
                    seconds: r.get(3)?,
                    error: r.get(4)?,
                })
            })
            .collect()
    }

    pub fn finish_partition_run(&mut self, run: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE partition_runs SET merged_at = ?2 WHERE run = ?1",
            args![run, now()],
        )?;
        Ok(())
    }
}
