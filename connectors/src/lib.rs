//! Transports: agency files into raw records, and AMQP for batches between regions.
//!
//! A raw record is a flat list of `(path, text)` pairs with its location in the
//! source. Connectors know nothing about the canonical model: naming which path
//! feeds which canonical field is the mapping stage's job.

pub mod amqp;
pub mod files;
mod record;

pub use record::{Location, RawRecord};
