//! Outbound batches: the persons of a partner region who live here, signed, for the file
//! fallback or the broker.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;
use crate::model::{Feed, PersonStatus, Record};
use crate::store::{sha256_hex, Store};

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Export {
    /// The batch file (its signature is beside it), or `None` when nothing changed.
    pub file: Option<PathBuf>,
    pub records: usize,
    pub message_id: Option<String>,
}

/// A signed batch for one partner, built but not yet sent anywhere.
#[derive(Debug, Clone)]
pub struct Batch {
    pub to: String,
    pub message_id: String,
    pub body: Vec<u8>,
    /// Detached signature, hex, as in a `.sig` file and the AMQP `signature` header.
    pub signature: String,
    pub records: usize,
    /// (person key, fingerprint) of every person in it, to record as sent.
    pub fingerprints: Vec<(String, String)>,
}

/// Writes, for partner region `to`, a signed batch of the registry persons whose household
/// registration is there and who live here, new or changed since the last batch to `to`.
pub fn export(store: &mut Store, config: &Config, to: &str, out: &Path) -> anyhow::Result<Export> {
    let Some(batch) = build_batch(store, config, to)? else {
        return Ok(Export {
            file: None,
            records: 0,
            message_id: None,
        });
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let file = out.join(format!(
        "migrants-{}-to-{to}-{}.json",
        config.region.code,
        &batch.message_id[..8]
    ));
    std::fs::write(&file, &batch.body).with_context(|| format!("writing {}", file.display()))?;
    let sig = super::signature_path(&file);
    std::fs::write(&sig, &batch.signature).with_context(|| format!("writing {}", sig.display()))?;
    store.record_exchange_sent(to, &batch.message_id, &batch.fingerprints)?;
    Ok(Export {
        file: Some(file),
        records: batch.records,
        message_id: Some(batch.message_id),
    })
}

/// Builds the next batch for partner region `to`, or `None` when nothing changed since the last.
/// Only the fields of SPEC.md's batch are sent; the street address is not held, so not sent.
pub fn build_batch(store: &Store, config: &Config, to: &str) -> anyhow::Result<Option<Batch>> {
    let key_path = config
        .private_key
        .as_ref()
        .context("exchange.private_key is not set in the config")?;
    let key = super::load_signing_key(key_path)?;
    let ours = config.region.prefix().to_owned();
    let theirs = crate::model::division_prefix(to);
    let sent = store.exchange_sent(to)?;
    let mut records = Vec::new();
    let mut fingerprints = Vec::new();
    for stored in store.records(Feed::Registry)? {
        let Record::Person(p) = stored.record else {
            continue;
        };
        let registered_there = p
            .hukou_division
            .as_ref()
            .is_some_and(|d| d.as_str().starts_with(theirs));
        let lives_here = p
            .residence_division
            .as_ref()
            .is_some_and(|d| d.as_str().starts_with(&ours));
        let Some(id) = p.id_number.as_ref().filter(|id| id.is_valid()) else {
            continue;
        };
        if !(registered_there && lives_here && p.status == PersonStatus::Resident) {
            continue;
        }
        let event_date = p
            .updated_at
            .as_deref()
            .and_then(|t| t.get(..10))
            .map(str::to_owned);
        let record = serde_json::json!({
            "id_number": id.as_str(), "name": p.name, "sex": p.sex.code(),
            "birth_date": p.birth_date.map(|d| d.to_string()),
            "marital_status": p.marital_status.map(|m| m.code()),
            "hukou_division": p.hukou_division.as_ref().map(|d| d.as_str()),
            "residence_division": p.residence_division.as_ref().map(|d| d.as_str()),
            "event": "inflow",
            "event_date": event_date.unwrap_or_else(|| chrono::Local::now().date_naive().to_string()),
            "children": [],
        });
        let fingerprint = sha256_hex(record.to_string().as_bytes());
        if sent.get(&p.person_key) != Some(&fingerprint) {
            fingerprints.push((p.person_key.clone(), fingerprint));
            records.push(record);
        }
    }
    if records.is_empty() {
        return Ok(None);
    }
    // The same content always gets the same message id, so a re-sent batch is applied once.
    let content: String = fingerprints.iter().map(|(_, f)| f.as_str()).collect();
    let message_id =
        sha256_hex(format!("{}>{to}:{content}", config.region.code).as_bytes())[..32].to_owned();
    let document = serde_json::json!({
        "schema": "migrant-exchange/1",
        "message_id": message_id,
        "from": config.region.code,
        "to": to,
        "created": chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        "records": records,
    });
    let body = serde_json::to_vec_pretty(&document)?;
    Ok(Some(Batch {
        to: to.to_owned(),
        signature: super::sign(&key, &body),
        message_id,
        body,
        records: records.len(),
        fingerprints,
    }))
}
