//! The configuration file: region, database, reconciliation settings and file routes.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

const DEFAULT_CONFIG: &str = include_str!("../config/vitalhub.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    region: Region,
    #[serde(default)]
    database: Database,
    #[serde(default)]
    reconcile: ReconcileSettings,
    #[serde(default)]
    routes: Vec<RouteFile>,
    #[serde(default)]
    exchange: ExchangeFile,
    #[serde(default)]
    sources: Vec<crate::pull::SourceConfig>,
    #[serde(default)]
    daemon: crate::daemon::DaemonConfig,
    #[serde(default)]
    web: crate::web::WebConfig,
    #[serde(default)]
    jobs: Vec<crate::daemon::JobFile>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeFile {
    /// This region's private key file (see `vitalhub keys generate`).
    private_key: Option<PathBuf>,
    #[serde(default)]
    partners: Vec<PartnerFile>,
    amqp: Option<AmqpFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmqpFile {
    /// Environment variable holding the broker URL (it carries credentials).
    url_env: Option<String>,
    /// File holding the broker URL.
    url_file: Option<PathBuf>,
    /// A literal URL, accepted only without credentials in it.
    url: Option<String>,
    #[serde(default = "default_amqp_exchange")]
    exchange: String,
    #[serde(default = "default_prefetch")]
    prefetch: u16,
    /// Folder for received batches (raw landing); default: `landing/` beside the database.
    landing: Option<PathBuf>,
}

fn default_amqp_exchange() -> String {
    "vitalhub.migrants".into()
}

fn default_prefetch() -> u16 {
    16
}

/// Where the broker URL is read from, when it is needed.
#[derive(Debug, Clone)]
pub enum UrlSource {
    Env(String),
    File(PathBuf),
    Literal(String),
}

/// The partner exchange over RabbitMQ (`[exchange.amqp]`).
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    pub url: UrlSource,
    pub exchange: String,
    pub prefetch: u16,
    pub landing: PathBuf,
}

impl AmqpSettings {
    /// The broker URL, read now from where the config says.
    pub fn url(&self) -> Result<String, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: "exchange.amqp".into(),
            message,
        };
        match &self.url {
            UrlSource::Literal(url) => Ok(url.clone()),
            UrlSource::Env(name) => std::env::var(name)
                .map_err(|_| invalid(format!("environment variable {name} (url_env) is not set"))),
            UrlSource::File(path) => std::fs::read_to_string(path)
                .map(|t| t.trim().to_owned())
                .map_err(|e| invalid(format!("url_file {}: {e}", path.display()))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerFile {
    region: String,
    /// The partner's public key: 64 hex characters, or a path to a `.pub` file.
    public_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub code: String,
    #[serde(default)]
    pub name: String,
}

impl Region {
    /// How reports name the region: its name, else its code.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            &self.code
        } else {
            &self.name
        }
    }

    /// The prefix identity numbers and divisions of this region start with.
    pub fn prefix(&self) -> &str {
        crate::model::division_prefix(&self.code)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// The SQLite file of the embedded default.
    #[serde(default = "default_db")]
    pub path: PathBuf,
    /// A `postgres://user@host:port/db` URL; when set, PostgreSQL is the store and `path` is
    /// unused. A password comes from the `PGPASSWORD` environment variable, never the file.
    pub url: Option<String>,
    /// Raw landing: every answer pulled and batch received, as it came. Default: `landing/`
    /// beside the database.
    pub landing: Option<PathBuf>,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            path: default_db(),
            url: None,
            landing: None,
        }
    }
}

impl Database {
    pub fn target(&self) -> crate::store::Target {
        match &self.url {
            Some(url) => crate::store::Target::Postgres(url.clone()),
            None => crate::store::Target::Sqlite(self.path.clone()),
        }
    }

    /// Points at another database (the `--db` option): a file path or a `postgres://` URL.
    pub fn set_target(&mut self, target: crate::store::Target) {
        match target {
            crate::store::Target::Sqlite(path) => {
                self.path = path;
                self.url = None;
            }
            crate::store::Target::Postgres(url) => self.url = Some(url),
        }
    }

    pub fn landing(&self) -> PathBuf {
        self.landing
            .clone()
            .unwrap_or_else(|| self.path.parent().unwrap_or(Path::new(".")).join("landing"))
    }
}

fn default_db() -> PathBuf {
    PathBuf::from("vitalhub.db")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSettings {
    #[serde(default = "default_grace")]
    pub grace_days: i64,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            grace_days: default_grace(),
        }
    }
}

fn default_grace() -> i64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    pattern: String,
    mapping: String,
}

/// A file-name pattern and the mapping (a path or `builtin:NAME`) for files that match it.
#[derive(Debug, Clone)]
pub struct Route {
    pub pattern: String,
    pub mapping: String,
    matcher: GlobMatcher,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub region: Region,
    pub database: Database,
    pub reconcile: ReconcileSettings,
    pub routes: Vec<Route>,
    /// This region's private key file, for signing outbound batches.
    pub private_key: Option<PathBuf>,
    /// Partner regions whose batches are accepted. When any is configured, every inbound
    /// migrant batch must carry a signature that verifies against its sender's key.
    pub partners: Vec<crate::exchange::Partner>,
    pub amqp: Option<AmqpSettings>,
    /// Agency APIs to pull from.
    pub sources: Vec<crate::pull::SourceConfig>,
    pub daemon: crate::daemon::DaemonConfig,
    /// The review page and API.
    pub web: crate::web::WebConfig,
    pub jobs: Vec<crate::daemon::JobConfig>,
    /// Where the configuration came from, for messages.
    pub source: String,
}

impl Config {
    /// The built-in default configuration (config/vitalhub.toml as shipped).
    pub fn default_embedded() -> Config {
        Config::parse(DEFAULT_CONFIG, "built-in default", Path::new("."))
            .expect("the shipped default config is valid")
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base)
    }

    fn parse(text: &str, source: &str, base: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: source.to_owned(),
            message,
        };
        let file: ConfigFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.region.code.len() < 2 || !file.region.code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!(
                "region.code '{}' is not a division code or prefix",
                file.region.code
            )));
        }
        let mut routes = Vec::new();
        for r in file.routes {
            let glob = Glob::new(&r.pattern)
                .map_err(|e| invalid(format!("route pattern '{}': {e}", r.pattern)))?;
            let mapping =
                if r.mapping.starts_with("builtin:") || Path::new(&r.mapping).is_absolute() {
                    r.mapping
                } else {
                    base.join(&r.mapping).display().to_string()
                };
            routes.push(Route {
                pattern: r.pattern,
                mapping,
                matcher: glob.compile_matcher(),
            });
        }
        let mut partners = Vec::new();
        for p in &file.exchange.partners {
            let text = if p.public_key.trim().len() == 64 {
                p.public_key.clone()
            } else {
                let path = base.join(&p.public_key);
                std::fs::read_to_string(&path).map_err(|e| {
                    invalid(format!(
                        "partner {}: cannot read key {}: {e}",
                        p.region,
                        path.display()
                    ))
                })?
            };
            let key = crate::exchange::parse_public_key(&text)
                .map_err(|m| invalid(format!("partner {}: {m}", p.region)))?;
            partners.push(crate::exchange::Partner {
                region: p.region.clone(),
                key,
            });
        }
        let private_key =
            file.exchange
                .private_key
                .map(|k| if k.is_relative() { base.join(k) } else { k });
        let mut database = file.database;
        if database.path.is_relative() && source != "built-in default" {
            database.path = base.join(&database.path);
        }
        if let Some(l) = database.landing.as_mut().filter(|l| l.is_relative()) {
            *l = base.join(&*l);
        }
        let mut sources = file.sources;
        let mut names: Vec<String> = Vec::new();
        for s in &mut sources {
            if names.contains(&s.name) {
                return Err(invalid(format!("two [[sources]] are named '{}'", s.name)));
            }
            names.push(s.name.clone());
            s.resolve_paths(base);
        }
        let mut jobs: Vec<crate::daemon::JobConfig> = Vec::new();
        for j in file.jobs {
            let job = j.validate(base, &names).map_err(invalid)?;
            if jobs.iter().any(|k| k.name == job.name) {
                return Err(invalid(format!("two [[jobs]] are named '{}'", job.name)));
            }
            jobs.push(job);
        }
        for j in &jobs {
            for a in &j.after {
                if !jobs.iter().any(|k| &k.name == a) {
                    return Err(invalid(format!(
                        "job {}: `after` names no job '{a}'",
                        j.name
                    )));
                }
            }
        }
        let amqp = match file.exchange.amqp {
            None => None,
            Some(a) => {
                let url = match (a.url_env, a.url_file, a.url) {
                    (Some(name), None, None) => UrlSource::Env(name),
                    (None, Some(path), None) => UrlSource::File(base.join(path)),
                    (None, None, Some(url)) => {
                        if url.contains('@') {
                            return Err(invalid(
                                "exchange.amqp.url must not carry credentials: use url_env or url_file".into(),
                            ));
                        }
                        UrlSource::Literal(url)
                    }
                    _ => {
                        return Err(invalid(
                            "exchange.amqp needs exactly one of url_env, url_file, url".into(),
                        ))
                    }
                };
                let landing = match a.landing {
                    Some(p) if p.is_relative() => base.join(p),
                    Some(p) => p,
                    None => database.landing(),
                };
                Some(AmqpSettings {
                    url,
                    exchange: a.exchange,
                    prefetch: a.prefetch,
                    landing,
                })
            }
        };
        Ok(Config {
            amqp,
            region: file.region,
            database,
            reconcile: file.reconcile,
            routes,
            private_key,
            partners,
            sources,
            daemon: file.daemon,
            web: file.web,
            jobs,
            source: source.to_owned(),
        })
    }

    /// The route for a file, by its file name.
    pub fn route_for(&self, path: &Path) -> Option<&Route> {
        let name = path.file_name()?;
        self.routes.iter().find(|r| r.matcher.is_match(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_follow_the_issue() {
        let c = Config::default_embedded();
        let m = |n: &str| c.route_for(Path::new(n)).map(|r| r.mapping.clone());
        assert_eq!(m("registry.csv").as_deref(), Some("builtin:registry"));
        assert_eq!(
            m("births-202610.xml").as_deref(),
            Some("builtin:health-births-xml")
        );
        for h in ["hukou-202610.xlsx", "hukou-202610.xls", "hukou-202610.csv"] {
            assert_eq!(m(h).as_deref(), Some("builtin:police-hukou"), "{h}");
        }
        assert_eq!(
            m("marriages-202610.xml").as_deref(),
            Some("builtin:civil-marriages-xml")
        );
        assert_eq!(
            m("migrants-202610.json").as_deref(),
            Some("builtin:exchange-migrants-json")
        );
        assert_eq!(m("migrants-202610.json.sig"), None);
        assert_eq!(m("notes.txt"), None);
        assert_eq!(c.region.prefix(), "4106");
    }

    #[test]
    fn the_production_example_parses_with_its_sources_and_jobs() {
        let text = std::fs::read_to_string("config/production.example.toml").unwrap();
        // Partner key files do not exist here: check everything else.
        let text = text.replace(
            "public_key = \"/etc/vitalhub/keys/320411.pub\"",
            &format!(
                "public_key = \"{}\"",
                hex::encode(
                    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
                        .verifying_key()
                        .as_bytes()
                )
            ),
        );
        let c = Config::parse(&text, "example", Path::new("/etc/vitalhub")).unwrap();
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.jobs.len(), 5);
        let month_end = c.jobs.iter().find(|j| j.name == "month-end").unwrap();
        assert_eq!(month_end.after, ["pull-health", "pull-marriages"]);
        let bad = text.replace("source = \"civil-marriages\"", "source = \"nowhere\"");
        let err = Config::parse(&bad, "example", Path::new(".")).unwrap_err();
        assert!(
            err.to_string()
                .contains("no [[sources]] entry named 'nowhere'"),
            "{err}"
        );
        let secret = text.replace(
            "token_file = \"/etc/vitalhub/civil.token\"",
            "token = \"abc\"",
        );
        assert!(
            Config::parse(&secret, "example", Path::new(".")).is_err(),
            "no literal tokens"
        );
    }
}
