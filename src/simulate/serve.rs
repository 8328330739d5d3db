//! `vitalhub simulate serve`: the simulated month's files served as the agency APIs of SPEC.md,
//! on loopback, with the faults real agency servers have.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vitalhub_connectors::files::read_all;

use crate::mapping::Mapping;

/// Faults to inject, each a share of requests (0.0 to 1.0).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer 503.
    pub server_errors: f64,
    /// Answer 429 with `Retry-After: retry_after_s`.
    pub throttles: f64,
    pub retry_after_s: u64,
    /// Never answer (the client's timeout has to notice).
    pub hangs: f64,
    /// Send half the body and break the connection.
    pub truncations: f64,
    /// Added to every answer.
    pub latency: Duration,
    pub seed: u64,
}

/// One request as the server saw it: for tests that check what clients do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Seen {
    pub at_ms: u64,
    pub path: String,
    pub status: u16,
}

struct Agency {
    /// Birth notifications as API items, sorted by `updated_at` then certificate number.
    births: Vec<(Option<DateTime<FixedOffset>>, serde_json::Value)>,
    /// Month (`YYYY-MM`) -> the marriages XML document.
    marriages: Vec<(String, PathBuf)>,
    token: Option<String>,
    faults: Faults,
    rng: Mutex<ChaCha8Rng>,
    started: Instant,
    seen: Mutex<Vec<Seen>>,
}

/// SPEC.md section 1: the JSON field of the API and the path of the same value in the XML file.
const BIRTH_FIELDS: &[(&str, &str)] = &[
    ("cert_no", "CertNo"),
    ("status", "@status"),
    ("child_name", "Child/Name"),
    ("child_sex", "Child/Sex"),
    ("birth_date", "Child/BirthDate"),
    ("birth_time", "Child/BirthTime"),
    ("birth_division", "BirthPlace/@division"),
    ("hospital_code", "BirthPlace/Hospital/@code"),
    ("hospital_name", "BirthPlace/Hospital"),
    ("gestation_weeks", "GestationWeeks"),
    ("weight_g", "WeightG"),
    ("mother_name", "Mother/Name"),
    ("mother_id", "Mother/IdNumber"),
    ("mother_division", "Mother/Division"),
    ("father_name", "Father/Name"),
    ("father_id", "Father/IdNumber"),
    ("updated_at", "@updatedAt"),
];

/// Loads `births-*.xml` and `marriages-*.xml` from `data` (as `vitalhub simulate` wrote them).
fn load(data: &Path, token: Option<String>, faults: Faults) -> anyhow::Result<Agency> {
    let births_mapping = Mapping::load("builtin:health-births-xml")?;
    let mut births = Vec::new();
    let mut marriages = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(data)
        .with_context(|| format!("reading {}", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("births-") && name.ends_with(".xml") {
            let spec = births_mapping
                .read_spec(&path)
                .map_err(|e| anyhow::anyhow!(e))?;
            for raw in read_all(&path, &spec)? {
                let mut item = serde_json::Map::new();
                for (field, xml_path) in BIRTH_FIELDS {
                    let value = match raw.get(xml_path) {
                        None => serde_json::Value::Null,
                        Some(v) if matches!(*field, "gestation_weeks" | "weight_g") => v
                            .parse::<i64>()
                            .map(serde_json::Value::from)
                            .unwrap_or_else(|_| v.into()),
                        Some(v) => v.into(),
                    };
                    item.insert((*field).to_owned(), value);
                }
                let updated = raw
                    .get("@updatedAt")
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                births.push((updated, serde_json::Value::Object(item)));
            }
        } else if let Some(month) = name
            .strip_prefix("marriages-")
            .and_then(|r| r.strip_suffix(".xml"))
            .filter(|m| m.len() == 6)
        {
            marriages.push((format!("{}-{}", &month[..4], &month[4..]), path.clone()));
        }
    }
    births.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1["cert_no"].as_str().cmp(&b.1["cert_no"].as_str()))
    });
    Ok(Agency {
        births,
        marriages,
        token,
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(faults.seed)),
        faults,
        started: Instant::now(),
        seen: Mutex::new(Vec::new()),
    })
}

/// Serves until the process ends; prints the address it listens on first.
pub async fn serve(
    data: &Path,
    addr: SocketAddr,
    token: Option<String>,
    faults: Faults,
) -> anyhow::Result<()> {
    let agency = Arc::new(load(data, token, faults)?);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    status!(
        "simulator listening on http://{local} ({} birth notifications, {} months of marriages)",
        agency.births.len(),
        agency.marriages.len()
    );
    axum::serve(listener, router(agency)).await?;
    Ok(())
}

fn router(agency: Arc<Agency>) -> Router {
    Router::new()
        .route("/api/v1/birth-notifications", get(births))
        .route("/marriage/registrations", get(marriages))
        .route("/_sim/requests", get(requests))
        .with_state(agency)
}

#[derive(serde::Deserialize)]
struct BirthsQuery {
    updated_since: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn births(
    State(agency): State<Arc<Agency>>,
    headers: HeaderMap,
    Query(q): Query<BirthsQuery>,
) -> Response {
    let path = "/api/v1/birth-notifications";
    if let Some(early) = agency.misbehave(&headers, path).await {
        return early;
    }
    let since = match q.updated_since.as_deref().map(DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return agency.answer(path, StatusCode::BAD_REQUEST, "bad updated_since"),
    };
    let start = match q.cursor.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return agency.answer(path, StatusCode::BAD_REQUEST, "bad cursor"),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let matching: Vec<&serde_json::Value> = agency
        .births
        .iter()
        .filter(|(t, _)| match (since, t) {
            (Some(since), Some(t)) => *t >= since,
            _ => true,
        })
        .map(|(_, item)| item)
        .collect();
    let end = (start + limit).min(matching.len());
    let items = matching.get(start..end).unwrap_or_default();
    let next = (end < matching.len()).then(|| end.to_string());
    let body = serde_json::to_vec(&serde_json::json!({"items": items, "next_cursor": next}))
        .unwrap_or_default();
    agency.deliver(path, body, "application/json")
}

#[derive(serde::Deserialize)]
struct MarriagesQuery {
    month: String,
}

async fn marriages(
    State(agency): State<Arc<Agency>>,
    headers: HeaderMap,
    Query(q): Query<MarriagesQuery>,
) -> Response {
    let path = "/marriage/registrations";
    if let Some(early) = agency.misbehave(&headers, path).await {
        return early;
    }
    let Some((_, file)) = agency.marriages.iter().find(|(m, _)| *m == q.month) else {
        return agency.answer(
            path,
            StatusCode::NOT_FOUND,
            "no registrations for that month",
        );
    };
    match std::fs::read(file) {
        Ok(body) => agency.deliver(path, body, "application/xml"),
        Err(_) => agency.answer(path, StatusCode::INTERNAL_SERVER_ERROR, "cannot read"),
    }
}

async fn requests(State(agency): State<Arc<Agency>>) -> Json<Vec<Seen>> {
    Json(agency.seen.lock().map(|s| s.clone()).unwrap_or_default())
}

impl Agency {
    fn roll(&self) -> f64 {
        self.rng
            .lock()
            .map(|mut r| r.random::<f64>())
            .unwrap_or(1.0)
    }

    fn log(&self, path: &str, status: StatusCode) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(Seen {
                at_ms: self.started.elapsed().as_millis() as u64,
                path: path.to_owned(),
                status: status.as_u16(),
            });
        }
    }

    fn answer(&self, path: &str, status: StatusCode, text: &'static str) -> Response {
        self.log(path, status);
        (status, text).into_response()
    }

    /// The faults that come before any answer: authentication, latency, hangs, 429 and 5xx.
    async fn misbehave(&self, headers: &HeaderMap, path: &str) -> Option<Response> {
        if let Some(token) = &self.token {
            let expected = format!("Bearer {token}");
            if headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                != Some(&expected)
            {
                return Some(self.answer(path, StatusCode::UNAUTHORIZED, "bad or missing token"));
            }
        }
        if !self.faults.latency.is_zero() {
            tokio::time::sleep(self.faults.latency).await;
        }
        let f = &self.faults;
        let roll = self.roll();
        if roll < f.hangs {
            self.log(path, StatusCode::REQUEST_TIMEOUT);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Some(StatusCode::REQUEST_TIMEOUT.into_response());
        }
        if roll < f.hangs + f.throttles {
            self.log(path, StatusCode::TOO_MANY_REQUESTS);
            return Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, f.retry_after_s.to_string())],
                    "slow down",
                )
                    .into_response(),
            );
        }
        if roll < f.hangs + f.throttles + f.server_errors {
            return Some(self.answer(path, StatusCode::SERVICE_UNAVAILABLE, "try later"));
        }
        None
    }

    /// A 200 answer, or (as often as asked) half of it and a broken connection.
    fn deliver(&self, path: &str, body: Vec<u8>, content_type: &'static str) -> Response {
        self.log(path, StatusCode::OK);
        let length = body.len();
        let body = if self.roll() < self.faults.truncations {
            let half = Bytes::from(body[..length / 2].to_vec());
            let parts: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::other("simulated connection break")),
            ];
            Body::from_stream(futures_lite::stream::iter(parts))
        } else {
            Body::from(body)
        };
        (
            [
                (header::CONTENT_TYPE, content_type.to_owned()),
                (header::CONTENT_LENGTH, length.to_string()),
            ],
            body,
        )
            .into_response()
    }
}
