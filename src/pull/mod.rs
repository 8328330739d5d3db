//! Pulls from agency HTTP APIs: each answer is landed raw, mapped and stored in one transaction
//! with the checkpoint that follows it, so a pull that dies anywhere resumes where it stood and
//! never loses or doubles a record.

mod config;

pub use config::{Api, SourceConfig};

use std::path::{Path, PathBuf};

use chrono::DateTime;
use vitalhub_connectors::http::{FetchStats, HttpError, HttpSource};

use crate::ingest::{ingest_file, FileReport, IngestError, IngestOptions};
use crate::mapping::{Mapping, MappingFileError};
use crate::model::Period;
use crate::store::{PullState, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("source {source_name}: {message}")]
    Setup {
        source_name: String,
        message: String,
    },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("source {source_name}: answer kept at {} and quarantined: {reason}", landed.display())]
    Malformed {
        source_name: String,
        landed: PathBuf,
        reason: String,
    },
    #[error("landing {}: {source}", path.display())]
    Landing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Mapping(#[from] MappingFileError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullSummary {
    pub pages: u64,
    pub read: u64,
    pub upserted: u64,
    pub unchanged: u64,
    pub quarantined: u64,
    pub requests: u64,
    pub throttled: u64,
    pub rate_limit_waits: u64,
    /// The pull went on from a cursor saved by an earlier, interrupted pull.
    pub resumed: bool,
    /// Stopped between pages because shutdown was asked; the checkpoint is saved.
    pub stopped: bool,
}

impl PullSummary {
    fn add_page(&mut self, report: &FileReport, stats: FetchStats) {
        self.pages += 1;
        self.read += report.read;
        self.upserted += report.upserted;
        self.unchanged += report.unchanged;
        self.quarantined += report.quarantined;
        self.add_stats(stats);
    }

    fn add_stats(&mut self, stats: FetchStats) {
        self.requests += u64::from(stats.attempts);
        self.throttled += u64::from(stats.throttled);
        self.rate_limit_waits += u64::from(stats.rate_limit_waits);
    }

    pub fn describe(&self) -> String {
        format!(
            "{} pages, {} records read ({} new or changed, {} unchanged, {} quarantined); {} requests, {} throttled, {} rate-limit waits{}{}",
            self.pages,
            self.read,
            self.upserted,
            self.unchanged,
            self.quarantined,
            self.requests,
            self.throttled,
            self.rate_limit_waits,
            if self.resumed { "; resumed from a saved cursor" } else { "" },
            if self.stopped { "; stopped for shutdown, checkpoint saved" } else { "" },
        )
    }
}

/// A pull of one source into `store`, landing raw answers under `landing/SOURCE/`.
pub struct Pull<'a> {
    pub config: &'a SourceConfig,
    pub http: &'a HttpSource,
    pub landing: &'a Path,
    /// For monthly APIs: the month to fetch (default: the previous month).
    pub month: Option<Period>,
    /// Asked between pages; true stops the pull after its last saved page.
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

impl Pull<'_> {
    pub async fn run(&self, store: &mut Store) -> Result<PullSummary, PullError> {
        let mapping = Mapping::load(self.config.mapping())?;
        match self.config.api {
            Api::HealthBirthsJson => self.births(store, &mapping).await,
            Api::CivilMarriagesXml => self.marriages(store, &mapping).await,
        }
    }

    async fn births(&self, store: &mut Store, mapping: &Mapping) -> Result<PullSummary, PullError> {
        let name = &self.config.name;
        let saved = store.pull_state(name)?;
        let mut summary = PullSummary {
            resumed: saved.cursor.is_some(),
            ..PullSummary::default()
        };
        // A pull under way goes on with the `updated_since` it started with; a new one starts
        // from the last finished pull's watermark.
        let since = if summary.resumed {
            saved.run_since.clone()
        } else {
            saved.watermark.clone()
        };
        let mut cursor = saved.cursor.clone();
        let mut run_max = if summary.resumed {
            saved.run_max.clone()
        } else {
            saved.watermark.clone()
        };
        loop {
            if (self.stop)() {
                summary.stopped = true;
                return Ok(summary);
            }
            let mut query = vec![("limit", self.config.page_size.to_string())];
            if let Some(s) = &since {
                query.push(("updated_since", s.clone()));
            }
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let fetched = self
                .http
                .get("/api/v1/birth-notifications", &query, births_page)
                .await;
            let (page, body, stats) = match fetched {
                Ok(ok) => ok,
                Err(HttpError::Malformed { body, reason, .. }) => {
                    return Err(self.quarantine_malformed(store, mapping, &body, "json", reason))
                }
                Err(e) => return Err(e.into()),
            };
            run_max = newest(run_max, page.max_updated_at);
            let state = match &page.next_cursor {
                Some(next) => PullState {
                    cursor: Some(next.clone()),
                    run_since: since.clone(),
                    run_max: run_max.clone(),
                    watermark: saved.watermark.clone(),
                },
                None => PullState {
                    watermark: run_max.clone(),
                    ..PullState::default()
                },
            };
            let path = self.land(&body, "births", "json")?;
            let report = self.ingest(store, mapping, &path, Some(state))?;
            summary.add_page(&report, stats);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(summary),
            }
        }
    }

    async fn marriages(
        &self,
        store: &mut Store,
        mapping: &Mapping,
    ) -> Result<PullSummary, PullError> {
        let month = self
            .month
            .unwrap_or_else(|| Period::containing(chrono::Local::now().date_naive()).previous());
        let query = [("month", month.to_string())];
        let fetched = self
            .http
            .get("/marriage/registrations", &query, xml_is_whole)
            .await;
        let (_, body, stats) = match fetched {
            Ok(ok) => ok,
            Err(HttpError::Malformed { body, reason, .. }) => {
                return Err(self.quarantine_malformed(store, mapping, &body, "xml", reason))
            }
            Err(e) => return Err(e.into()),
        };
        let path = self.land(&body, &format!("marriages-{}", month.compact()), "xml")?;
        let state = PullState {
            watermark: Some(month.to_string()),
            ..PullState::default()
        };
        let report = self.ingest(store, mapping, &path, Some(state))?;
        let mut summary = PullSummary::default();
        summary.add_page(&report, stats);
        Ok(summary)
    }

    /// Keeps an answer that never made sense in raw landing and the quarantine, where an
    /// operator sees it; the checkpoint stays before it, so the next pull asks again.
    fn quarantine_malformed(
        &self,
        store: &mut Store,
        mapping: &Mapping,
        body: &[u8],
        ext: &str,
        reason: String,
    ) -> PullError {
        let path = match self.land(body, "malformed", ext) {
            Ok(p) => p,
            Err(e) => return e,
        };
        if let Err(e) = self.ingest(store, mapping, &path, None) {
            return e;
        }
        PullError::Malformed {
            source_name: self.config.name.clone(),
            landed: path,
            reason,
        }
    }

    fn ingest(
        &self,
        store: &mut Store,
        mapping: &Mapping,
        path: &Path,
        checkpoint: Option<PullState>,
    ) -> Result<FileReport, PullError> {
        let opts = IngestOptions {
            checkpoint: checkpoint.map(|s| (self.config.name.clone(), s)),
            ..IngestOptions::default()
        };
        Ok(ingest_file(
            store,
            path,
            mapping,
            self.config.mapping(),
            &opts,
        )?)
    }

    /// Writes an answer under `landing/SOURCE/`, named by its content, atomically.
    fn land(&self, body: &[u8], stem: &str, ext: &str) -> Result<PathBuf, PullError> {
        let dir = self.landing.join(&self.config.name);
        let sha = crate::store::sha256_hex(body);
        let path = dir.join(format!("{stem}-{}.{ext}", &sha[..16]));
        let landing = |source| PullError::Landing {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(landing)?;
        if !path.exists() {
            let tmp = path.with_extension("partial");
            std::fs::write(&tmp, body).map_err(landing)?;
            std::fs::rename(&tmp, &path).map_err(landing)?;
        }
        Ok(path)
    }
}

/// What a births page says about where the pull goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageMeta {
    pub items: usize,
    pub next_cursor: Option<String>,
    pub max_updated_at: Option<String>,
}

/// Checks a `health.births` page is whole and reads its cursor and newest `updated_at`.
pub fn births_page(body: &[u8]) -> Result<PageMeta, String> {
    #[derive(serde::Deserialize)]
    struct Page {
        items: Vec<serde_json::Map<String, serde_json::Value>>,
        next_cursor: Option<String>,
    }
    let page: Page = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let max_updated_at = page
        .items
        .iter()
        .filter_map(|i| i.get("updated_at").and_then(|v| v.as_str()))
        .map(str::to_owned)
        .fold(None, |max, t| newest(max, Some(t)));
    Ok(PageMeta {
        items: page.items.len(),
        next_cursor: page.next_cursor.filter(|c| !c.is_empty()),
        max_updated_at,
    })
}

/// The later of two RFC 3339 times (compared as instants, whatever their offsets); an
/// unreadable time never wins.
fn newest(a: Option<String>, b: Option<String>) -> Option<String> {
    let instant = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    };
    match (instant(&a), instant(&b)) {
        (Some(x), Some(y)) => Some(if y > x { b } else { a }?),
        (None, Some(_)) => b,
        _ => a,
    }
}

/// Checks an XML answer is well formed to its end: a body cut off in transit is not.
pub fn xml_is_whole(body: &[u8]) -> Result<(), String> {
    use quick_xml::events::Event;
    // Agencies send GB18030 as often as UTF-8: decode as the declaration says, then walk it.
    let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    let label = head
        .split("encoding=")
        .nth(1)
        .and_then(|r| r.get(1..))
        .and_then(|r| r.split(['"', '\'']).next())
        .unwrap_or("UTF-8");
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes()).unwrap_or(encoding_rs::UTF_8);
    let (text, _, had_errors) = encoding.decode(body);
    if had_errors {
        return Err(format!("bytes that are not {}", encoding.name()));
    }
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut depth = 0i64;
    let mut seen_root = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => {
                depth += 1;
                seen_root = true;
            }
            Ok(Event::Empty(_)) => seen_root = true,
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "XML broken at byte {}: {e}",
                    reader.buffer_position()
                ))
            }
        }
    }
    match (seen_root, depth) {
        (false, _) => Err("no XML element in the answer".into()),
        (true, 0) => Ok(()),
        (true, open) => Err(format!("XML ends with {open} element(s) still open")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_yields_its_cursor_and_newest_time_across_offsets() {
        let body = br#"{"items": [{"cert_no": "Q1", "updated_at": "2026-10-05T09:00:00+08:00"},
            {"cert_no": "Q2", "updated_at": "2026-10-05T02:00:00Z"}, {"cert_no": "Q3"}], "next_cursor": "abc"}"#;
        let page = births_page(body).unwrap();
        assert_eq!(page.items, 3);
        assert_eq!(page.next_cursor.as_deref(), Some("abc"));
        assert_eq!(
            page.max_updated_at.as_deref(),
            Some("2026-10-05T02:00:00Z"),
            "10:00 in +08:00 terms beats 09:00"
        );
        let last = births_page(br#"{"items": [], "next_cursor": null}"#).unwrap();
        assert_eq!(last.next_cursor, None);
        assert!(births_page(br#"{"items": [{"cert_no": "Q1"}], "next_cur"#).is_err());
    }

    #[test]
    fn a_gb18030_document_is_read_as_declared() {
        let doc = "<?xml version=\"1.0\" encoding=\"GB18030\"?><M><R kind=\"结婚\"/></M>";
        let (bytes, _, _) = encoding_rs::GB18030.encode(doc);
        assert_eq!(xml_is_whole(&bytes), Ok(()));
        assert!(xml_is_whole(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn a_cut_off_xml_document_is_not_whole() {
        let doc = "<?xml version=\"1.0\"?><MarriageRegistrations month=\"2026-10\"><Registration kind=\"结婚\"><RegNo>J1</RegNo></Registration></MarriageRegistrations>";
        assert_eq!(xml_is_whole(doc.as_bytes()), Ok(()));
        let cut = &doc.as_bytes()[..doc.len() - 30];
        assert!(xml_is_whole(cut).is_err());
        let unclosed = &doc.as_bytes()[..doc.len() - "</MarriageRegistrations>".len()];
        assert!(xml_is_whole(unclosed).unwrap_err().contains("still open"));
        assert!(xml_is_whole(b"").is_err());
    }
}
