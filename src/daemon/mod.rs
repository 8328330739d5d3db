//! The daemon: runs the configured jobs on their schedules, watches drop folders, answers
//! `/healthz` and `/metrics`, and stops cleanly on SIGTERM.

mod config;

pub use config::{DaemonConfig, JobConfig, JobFile, JobKind, LogFormat, PeriodChoice};
mod jobs;

pub use jobs::Runner;
mod run;

pub use run::{run, InstanceLock};
