//! `vitalhub daemon | pull | run-job | jobs` and `vitalhub simulate serve`: running unattended,
//! and doing by hand what the daemon would do.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::config::Config;
use crate::daemon::{PeriodChoice, Runner};
use crate::model::Period;
use crate::store::{JobOutcome, Store};

#[derive(Subcommand)]
pub enum SimulateAction {
    /// Serve the files of a simulated month as the health and civil-affairs APIs, on loopback
    Serve {
        /// Folder written by `vitalhub simulate --out`
        #[arg(long)]
        data: PathBuf,
        /// Port on 127.0.0.1; 0 picks a free one (the address is printed)
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Require `Authorization: Bearer` with the token in this file
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Share of requests answered 503
        #[arg(long, default_value_t = 0.0)]
        server_errors: f64,
        /// Share of requests answered 429 with Retry-After
        #[arg(long, default_value_t = 0.0)]
        throttles: f64,
        /// Seconds in the Retry-After of a 429
        #[arg(long, default_value_t = 1)]
        retry_after: u64,
        /// Share of requests never answered
        #[arg(long, default_value_t = 0.0)]
        hangs: f64,
        /// Share of answers cut off halfway
        #[arg(long, default_value_t = 0.0)]
        truncations: f64,
        /// Milliseconds added to every answer
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Seed of the fault dice
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub fn simulate_serve(action: SimulateAction) -> Result<()> {
    let SimulateAction::Serve {
        data,
        port,
        token_file,
        server_errors,
        throttles,
        retry_after,
        hangs,
        truncations,
        latency_ms,
        seed,
    } = action;
    let token = token_file
        .map(|f| {
            std::fs::read_to_string(&f)
                .map(|t| t.trim().to_owned())
                .with_context(|| format!("reading {}", f.display()))
        })
        .transpose()?;
    let faults = crate::simulate::serve::Faults {
        server_errors,
        throttles,
        retry_after_s: retry_after,
        hangs,
        truncations,
        latency: Duration::from_millis(latency_ms),
        seed,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    super::runtime()?.block_on(crate::simulate::serve::serve(&data, addr, token, faults))
}

pub fn daemon(config: &Config, db: &crate::store::Target) -> Result<ExitCode> {
    crate::daemon::run(config, db)?;
    Ok(ExitCode::SUCCESS)
}

/// Pulls one source now, as the daemon would, and records it in the job history.
pub fn pull(
    config: &Config,
    store: &mut Store,
    source: &str,
    month: Option<Period>,
) -> Result<ExitCode> {
    let stop = no_stop();
    let mut runner = Runner::new(config, stop);
    let month = month.map_or(PeriodChoice::Previous, PeriodChoice::Fixed);
    let name = format!("pull:{source}");
    let id = store.start_job(&name, "pull", Some(source), "operator")?;
    let outcome = super::runtime()?.block_on(runner.pull(store, source, month, None));
    store.finish_job(id, &outcome)?;
    Ok(print_outcome(&name, &outcome))
}

/// Runs one configured job now.
pub fn run_job(config: &Config, store: &mut Store, name: &str) -> Result<ExitCode> {
    let job = config
        .jobs
        .iter()
        .find(|j| j.name == name)
        .with_context(|| {
            let names: Vec<&str> = config.jobs.iter().map(|j| j.name.as_str()).collect();
            format!(
                "no job named '{name}' in {} (jobs: {})",
                config.source,
                names.join(", ")
            )
        })?;
    let mut runner = Runner::new(config, no_stop());
    match super::runtime()?.block_on(runner.run(store, job, "operator"))? {
        Some(outcome) => Ok(print_outcome(name, &outcome)),
        None => {
            outln!("{name}: no new file to ingest");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn jobs(store: &Store, name: Option<&str>, limit: usize) -> Result<()> {
    let runs = store.jobs(name, limit)?;
    if runs.is_empty() {
        outln!("no job has run yet");
    }
    for r in runs {
        outln!(
            "#{:<5} {:<22} {:<13} {:<9} {:<11} {} -> {}  records {} quarantined {}",
            r.id,
            r.name,
            r.kind,
            r.trigger,
            r.status,
            r.started_at,
            r.finished_at.as_deref().unwrap_or("…"),
            r.records,
            r.quarantined
        );
        if let Some(d) = &r.detail {
            outln!("        {d}");
        }
        if let Some(e) = &r.error {
            outln!("        error: {e}");
        }
    }
    Ok(())
}

fn print_outcome(name: &str, outcome: &JobOutcome) -> ExitCode {
    if let Some(d) = &outcome.detail {
        outln!("{name}: {d}");
    }
    match &outcome.error {
        Some(e) => {
            eprintln!("{name} failed: {e}");
            ExitCode::from(2)
        }
        None if outcome.interrupted => ExitCode::from(3),
        None => ExitCode::SUCCESS,
    }
}

/// A pull by hand runs to its end. Ctrl-C simply ends the process: every page stored so far
/// was committed with its checkpoint, so the next pull resumes after it.
fn no_stop() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}
