//! The daemon's loop: one instance per database, jobs one at a time on their schedules.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Local};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::config::{JobConfig, JobKind};
use super::jobs::Runner;
use crate::config::Config;
use crate::store::{Store, Target};

/// Holds the database's daemon lock for as long as it lives. Either way the lock dies with the
/// process however it dies, so a SIGKILL never leaves a stale lock behind: SQLite's is a kernel
/// file lock beside the database, PostgreSQL's a session advisory lock on the server.
pub enum InstanceLock {
    File { _file: File, path: PathBuf },
    Postgres(Box<Store>),
}

impl InstanceLock {
    pub fn acquire(db: &Target) -> anyhow::Result<InstanceLock> {
        let path = match db {
            Target::Sqlite(path) => PathBuf::from(format!("{}.daemon.lock", path.display())),
            Target::Postgres(_) => {
                let store = Store::connect(db).with_context(|| format!("opening {db}"))?;
                anyhow::ensure!(
                    store.try_daemon_lock()?,
                    "another vitalhub daemon is running on {db} (its PostgreSQL advisory lock is held)"
                );
                return Ok(InstanceLock::Postgres(Box::new(store)));
            }
        };
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(InstanceLock::File { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another vitalhub daemon is running on {db} (lock {} is held)",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT. A job under way is finished, or for a pull stopped
/// after its last saved page; then the process exits cleanly.
pub fn run(config: &Config, db: &Target) -> anyhow::Result<()> {
    let _lock = InstanceLock::acquire(db)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(tokio::sync::Notify::new());
    let health = Arc::new(std::sync::Mutex::new(String::from("idle")));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&config.daemon.listen)
            .await
            .with_context(|| format!("binding daemon.listen {}", config.daemon.listen))?;
        let address = listener.local_addr()?;
        tokio::spawn(serve_metrics(listener, metrics, health.clone()));
        tokio::spawn(watch_signals(stop.clone(), wake.clone()));
        if config.web.enabled {
            // The review page gets its own connection: a long reconcile never blocks a clerk.
            let web_store = Store::connect(db).with_context(|| format!("opening {db}"))?;
            let web_listener = tokio::net::TcpListener::bind(&config.web.listen)
                .await
                .with_context(|| format!("binding web.listen {}", config.web.listen))?;
            status!(
                "vitalhub review page on http://{}",
                web_listener.local_addr()?
            );
            let state = Arc::new(crate::web::AppState::new(web_store, config.clone()));
            tokio::spawn(crate::web::serve(
                web_listener,
                state,
                std::future::pending(),
            ));
        }
        tracing::info!(listen = %address, jobs = config.jobs.len(), "daemon started");
        status!("vitalhub daemon: /healthz and /metrics on http://{address}");
        let mut store = Store::connect(db).with_context(|| format!("opening {db}"))?;
        let abandoned = store.mark_abandoned_jobs()?;
        let mut schedule = Schedule::new(config, Local::now());
        let mut runner = Runner::new(config, stop.clone());
        // Jobs a previous daemon left unfinished (it was killed) run first: a pull resumes from
        // its saved cursor.
        let mut queue: Vec<(String, &'static str)> = Vec::new();
        if abandoned > 0 {
            for job in &config.jobs {
                let last = store.jobs(Some(&job.name), 1)?;
                if last.first().is_some_and(|r| r.status == "interrupted") {
                    queue.push((job.name.clone(), "resume"));
                }
            }
        }
        let poll = Duration::from_secs(config.daemon.poll_s.max(1));
        let mut next_poll = tokio::time::Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let now = Local::now();
            for name in schedule.due(now) {
                queue.push((name, "schedule"));
            }
            if tokio::time::Instant::now() >= next_poll {
                for job in config
                    .jobs
                    .iter()
                    .filter(|j| matches!(j.kind, JobKind::Watch { .. }))
                {
                    queue.push((job.name.clone(), "watch"));
                }
                next_poll = tokio::time::Instant::now() + poll;
            }
            while let Some((name, trigger)) = (!queue.is_empty()).then(|| queue.remove(0)) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Some(job) = config.jobs.iter().find(|j| j.name == name) else {
                    continue;
                };
                set(&health, &format!("running {name}"));
                let outcome = runner.run(&mut store, job, trigger).await?;
                set(&health, "idle");
                if outcome.is_some_and(|o| o.error.is_none() && !o.interrupted) {
                    for follower in schedule.after_success(&name) {
                        queue.push((follower, "after"));
                    }
                }
            }
            let until_next = schedule
                .next_due()
                .map(|t| (t - Local::now()).to_std().unwrap_or_default())
                .unwrap_or(Duration::from_secs(3600))
                .min(next_poll.saturating_duration_since(tokio::time::Instant::now()))
                .max(Duration::from_millis(50));
            tokio::select! {
                _ = tokio::time::sleep(until_next) => {}
                _ = wake.notified() => {}
            }
        }
        tracing::info!("daemon stopped");
        anyhow::Ok(())
    })
}

fn set(health: &std::sync::Mutex<String>, text: &str) {
    if let Ok(mut h) = health.lock() {
        *h = text.to_owned();
    }
}

async fn watch_signals(stop: Arc<AtomicBool>, wake: Arc<tokio::sync::Notify>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for signals");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutdown asked; finishing or checkpointing the running job");
    stop.store(true, Ordering::SeqCst);
    wake.notify_one();
}

async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: PrometheusHandle,
    health: Arc<std::sync::Mutex<String>>,
) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { m.render() }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let h = health.clone();
                async move {
                    let state = h.lock().map(|s| s.clone()).unwrap_or_default();
                    axum::Json(serde_json::json!({"status": "ok", "job": state}))
                }
            }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "metrics server stopped");
    }
}

/// When each scheduled job is next due, and which jobs wait on which.
struct Schedule<'a> {
    next: HashMap<&'a str, DateTime<Local>>,
    jobs: &'a [JobConfig],
    /// Follower -> the jobs it waits for that have succeeded since it last ran.
    waiting: HashMap<&'a str, Vec<String>>,
}

impl<'a> Schedule<'a> {
    fn new(config: &'a Config, now: DateTime<Local>) -> Schedule<'a> {
        let mut next = HashMap::new();
        for job in &config.jobs {
            if let Some(cron) = &job.schedule {
                if let Ok(t) = cron.find_next_occurrence(&now, false) {
                    next.insert(job.name.as_str(), t);
                }
            }
        }
        Schedule {
            next,
            jobs: &config.jobs,
            waiting: HashMap::new(),
        }
    }

    /// Jobs due at `now`; each is moved on to its following occurrence.
    fn due(&mut self, now: DateTime<Local>) -> Vec<String> {
        let mut due = Vec::new();
        for job in self.jobs {
            let Some(cron) = &job.schedule else { continue };
            if self.next.get(job.name.as_str()).is_some_and(|t| *t <= now) {
                due.push(job.name.clone());
                match cron.find_next_occurrence(&now, false) {
                    Ok(t) => self.next.insert(job.name.as_str(), t),
                    Err(_) => self.next.remove(job.name.as_str()),
                };
            }
        }
        due
    }

    fn next_due(&self) -> Option<DateTime<Local>> {
        self.next.values().min().copied()
    }

    /// Records `name`'s success and returns the jobs whose `after` list it completes.
    fn after_success(&mut self, name: &str) -> Vec<String> {
        let mut ready = Vec::new();
        for job in self.jobs {
            if !job.after.iter().any(|a| a == name) {
                continue;
            }
            let done = self.waiting.entry(job.name.as_str()).or_default();
            if !done.iter().any(|d| d == name) {
                done.push(name.to_owned());
            }
            if job.after.iter().all(|a| done.contains(a)) {
                done.clear();
                ready.push(job.name.clone());
            }
        }
        ready
    }
}
