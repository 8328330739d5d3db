//! `[[sources]]`: the agency APIs vitalhub pulls from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vitalhub_connectors::http::HttpSettings;

/// Which agency interface a source speaks (SPEC.md sections 1 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// `GET {base}/api/v1/birth-notifications`, JSON pages with a cursor, `updated_since`.
    HealthBirthsJson,
    /// `GET {base}/marriage/registrations?month=YYYY-MM`, one XML document a month.
    CivilMarriagesXml,
}

impl Api {
    pub fn default_mapping(self) -> &'static str {
        match self {
            Api::HealthBirthsJson => "builtin:health-births-json",
            Api::CivilMarriagesXml => "builtin:civil-marriages-xml",
        }
    }
}

/// One source as written in the config. Secrets are named (a file or an environment variable),
/// never written: there is no key for a literal token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    pub api: Api,
    pub base_url: String,
    /// Mapping for the answers; default: the built-in one for `api`.
    pub mapping: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust for this source instead of the system's.
    pub ca_file: Option<PathBuf>,
    #[serde(default = "defaults::rate")]
    pub requests_per_second: f64,
    #[serde(default = "defaults::page_size")]
    pub page_size: u32,
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout_s: f64,
    #[serde(default = "defaults::request_timeout")]
    pub request_timeout_s: f64,
    #[serde(default = "defaults::attempts")]
    pub max_attempts: u32,
    #[serde(default = "defaults::backoff_initial")]
    pub backoff_initial_ms: u64,
    #[serde(default = "defaults::backoff_max")]
    pub backoff_max_s: f64,
    #[serde(default = "defaults::retry_after")]
    pub max_retry_after_s: u64,
    #[serde(default = "defaults::breaker_threshold")]
    pub breaker_threshold: u32,
    #[serde(default = "defaults::breaker_cooldown")]
    pub breaker_cooldown_s: u64,
}

mod defaults {
    pub fn rate() -> f64 {
        5.0
    }
    pub fn page_size() -> u32 {
        500
    }
    pub fn connect_timeout() -> f64 {
        10.0
    }
    pub fn request_timeout() -> f64 {
        60.0
    }
    pub fn attempts() -> u32 {
        8
    }
    pub fn backoff_initial() -> u64 {
        500
    }
    pub fn backoff_max() -> f64 {
        60.0
    }
    pub fn retry_after() -> u64 {
        300
    }
    pub fn breaker_threshold() -> u32 {
        20
    }
    pub fn breaker_cooldown() -> u64 {
        300
    }
}

impl SourceConfig {
    /// Makes relative file names relative to the config's folder.
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.token_file,
            &mut self.client_cert_file,
            &mut self.client_key_file,
            &mut self.ca_file,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(m) = &mut self.mapping {
            if !m.starts_with("builtin:") && Path::new(m).is_relative() {
                *m = base.join(&*m).display().to_string();
            }
        }
    }

    pub fn mapping(&self) -> &str {
        self.mapping
            .as_deref()
            .unwrap_or_else(|| self.api.default_mapping())
    }

    /// The connector settings, with the secrets read now from where the config names them.
    pub fn http_settings(&self) -> Result<HttpSettings, String> {
        let mut s = HttpSettings::new(&self.name, &self.base_url);
        s.bearer_token = match (&self.token_env, &self.token_file) {
            (Some(_), Some(_)) => return Err("set token_env or token_file, not both".into()),
            (Some(var), None) => Some(
                std::env::var(var)
                    .map_err(|_| format!("environment variable {var} (token_env) is not set"))?,
            ),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| format!("token_file {}: {e}", file.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        s.client_identity_pem = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert, "client_cert_file")?;
                pem.push(b'\n');
                pem.extend(read(key, "client_key_file")?);
                Some(pem)
            }
            (None, None) => None,
            _ => return Err("client_cert_file and client_key_file go together".into()),
        };
        s.ca_pem = self
            .ca_file
            .as_ref()
            .map(|f| read(f, "ca_file"))
            .transpose()?;
        s.requests_per_second = self.requests_per_second;
        s.connect_timeout = secs(self.connect_timeout_s);
        s.request_timeout = secs(self.request_timeout_s);
        s.max_attempts = self.max_attempts.max(1);
        s.backoff_initial = Duration::from_millis(self.backoff_initial_ms);
        s.backoff_max = secs(self.backoff_max_s);
        s.max_retry_after = Duration::from_secs(self.max_retry_after_s);
        s.breaker_threshold = self.breaker_threshold;
        s.breaker_cooldown = Duration::from_secs(self.breaker_cooldown_s);
        Ok(s)
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(60))
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key} {}: {e}", path.display()))
}
