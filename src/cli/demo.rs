//! `vitalhub demo`: one month end to end on the embedded default.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use super::count_by_kind;
use crate::config::Config;
use crate::ingest::{ingest_dir, IngestOptions};
use crate::model::Period;
use crate::report::Format;
use crate::report::{open_entries, write_report};
use crate::simulate::{simulate, SimulateParams};
use crate::store::Store;

pub fn run(dir: &Path, families: u64, corrupt: bool, db: Option<&Path>) -> Result<()> {
    let started = Instant::now();
    let period = Period::containing(chrono::Local::now().date_naive()).previous();
    let feeds = dir.join("feeds");
    let sim = simulate(
        &SimulateParams {
            families,
            seed: 1,
            period,
            corrupt,
            counties: crate::simulate::DEFAULT_COUNTIES,
        },
        &feeds,
    )?;
    let db_path = db
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("vitalhub.db"));
    // A demo starts from an empty database so that its numbers are the month's own.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let mut store = Store::open(&db_path)?;
    let config = Config::default_embedded();
    let t_ingest = Instant::now();
    let (files, _) = ingest_dir(
        &mut store,
        &config,
        &feeds,
        &IngestOptions {
            force: false,
            progress: true,
            partners: config.partners.clone(),
            ..IngestOptions::default()
        },
    )?;
    let ingest_time = t_ingest.elapsed();
    let t_reconcile = Instant::now();
    let summary = crate::reconcile::run(
        &mut store,
        &crate::reconcile::Params::from_config(&config, period, sim.as_of()),
        false,
    )?;
    let reconcile_time = t_reconcile.elapsed();
    let entries = open_entries(&store, &period.to_string())?;
    let html = dir.join("report.html");
    let xlsx = dir.join("report.xlsx");
    let json = dir.join("report.jsonl");
    write_report(
        &entries,
        &summary.period,
        config.region.label(),
        Format::Html,
        Some(&html),
    )?;
    write_report(
        &entries,
        &summary.period,
        config.region.label(),
        Format::Xlsx,
        Some(&xlsx),
    )?;
    write_report(
        &entries,
        &summary.period,
        config.region.label(),
        Format::Json,
        Some(&json),
    )?;

    outln!(
        "vitalhub demo: {} for the Hebi districts ({} families, as of {})",
        period,
        families,
        sim.as_of()
    );
    outln!();
    outln!(
        "{:<22} {:<40} {:>8} {:>11}",
        "feed",
        "file",
        "records",
        "quarantined"
    );
    for f in &files {
        let name = f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        outln!(
            "{:<22} {:<40} {:>8} {:>11}",
            f.feed,
            name,
            f.read,
            f.quarantined
        );
    }
    outln!();
    outln!("{:<30} {:<22} {:>6}", "discrepancy", "", "count");
    for (kind, n) in count_by_kind(&entries) {
        outln!("{:<30} {:<22} {:>6}", kind.name(), kind.label_zh(), n);
    }
    outln!("{:<30} {:<22} {:>6}", "total", "", entries.len());
    let truth = crate::evaluate::read_truth(&dir.join("feeds/truth.jsonl"))?;
    let lines: Vec<String> = std::fs::read_to_string(&json)?
        .lines()
        .map(str::to_owned)
        .collect();
    let scores = crate::evaluate::evaluate(&truth, &lines)?;
    if let Some(o) = scores.get("overall") {
        outln!();
        outln!(
            "against the simulator's truth: precision {:.3}, recall {:.3}",
            o.precision(),
            o.recall()
        );
    }
    outln!();
    outln!(
        "time: ingest {:.2} s, reconcile {:.2} s, total {:.2} s",
        ingest_time.as_secs_f64(),
        reconcile_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    outln!(
        "reports: {}  {}  {}",
        html.display(),
        xlsx.display(),
        json.display()
    );
    outln!("database: {}", db_path.display());
    Ok(())
}
