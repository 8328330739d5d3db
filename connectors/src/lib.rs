//! Transports that turn agency files (and, later, APIs and queues) into raw records.
//!
//! A raw record is a flat list of `(path, text)` pairs with its location in the
//! source. Connectors know nothing about the canonical model: naming which path
//! feeds which canonical field is the mapping stage's job.

pub mod files;
mod record;

pub use record::{Location, RawRecord};
