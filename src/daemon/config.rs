//! `[daemon]` and `[[jobs]]`: what runs when.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::Period;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Where `/healthz` and `/metrics` answer; keep it on loopback.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `text` or `json` log lines.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Seconds between looks into watched folders.
    #[serde(default = "default_poll")]
    pub poll_s: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: default_listen(),
            log_format: LogFormat::default(),
            poll_s: default_poll(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:9464".into()
}

fn default_poll() -> u64 {
    30
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// One `[[jobs]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    pub name: String,
    pub kind: String,
    /// Cron expression (5 fields, or 6 with seconds first), local time.
    pub schedule: Option<String>,
    /// Run when all of these jobs have succeeded since this job last ran.
    #[serde(default)]
    pub after: Vec<String>,
    /// `pull`: the source's name.
    pub source: Option<String>,
    /// `watch`: the folder where files are dropped.
    pub folder: Option<PathBuf>,
    /// `reconcile`: `previous` (the default: last month) or `YYYY-MM`.
    pub period: Option<String>,
    /// `reconcile`: folder for the period's reports.
    pub reports: Option<PathBuf>,
    /// `reconcile`: report formats to write (html, xlsx, csv, json).
    #[serde(default)]
    pub formats: Vec<String>,
    /// `exchange-send`: seconds to keep trying a broker that is away.
    pub patience_s: Option<u64>,
}

/// Which month a job works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodChoice {
    Previous,
    Fixed(Period),
}

impl PeriodChoice {
    pub fn resolve(self, today: chrono::NaiveDate) -> Period {
        match self {
            PeriodChoice::Previous => Period::containing(today).previous(),
            PeriodChoice::Fixed(p) => p,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    Pull {
        source: String,
        month: PeriodChoice,
    },
    Watch {
        folder: PathBuf,
    },
    Reconcile {
        period: PeriodChoice,
        reports: Option<PathBuf>,
        formats: Vec<String>,
    },
    ExchangeSend {
        patience_s: u64,
    },
}

impl JobKind {
    pub fn label(&self) -> &'static str {
        match self {
            JobKind::Pull { .. } => "pull",
            JobKind::Watch { .. } => "watch",
            JobKind::Reconcile { .. } => "reconcile",
            JobKind::ExchangeSend { .. } => "exchange-send",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobConfig {
    pub name: String,
    pub kind: JobKind,
    pub schedule: Option<croner::Cron>,
    pub after: Vec<String>,
}

const FORMATS: &[&str] = &["html", "xlsx", "csv", "json"];

impl JobFile {
    /// Checks the entry and resolves its paths against the config's folder.
    pub fn validate(self, base: &Path, sources: &[String]) -> Result<JobConfig, String> {
        let name = self.name;
        let need = |what: Option<String>, key: &str| {
            what.ok_or_else(|| format!("job {name}: kind {} needs `{key}`", self.kind))
        };
        let period = match self.period.as_deref() {
            None | Some("previous") => PeriodChoice::Previous,
            Some(p) => PeriodChoice::Fixed(
                p.parse()
                    .map_err(|e| format!("job {name}: period '{p}': {e}"))?,
            ),
        };
        let resolve = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
        let kind = match self.kind.as_str() {
            "pull" => {
                let source = need(self.source.clone(), "source")?;
                if !sources.contains(&source) {
                    return Err(format!("job {name}: no [[sources]] entry named '{source}'"));
                }
                JobKind::Pull {
                    source,
                    month: period,
                }
            }
            "watch" => JobKind::Watch {
                folder: resolve(
                    self.folder
                        .clone()
                        .ok_or_else(|| format!("job {name}: kind watch needs `folder`"))?,
                ),
            },
            "reconcile" => {
                for f in &self.formats {
                    if !FORMATS.contains(&f.as_str()) {
                        return Err(format!(
                            "job {name}: report format '{f}' (one of {})",
                            FORMATS.join(", ")
                        ));
                    }
                }
                JobKind::Reconcile {
                    period,
                    reports: self.reports.clone().map(resolve),
                    formats: self.formats.clone(),
                }
            }
            "exchange-send" => JobKind::ExchangeSend {
                patience_s: self.patience_s.unwrap_or(300),
            },
            other => {
                return Err(format!(
                    "job {name}: unknown kind '{other}' (pull, watch, reconcile, exchange-send)"
                ))
            }
        };
        let schedule = self
            .schedule
            .as_deref()
            .map(|s| {
                s.parse::<croner::Cron>()
                    .map_err(|e| format!("job {name}: schedule '{s}': {e}"))
            })
            .transpose()?;
        // A job with neither schedule nor `after` runs only when an operator starts it.
        Ok(JobConfig {
            name,
            kind,
            schedule,
            after: self.after,
        })
    }
}
