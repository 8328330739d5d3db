//! The request loop: rate limit, breaker, timeouts, retries.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::{parse_retry_after, Breaker, BreakerState, FetchStats, HttpError, HttpSettings};
use crate::Backoff;

pub struct HttpSource {
    settings: HttpSettings,
    client: reqwest::Client,
    limiter: DefaultDirectRateLimiter,
    breaker: Mutex<Breaker>,
}

enum Failure {
    /// 429: wait as told (or back off when not told), the source is fine.
    Throttled(Option<Duration>),
    /// Worth another attempt after a backoff.
    Transient { reason: String, malformed: bool },
}

impl HttpSource {
    pub fn new(settings: HttpSettings) -> Result<HttpSource, HttpError> {
        // reqwest is built without a default crypto provider; ring is installed once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let setup = |reason: String| HttpError::Setup {
            source_name: settings.name.clone(),
            reason,
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .user_agent(concat!("vitalhub/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| setup(format!("CA certificates: {e}")))?;
            builder = builder.tls_certs_only(certs);
        }
        if let Some(pem) = &settings.client_identity_pem {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| setup(format!("client certificate: {e}")))?;
            builder = builder.identity(identity);
        }
        let client = builder.build().map_err(|e| setup(e.to_string()))?;
        if !(settings.requests_per_second > 0.0 && settings.requests_per_second.is_finite()) {
            return Err(setup(format!(
                "requests_per_second must be positive, not {}",
                settings.requests_per_second
            )));
        }
        // A burst of one: requests are spaced evenly, so no second ever sees more than the rate.
        let period = Duration::from_secs_f64(1.0 / settings.requests_per_second);
        let quota = Quota::with_period(period)
            .ok_or_else(|| setup("rate limit period is zero".into()))?
            .allow_burst(NonZeroU32::MIN);
        let breaker = Breaker::new(settings.breaker_threshold, settings.breaker_cooldown);
        metrics::gauge!("vitalhub_breaker_open", "source" => settings.name.clone()).set(0.0);
        Ok(HttpSource {
            limiter: RateLimiter::direct(quota),
            breaker: Mutex::new(breaker),
            client,
            settings,
        })
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.lock_breaker().state()
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // A panic elsewhere while holding the lock leaves a consistent counter; carry on.
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// GETs `path` under the base URL with `query`, until `check` accepts the body or the
    /// attempts run out. Returns what `check` made of the body, the body, and what it cost.
    pub async fn get<T>(
        &self,
        path: &str,
        query: &[(&str, String)],
        check: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<(T, Vec<u8>, FetchStats), HttpError> {
        let name = &self.settings.name;
        let url = format!("{}{}", self.settings.base_url, path);
        let mut backoff = Backoff::new(self.settings.backoff_initial, self.settings.backoff_max);
        let mut stats = FetchStats::default();
        let mut last = String::new();
        let mut last_body: Option<(String, Vec<u8>)> = None;
        while stats.attempts < self.settings.max_attempts.max(1) {
            self.admit()?;
            if self.limiter.check().is_err() {
                stats.rate_limit_waits += 1;
                metrics::counter!("vitalhub_rate_limit_waits_total", "source" => name.clone())
                    .increment(1);
                self.limiter.until_ready().await;
            }
            if stats.attempts > 0 {
                metrics::counter!("vitalhub_http_retries_total", "source" => name.clone())
                    .increment(1);
            }
            stats.attempts += 1;
            let mut request = self.client.get(&url).query(query);
            if let Some(token) = &self.settings.bearer_token {
                request = request.bearer_auth(token);
            }
            let failure = match request.send().await {
                Err(e) => Failure::Transient {
                    reason: describe(&e),
                    malformed: false,
                },
                Ok(response) => {
                    let status = response.status();
                    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                        stats.throttled += 1;
                        let wait = response
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(parse_retry_after);
                        Failure::Throttled(wait)
                    } else if status.is_server_error() {
                        Failure::Transient {
                            reason: format!("HTTP {status}"),
                            malformed: false,
                        }
                    } else if !status.is_success() {
                        self.outcome("refused");
                        self.record_failure();
                        return Err(HttpError::Refused {
                            source_name: name.clone(),
                            url,
                            status: status.as_u16(),
                        });
                    } else {
                        match response.bytes().await {
                            Err(e) => Failure::Transient {
                                reason: format!("body broken off: {}", describe(&e)),
                                malformed: false,
                            },
                            Ok(body) => match check(&body) {
                                Ok(value) => {
                                    self.outcome("ok");
                                    self.lock_breaker().success();
                                    metrics::gauge!("vitalhub_breaker_open", "source" => name.clone())
                                        .set(0.0);
                                    return Ok((value, body.to_vec(), stats));
                                }
                                Err(reason) => {
                                    last_body = Some((reason.clone(), body.to_vec()));
                                    Failure::Transient {
                                        reason: format!("malformed body: {reason}"),
                                        malformed: true,
                                    }
                                }
                            },
                        }
                    }
                }
            };
            match failure {
                Failure::Throttled(wait) => {
                    self.outcome("throttled");
                    last = "HTTP 429 Too Many Requests".into();
                    let wait = wait
                        .unwrap_or_else(|| backoff.next_delay())
                        .min(self.settings.max_retry_after);
                    tracing::debug!(source = %name, wait_ms = wait.as_millis() as u64, "throttled; waiting as told");
                    tokio::time::sleep(wait).await;
                }
                Failure::Transient { reason, malformed } => {
                    self.outcome(if malformed { "malformed" } else { "failed" });
                    if !malformed {
                        last_body = None;
                    }
                    self.record_failure();
                    let wait = backoff.next_delay();
                    tracing::debug!(source = %name, attempt = stats.attempts, reason = %reason, wait_ms = wait.as_millis() as u64, "request failed; retrying");
                    last = reason;
                    if stats.attempts < self.settings.max_attempts {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        match last_body {
            Some((reason, body)) => Err(HttpError::Malformed {
                source_name: name.clone(),
                url,
                attempts: stats.attempts,
                reason,
                body,
            }),
            None => Err(HttpError::GaveUp {
                source_name: name.clone(),
                url,
                attempts: stats.attempts,
                last,
            }),
        }
    }

    fn admit(&self) -> Result<(), HttpError> {
        let mut breaker = self.lock_breaker();
        let now = Instant::now();
        breaker.admit(now).map_err(|until| HttpError::BreakerOpen {
            source_name: self.settings.name.clone(),
            failures: breaker.failures_in_a_row(),
            wait_s: until.saturating_duration_since(now).as_secs(),
        })
    }

    fn record_failure(&self) {
        let opened = self.lock_breaker().failure(Instant::now());
        if opened {
            tracing::warn!(source = %self.settings.name, cooldown_s = self.settings.breaker_cooldown.as_secs(), "circuit breaker opened");
            metrics::gauge!("vitalhub_breaker_open", "source" => self.settings.name.clone())
                .set(1.0);
        }
    }

    fn outcome(&self, outcome: &'static str) {
        metrics::counter!("vitalhub_http_requests_total", "source" => self.settings.name.clone(), "outcome" => outcome)
            .increment(1);
    }
}

/// A transport error in words, without the URL (which the caller's error carries once).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "broken body"
    } else {
        "transport error"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}
