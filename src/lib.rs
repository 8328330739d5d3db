//! vitalhub: reconciles agency vital-records feeds against the population registry.
//!
//! Data flows one way through the modules: `connectors` (crate) -> [`mapping`] ->
//! [`store`] -> [`linkage`] -> [`reconcile`] -> [`report`] / [`web`].

#[macro_use]
mod output;

pub mod cli;
pub mod config;
pub mod daemon;
pub mod evaluate;
pub mod exchange;
pub mod ingest;
pub mod linkage;
pub mod mapping;
pub mod model;
pub mod pull;
pub mod reconcile;
pub mod report;
pub mod simulate;
pub mod store;
pub mod web;
pub mod worker;

pub use output::{is_closed_pipe, CLOSED_PIPE_STATUS};
