//! `vitalhub exchange ...`: migrant batches for partner regions, by file or over RabbitMQ.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;

use crate::config::Config;
use crate::exchange::amqp::{self, ListenOptions};
use crate::store::Store;

#[derive(Subcommand)]
pub enum ExchangeAction {
    /// Write a signed batch for partner REGION into DIR: its people who live here, new or
    /// changed since the last batch to it
    Export {
        #[arg(long)]
        to: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Build the next batch for every partner (or --to REGION), put it in the outbox and
    /// publish everything the broker has not confirmed yet
    Send {
        #[arg(long)]
        to: Option<String>,
        /// How long to keep reconnecting to an unreachable broker, in seconds
        #[arg(long, default_value_t = 300)]
        patience: u64,
        /// Publish at most this many batches a second [default: as fast as the broker confirms]
        #[arg(long)]
        rate: Option<std::num::NonZeroU32>,
    },
    /// Publish batch files this region signed (from `exchange export`) over the broker
    Publish {
        files: Vec<PathBuf>,
        #[arg(long, default_value_t = 300)]
        patience: u64,
        /// Publish at most this many batches a second [default: as fast as the broker confirms]
        #[arg(long)]
        rate: Option<std::num::NonZeroU32>,
    },
    /// Consume this region's queue: verify, apply and acknowledge partner batches
    Listen {
        /// Stop after this many seconds without a message (default: run until stopped)
        #[arg(long)]
        idle_exit: Option<u64>,
        /// Stop after this many messages
        #[arg(long)]
        max: Option<u64>,
    },
    /// The outbox and what was received
    Status,
}

pub fn run(
    action: ExchangeAction,
    config: &Config,
    open: impl Fn() -> Result<Store>,
) -> Result<ExitCode> {
    match action {
        ExchangeAction::Export { to, out } => {
            let mut store = open()?;
            let export = crate::exchange::export(&mut store, config, &to, &out)?;
            match (&export.file, &export.message_id) {
                (Some(file), Some(id)) => outln!(
                    "wrote {} ({} records, message {id}) and its signature",
                    file.display(),
                    export.records
                ),
                _ => outln!("nothing new for {to} since the last batch"),
            }
            Ok(ExitCode::SUCCESS)
        }
        ExchangeAction::Send { to, patience, rate } => {
            let mut store = open()?;
            for q in amqp::queue_batches(&mut store, config, to.as_deref())? {
                outln!(
                    "queued message {} for {} ({} records)",
                    q.message_id,
                    q.partner,
                    q.records
                );
            }
            flush(&mut store, config, patience, rate)
        }
        ExchangeAction::Publish {
            files,
            patience,
            rate,
        } => {
            let mut store = open()?;
            let queued = amqp::queue_files(&mut store, config, &files)?;
            outln!("queued {} batch files", queued.len());
            flush(&mut store, config, patience, rate)
        }
        ExchangeAction::Listen { idle_exit, max } => {
            let mut store = open()?;
            let options = ListenOptions {
                idle_exit: idle_exit.map(Duration::from_secs),
                max_messages: max,
            };
            let report = super::runtime()?.block_on(amqp::listen(&mut store, config, &options))?;
            outln!(
                "applied {} batches, {} seen before, {} rejected (dead-lettered); {} connections",
                report.applied,
                report.duplicates,
                report.rejected,
                report.connections
            );
            Ok(ExitCode::SUCCESS)
        }
        ExchangeAction::Status => {
            let store = open()?;
            let c = store.exchange_counts()?;
            outln!(
                "outbox: {} waiting for the broker, {} confirmed",
                c.outbox_pending,
                c.outbox_confirmed
            );
            for e in store.outbox_pending()? {
                outln!(
                    "  waiting {} to {} ({} records, {} attempts){}",
                    e.message_id,
                    e.partner,
                    e.records,
                    e.attempts,
                    e.last_error.map(|r| format!(": {r}")).unwrap_or_default()
                );
            }
            outln!(
                "received: {} applied, {} rejected",
                c.inbox_applied,
                c.inbox_rejected
            );
            for e in store.inbox()?.iter().filter(|e| e.status == "rejected") {
                outln!(
                    "  rejected {} at {}: {}",
                    e.message_id,
                    e.received_at,
                    e.reason.as_deref().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn flush(
    store: &mut Store,
    config: &Config,
    patience: u64,
    rate: Option<std::num::NonZeroU32>,
) -> Result<ExitCode> {
    let report = super::runtime()?.block_on(amqp::flush_outbox(
        store,
        config,
        Duration::from_secs(patience),
        rate,
    ))?;
    outln!("confirmed by the broker: {} batches", report.confirmed);
    for (id, partner, reason) in &report.failed {
        outln!("not delivered {id} to {partner}: {reason} (kept in the outbox)");
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
