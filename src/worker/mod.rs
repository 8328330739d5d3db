//! Partitioned reconciliation shared among processes: a coordinator puts one job per county
//! on a durable RabbitMQ work queue and `vitalhub worker` processes take them.
//!
//! A worker takes one job at a time (prefetch 1), stores the county's result in the shared
//! database and only then acknowledges the message; a worker that dies holding a job never
//! acknowledges it, so the broker gives it to another worker. A result is stored once per
//! (run, county): a job done twice stores nothing the second time. The coordinator waits
//! until every county has a result and merges them (`reconcile::partition::finish_run`).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use vitalhub_connectors::amqp::{
    declare_topology, Backoff, Consumer, Outgoing, Publisher, Topology,
};

use crate::reconcile::partition;
use crate::reconcile::{Params, RunSummary};
use crate::store::{Store, Target};

/// The exchange partition jobs are published to; the queue is `vitalhub.reconcile.partitions`.
pub const EXCHANGE: &str = "vitalhub.reconcile";
const ROUTING_KEY: &str = "partitions";

pub fn topology() -> Topology {
    Topology::for_region(EXCHANGE, ROUTING_KEY)
}

/// One job on the queue: a county of a run stored in the database.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Job {
    pub run: String,
    pub division: String,
}

/// Creates a run, queues its jobs and waits (up to `timeout`) for workers to do them, then
/// merges and saves the run's discrepancies.
pub async fn dispatch(
    store: &mut Store,
    amqp_url: &str,
    params: &Params,
    retrain: bool,
    timeout: Duration,
) -> anyhow::Result<RunSummary> {
    let run = partition::create_run(store, params, retrain)?;
    declare_topology(amqp_url, &topology())
        .await
        .context("declaring the partition work queue")?;
    let mut publisher = Publisher::new(amqp_url, EXCHANGE);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    for division in &run.partitions {
        let job = Job {
            run: run.run.clone(),
            division: division.clone(),
        };
        let message = Outgoing {
            message_id: format!("{}/{}", job.run, job.division),
            routing_key: ROUTING_KEY.to_owned(),
            body: serde_json::to_vec(&job).expect("jobs serialise"),
            content_type: "application/json".to_owned(),
            headers: Vec::new(),
        };
        publisher
            .publish_patiently(&message, &mut backoff, Duration::from_secs(60))
            .await
            .with_context(|| format!("queueing partition {division} of run {}", run.run))?;
    }
    tracing::info!(run = %run.run, partitions = run.partitions.len(), "partition jobs queued");
    let started = Instant::now();
    loop {
        let missing = partition::missing_partitions(store, &run)?;
        if missing.is_empty() {
            break;
        }
        if started.elapsed() > timeout {
            anyhow::bail!(
                "run {}: no worker finished partitions {missing:?} within {} s (are workers running? `vitalhub worker`)",
                run.run,
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(partition::finish_run(store, &run, params)?)
}

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// A name for the results it stores (host and process id by default).
    pub name: String,
    /// Exit after this long without a job (`None`: wait for jobs forever).
    pub idle_exit: Option<Duration>,
    /// Wait this long after taking a job before doing it: lets a test stop a worker that
    /// holds a job.
    pub hold: Duration,
    pub grace_days: i64,
    pub region_prefix: String,
}

/// Takes jobs until idle for `idle_exit` (or forever); returns the number of jobs it stored.
pub async fn work(target: &Target, amqp_url: &str, options: &WorkerOptions) -> anyhow::Result<u64> {
    let mut store = Some(Store::connect(target)?);
    let mut consumer = Consumer::new(amqp_url, topology(), 1);
    let mut stored = 0;
    while let Some(message) = consumer.next(options.idle_exit).await {
        let job: Job = match serde_json::from_slice(&message.body) {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(error = %e, "a message on the partition queue is no job; dead-lettered");
                message.dead_letter().await?;
                continue;
            }
        };
        let mut db = store.take().expect("the store is returned after every job");
        let Some(run) = db.partition_run(&job.run)? else {
            tracing::warn!(run = %job.run, "job of an unknown run; dead-lettered");
            store = Some(db);
            message.dead_letter().await?;
            continue;
        };
        let Some(params) = partition::run_params(&run, &options.region_prefix, options.grace_days)
        else {
            store = Some(db);
            message.dead_letter().await?;
            continue;
        };
        // Progress lines name runs and counties only, never a person.
        status!(
            "took partition {} of run {}{}",
            job.division,
            job.run,
            if message.redelivered {
                " (redelivered)"
            } else {
                ""
            }
        );
        tokio::time::sleep(options.hold).await;
        let name = options.name.clone();
        let division = job.division.clone();
        let (db, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = partition::do_job(&mut db, &run, &params, &division, &name);
            (db, outcome)
        })
        .await
        .context("a partition job panicked")?;
        store = Some(db);
        let fresh = outcome?;
        message.ack().await?;
        if fresh {
            stored += 1;
        }
        status!(
            "finished partition {} of run {}{}",
            job.division,
            job.run,
            if fresh { "" } else { " (already stored)" }
        );
    }
    Ok(stored)
}
