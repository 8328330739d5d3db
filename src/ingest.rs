//! Ingest: files routed to mappings, landed, mapped and stored; bad records quarantined.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use vitalhub_connectors::files::read_file;
use vitalhub_connectors::RawRecord;

use crate::config::Config;
use crate::exchange::{verify_batch_file, Partner};
use crate::mapping::{Mapping, MappingFileError};
use crate::model::Feed;
use crate::store::{PullState, QuarantineEntry, Store, StoreError};

/// Records handed from the reading thread to the storing one at a time.
const CHUNK: usize = 1024;

/// One record as read and mapped: (what it became, where it was, bytes read so far).
type Mapped = (MappedRecord, String, u64);

// Nearly every item is a record; boxing it would allocate once more per record.
#[allow(clippy::large_enum_variant)]
enum MappedRecord {
    Record(crate::model::Record),
    Bad {
        field: String,
        reason: String,
        raw: String,
    },
}

/// Files at least this large get a progress bar.
const PROGRESS_MIN_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Mapping(#[from] MappingFileError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happened to one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub feed: String,
    pub mapping: String,
    pub bytes: u64,
    pub read: u64,
    pub upserted: u64,
    pub unchanged: u64,
    pub quarantined: u64,
    /// The same content was ingested before; nothing was read again.
    pub already_landed: bool,
    /// The file could not be read to its end; the reason names where.
    pub error: Option<String>,
    /// For a migrant batch: whose signature it carried, or that none was checked.
    pub signature: Option<String>,
    #[serde(skip)]
    pub elapsed: Duration,
}

/// A file the routes did not claim.
#[derive(Debug, Clone)]
pub struct Unrouted {
    pub path: PathBuf,
}

#[derive(Default)]
pub struct IngestOptions {
    /// Re-read files whose content was landed before (after a mapping fix).
    pub force: bool,
    pub progress: bool,
    /// Partner regions whose migrant batches are accepted; when any is given, a batch must be
    /// signed by its sender's key or it is rejected whole.
    pub partners: Vec<Partner>,
    /// The AMQP message the file arrived in: recorded with the file's records in one
    /// transaction, so a redelivery of an applied message is recognised.
    pub message_id: Option<String>,
    /// A pull checkpoint (source, state) saved in the file's transaction with its records.
    pub checkpoint: Option<(String, PullState)>,
}

/// Ingests every routed file directly in `dir`, in file-name order.
pub fn ingest_dir(
    store: &mut Store,
    config: &Config,
    dir: &Path,
    opts: &IngestOptions,
) -> Result<(Vec<FileReport>, Vec<Unrouted>), IngestError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| IngestError::Io {
            path: dir.display().to_string(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut reports = Vec::new();
    let mut unrouted = Vec::new();
    for path in paths {
        match config.route_for(&path) {
            Some(route) => {
                let mapping = Mapping::load(&route.mapping)?;
                reports.push(ingest_file(store, &path, &mapping, &route.mapping, opts)?);
            }
            None => unrouted.push(Unrouted { path }),
        }
    }
    Ok((reports, unrouted))
}

/// Ingests one file with `mapping` (`mapping_ref` is how to load it again for retries).
pub fn ingest_file(
    store: &mut Store,
    path: &Path,
    mapping: &Mapping,
    mapping_ref: &str,
    opts: &IngestOptions,
) -> Result<FileReport, IngestError> {
    let started = Instant::now();
    let io = |source| IngestError::Io {
        path: path.display().to_string(),
        source,
    };
    let (sha, bytes) = hash_file(path).map_err(io)?;
    let mut report = FileReport {
        path: path.to_path_buf(),
        feed: mapping.feed.name().to_owned(),
        mapping: mapping_ref.to_owned(),
        bytes,
        read: 0,
        upserted: 0,
        unchanged: 0,
        quarantined: 0,
        already_landed: false,
        error: None,
        signature: None,
        elapsed: Duration::ZERO,
    };
    if !opts.force {
        // Content that failed before (unreadable, or a rejected batch) is read again: the
        // failure may have been the signature or the mapping, not the bytes.
        let landed = store
            .landed_file_by_sha(&sha, mapping.feed.name())?
            .filter(|l| l.error.is_none());
        if let Some(landed) = landed {
            if let Some(id) = &opts.message_id {
                store.record_inbox(id, None, None, Some(landed.id))?;
            }
            if let Some((source, state)) = &opts.checkpoint {
                store.save_pull_state(source, state)?;
            }
            report.already_landed = true;
            report.read = landed.records_read;
            report.unchanged = landed.upserted + landed.unchanged;
            report.quarantined = landed.quarantined;
            report.elapsed = started.elapsed();
            return Ok(report);
        }
    }
    let display = path.display().to_string();
    let mut sender = None;
    if mapping.feed == Feed::ExchangeMigrants {
        if opts.partners.is_empty() {
            report.signature = Some("not checked: no partner keys configured".into());
        } else {
            match verify_batch_file(path, &opts.partners) {
                Ok(region) => {
                    report.signature = Some(format!("verified: signed by partner region {region}"));
                    sender = Some(region);
                }
                Err(rejection) => {
                    // Kept in raw landing and the quarantine with the reason, nothing applied.
                    let message = rejection.to_string();
                    let mut writer = store.begin_file(
                        &display,
                        &sha,
                        bytes,
                        mapping.feed.name(),
                        mapping_ref,
                    )?;
                    writer.quarantine("file", None, &message, None)?;
                    if let Some(id) = &opts.message_id {
                        writer.record_message(id, None, Some(&message))?;
                    }
                    writer.finish(0, Some(&message))?;
                    report.quarantined = 1;
                    report.error = Some(message);
                    report.elapsed = started.elapsed();
                    return Ok(report);
                }
            }
        }
    }
    let mut writer = store.begin_file(&display, &sha, bytes, mapping.feed.name(), mapping_ref)?;
    let bar = progress_bar(opts.progress && bytes >= PROGRESS_MIN_BYTES, bytes, path);
    let mut failure: Option<StoreError> = None;
    let mut read = 0u64;
    // Reading and mapping run on a second thread while this one stores: on two cores a
    // province's registry loads in about half the time. Chunks keep the hand-over cheap and
    // the channel's bound keeps memory flat when storing is the slower side.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let read_result = std::thread::scope(|scope| {
        let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<Mapped>>(8);
        let stop = &stop;
        let reader = scope.spawn(move || {
            let spec = mapping.read_spec(path)?;
            let mut chunk = Vec::with_capacity(CHUNK);
            let result = read_file(path, &spec, &mut |raw: RawRecord, consumed| {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let location = raw.location.to_string();
                let item = match mapping.apply(&raw) {
                    Ok(record) => MappedRecord::Record(record),
                    Err(e) => MappedRecord::Bad {
                        field: e.field,
                        reason: e.reason,
                        raw: serde_json::to_string(&raw.fields).expect("raw fields serialise"),
                    },
                };
                chunk.push((item, location, consumed));
                if chunk.len() == CHUNK && chunks.send(std::mem::take(&mut chunk)).is_err() {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            });
            if !chunk.is_empty() {
                let _ = chunks.send(chunk);
            }
            result.map(|_| ()).map_err(|e| e.to_string())
        });
        for chunk in received {
            for (item, location, consumed) in chunk {
                read += 1;
                if read.is_multiple_of(1024) {
                    bar.set_position(consumed);
                }
                let outcome = match item {
                    MappedRecord::Record(record) => writer.add(record, &location),
                    MappedRecord::Bad { field, reason, raw } => {
                        writer.quarantine(&location, Some(&field), &reason, Some(&raw))
                    }
                };
                if let Err(e) = outcome {
                    failure = Some(e);
                    break;
                }
            }
            if failure.is_some() {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                break;
            }
        }
        reader
            .join()
            .unwrap_or_else(|_| Err("the file reader stopped unexpectedly".to_owned()))
    });
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e.into());
    }
    if let Err(message) = &read_result {
        // The file could not be read on: what was read stays; the break is quarantined so
        // an operator sees it and can re-process the file once it is fixed or re-sent.
        writer.quarantine("file", None, message, None)?;
        report.error = Some(message.clone());
    }
    report.read = read;
    if let Some(id) = &opts.message_id {
        writer.record_message(id, sender.as_deref(), report.error.as_deref())?;
    }
    if let (Some((source, state)), None) = (&opts.checkpoint, &report.error) {
        writer.save_pull_state(source, state)?;
    }
    let file_id = writer.finish(read, report.error.as_deref())?;
    if let Some(landed) = store.landed_file(file_id)? {
        report.upserted = landed.upserted;
        report.unchanged = landed.unchanged;
        report.quarantined = landed.quarantined;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Outcome of re-processing one quarantine entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    Stored,
    StillFailing(String),
    FileReread { error: Option<String> },
}

/// Re-processes a quarantine entry with its mapping as it is now (or `mapping_override`).
pub fn retry_quarantined(
    store: &mut Store,
    entry: &QuarantineEntry,
    mapping_override: Option<&str>,
    partners: &[Partner],
) -> Result<RetryOutcome, IngestError> {
    let mapping_ref = mapping_override.unwrap_or(&entry.mapping);
    let mapping = Mapping::load(mapping_ref)?;
    match &entry.raw {
        Some(raw_json) => {
            let fields: Vec<(String, String)> = serde_json::from_str(raw_json).unwrap_or_default();
            let raw = RawRecord {
                location: vitalhub_connectors::Location::Row(0),
                fields,
            };
            match mapping.apply(&raw) {
                Ok(record) => {
                    store.resolve_quarantined(entry.id, &record)?;
                    Ok(RetryOutcome::Stored)
                }
                Err(e) => {
                    store.update_quarantine_reason(entry.id, Some(&e.field), &e.reason)?;
                    Ok(RetryOutcome::StillFailing(e.to_string()))
                }
            }
        }
        None => {
            let path = Path::new(&entry.file_path);
            let opts = IngestOptions {
                force: true,
                progress: false,
                partners: partners.to_vec(),
                ..IngestOptions::default()
            };
            let report = ingest_file(store, path, &mapping, mapping_ref, &opts)?;
            if report.error.is_none() {
                store.close_quarantined(entry.id)?;
            }
            Ok(RetryOutcome::FileReread {
                error: report.error,
            })
        }
    }
}

fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), total))
}

fn progress_bar(show: bool, bytes: u64, path: &Path) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar
}
