//! Pull checkpoints of HTTP sources and the history of jobs.

use super::sql::{args, Conn};

use super::{now, FileWriter, Result, Store};

/// Where a source's pull stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullState {
    /// Set while a pull is under way: the next page to ask for.
    pub cursor: Option<String>,
    /// The `updated_since` the pull under way started from.
    pub run_since: Option<String>,
    /// The newest `updated_at` the pull under way has seen so far.
    pub run_max: Option<String>,
    /// The newest `updated_at` of the last finished pull: where the next pull starts.
    pub watermark: Option<String>,
}

/// One job run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRun {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub source: Option<String>,
    pub trigger: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub records: u64,
    pub quarantined: u64,
    pub detail: Option<String>,
    pub error: Option<String>,
}

/// How a job ended.
#[derive(Debug, Clone, Default)]
pub struct JobOutcome {
    pub records: u64,
    pub quarantined: u64,
    pub detail: Option<String>,
    pub error: Option<String>,
    pub interrupted: bool,
}

impl JobOutcome {
    /// The status the job history records: `interrupted`, `failed` or `ok`.
    pub fn status(&self) -> &'static str {
        if self.interrupted {
            "interrupted"
        } else if self.error.is_some() {
            "failed"
        } else {
            "ok"
        }
    }
}

impl Store {
    pub fn pull_state(&self, source: &str) -> Result<PullState> {
        let Some(r) = self.conn.query_opt(
            "SELECT cursor, run_since, run_max, watermark FROM pull_state WHERE source = ?1",
            args![source],
        )?
        else {
            return Ok(PullState::default());
        };
        Ok(PullState {
            cursor: r.get(0)?,
            run_since: r.get(1)?,
            run_max: r.get(2)?,
            watermark: r.get(3)?,
        })
    }

    /// Saves a checkpoint on its own, for a page whose records were already stored.
    pub fn save_pull_state(&mut self, source: &str, state: &PullState) -> Result<()> {
        write_pull_state(&self.conn, source, state)
    }

    /// Starts a job run and returns its id.
    pub fn start_job(
        &mut self,
        name: &str,
        kind: &str,
        source: Option<&str>,
        trigger: &str,
    ) -> Result<i64> {
        self.conn
            .query_one(
                "INSERT INTO jobs (name, kind, source, trigger, started_at, status) VALUES (?1, ?2, ?3, ?4, ?5, 'running') RETURNING id",
                args![name, kind, source, trigger, now()],
            )?
            .get(0)
    }

    pub fn finish_job(&mut self, id: i64, outcome: &JobOutcome) -> Result<()> {
        self.conn.execute(
            "UPDATE jobs SET finished_at = ?2, status = ?3, records = ?4, quarantined = ?5, detail = ?6, error = ?7 WHERE id = ?1",
            args![
                id,
                now(),
                outcome.status(),
                outcome.records,
                outcome.quarantined,
                outcome.detail,
                outcome.error
            ],
        )?;
        Ok(())
    }

    /// Runs left `running` by a process that died: marked interrupted, so the history says so.
    pub fn mark_abandoned_jobs(&mut self) -> Result<usize> {
        let n = self.conn.execute(
            "UPDATE jobs SET status = 'interrupted', finished_at = ?1, error = COALESCE(error, 'the process running it ended before it finished') WHERE status = 'running'",
            args![now()],
        )?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The latest `limit` runs, newest first, optionally of one job.
    pub fn jobs(&self, name: Option<&str>, limit: usize) -> Result<Vec<JobRun>> {
        self.conn
            .query(
                "SELECT id, name, kind, source, trigger, started_at, finished_at, status, records, quarantined, detail, error
                 FROM jobs WHERE CAST(?1 AS TEXT) IS NULL OR name = ?1 ORDER BY id DESC LIMIT ?2",
                args![name, limit],
            )?
            .iter()
            .map(|r| {
                Ok(JobRun {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    kind: r.get(2)?,
                    source: r.get(3)?,
                    trigger: r.get(4)?,
                    started_at: r.get(5)?,
                    finished_at: r.get(6)?,
                    status: r.get(7)?,
                    records: r.get(8)?,
                    quarantined: r.get(9)?,
                    detail: r.get(10)?,
                    error: r.get(11)?,
                })
            })
            .collect()
    }

    /// PostgreSQL only: takes this session's daemon lock on the database; `false` when another
    /// session holds it. The server releases it when the session ends.
    pub fn try_daemon_lock(&self) -> Result<bool> {
        if !self.conn.is_postgres() {
            return Err(super::StoreError::Unsupported(
                "the SQLite store is locked with a file beside it".into(),
            ));
        }
        self.conn
            .query_one("SELECT pg_try_advisory_lock(7351002)", &[])?
            .get(0)
    }

    /// When each job last finished well, for `/metrics`.
    pub fn last_successes(&self) -> Result<Vec<(String, String)>> {
        self.conn
            .query(
                "SELECT name, MAX(finished_at) FROM jobs WHERE status = 'ok' GROUP BY name ORDER BY name",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }
}

impl FileWriter<'_> {
    /// Saves a pull checkpoint in the file's transaction: the page's records and the cursor past
    /// them are committed together or not at all.
    pub fn save_pull_state(&mut self, source: &str, state: &PullState) -> Result<()> {
        write_pull_state(&self.tx, source, state)
    }
}

fn write_pull_state(conn: &Conn, source: &str, state: &PullState) -> Result<()> {
    conn.execute(
        "INSERT INTO pull_state (source, cursor, run_since, run_max, watermark, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor, run_since = excluded.run_since,
           run_max = excluded.run_max, watermark = excluded.watermark, updated_at = excluded.updated_at",
        args![source, state.cursor, state.run_since, state.run_max, state.watermark, now()],
    )?;
    Ok(())
}
