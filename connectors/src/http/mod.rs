//! Agency HTTP APIs: one polite, patient client per source.
//!
//! Every request waits for the source's rate limit, runs under a connect and a whole-request
//! timeout, and is retried with exponential backoff and jitter on 5xx, timeouts, broken
//! connections and bodies that do not parse; a 429 waits as long as `Retry-After` says. A source
//! that keeps failing trips a circuit breaker, and requests fail fast until it has cooled down.
//! What the bytes mean is not this module's business: callers pass a check that says whether a
//! body is whole, and get the bytes back.

mod breaker;
mod client;

pub use breaker::{Breaker, BreakerState};
pub use client::HttpSource;

use std::time::Duration;

/// How to reach and treat one agency API. Secrets arrive here already read from the files or
/// environment variables the configuration names; `Debug` never prints them.
#[derive(Clone)]
pub struct HttpSettings {
    /// The source's name in logs, metrics and errors.
    pub name: String,
    pub base_url: String,
    pub bearer_token: Option<String>,
    /// Client certificate and private key, PEM, for mutual TLS.
    pub client_identity_pem: Option<Vec<u8>>,
    /// CA certificates to trust instead of the platform's, PEM.
    pub ca_pem: Option<Vec<u8>>,
    pub requests_per_second: f64,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this is cut to it, so one answer cannot stall a pull for days.
    pub max_retry_after: Duration,
    /// Failed attempts in a row that open the circuit breaker.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
}

impl HttpSettings {
    pub fn new(name: &str, base_url: &str) -> HttpSettings {
        HttpSettings {
            name: name.to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            bearer_token: None,
            client_identity_pem: None,
            ca_pem: None,
            requests_per_second: 5.0,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_attempts: 8,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            breaker_threshold: 20,
            breaker_cooldown: Duration::from_secs(300),
        }
    }
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<set>"))
            .field(
                "client_identity_pem",
                &self.client_identity_pem.as_ref().map(|_| "<set>"),
            )
            .field("requests_per_second", &self.requests_per_second)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("source {source_name}: cannot build the HTTP client: {reason}")]
    Setup { source_name: String, reason: String },
    #[error("source {source_name}: circuit breaker open after {failures} failed attempts in a row; next try in {wait_s} s")]
    BreakerOpen {
        source_name: String,
        failures: u32,
        wait_s: u64,
    },
    #[error("source {source_name}: {url} answered {status}; not retried")]
    Refused {
        source_name: String,
        url: String,
        status: u16,
    },
    #[error("source {source_name}: {url} failed {attempts} times; last: {last}")]
    GaveUp {
        source_name: String,
        url: String,
        attempts: u32,
        last: String,
    },
    /// Whole answers that never made sense: the last one is handed back for raw landing.
    #[error(
        "source {source_name}: {url} answered {attempts} times with a malformed body: {reason}"
    )]
    Malformed {
        source_name: String,
        url: String,
        attempts: u32,
        reason: String,
        body: Vec<u8>,
    },
}

/// What one fetch cost: handed back so the caller can write it into its job history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    pub attempts: u32,
    pub rate_limit_waits: u32,
    pub throttled: u32,
}

/// Reads a `Retry-After` given in seconds (what SPEC.md's agencies send).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_secrets() {
        let mut s = HttpSettings::new("health", "https://example.invalid/");
        s.bearer_token = Some("s3cr3t-token".into());
        s.client_identity_pem = Some(b"-----BEGIN PRIVATE KEY-----".to_vec());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("PRIVATE"),
            "{shown}"
        );
        assert_eq!(s.base_url, "https://example.invalid");
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT"), None);
    }
}
