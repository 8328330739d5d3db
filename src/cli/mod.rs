//! The `vitalhub` command line.

mod bench;
mod demo;
mod exchange;
mod operators;
mod ops;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::ingest::{ingest_dir, retry_quarantined, IngestOptions, RetryOutcome};
use crate::model::{DiscrepancyKind, Period};
use crate::report::{Entry, Format};
use crate::store::{Store, Target};

#[derive(Parser)]
#[command(
    name = "vitalhub",
    version,
    about = "Reconciles agency vital-records feeds against the population registry"
)]
pub struct Cli {
    /// Database: an SQLite file or a postgres:// URL [default: database.url or database.path
    /// of the config, else vitalhub.db]
    #[arg(long, global = true)]
    db: Option<String>,
    /// Configuration file [default: the built-in config/vitalhub.toml]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest every file in DIR that a route of the config claims
    Ingest {
        dir: PathBuf,
        /// Re-read files whose content was ingested before (after a mapping fix)
        #[arg(long)]
        force: bool,
    },
    /// Find the discrepancies of a period and save them
    Reconcile {
        #[arg(long)]
        period: Period,
        /// The day the household-registration grace period counts to [default: today]
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// Train the births linkage model again instead of reusing the saved one
        #[arg(long)]
        retrain: bool,
        /// County by county: bounded memory for a province (see docs/scaling.md)
        #[arg(long)]
        partitioned: bool,
        /// With --partitioned: county jobs run at once in this process [default: the cores]
        #[arg(long)]
        jobs: Option<usize>,
        /// County by county, done by `vitalhub worker` processes taking the jobs from the
        /// RabbitMQ work queue (implies --partitioned)
        #[arg(long)]
        workers: bool,
        /// The broker for --workers [default: the [exchange.amqp] URL of the config]
        #[arg(long)]
        amqp: Option<String>,
        /// With --workers: give up when the workers have not finished within this many seconds
        #[arg(long, default_value_t = 3600)]
        wait_s: u64,
    },
    /// Take partition jobs of partitioned reconciliations from the RabbitMQ work queue
    Worker {
        /// The broker [default: the [exchange.amqp] URL of the config]
        #[arg(long)]
        amqp: Option<String>,
        /// Exit after this many seconds without a job [default: wait for jobs forever]
        #[arg(long)]
        idle_exit_s: Option<u64>,
        /// Wait this long after taking each job before doing it (tests of redelivery)
        #[arg(long, default_value_t = 0)]
        hold_ms: u64,
        /// The name results are stored under [default: host:pid]
        #[arg(long)]
        name: Option<String>,
    },
    /// Write the open discrepancies of a period
    Report {
        #[arg(long)]
        period: Period,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Output file; JSON and CSV go to stdout when absent
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Records that could not be mapped
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Review a discrepancy: confirm, resolve, dismiss or reopen it
    Review {
        id: String,
        #[arg(value_parser = ["confirmed", "resolved", "dismissed", "open"])]
        status: String,
        #[arg(long)]
        note: Option<String>,
        /// Who is acting (recorded in the history)
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Write a simulated month of the five reference feeds, with truth.jsonl (or serve one: `simulate serve`)
    #[command(args_conflicts_with_subcommands = true)]
    Simulate {
        #[command(subcommand)]
        serve: Option<ops::SimulateAction>,
        #[arg(long, required = true)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 4000)]
        families: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "2026-10")]
        period: Period,
        /// Add the typos real data has (mistyped ids, homophone names, 15-digit and full-width ids)
        #[arg(long)]
        corrupt: bool,
        /// Counties the families live in: Hebi's five, then made-up codes (at most 75); a
        /// province-sized run wants many (a province has about a hundred)
        #[arg(long, default_value_t = 5)]
        counties: usize,
    },
    /// Precision and recall of a JSON report against a truth file
    Evaluate {
        #[arg(long)]
        truth: PathBuf,
        #[arg(long)]
        report: PathBuf,
    },
    /// Simulate, ingest, reconcile and report one month on the embedded default
    Demo {
        /// Work folder
        #[arg(long, default_value = "vitalhub-demo")]
        dir: PathBuf,
        #[arg(long, default_value_t = 4000)]
        families: u64,
        #[arg(long)]
        corrupt: bool,
    },
    /// Link two CSV files, or deduplicate one, with a linkage settings file
    Link(LinkArgs),
    /// Migrant batches for partner regions
    Exchange {
        #[command(subcommand)]
        action: exchange::ExchangeAction,
    },
    /// This region's Ed25519 key pair for signing partner batches
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// List the built-in mappings, or print one
    Mappings { name: Option<String> },
    /// Run the configured jobs on their schedules until SIGTERM
    Daemon,
    /// Pull one [[sources]] entry now
    Pull {
        source: String,
        /// For monthly APIs: the month to fetch [default: the previous month]
        #[arg(long)]
        month: Option<Period>,
    },
    /// Run one [[jobs]] entry now
    RunJob { name: String },
    /// The job history, newest first
    Jobs {
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Serve the review page and the REST API
    Serve {
        /// Address to listen on [default: web.listen of the config]
        #[arg(long)]
        listen: Option<String>,
    },
    /// Operators of the review page and API
    User {
        #[command(subcommand)]
        action: operators::UserAction,
    },
    /// The hash-chained audit log
    Audit {
        #[command(subcommand)]
        action: operators::AuditAction,
    },
    /// Benchmarks that need a running server
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Times the review list over HTTP with many discrepancies (fills the --db given: use an
    /// empty one)
    Review {
        #[arg(long, default_value_t = 100_000)]
        discrepancies: u64,
        /// Requests timed per page
        #[arg(long, default_value_t = 30)]
        requests: usize,
    },
}

#[derive(clap::Args)]
struct LinkArgs {
    #[arg(long)]
    left: PathBuf,
    /// The other file; without it (or with --dedupe) LEFT is deduplicated
    #[arg(long)]
    right: Option<PathBuf>,
    #[arg(long)]
    settings: PathBuf,
    #[arg(long)]
    dedupe: bool,
    /// Matches and reviews as CSV
    #[arg(long)]
    output: PathBuf,
    /// Column holding the true entity id: prints precision, recall and F1
    #[arg(long)]
    truth_column: Option<String>,
    /// Score with this trained model instead of training (incremental use)
    #[arg(long)]
    model: Option<PathBuf>,
    /// Save the trained model here
    #[arg(long)]
    save_model: Option<PathBuf>,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Write REGION.key (private, mode 0600) and REGION.pub (for partners) into DIR
    Generate {
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Region code [default: region.code of the config]
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// Open entries (all with --all)
    List {
        #[arg(long)]
        all: bool,
    },
    /// One entry with its raw fields
    Show { id: i64 },
    /// Re-process entries with their mapping as it is now (all open ones when no id is given)
    Retry {
        ids: Vec<i64>,
        /// Use this mapping instead (a file, or builtin:NAME)
        #[arg(long)]
        mapping: Option<String>,
    },
}

pub fn main() -> Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default_embedded(),
    };
    let json_logs = matches!(cli.log_format, LogFormat::Json)
        || config.daemon.log_format == crate::daemon::LogFormat::Json;
    // The daemon reports what it does; one-off commands speak only of trouble.
    let level = if matches!(cli.command, Command::Daemon) {
        "info"
    } else {
        "warn"
    };
    init_logging(json_logs, level);
    if let Some(db) = &cli.db {
        config.database.set_target(Target::parse(db));
    }
    let db = config.database.target();
    let open = || Store::connect(&db).with_context(|| format!("opening database {db}"));
    match cli.command {
        Command::Ingest { dir, force } => {
            let mut store = open()?;
            let opts = IngestOptions {
                force,
                progress: true,
                partners: config.partners.clone(),
                ..IngestOptions::default()
            };
            let (reports, unrouted) = ingest_dir(&mut store, &config, &dir, &opts)?;
            print_ingest(&reports);
            for u in &unrouted {
                outln!(
                    "skipped {} (no route in {} matches its name)",
                    u.path.display(),
                    config.source
                );
            }
            let failed = reports.iter().filter(|r| r.error.is_some()).count();
            if failed > 0 {
                eprintln!(
                    "{failed} file(s) could not be read to the end; see `vitalhub quarantine list`"
                );
                return Ok(std::process::ExitCode::from(2));
            }
        }
        Command::Reconcile {
            period,
            as_of,
            retrain,
            partitioned,
            jobs,
            workers,
            amqp,
            wait_s,
        } => {
            let mut store = open()?;
            let as_of = as_of.unwrap_or_else(|| chrono::Local::now().date_naive());
            let started = std::time::Instant::now();
            let params = crate::reconcile::Params::from_config(&config, period, as_of);
            let summary = if workers {
                let url = amqp_url(&config, amqp)?;
                server_runtime()?.block_on(crate::worker::dispatch(
                    &mut store,
                    &url,
                    &params,
                    retrain,
                    std::time::Duration::from_secs(wait_s),
                ))?
            } else if partitioned {
                let jobs = jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
                let connect = || Store::connect(&db);
                crate::reconcile::partition::run_partitioned(
                    &mut store, connect, &params, retrain, jobs,
                )?
            } else {
                crate::reconcile::run(&mut store, &params, retrain)?
            };
            outln!(
                "reconciled {} as of {} in {:.3} s",
                summary.period,
                summary.as_of,
                started.elapsed().as_secs_f64()
            );
            for (kind, n) in &summary.by_kind {
                outln!("  {kind:<30} {n:>7}");
            }
            let s = &summary.saved;
            outln!(
                "  new {}, unchanged {}, updated {}, reopened {}, no longer found {}",
                s.new,
                s.unchanged,
                s.updated,
                s.reopened,
                s.gone
            );
            outln!("  births linkage model: {}", summary.births_model);
            if let Some(digests) = &summary.registry_digests {
                outln!("  registry digests: {digests}");
            }
        }
        Command::Report {
            period,
            format,
            output,
        } => {
            let store = open()?;
            let entries = crate::report::open_entries(&store, &period.to_string())?;
            crate::report::write_report(
                &entries,
                &period.to_string(),
                config.region.label(),
                format,
                output.as_deref(),
            )?;
        }
        Command::Quarantine { action } => quarantine(open()?, action, &config.partners)?,
        Command::Review {
            id,
            status,
            note,
            by,
        } => {
            let mut store = open()?;
            store.review_discrepancy(&id, &status, &by, note.as_deref())?;
            outln!("{id}: {status}");
        }
        Command::Simulate {
            serve: Some(action),
            ..
        } => ops::simulate_serve(action)?,
        Command::Simulate {
            serve: None,
            out,
            families,
            seed,
            period,
            corrupt,
            counties,
        } => {
            let params = crate::simulate::SimulateParams {
                families,
                seed,
                period,
                corrupt,
                counties,
            };
            let out = out.context("--out is required")?;
            let sim = crate::simulate::simulate(&params, &out)?;
            for f in &sim.files {
                outln!("wrote {}", f.display());
            }
            outln!(
                "{} registry persons, {} expected discrepancies; reconcile with --period {} --as-of {}",
                sim.persons,
                sim.truth,
                sim.period,
                sim.as_of()
            );
        }
        Command::Evaluate { truth, report } => {
            let truth = crate::evaluate::read_truth(&truth)?;
            let text = std::fs::read_to_string(&report)
                .with_context(|| format!("reading {}", report.display()))?;
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let scores = crate::evaluate::evaluate(&truth, &lines)?;
            output!("{}", crate::evaluate::format_table(&scores));
        }
        Command::Demo {
            dir,
            families,
            corrupt,
        } => {
            let db = match &cli.db {
                None => None,
                Some(_) => match db {
                    Target::Sqlite(path) => Some(path),
                    Target::Postgres(_) => anyhow::bail!(
                        "the demo runs on the embedded SQLite store; give --db a file path"
                    ),
                },
            };
            demo::run(&dir, families, corrupt, db.as_deref())?
        }
        Command::Link(args) => link(args)?,
        Command::Exchange { action } => return exchange::run(action, &config, open),
        Command::Daemon => return ops::daemon(&config, &db),
        Command::Pull { source, month } => return ops::pull(&config, &mut open()?, &source, month),
        Command::RunJob { name } => return ops::run_job(&config, &mut open()?, &name),
        Command::Jobs { name, limit } => ops::jobs(&open()?, name.as_deref(), limit)?,
        Command::Worker {
            amqp,
            idle_exit_s,
            hold_ms,
            name,
        } => {
            let url = amqp_url(&config, amqp)?;
            let options = crate::worker::WorkerOptions {
                name: name.unwrap_or_else(|| {
                    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
                    format!("{}:{}", host.trim(), std::process::id())
                }),
                idle_exit: idle_exit_s.map(std::time::Duration::from_secs),
                hold: std::time::Duration::from_millis(hold_ms),
                grace_days: config.reconcile.grace_days,
                region_prefix: config.region.prefix().to_owned(),
            };
            let stored = server_runtime()?.block_on(crate::worker::work(&db, &url, &options))?;
            outln!("worker {}: {stored} partition job(s) stored", options.name);
        }
        Command::Serve { listen } => return operators::serve(&config, open()?, listen),
        Command::User { action } => return operators::user(&mut open()?, action),
        Command::Audit { action } => return operators::audit(&open()?, action),
        Command::Bench {
            what:
                BenchWhat::Review {
                    discrepancies,
                    requests,
                },
        } => return bench::review(&config, open()?, discrepancies, requests.max(1)),
        Command::Keys {
            action: KeysAction::Generate { out, region },
        } => {
            let region = region.unwrap_or_else(|| config.region.code.clone());
            let (private, public) = crate::exchange::generate_keys(&out, &region)?;
            outln!(
                "private key: {} (mode 0600; keep it secret, point exchange.private_key at it)",
                private.display()
            );
            outln!(
                "public key:  {} (give it to partner regions)",
                public.display()
            );
        }
        Command::Mappings { name } => match name {
            None => {
                for n in crate::mapping::builtin_names() {
                    let m = crate::mapping::Mapping::load(&format!("builtin:{n}"))?;
                    outln!("builtin:{n:<26} {:<18} {}", m.feed.name(), m.description);
                }
            }
            Some(n) => match crate::mapping::builtin(&n) {
                Some(text) => output!("{text}"),
                None => bail!("no built-in mapping '{n}'"),
            },
        },
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn link(args: LinkArgs) -> Result<()> {
    let LinkArgs {
        left,
        right,
        settings,
        dedupe,
        output,
        truth_column,
        model,
        save_model,
    } = args;
    use crate::linkage::fs::{Model, Settings, Table};
    let text = std::fs::read_to_string(&settings)
        .with_context(|| format!("reading {}", settings.display()))?;
    let settings =
        Settings::from_toml(&text).with_context(|| format!("settings {}", settings.display()))?;
    let left_t = Table::read_csv(&left).with_context(|| format!("reading {}", left.display()))?;
    let right_t = match (&right, dedupe) {
        (Some(r), false) => {
            Some(Table::read_csv(r).with_context(|| format!("reading {}", r.display()))?)
        }
        _ => None,
    };
    let model = model
        .map(|p| Model::load(&p).with_context(|| format!("model {}", p.display())))
        .transpose()?;
    let id = settings.unique_id.clone();
    let job = crate::linkage::run::LinkJob {
        settings,
        left: &left_t,
        right: right_t.as_ref(),
        model,
        truth_column,
    };
    let (report, model, decided) = crate::linkage::run::run(job)?;
    crate::linkage::run::write_pairs(
        &output,
        (&left_t, right_t.as_ref().unwrap_or(&left_t), &id),
        &decided,
    )?;
    if let Some(p) = save_model {
        model.save(&p)?;
    }
    outln!(
        "records: {} x {}",
        report.left_records,
        report.right_records
    );
    outln!(
        "candidate pairs: {} (per blocking rule: {:?})",
        report.candidate_pairs,
        report.pairs_per_rule
    );
    outln!("matches: {}, reviews: {}", report.matches, report.reviews);
    if right_t.is_none() {
        let ids = crate::linkage::run::clusters(left_t.rows.len(), &decided);
        let mut sizes = std::collections::HashMap::new();
        for c in &ids {
            *sizes.entry(*c).or_insert(0u32) += 1;
        }
        let multi = sizes.values().filter(|n| **n > 1).count();
        outln!(
            "clusters: {} records in {} clusters, {multi} with more than one record",
            ids.len(),
            sizes.len()
        );
    }
    outln!(
        "time: blocking {:.3} s, train {:.3} s, score {:.3} s, total {:.3} s; {:.0} pairs scored per second per core ({:.0} counting blocking)",
        report.blocking_seconds,
        report.train_seconds,
        report.score_seconds,
        report.total_seconds,
        report.pairs_per_second_per_core,
        report.pairs_per_second_per_core_with_blocking
    );
    if let Some(a) = &report.truth {
        outln!(
            "truth: {} true pairs, blocking recall {:.4}, precision {:.4}, recall {:.4}, F1 {:.4}",
            a.true_pairs,
            a.blocking_recall,
            a.precision,
            a.recall,
            a.f1
        );
    }
    Ok(())
}

fn print_ingest(reports: &[crate::ingest::FileReport]) {
    outln!(
        "{:<40} {:<18} {:>8} {:>8} {:>9} {:>11} {:>8} {:>9} {:>7}",
        "file",
        "feed",
        "read",
        "upserted",
        "unchanged",
        "quarantined",
        "seconds",
        "records/s",
        "MB/s"
    );
    for r in reports {
        let name = r
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let note = if r.already_landed {
            "  (already ingested)"
        } else {
            ""
        };
        let secs = r.elapsed.as_secs_f64().max(1e-9);
        outln!(
            "{name:<40} {:<18} {:>8} {:>8} {:>9} {:>11} {:>8.3} {:>9.0} {:>7.2}{note}",
            r.feed,
            r.read,
            r.upserted,
            r.unchanged,
            r.quarantined,
            secs,
            r.read as f64 / secs,
            r.bytes as f64 / 1e6 / secs
        );
        if let Some(e) = &r.error {
            outln!("  error: {e}");
        } else if let Some(s) = &r.signature {
            outln!("  signature {s}");
        }
    }
}

fn quarantine(
    mut store: Store,
    action: QuarantineAction,
    partners: &[crate::exchange::Partner],
) -> Result<()> {
    match action {
        QuarantineAction::List { all } => {
            let entries = store.quarantine_entries(all)?;
            outln!(
                "{:>6} {:<8} {:<40} {:<12} {:<16} reason",
                "id",
                "status",
                "file",
                "where",
                "field"
            );
            for e in &entries {
                let file = Path::new(&e.file_path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let status = serde_json::to_value(e.status)?
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                outln!(
                    "{:>6} {status:<8} {file:<40} {:<12} {:<16} {}",
                    e.id,
                    e.location,
                    e.field.as_deref().unwrap_or("-"),
                    e.reason
                );
            }
            outln!(
                "{} entr{}",
                entries.len(),
                if entries.len() == 1 { "y" } else { "ies" }
            );
        }
        QuarantineAction::Show { id } => {
            let e = store.quarantine_entry(id)?;
            outln!("{}", serde_json::to_string_pretty(&e)?);
        }
        QuarantineAction::Retry { ids, mapping } => {
            let entries = if ids.is_empty() {
                store.quarantine_entries(false)?
            } else {
                ids.iter()
                    .map(|&id| store.quarantine_entry(id))
                    .collect::<Result<_, _>>()?
            };
            let (mut stored, mut failing) = (0, 0);
            for e in &entries {
                match retry_quarantined(&mut store, e, mapping.as_deref(), partners)? {
                    RetryOutcome::Stored => stored += 1,
                    RetryOutcome::StillFailing(why) => {
                        failing += 1;
                        outln!("{:>6} still fails: {why}", e.id);
                    }
                    RetryOutcome::FileReread { error: None } => stored += 1,
                    RetryOutcome::FileReread { error: Some(why) } => {
                        failing += 1;
                        outln!("{:>6} file still unreadable: {why}", e.id);
                    }
                }
            }
            outln!("{stored} re-processed, {failing} still failing");
        }
    }
    Ok(())
}

/// A single-threaded runtime for one-off commands that talk to a broker or an agency API.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A runtime with a worker per core, for serving: one slow page never holds up the others.
/// The broker URL: given on the command line, else the config's `[exchange.amqp]`.
fn amqp_url(config: &Config, given: Option<String>) -> Result<String> {
    match (given, &config.amqp) {
        (Some(url), _) => Ok(url),
        (None, Some(settings)) => Ok(settings.url()?),
        (None, None) => anyhow::bail!("no broker: give --amqp or configure [exchange.amqp]"),
    }
}

fn server_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn init_logging(json: bool, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VITALHUB_LOG")
        .unwrap_or_else(|_| level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Kinds in report order, with counts, for summaries.
pub(crate) fn count_by_kind(entries: &[Entry]) -> Vec<(DiscrepancyKind, usize)> {
    DiscrepancyKind::ALL
        .iter()
        .map(|k| (*k, entries.iter().filter(|e| e.kind == *k).count()))
        .collect()
}
