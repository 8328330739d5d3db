//! Running one job, for the daemon's schedule and for `vitalhub run-job` / `vitalhub pull`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vitalhub_connectors::http::HttpSource;

use super::config::{JobConfig, JobKind, PeriodChoice};
use crate::config::Config;
use crate::ingest::{ingest_file, IngestOptions};
use crate::mapping::Mapping;
use crate::pull::Pull;
use crate::report::Format;
use crate::store::{JobOutcome, Store};

/// Files younger than this may still be being written into a drop folder.
const SETTLE: Duration = Duration::from_secs(2);

/// Runs jobs, keeping one HTTP client per source alive between runs, so rate limits and
/// circuit breakers span the daemon's life rather than one job.
pub struct Runner<'a> {
    config: &'a Config,
    sources: HashMap<String, HttpSource>,
    stop: Arc<AtomicBool>,
}

impl<'a> Runner<'a> {
    pub fn new(config: &'a Config, stop: Arc<AtomicBool>) -> Runner<'a> {
        Runner {
            config,
            sources: HashMap::new(),
            stop,
        }
    }

    /// Runs `job` now and records it in the job history. `None` for a watch job that found no
    /// new file (nothing is recorded then, or the history would fill with empty looks).
    pub async fn run(
        &mut self,
        store: &mut Store,
        job: &JobConfig,
        trigger: &str,
    ) -> anyhow::Result<Option<JobOutcome>> {
        let pending = match &job.kind {
            JobKind::Watch { folder } => {
                let files: Vec<PathBuf> = settled_files(folder)
                    .into_iter()
                    .filter(|f| self.config.route_for(f).is_some())
                    .collect();
                if files.is_empty() {
                    return Ok(None);
                }
                Some(files)
            }
            _ => None,
        };
        let source = match &job.kind {
            JobKind::Pull { source, .. } => Some(source.as_str()),
            _ => None,
        };
        let id = store.start_job(&job.name, job.kind.label(), source, trigger)?;
        let started = Instant::now();
        tracing::info!(job = %job.name, kind = job.kind.label(), trigger, "job started");
        let outcome = match &job.kind {
            JobKind::Pull { source, month } => self.pull(store, source, *month, None).await,
            JobKind::Watch { folder } => self.watch(store, folder, pending.unwrap_or_default()),
            JobKind::Reconcile {
                period,
                reports,
                formats,
            } => self.reconcile(store, *period, reports.as_deref(), formats),
            JobKind::ExchangeSend { patience_s } => {
                self.exchange_send(store, Duration::from_secs(*patience_s))
                    .await
            }
        };
        store.finish_job(id, &outcome)?;
        let status = outcome.status();
        let elapsed = started.elapsed();
        metrics::histogram!("vitalhub_job_duration_seconds", "job" => job.name.clone())
            .record(elapsed.as_secs_f64());
        metrics::counter!("vitalhub_jobs_total", "job" => job.name.clone(), "status" => status)
            .increment(1);
        if status == "ok" {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            metrics::gauge!("vitalhub_last_success_timestamp_seconds", "job" => job.name.clone())
                .set(now);
        }
        match &outcome.error {
            None => {
                tracing::info!(job = %job.name, status, records = outcome.records, quarantined = outcome.quarantined, elapsed_ms = elapsed.as_millis() as u64, "job finished")
            }
            Some(e) => tracing::warn!(job = %job.name, status, error = %e, "job failed"),
        }
        Ok(Some(outcome))
    }

    /// Pulls one source; `month` overrides the job's choice (for `vitalhub pull --month`).
    pub async fn pull(
        &mut self,
        store: &mut Store,
        name: &str,
        month: PeriodChoice,
        landing: Option<&Path>,
    ) -> JobOutcome {
        let Some(source) = self.config.sources.iter().find(|s| s.name == name) else {
            return failed(format!("no [[sources]] entry named '{name}'"));
        };
        if !self.sources.contains_key(name) {
            let client = source
                .http_settings()
                .map_err(|m| format!("source {name}: {m}"))
                .and_then(|s| HttpSource::new(s).map_err(|e| e.to_string()));
            match client {
                Ok(c) => {
                    self.sources.insert(name.to_owned(), c);
                }
                Err(e) => return failed(e),
            }
        }
        let Some(http) = self.sources.get(name) else {
            return failed(format!("source {name}: no client"));
        };
        let landing = landing
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.config.database.landing());
        let stop = self.stop.clone();
        let stop_asked = move || stop.load(Ordering::SeqCst);
        let pull = Pull {
            config: source,
            http,
            landing: &landing,
            month: Some(month.resolve(chrono::Local::now().date_naive())),
            stop: &stop_asked,
        };
        let result = pull.run(store).await;
        // A failed pull still registers its counters, so every source shows in /metrics.
        let (read, quarantined) = result.as_ref().map_or((0, 0), |s| (s.read, s.quarantined));
        metrics::counter!("vitalhub_records_pulled_total", "source" => name.to_owned())
            .increment(read);
        metrics::counter!("vitalhub_records_quarantined_total", "source" => name.to_owned())
            .increment(quarantined);
        match result {
            Ok(s) => JobOutcome {
                records: s.read,
                quarantined: s.quarantined,
                detail: Some(s.describe()),
                error: None,
                interrupted: s.stopped,
            },
            Err(e) => failed(e.to_string()),
        }
    }

    fn watch(&self, store: &mut Store, folder: &Path, files: Vec<PathBuf>) -> JobOutcome {
        let mut outcome = JobOutcome::default();
        let mut lines = Vec::new();
        let done = folder
            .join("processed")
            .join(chrono::Local::now().format("%Y-%m-%d").to_string());
        for file in files {
            let Some(route) = self.config.route_for(&file) else {
                continue;
            };
            // Moved first, then ingested from where it now lies, so the quarantine's file path
            // stays valid for a retry and the file is never picked up twice.
            let moved = match move_into(&file, &done) {
                Ok(p) => p,
                Err(e) => {
                    lines.push(format!("{}: cannot move: {e}", file.display()));
                    outcome.error = Some(format!("cannot move {}: {e}", file.display()));
                    continue;
                }
            };
            let signature = PathBuf::from(format!("{}.sig", file.display()));
            if signature.exists() {
                if let Err(e) = move_into(&signature, &done) {
                    lines.push(format!("{}: cannot move: {e}", signature.display()));
                }
            }
            let result = Mapping::load(&route.mapping)
                .map_err(anyhow::Error::from)
                .and_then(|m| {
                    let opts = IngestOptions {
                        partners: self.config.partners.clone(),
                        ..IngestOptions::default()
                    };
                    Ok(ingest_file(store, &moved, &m, &route.mapping, &opts)?)
                });
            match result {
                Ok(r) => {
                    outcome.records += r.read;
                    outcome.quarantined += r.quarantined;
                    metrics::counter!("vitalhub_records_ingested_total", "feed" => r.feed.clone())
                        .increment(r.read);
                    metrics::counter!("vitalhub_records_quarantined_total", "source" => r.feed.clone())
                        .increment(r.quarantined);
                    lines.push(format!(
                        "{}: {} read, {} quarantined{}",
                        name_of(&moved),
                        r.read,
                        r.quarantined,
                        r.error.map(|e| format!(" ({e})")).unwrap_or_default()
                    ));
                }
                Err(e) => {
                    lines.push(format!("{}: {e}", name_of(&moved)));
                    outcome.error = Some(e.to_string());
                }
            }
        }
        outcome.detail = Some(lines.join("; "));
        outcome
    }

    fn reconcile(
        &self,
        store: &mut Store,
        period: PeriodChoice,
        reports: Option<&Path>,
        formats: &[String],
    ) -> JobOutcome {
        let today = chrono::Local::now().date_naive();
        let period = period.resolve(today);
        let summary = match crate::reconcile::run(
            store,
            &crate::reconcile::Params::from_config(self.config, period, today),
            false,
        ) {
            Ok(s) => s,
            Err(e) => return failed(format!("{e:#}")),
        };
        for (kind, n) in &summary.by_kind {
            metrics::gauge!("vitalhub_discrepancies", "kind" => kind.clone(), "period" => summary.period.clone())
                .set(*n as f64);
        }
        let total: u64 = summary.by_kind.values().sum();
        let mut detail = format!(
            "{period}: {total} discrepancies (new {}, reopened {}, no longer found {})",
            summary.saved.new, summary.saved.reopened, summary.saved.gone
        );
        if let Some(dir) = reports {
            let written = (|| -> anyhow::Result<Vec<PathBuf>> {
                let entries = crate::report::open_entries(store, &period.to_string())?;
                std::fs::create_dir_all(dir)?;
                let mut written = Vec::new();
                for f in formats {
                    let (format, ext) = match f.as_str() {
                        "html" => (Format::Html, "html"),
                        "xlsx" => (Format::Xlsx, "xlsx"),
                        "csv" => (Format::Csv, "csv"),
                        _ => (Format::Json, "jsonl"),
                    };
                    let path = dir.join(format!("discrepancies-{}.{ext}", period.compact()));
                    crate::report::write_report(
                        &entries,
                        &period.to_string(),
                        self.config.region.label(),
                        format,
                        Some(&path),
                    )?;
                    written.push(path);
                }
                Ok(written)
            })();
            match written {
                Ok(paths) => detail.push_str(&format!("; wrote {} report(s)", paths.len())),
                Err(e) => {
                    return JobOutcome {
                        records: total,
                        detail: Some(detail),
                        error: Some(format!("writing reports: {e:#}")),
                        ..JobOutcome::default()
                    }
                }
            }
        }
        JobOutcome {
            records: total,
            detail: Some(detail),
            ..JobOutcome::default()
        }
    }

    async fn exchange_send(&self, store: &mut Store, patience: Duration) -> JobOutcome {
        let queued = match crate::exchange::amqp::queue_batches(store, self.config, None) {
            Ok(q) => q,
            Err(e) => return failed(format!("{e:#}")),
        };
        let records: u64 = queued.iter().map(|q| q.records as u64).sum();
        match crate::exchange::amqp::flush_outbox(store, self.config, patience, None).await {
            Ok(report) => JobOutcome {
                records,
                detail: Some(format!(
                    "{} batch(es) queued, {} confirmed by the broker, {} left in the outbox",
                    queued.len(),
                    report.confirmed,
                    report.failed.len()
                )),
                error: (!report.failed.is_empty()).then(|| {
                    format!(
                        "{} batch(es) not confirmed; they stay in the outbox",
                        report.failed.len()
                    )
                }),
                ..JobOutcome::default()
            },
            Err(e) => failed(format!("{e:#}")),
        }
    }
}

fn failed(error: String) -> JobOutcome {
    JobOutcome {
        error: Some(error),
        ..JobOutcome::default()
    }
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Files directly in `folder` that have not changed for a moment, in name order. Signature
/// files travel with their batch and are not listed on their own.
fn settled_files(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !name.starts_with('.') && !name.ends_with(".sig") && !name.ends_with(".partial")
        })
        .filter(|e| {
            e.metadata().is_ok_and(|m| {
                m.is_file()
                    && m.modified()
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .is_some_and(|age| age >= SETTLE)
            })
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// Moves `file` into `dir`, never over another file of the same name.
fn move_into(file: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = name_of(file);
    let mut target = dir.join(&name);
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{n}-{name}"));
        n += 1;
    }
    std::fs::rename(file, &target)?;
    Ok(target)
}
