//! The partner exchange over RabbitMQ: an outbox published with confirms, and a consumer that
//! applies each batch in one transaction before acknowledging it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use vitalhub_connectors::amqp::{Backoff, Consumer, Outgoing, PublishError, Publisher, Topology};

use crate::config::{AmqpSettings, Config};
use crate::ingest::{ingest_file, IngestOptions};
use crate::mapping::Mapping;
use crate::store::{sha256_hex, Store};

const MAPPING: &str = "builtin:exchange-migrants-json";

/// A batch put in the outbox.
#[derive(Debug, Clone)]
pub struct Queued {
    pub partner: String,
    pub message_id: String,
    pub records: usize,
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Default)]
pub struct FlushReport {
    pub confirmed: u64,
    /// (message id, partner, reason) of batches left in the outbox.
    pub failed: Vec<(String, String, String)>,
}

/// What a listener did.
#[derive(Debug, Clone, Default)]
pub struct ListenReport {
    pub applied: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub connections: u64,
}

pub struct ListenOptions {
    /// Stop once no message came for this long (while connected); run until killed without.
    pub idle_exit: Option<Duration>,
    /// Stop after this many messages.
    pub max_messages: Option<u64>,
}

fn settings(config: &Config) -> anyhow::Result<&AmqpSettings> {
    config
        .amqp
        .as_ref()
        .context("[exchange.amqp] is not configured")
}

/// Builds the next batch for each partner (or only `to`) and puts it in the outbox.
pub fn queue_batches(
    store: &mut Store,
    config: &Config,
    to: Option<&str>,
) -> anyhow::Result<Vec<Queued>> {
    let partners: Vec<&str> = match to {
        Some(region) => vec![region],
        None => config.partners.iter().map(|p| p.region.as_str()).collect(),
    };
    if partners.is_empty() {
        bail!("no partner regions are configured ([[exchange.partners]])");
    }
    let mut queued = Vec::new();
    for partner in partners {
        if let Some(batch) = super::build_batch(store, config, partner)? {
            store.queue_outbound(
                partner,
                &batch.message_id,
                &batch.body,
                &batch.signature,
                batch.records as u64,
                &batch.fingerprints,
            )?;
            queued.push(Queued {
                partner: partner.to_owned(),
                message_id: batch.message_id,
                records: batch.records,
            });
        }
    }
    Ok(queued)
}

/// Puts batch files signed by this region (from `exchange export`) in the outbox, so batches
/// written while the broker was out of reach can still go over it.
pub fn queue_files(
    store: &mut Store,
    config: &Config,
    files: &[PathBuf],
) -> anyhow::Result<Vec<Queued>> {
    let key_path = config
        .private_key
        .as_ref()
        .context("exchange.private_key is not set in the config")?;
    let ours = super::Partner {
        region: config.region.code.clone(),
        key: super::load_signing_key(key_path)?.verifying_key(),
    };
    let mut queued = Vec::new();
    for file in files {
        let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let sig_path = super::signature_path(file);
        let signature = std::fs::read_to_string(&sig_path)
            .with_context(|| format!("reading {}", sig_path.display()))?;
        // Only what this region signed goes out under its name.
        super::verify_batch(&body, &signature, std::slice::from_ref(&ours))
            .map_err(|r| anyhow::anyhow!("{}: {r}", file.display()))?;
        #[derive(serde::Deserialize)]
        struct Head {
            message_id: String,
            to: String,
            records: Vec<serde::de::IgnoredAny>,
        }
        let head: Head = serde_json::from_slice(&body)
            .with_context(|| format!("{}: not a migrant batch", file.display()))?;
        store.queue_outbound(
            &head.to,
            &head.message_id,
            &body,
            &signature,
            head.records.len() as u64,
            &[],
        )?;
        queued.push(Queued {
            partner: head.to,
            message_id: head.message_id,
            records: head.records.len(),
        });
    }
    Ok(queued)
}

/// Publishes every batch in the outbox not yet confirmed, oldest first, at most `rate` a second
/// when given (a partner's broker need not take a backlog at once). A broken connection is
/// retried with backoff for up to `patience`; what is still unconfirmed then stays in the outbox
/// for the next run.
pub async fn flush_outbox(
    store: &mut Store,
    config: &Config,
    patience: Duration,
    rate: Option<std::num::NonZeroU32>,
) -> anyhow::Result<FlushReport> {
    let settings = settings(config)?;
    let mut publisher = Publisher::new(&settings.url()?, &settings.exchange);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let limiter = rate.map(|r| governor::RateLimiter::direct(governor::Quota::per_second(r)));
    let mut report = FlushReport::default();
    for entry in store.outbox_pending()? {
        if let Some(limiter) = &limiter {
            limiter.until_ready().await;
        }
        let message = Outgoing {
            message_id: entry.message_id.clone(),
            routing_key: entry.partner.clone(),
            body: entry.body,
            content_type: "application/json".into(),
            headers: vec![
                ("signature".into(), entry.signature.trim().to_owned()),
                ("from".into(), config.region.code.clone()),
            ],
        };
        match publisher
            .publish_patiently(&message, &mut backoff, patience)
            .await
        {
            Ok(()) => {
                store.outbox_attempted(&entry.message_id, None)?;
                report.confirmed += 1;
            }
            Err(e) => {
                let reason = e.to_string();
                store.outbox_attempted(&entry.message_id, Some(&reason))?;
                report
                    .failed
                    .push((entry.message_id, entry.partner, reason));
                if matches!(e, PublishError::Connection(_)) {
                    // The broker stayed away for all of `patience`: the rest would wait too.
                    break;
                }
            }
        }
    }
    Ok(report)
}

/// Consumes this region's queue: each batch is verified, landed and applied in one transaction
/// and only then acknowledged; an applied message id is acknowledged without applying again;
/// a rejected batch is kept with its reason and dead-lettered.
pub async fn listen(
    store: &mut Store,
    config: &Config,
    options: &ListenOptions,
) -> anyhow::Result<ListenReport> {
    let settings = settings(config)?;
    if config.partners.is_empty() {
        bail!("no partner keys are configured ([[exchange.partners]]): batches from the network are never applied unchecked");
    }
    std::fs::create_dir_all(&settings.landing)
        .with_context(|| format!("creating {}", settings.landing.display()))?;
    let mapping = Mapping::load(MAPPING)?;
    let topology = Topology::for_region(&settings.exchange, &config.region.code);
    let mut consumer = Consumer::new(&settings.url()?, topology, settings.prefetch);
    let mut report = ListenReport::default();
    let ingest_options = |message_id: String| IngestOptions {
        force: false,
        progress: false,
        partners: config.partners.clone(),
        message_id: Some(message_id),
        ..IngestOptions::default()
    };
    while options
        .max_messages
        .is_none_or(|max| report.applied + report.duplicates + report.rejected < max)
    {
        let Some(message) = consumer.next(options.idle_exit).await else {
            break;
        };
        let message_id = message
            .message_id
            .clone()
            .unwrap_or_else(|| sha256_hex(&message.body)[..32].to_owned());
        if store.inbox_applied(&message_id)? {
            report.duplicates += 1;
            tracing::info!(message_id, "batch applied before; acknowledged again");
            if let Err(e) = message.ack().await {
                tracing::warn!(error = %e, "acknowledgement lost; the broker will deliver it again");
                consumer.reconnect();
            }
            continue;
        }
        let path = land(
            &settings.landing,
            &message.body,
            message.header("signature"),
        )?;
        let file_report = ingest_file(
            store,
            &path,
            &mapping,
            MAPPING,
            &ingest_options(message_id.clone()),
        )?;
        let outcome = match &file_report.error {
            None => {
                report.applied += 1;
                tracing::info!(message_id, records = file_report.read, "batch applied");
                message.ack().await
            }
            Some(reason) => {
                report.rejected += 1;
                tracing::warn!(message_id, reason, "batch rejected; dead-lettered");
                message.dead_letter().await
            }
        };
        if let Err(e) = outcome {
            // Committed already: a redelivery is recognised by its message id.
            tracing::warn!(error = %e, "acknowledgement lost; the broker will deliver it again");
            consumer.reconnect();
        }
    }
    report.connections = consumer.connections;
    Ok(report)
}

/// Writes a received batch and its signature into the landing folder, named by content.
fn land(dir: &Path, body: &[u8], signature: Option<&str>) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("migrants-in-{}.json", &sha256_hex(body)[..16]));
    std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    let sig_path = super::signature_path(&path);
    match signature {
        Some(sig) => std::fs::write(&sig_path, format!("{}\n", sig.trim()))
            .with_context(|| format!("writing {}", sig_path.display()))?,
        None => {
            // A stale signature from an earlier delivery must not vouch for this one.
            if sig_path.exists() {
                std::fs::remove_file(&sig_path)
                    .with_context(|| format!("removing {}", sig_path.display()))?;
            }
        }
    }
    Ok(path)
}
