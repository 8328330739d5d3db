//! Transports: agency files into raw records, agency HTTP APIs into pages, and AMQP for
//! batches between regions.
//!
//! A raw record is a flat list of `(path, text)` pairs with its location in the
//! source. Connectors know nothing about the canonical model: naming which path
//! feeds which canonical field is the mapping stage's job.

pub mod amqp;
mod backoff;
pub mod files;
pub mod http;
mod record;

pub use backoff::Backoff;
pub use record::{Location, RawRecord};
