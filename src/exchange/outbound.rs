//! Outbound batches: the persons of a partner region who live here, signed, for the file
//! fallback or the broker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Config;
use crate::model::{Feed, Person, PersonStatus, Record};
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
/// registration is there and who live here (`inflow`), or who were reported before and have
/// since left (`outflow`, `return`), new or changed since the last batch to `to`.
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
    let persons: Vec<Person> = store
        .records(Feed::Registry)?
        .into_iter()
        .filter_map(|stored| match stored.record {
            Record::Person(p) => Some(p),
            _ => None,
        })
        .collect();
    let lives_in = |p: &Person, prefix: &str| {
        p.status == PersonStatus::Resident
            && p.residence_division
                .as_ref()
                .is_some_and(|d| d.as_str().starts_with(prefix))
    };
    let today = chrono::Local::now().date_naive();
    // Minor children who live with a parent travel on the parent's record, as in SPEC.md's
    // example; "with" is the same residence division, the finest the registry holds.
    let mut children: HashMap<&str, Vec<&Person>> = HashMap::new();
    for child in &persons {
        let minor = child
            .birth_date
            .is_some_and(|b| today.years_since(b).is_some_and(|age| age < 18));
        if !(minor && child.status == PersonStatus::Resident) {
            continue;
        }
        for parent in [&child.mother_id_number, &child.father_id_number]
            .into_iter()
            .flatten()
        {
            children.entry(parent.as_str()).or_default().push(child);
        }
    }
    let mut records = Vec::new();
    let mut fingerprints = Vec::new();
    for p in &persons {
        let registered_there = p
            .hukou_division
            .as_ref()
            .is_some_and(|d| d.as_str().starts_with(theirs));
        let Some(id) = p.id_number.as_ref().filter(|id| id.is_valid()) else {
            continue;
        };
        if !registered_there {
            continue;
        }
        // A person once reported as living here and now gone is reported again: back in their
        // household region is a return, anywhere else (or moved out, or deceased) an outflow.
        let event = if lives_in(p, &ours) {
            "inflow"
        } else if !sent.contains_key(&p.person_key) {
            continue;
        } else if lives_in(p, theirs) {
            "return"
        } else {
            "outflow"
        };
        let kids: Vec<serde_json::Value> = children
            .get(id.as_str())
            .into_iter()
            .flatten()
            .filter(|c| {
                c.residence_division.is_some() && c.residence_division == p.residence_division
            })
            .map(|c| {
                serde_json::json!({
                    "name": c.name, "sex": c.sex.code(),
                    "birth_date": c.birth_date.map(|d| d.to_string()),
                    "id_number": c.id_number.as_ref().filter(|i| i.is_valid()).map(|i| i.as_str()),
                })
            })
            .collect();
        let mut record = serde_json::json!({
            "id_number": id.as_str(), "name": p.name, "sex": p.sex.code(),
            "birth_date": p.birth_date.map(|d| d.to_string()),
            "marital_status": p.marital_status.map(|m| m.code()),
            "hukou_division": p.hukou_division.as_ref().map(|d| d.as_str()),
            "residence_division": p.residence_division.as_ref().map(|d| d.as_str()),
            "event": event,
            "children": kids,
        });
        // The event date is left out of the fingerprint: when the registry has no update time it
        // is today, and a person must not be sent again only because the calendar moved on.
        let fingerprint = sha256_hex(record.to_string().as_bytes());
        if sent.get(&p.person_key) == Some(&fingerprint) {
            continue;
        }
        let event_date = p
            .updated_at
            .as_deref()
            .and_then(|t| t.get(..10))
            .map(str::to_owned)
            .unwrap_or_else(|| today.to_string());
        record["event_date"] = serde_json::Value::String(event_date);
        fingerprints.push((p.person_key.clone(), fingerprint));
        records.push(record);
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
