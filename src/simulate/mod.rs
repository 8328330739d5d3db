//! The simulator: a registry and one month of the five reference feeds for the Hebi
//! districts, with every discrepancy kind injected and the expected discrepancies written to
//! `truth.jsonl`. Same seed, same files, byte for byte.
//!
//! The truth assumes reconciliation with `--as-of` 20 days after the period's last day
//! ([`Simulation::as_of`]): every injected unregistered child is then past its 30-day grace
//! period, and every birth still waiting for registration is within it.

mod names;
pub mod serve;
mod world;
mod write;

use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::model::Period;

pub use world::Truth;

/// Hebi's five counties.
pub const DEFAULT_COUNTIES: usize = 5;

#[derive(Debug, Clone)]
pub struct SimulateParams {
    pub families: u64,
    pub seed: u64,
    pub period: Period,
    pub corrupt: bool,
    /// Counties the families live in: Hebi's five by default, up to 75 for a province.
    pub counties: usize,
}

/// What was written where.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub files: Vec<PathBuf>,
    pub persons: usize,
    pub truth: usize,
    pub period: Period,
}

impl Simulation {
    /// The `--as-of` date the truth is valid for.
    pub fn as_of(&self) -> NaiveDate {
        as_of_for(self.period)
    }
}

/// The simulated partner region's signing key for a seed (never a real key).
fn partner_key(seed: u64) -> ed25519_dalek::SigningKey {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!(
        "vitalhub simulated partner {} seed {seed}",
        world::PARTNER
    ));
    ed25519_dalek::SigningKey::from_bytes(&digest.into())
}

pub fn as_of_for(period: Period) -> NaiveDate {
    period.last_day() + Duration::days(20)
}

pub fn simulate(params: &SimulateParams, out: &Path) -> anyhow::Result<Simulation> {
    std::fs::create_dir_all(out)?;
    let mut generator = world::Generator::new(
        ChaCha8Rng::seed_from_u64(params.seed),
        params.period,
        params.corrupt,
        params.counties,
    );
    let p = params.period;
    let files = vec![
        out.join("registry.csv"),
        out.join(format!("births-{}.xml", p.compact())),
        out.join(format!("hukou-{}.xlsx", p.compact())),
        out.join(format!("marriages-{}.xml", p.compact())),
        out.join(format!("migrants-{}.json", p.compact())),
        out.join("truth.jsonl"),
        out.join(format!("migrants-{}.json.sig", p.compact())),
        out.join(format!("partner-{}.pub", world::PARTNER)),
    ];
    let mut registry = write::RegistryCsv::create(&files[0])?;
    for _ in 0..params.families {
        generator.family();
        for person in generator.take_registry() {
            registry.person(&person)?;
        }
    }
    let persons = registry.finish()?;
    let world = generator.world;
    write::births_xml(&world, p, &files[1])?;
    write::hukou_xlsx(&world, p, &files[2])?;
    write::marriages_xml(&world, p, &files[3])?;
    write::migrants_json(&world, p, params.seed, &files[4])?;
    write::truth_jsonl(&world, &files[5])?;
    // The partner region signs its batch; its key follows from the seed, so that the same seed
    // gives the same signature. Configure `partner-320411.pub` as that partner's key.
    let partner = partner_key(params.seed);
    std::fs::write(
        &files[6],
        crate::exchange::sign(&partner, &std::fs::read(&files[4])?),
    )?;
    std::fs::write(
        &files[7],
        format!("{}\n", hex::encode(partner.verifying_key().to_bytes())),
    )?;
    Ok(Simulation {
        files,
        persons,
        truth: world.truth.len(),
        period: p,
    })
}
