//! Reconciliation one county at a time, so that a province fits in memory and the counties can
//! be shared among worker processes.
//!
//! A partition job takes the county's registry persons and the county's feed records around the
//! period, adds the registry persons of other counties those records name by identity number
//! (or as a mother), and runs the same [`find_discrepancies_with`] as a whole-region run. What
//! the job finds is stored per (run, county); [`merge`] then makes the second pass across
//! counties, keyed on identity numbers and person keys:
//!
//! - a registry person reported in their own county as a birth no source confirms is dropped
//!   when another county's job linked a birth to them;
//! - a bad identity number of a person is reported by their own county only;
//! - two registry persons of different counties holding one identity number are found by a
//!   lookup over the identity-number index, which no single county could see;
//! - a finding two jobs both made (a duplicate pair across counties) is kept once.
//!
//! A single process runs the jobs in turn ([`run_partitioned`]); `vitalhub worker` processes
//! run the same jobs from a RabbitMQ queue (`crate::worker`). Either way the jobs and the merge
//! are this code, so the results are the same.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashSet, HashSetExt};
use std::time::Instant;

use chrono::Duration;

use super::{
    find_in_scope, measure_population, person_rows, recount_population, registry_checks,
    registry_checks_updated, Inputs, Params, PersonRow, RunSummary, Scope,
};
use crate::linkage::fs::Model;
use crate::linkage::fs::Population;
use crate::model::*;
use crate::store::{PartitionResultRow, PartitionRun, RegistryId, Store, StoreError};

/// Feed records this far around the period take part (births registered late, notifications
/// updated after the month).
const WINDOW_DAYS: i64 = 90;

/// What one county's job found, as stored for the merge.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PartitionFindings {
    pub findings: Vec<Discrepancy>,
    /// Registry persons of other counties this job loaded and did not report as a birth no
    /// source confirms: a birth of this county may have confirmed them.
    pub confirmed_elsewhere: Vec<String>,
    /// How the job had its county's registry digest.
    #[serde(default)]
    pub digest: DigestUse,
}

/// How a county's job had its registry digest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestUse {
    /// Kept from an earlier run: the county's registry had not changed.
    #[default]
    Kept,
    /// Brought up to date from the registry persons logged as changed, this many.
    Updated { changed: usize },
    /// Made from the whole county.
    Made,
}

/// The name a county's births linkage model is saved under; each county trains its own, so
/// whichever worker runs a county, the model is the same.
fn births_model_name(division: &str) -> String {
    format!("births@{division}")
}

/// Bumped when what a registry digest holds, or how it is made, changes: older ones are made
/// again.
const DIGEST_FORMAT: u32 = 3;

/// A digest brought up to date keeps the u-probabilities it measured until the county's
/// population has grown or shrunk by this share of the size they were measured at.
const U_DRIFT: f64 = 0.02;

/// What a county's registry gives every month's job, kept in the store until the county's
/// registry changes. Reading and checking the whole county (170,000 persons in a province) was
/// most of a month's job; with the digest a month reads the registry persons its feed records
/// need and nothing else.
#[derive(serde::Serialize, serde::Deserialize)]
struct RegistryDigest {
    format: u32,
    /// Duplicates among the county's persons and their bad identity numbers, in (kind,
    /// anchor) order (the period is stamped on when used).
    checks: Vec<Discrepancy>,
    /// Every person of the county in key order, as the search for unknown persons sees them.
    persons: Vec<PersonRow>,
    /// What that search measured of them.
    population: Population,
    /// How many persons the county had when `population.u` was measured.
    u_measured_on: u64,
}

/// The county's registry digest: the kept one when the registry has not changed since it was
/// made; the kept one brought up to date when the store logged which persons changed since
/// (those are read, nothing else); otherwise one made from the whole county, with the county's
/// persons read for it (the job then looks its own persons up among them instead of in the
/// store). A new or updated digest is kept.
fn registry_digest(
    store: &mut Store,
    params: &Params,
    division: &str,
) -> Result<(RegistryDigest, Option<Vec<Person>>, DigestUse), StoreError> {
    let version = store.division_version(Feed::Registry, division)?;
    if let Some((made_at, body)) = store.registry_digest(division)? {
        let parse = || {
            serde_json::from_str::<RegistryDigest>(&body)
                .ok()
                .filter(|d| d.format == DIGEST_FORMAT)
        };
        if made_at == version {
            if let Some(digest) = parse() {
                return Ok((digest, None, DigestUse::Kept));
            }
        } else if let Some(changed) = store.registry_changes(division, made_at, version)? {
            if let Some(digest) = parse() {
                let digest = updated_digest(store, params, division, digest, &changed)?;
                save_digest(store, division, version, &digest)?;
                let used = DigestUse::Updated {
                    changed: changed.len(),
                };
                return Ok((digest, None, used));
            }
        }
    }
    let (digest, persons) = whole_county_digest(store, params, division)?;
    save_digest(store, division, version, &digest)?;
    Ok((digest, Some(persons), DigestUse::Made))
}

/// The digest made from every registry person of the county, with those persons.
fn whole_county_digest(
    store: &mut Store,
    params: &Params,
    division: &str,
) -> Result<(RegistryDigest, Vec<Person>), StoreError> {
    let mut persons = Vec::new();
    store.for_each_in_division(Feed::Registry, division, None, |r| {
        if let Record::Person(p) = r {
            persons.push(p);
        }
    })?;
    persons.sort_by(|a, b| a.person_key.cmp(&b.person_key));
    let rows = person_rows(&persons);
    let digest = RegistryDigest {
        format: DIGEST_FORMAT,
        checks: registry_checks(&persons, &rows, params),
        population: measure_population(&rows),
        u_measured_on: rows.len() as u64,
        persons: rows,
    };
    Ok((digest, persons))
}

/// Keeps `digest` as made at the county's registry `version` (read before the county was: a
/// change meanwhile brings it up to date again next time).
fn save_digest(
    store: &mut Store,
    division: &str,
    version: i64,
    digest: &RegistryDigest,
) -> Result<(), StoreError> {
    store.save_registry_digest(
        division,
        version,
        &serde_json::to_string(digest).expect("digests serialise"),
    )
}

/// `digest` brought up to date after the registry persons with keys in `changed` changed
/// (added, edited, moved into or out of the county, retired): reads only those, and gives what
/// a digest made from the whole county would, but for u (see [`U_DRIFT`]).
fn updated_digest(
    store: &mut Store,
    params: &Params,
    division: &str,
    digest: RegistryDigest,
    changed: &[String],
) -> Result<RegistryDigest, StoreError> {
    let keys: Vec<&str> = changed.iter().map(String::as_str).collect();
    let mut here: Vec<Person> = persons(store.registry_by_keys(&keys)?)
        .filter(|p| p.division() == division)
        .collect();
    here.sort_by(|a, b| a.person_key.cmp(&b.person_key));
    let changed: HashSet<&str> = keys.into_iter().collect();
    let mut rows: Vec<PersonRow> = digest
        .persons
        .into_iter()
        .filter(|r| !changed.contains(r.key.as_str()))
        .collect();
    rows.extend(person_rows(&here));
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    let checks = registry_checks_updated(digest.checks, &rows, &changed, &here, params);
    let size = rows.len() as u64;
    let drift = size.abs_diff(digest.u_measured_on) as f64;
    let (population, u_measured_on) = if drift > U_DRIFT * digest.u_measured_on.max(1) as f64 {
        (measure_population(&rows), size)
    } else {
        (
            recount_population(&digest.population, &rows),
            digest.u_measured_on,
        )
    };
    Ok(RegistryDigest {
        format: DIGEST_FORMAT,
        checks,
        persons: rows,
        population,
        u_measured_on,
    })
}

/// Everything a county's job works on.
pub struct CountyInputs {
    /// The county's feed records around the period, and the registry persons they need.
    pub inputs: Inputs,
    /// The keys of the registry persons of other counties among them.
    pub foreign: HashSet<String>,
    /// Every person of the county and those of other counties loaded, in key order: whom the
    /// search for unknown persons looks among.
    pub persons: Vec<PersonRow>,
    /// What that search measured of the county's persons.
    pub population: Population,
    /// The county's registry checks, stamped with the period.
    pub checks: Vec<Discrepancy>,
    /// How the county's registry digest was had.
    pub digest: DigestUse,
}

/// Loads everything a county's job needs: its feed records around the period, its registry
/// digest, and of the registry only the persons the records need (those holding a number they
/// name, held by no person of the county; every child of a mother they name; the county's
/// persons born around the period; and the county's persons with the name, sex, birth date and
/// mother of a person of another county loaded, who may be their duplicates).
pub fn partition_inputs(
    store: &mut Store,
    params: &Params,
    division: &str,
) -> Result<CountyInputs, StoreError> {
    let (digest, county, digest_use) = registry_digest(store, params, division)?;
    let mut inputs = Inputs::default();
    let window = (
        params.period.first_day() - Duration::days(WINDOW_DAYS),
        params.period.last_day() + Duration::days(WINDOW_DAYS),
    );
    for feed in [
        Feed::HealthBirths,
        Feed::PoliceHukou,
        Feed::CivilMarriages,
        Feed::ExchangeMigrants,
    ] {
        store.for_each_in_division(feed, division, Some(window), |r| match r {
            Record::Birth(b) => inputs.births.push(b),
            Record::Hukou(h) => inputs.hukou.push(h),
            Record::Marriage(m) => inputs.marriages.push(m),
            Record::Migrant(m) => inputs.migrants.push(m),
            Record::Person(_) => {}
        })?;
    }
    let (named, mothers) = named_ids(&inputs);
    let named: Vec<&str> = named.iter().map(String::as_str).collect();
    let mothers: Vec<&str> = mothers.iter().map(String::as_str).collect();
    let holders: Vec<Person> = match &county {
        None => persons(store.registry_by_ids(RegistryId::Own, &named)?).collect(),
        Some(county) => {
            // The county's holders from memory; the store is asked only for the numbers
            // none of them holds (their holders are all in other counties).
            let wanted: HashSet<&str> = named.iter().copied().collect();
            let mut found: Vec<Person> = county
                .iter()
                .filter(|p| {
                    p.id_number
                        .as_ref()
                        .is_some_and(|id| id.is_valid() && wanted.contains(id.as_str()))
                })
                .cloned()
                .collect();
            let here: HashSet<&str> = found
                .iter()
                .filter_map(|p| p.id_number.as_ref().map(IdNumber::as_str))
                .collect();
            let elsewhere: Vec<&str> = named
                .iter()
                .copied()
                .filter(|id| !here.contains(id))
                .collect();
            found.extend(persons(store.registry_by_ids(RegistryId::Own, &elsewhere)?));
            found
        }
    };
    let own = |p: &Person| p.division() == division;
    let held: HashSet<String> = holders
        .iter()
        .filter(|p| own(p))
        .filter_map(|p| p.id_number.as_ref().map(|id| id.as_str().to_owned()))
        .collect();
    // A number the county holds is its own person's, as a job reading the whole county found.
    let mut loaded: Vec<Person> = holders
        .into_iter()
        .filter(|p| {
            own(p)
                || !p
                    .id_number
                    .as_ref()
                    .is_some_and(|id| held.contains(id.as_str()))
        })
        .collect();
    loaded.extend(persons(
        store.registry_by_ids(RegistryId::Mother, &mothers)?,
    ));
    let by_key = |loaded: &mut Vec<Person>| {
        // The engine's results must not depend on the order rows came in.
        loaded.sort_by(|a, b| a.person_key.cmp(&b.person_key));
        loaded.dedup_by(|a, b| a.person_key == b.person_key);
    };
    by_key(&mut loaded);
    let foreign_rows: Vec<PersonRow> = loaded
        .iter()
        .filter(|p| !own(p))
        .map(PersonRow::of)
        .collect();
    let (from, to) = (window.0.to_string(), window.1.to_string());
    let identities: HashSet<(&str, &str, &str, &str)> = foreign_rows
        .iter()
        .filter(|r| !r.name.is_empty() && !r.birth_date.is_empty() && !r.mother_id.is_empty())
        .map(|r| {
            (
                r.name.as_str(),
                r.sex.as_str(),
                r.birth_date.as_str(),
                r.mother_id.as_str(),
            )
        })
        .collect();
    let wanted: Vec<&str> = digest
        .persons
        .iter()
        .filter(|r| {
            (r.birth_date >= from && r.birth_date <= to)
                || identities.contains(&(
                    r.name.as_str(),
                    r.sex.as_str(),
                    r.birth_date.as_str(),
                    r.mother_id.as_str(),
                ))
        })
        .map(|r| r.key.as_str())
        .collect();
    match &county {
        None => loaded.extend(persons(store.registry_by_keys(&wanted)?)),
        Some(county) => {
            let wanted: HashSet<&str> = wanted.into_iter().collect();
            loaded.extend(
                county
                    .iter()
                    .filter(|p| wanted.contains(p.person_key.as_str()))
                    .cloned(),
            );
        }
    }
    by_key(&mut loaded);
    inputs.registry = loaded;
    let foreign: HashSet<String> = foreign_rows.iter().map(|r| r.key.clone()).collect();
    let mut everyone = digest.persons;
    everyone.extend(foreign_rows);
    everyone.sort_by(|a, b| a.key.cmp(&b.key));
    let period = params.period.to_string();
    let mut checks = digest.checks;
    for d in &mut checks {
        d.period.clone_from(&period);
    }
    Ok(CountyInputs {
        inputs,
        foreign,
        persons: everyone,
        population: digest.population,
        checks,
        digest: digest_use,
    })
}

/// The persons among registry records.
fn persons(records: Vec<Record>) -> impl Iterator<Item = Person> {
    records.into_iter().filter_map(|r| match r {
        Record::Person(p) => Some(p),
        _ => None,
    })
}

/// Valid identity numbers the feed records name, and the mothers' among them (whose children
/// the births linkage looks up).
fn named_ids(inputs: &Inputs) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut named = BTreeSet::new();
    let mut mothers = BTreeSet::new();
    let add = |set: &mut BTreeSet<String>, id: Option<&IdNumber>| {
        if let Some(id) = id.filter(|id| id.is_valid()) {
            set.insert(id.as_str().to_owned());
        }
    };
    for b in &inputs.births {
        add(&mut named, b.mother_id.as_ref());
        add(&mut named, b.father_id.as_ref());
        add(&mut mothers, b.mother_id.as_ref());
    }
    for h in &inputs.hukou {
        add(&mut named, Some(&h.id_number));
        add(&mut named, h.mother_id.as_ref());
        add(&mut named, h.father_id.as_ref());
        add(&mut mothers, h.mother_id.as_ref());
    }
    for m in &inputs.marriages {
        add(&mut named, m.husband.id_number.as_ref());
        add(&mut named, m.wife.id_number.as_ref());
    }
    for m in &inputs.migrants {
        add(&mut named, Some(&m.id_number));
        for c in &m.children {
            add(&mut named, c.id_number.as_ref());
        }
    }
    (named, mothers)
}

/// Runs one county's job: what it found, ready to store.
pub fn run_partition(
    store: &mut Store,
    params: &Params,
    division: &str,
    retrain: bool,
) -> Result<PartitionFindings, StoreError> {
    let CountyInputs {
        inputs,
        foreign,
        persons,
        population,
        checks,
        digest,
    } = partition_inputs(store, params, division)?;
    let name = births_model_name(division);
    let saved = if retrain {
        None
    } else {
        store.linkage_model(&name)?
    };
    let model: Option<Model> = saved
        .and_then(|(json, _)| serde_json::from_str::<Model>(&json).ok())
        .filter(super::births::model_fits);
    let scope = Scope::Part {
        persons: &persons,
        population: &population,
    };
    let (mut found, trained) = find_in_scope(&inputs, params, model.as_ref(), scope);
    found.extend(checks);
    if let Some(m) = trained {
        store.save_linkage_model(&name, &serde_json::to_string(&m).expect("models serialise"))?;
    }
    let mut unconfirmed_foreign = HashSet::new();
    let mut findings = Vec::with_capacity(found.len());
    for d in found {
        // (A bad number of a person of another county is never among them: the checks of
        // registry persons come from the county's own digest.)
        let about_foreign = d.registry_key.as_ref().is_some_and(|k| foreign.contains(k));
        match d.kind {
            DiscrepancyKind::RegistryBirthUnconfirmed if about_foreign => {
                if let Some(k) = &d.registry_key {
                    unconfirmed_foreign.insert(k.clone());
                }
            }
            _ => findings.push(d),
        }
    }
    let mut confirmed_elsewhere: Vec<String> = foreign
        .into_iter()
        .filter(|k| !unconfirmed_foreign.contains(k))
        .collect();
    confirmed_elsewhere.sort();
    Ok(PartitionFindings {
        findings,
        confirmed_elsewhere,
        digest,
    })
}

/// Where the identity numbers held in several counties are kept among the county digests (no
/// county is called this).
const SHARED_IDS: &str = "*shared-ids";

/// The identity numbers registry persons of more than one county hold, as kept: at which
/// version of each county's registry they were looked up.
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedIds {
    versions: BTreeMap<String, i64>,
    ids: Vec<String>,
}

/// The identity numbers registry persons of more than one county hold. Kept between runs;
/// when registries changed, only the numbers kept and those of the persons logged as changed
/// are looked up again (a number becomes shared only when one of its holders changed, and
/// stops being shared only if it was). The lookup over the whole number index (13-15 s for a
/// province on PostgreSQL) is left for when the log cannot say what changed. Afterwards the
/// log entries both this and the county digests have taken in are forgotten.
fn ids_in_several_divisions(store: &mut Store) -> Result<Vec<String>, StoreError> {
    let versions = store.division_versions(Feed::Registry)?;
    let kept = store
        .registry_digest(SHARED_IDS)?
        .and_then(|(_, body)| serde_json::from_str::<SharedIds>(&body).ok());
    if let Some(kept) = &kept {
        if kept.versions == versions {
            return Ok(kept.ids.clone());
        }
    }
    let changed = match &kept {
        Some(kept) => changed_since(store, &kept.versions, &versions)?,
        None => None,
    };
    let ids = match (kept, changed) {
        (Some(kept), Some(keys)) => {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut check: BTreeSet<String> = kept.ids.into_iter().collect();
            check.extend(store.registry_ids_of_keys(&keys)?);
            let check: Vec<&str> = check.iter().map(String::as_str).collect();
            store.ids_in_several_divisions_among(&check)?
        }
        _ => store.ids_in_several_divisions()?,
    };
    let version = versions.values().sum();
    let shared = SharedIds { versions, ids };
    store.save_registry_digest(
        SHARED_IDS,
        version,
        &serde_json::to_string(&shared).expect("numbers serialise"),
    )?;
    forget_changes_taken_in(store, &shared.versions, Some(&shared.versions))?;
    Ok(shared.ids)
}

/// Forgets the registry changes every reader of the log has taken in: of each county, the
/// entries up to the version its digest was made at and the version the shared numbers were
/// looked up at. A reader that does not exist needs none (a county without a digest is read
/// whole, shared numbers never looked up scan the index), so a database only ever reconciled
/// whole-region keeps no log.
pub(crate) fn forget_taken_changes(store: &mut Store) -> Result<(), StoreError> {
    let versions = store.division_versions(Feed::Registry)?;
    let shared = store
        .registry_digest(SHARED_IDS)?
        .and_then(|(_, body)| serde_json::from_str::<SharedIds>(&body).ok())
        .map(|s| s.versions);
    forget_changes_taken_in(store, &versions, shared.as_ref())
}

/// [`forget_taken_changes`] given each county's registry `versions` now and those the shared
/// numbers were looked up at (`None`: never).
fn forget_changes_taken_in(
    store: &mut Store,
    versions: &BTreeMap<String, i64>,
    shared: Option<&BTreeMap<String, i64>>,
) -> Result<(), StoreError> {
    let digests = store.registry_digest_versions()?;
    let upto: BTreeMap<String, i64> = versions
        .iter()
        .map(|(d, &now)| {
            let digest = digests.get(d).copied().unwrap_or(now);
            let numbers = shared.map_or(now, |s| s.get(d).copied().unwrap_or(0));
            (d.clone(), now.min(digest).min(numbers))
        })
        .collect();
    store.forget_registry_changes(&upto)
}

/// The keys of the registry persons changed in any county between the versions `since` and
/// `now`; `None` when the log cannot say.
fn changed_since(
    store: &Store,
    since: &BTreeMap<String, i64>,
    now: &BTreeMap<String, i64>,
) -> Result<Option<BTreeSet<String>>, StoreError> {
    let mut keys = BTreeSet::new();
    for (division, &version) in now {
        let from = since.get(division).copied().unwrap_or(0);
        if from == version {
            continue;
        }
        match store.registry_changes(division, from, version)? {
            Some(changed) => keys.extend(changed),
            None => return Ok(None),
        }
    }
    Ok(Some(keys))
}

/// The second pass over every county's findings: see the module documentation.
pub fn merge(
    store: &mut Store,
    params: &Params,
    parts: Vec<PartitionFindings>,
) -> Result<Vec<Discrepancy>, StoreError> {
    let confirmed: HashSet<String> = parts
        .iter()
        .flat_map(|p| p.confirmed_elsewhere.iter().cloned())
        .collect();
    let mut items: Vec<Discrepancy> = parts
        .into_iter()
        .flat_map(|p| p.findings)
        .filter(|d| {
            !(d.kind == DiscrepancyKind::RegistryBirthUnconfirmed
                && d.registry_key
                    .as_ref()
                    .is_some_and(|k| confirmed.contains(k)))
        })
        .collect();
    let shared = ids_in_several_divisions(store)?;
    if !shared.is_empty() {
        let ids: Vec<&str> = shared.iter().map(String::as_str).collect();
        let mut persons: Vec<Person> =
            persons(store.registry_by_ids(RegistryId::Own, &ids)?).collect();
        persons.sort_by(|a, b| a.person_key.cmp(&b.person_key));
        items.extend(super::duplicate_records(&persons, params));
    }
    super::in_order_once(&mut items);
    Ok(items)
}

/// Creates a run over every county records belong to; its jobs are then done in this process
/// ([`run_partitioned`]) or by workers.
pub fn create_run(
    store: &mut Store,
    params: &Params,
    retrain: bool,
) -> Result<PartitionRun, StoreError> {
    let run = PartitionRun {
        run: format!(
            "{}-{}",
            params.period,
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")
        ),
        period: params.period.to_string(),
        as_of: params.as_of.to_string(),
        retrain,
        partitions: store.divisions()?,
        merged_at: None,
    };
    store.create_partition_run(&run)?;
    Ok(run)
}

/// The parameters a stored run was created with (a worker knows only the run's name).
pub fn run_params(run: &PartitionRun, region_prefix: &str, grace_days: i64) -> Option<Params> {
    Some(Params {
        period: run.period.parse().ok()?,
        as_of: run.as_of.parse().ok()?,
        grace_days,
        region_prefix: region_prefix.to_owned(),
    })
}

/// Does one job of `run` and stores its result (an error is stored too, for the coordinator
/// to report); returns whether this call stored it (false: another worker was first).
pub fn do_job(
    store: &mut Store,
    run: &PartitionRun,
    params: &Params,
    division: &str,
    worker: &str,
) -> Result<bool, StoreError> {
    let started = Instant::now();
    let outcome = run_partition(store, params, division, run.retrain);
    let seconds = started.elapsed().as_secs_f64();
    let (findings, error) = match outcome {
        Ok(found) => (
            serde_json::to_string(&found).expect("findings serialise"),
            None,
        ),
        Err(e) => (String::new(), Some(e.to_string())),
    };
    let row = PartitionResultRow {
        division: division.to_owned(),
        findings,
        worker: worker.to_owned(),
        seconds,
        error,
    };
    store.save_partition_result(&run.run, &row)
}

/// Why a partitioned run could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("partition {division} of run {run} failed: {error}")]
    Failed {
        run: String,
        division: String,
        error: String,
    },
    #[error("run {run} has no result yet for partitions {missing:?}")]
    Incomplete { run: String, missing: Vec<String> },
    #[error("the stored result of partition {division} cannot be read: {source}")]
    Unreadable {
        division: String,
        source: serde_json::Error,
    },
}

/// The partitions of `run` that have no stored result yet (polled while workers run: it
/// reads the finished counties' names, not their findings).
pub fn missing_partitions(store: &Store, run: &PartitionRun) -> Result<Vec<String>, StoreError> {
    let finished = store.finished_partitions(&run.run)?;
    Ok(not_done(run, finished.iter().map(String::as_str).collect()))
}

/// The partitions of `run` not among `done`.
fn not_done(run: &PartitionRun, done: BTreeSet<&str>) -> Vec<String> {
    run.partitions
        .iter()
        .filter(|d| !done.contains(d.as_str()))
        .cloned()
        .collect()
}

/// Merges a run whose jobs are all done and saves its discrepancies, as a whole-region run
/// saves its own.
pub fn finish_run(
    store: &mut Store,
    run: &PartitionRun,
    params: &Params,
) -> Result<RunSummary, MergeError> {
    let started = crate::store::now();
    let results = store.partition_results(&run.run)?;
    let missing = not_done(run, results.iter().map(|r| r.division.as_str()).collect());
    if !missing.is_empty() {
        return Err(MergeError::Incomplete {
            run: run.run.clone(),
            missing,
        });
    }
    let mut parts = Vec::with_capacity(results.len());
    for r in results {
        if let Some(error) = r.error {
            return Err(MergeError::Failed {
                run: run.run.clone(),
                division: r.division,
                error,
            });
        }
        let part: PartitionFindings =
            serde_json::from_str(&r.findings).map_err(|source| MergeError::Unreadable {
                division: r.division.clone(),
                source,
            })?;
        parts.push(part);
    }
    let digests = digest_counts(parts.iter().map(|p| p.digest));
    let found = merge(store, params, parts)?;
    let births_model = format!("one per county ({} partitions)", run.partitions.len());
    let summary = super::save_run(store, params, &found, &started, births_model, Some(digests))?;
    store.finish_partition_run(&run.run)?;
    Ok(summary)
}

/// How a run's jobs had their registry digests, for the run's summary.
fn digest_counts(uses: impl Iterator<Item = DigestUse>) -> String {
    let (mut kept, mut updated, mut changed, mut made) = (0, 0, 0, 0);
    for u in uses {
        match u {
            DigestUse::Kept => kept += 1,
            DigestUse::Updated { changed: n } => {
                updated += 1;
                changed += n;
            }
            DigestUse::Made => made += 1,
        }
    }
    let read = if updated > 0 {
        format!(" ({changed} changed persons read)")
    } else {
        String::new()
    };
    format!("{kept} kept, {updated} brought up to date{read}, {made} made from the whole county")
}

/// A partitioned run done in this process: `jobs` threads take the counties in turn, each on
/// its own connection from `connect` (one job's linkage uses a core; two jobs at once use a
/// two-core machine, each holding one county in memory).
pub fn run_partitioned(
    store: &mut Store,
    connect: impl Fn() -> Result<Store, StoreError> + Sync,
    params: &Params,
    retrain: bool,
    jobs: usize,
) -> Result<RunSummary, MergeError> {
    let run = create_run(store, params, retrain)?;
    let jobs = jobs.clamp(1, run.partitions.len().max(1));
    if jobs == 1 {
        for division in &run.partitions {
            do_job(store, &run, params, division, "local")?;
        }
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let threads: Vec<_> = (1..=jobs)
                .map(|t| {
                    let (run, next, connect) = (&run, &next, &connect);
                    scope.spawn(move || -> Result<(), StoreError> {
                        let mut store = connect()?;
                        let name = format!("local-{t}");
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(division) = run.partitions.get(i) else {
                                return Ok(());
                            };
                            do_job(&mut store, run, params, division, &name)?;
                        }
                    })
                })
                .collect();
            threads
                .into_iter()
                .try_for_each(|t| t.join().expect("partition threads do not panic"))
        })?;
    }
    finish_run(store, &run, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::find_discrepancies_with;

    fn person(key: &str, division: &str, id: &str) -> Record {
        Record::Person(Person {
            person_key: key.into(),
            id_number: IdNumber::parse(id),
            name: "张伟".into(),
            sex: Sex::Male,
            birth_date: chrono::NaiveDate::from_ymd_opt(1990, 1, 1),
            hukou_division: division.parse().ok(),
            residence_division: None,
            marital_status: None,
            spouse_id_number: None,
            mother_id_number: None,
            father_id_number: None,
            status: PersonStatus::Resident,
            updated_at: None,
        })
    }

    #[test]
    fn the_merge_finds_one_number_held_in_two_counties_once() {
        let mut store = Store::open_in_memory().unwrap();
        let body = "41061119900101001";
        let id = format!("{body}{}", check_char(body));
        let mut w = store
            .begin_file("registry.csv", "sha", 10, "registry", "m")
            .unwrap();
        w.add(person("P1", "410611", &id), "row 1").unwrap();
        w.add(person("P2", "410621", &id), "row 2").unwrap();
        w.finish(2, None).unwrap();
        let params = october();
        // Each county alone sees one holder; a county job that loaded the other as a foreign
        // person would report the pair too: kept once.
        let (found, _) = find_discrepancies_with(
            &Inputs {
                registry: match (person("P1", "410611", &id), person("P2", "410621", &id)) {
                    (Record::Person(a), Record::Person(b)) => vec![a, b],
                    _ => unreachable!(),
                },
                ..Inputs::default()
            },
            &params,
            None,
        );
        let part = PartitionFindings {
            findings: found,
            confirmed_elsewhere: Vec::new(),
            digest: DigestUse::Kept,
        };
        let merged = merge(&mut store, &params, vec![part]).unwrap();
        let duplicates: Vec<&Discrepancy> = merged
            .iter()
            .filter(|d| d.kind == DiscrepancyKind::DuplicateRegistryRecord)
            .collect();
        assert_eq!(duplicates.len(), 1, "{merged:?}");
        assert_eq!(duplicates[0].anchor, "P1|P2");
        assert!(merge(&mut store, &params, Vec::new())
            .unwrap()
            .iter()
            .any(|d| d.anchor == "P1|P2"));
    }

    /// October 2026 as of November 20th, in the region 4106.
    fn october() -> Params {
        Params {
            period: "2026-10".parse().unwrap(),
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            grace_days: 30,
            region_prefix: "4106".into(),
        }
    }

    /// An empty store, October, and a valid number of each of the counties 410611 and 410621.
    fn two_numbers() -> (Store, Params, String, String) {
        let (a, b) = (id("41061119900101001"), id("41062119900101003"));
        (Store::open_in_memory().unwrap(), october(), a, b)
    }

    fn id(body: &str) -> String {
        format!("{body}{}", check_char(body))
    }

    fn load(store: &mut Store, sha: &str, records: Vec<Record>) {
        let mut w = store
            .begin_file("registry.csv", sha, 10, "registry", "m")
            .unwrap();
        let n = records.len() as u64;
        for (i, r) in records.into_iter().enumerate() {
            w.add(r, &format!("row {}", i + 1)).unwrap();
        }
        w.finish(n, None).unwrap();
    }

    /// The duplicate pairs a partitioned run finds (and leaves open).
    fn duplicates(store: &mut Store, params: &Params) -> Vec<String> {
        let summary =
            run_partitioned(store, Store::open_in_memory, params, false, 1).expect("the run");
        let open: Vec<String> = store
            .discrepancies(&params.period.to_string(), Some("open"))
            .unwrap()
            .into_iter()
            .map(|d| d.discrepancy)
            .filter(|d| d.kind == DiscrepancyKind::DuplicateRegistryRecord)
            .map(|d| d.anchor)
            .collect();
        assert_eq!(
            summary.by_kind["duplicate_registry_record"] as usize,
            open.len()
        );
        open
    }

    #[test]
    fn a_county_digest_is_kept_until_its_registry_changes_and_then_brought_up_to_date() {
        let (mut store, params, a, b) = two_numbers();
        load(
            &mut store,
            "first",
            vec![
                person("P1", "410611", &a),
                person("P2", "410611", &a),
                person("P3", "410621", &b),
            ],
        );
        let before = store.division_version(Feed::Registry, "410621").unwrap();
        assert_eq!(duplicates(&mut store, &params), ["P1|P2"]);
        let (made_at, _) = store.registry_digest("410611").unwrap().expect("kept");
        assert_eq!(
            made_at,
            store.division_version(Feed::Registry, "410611").unwrap()
        );

        // P2's number is corrected: county 410611 changed, 410621 did not.
        load(
            &mut store,
            "second",
            vec![person("P2", "410611", &id("41061119900101002"))],
        );
        assert_eq!(
            store.division_version(Feed::Registry, "410621").unwrap(),
            before
        );
        assert!(store.division_version(Feed::Registry, "410611").unwrap() > made_at);
        assert!(
            duplicates(&mut store, &params).is_empty(),
            "the county's digest was brought up to date"
        );

        // P3 moves to 410611 with P1's number: both counties changed.
        let (one, two) = (
            store.division_version(Feed::Registry, "410611").unwrap(),
            store.division_version(Feed::Registry, "410621").unwrap(),
        );
        load(&mut store, "third", vec![person("P3", "410611", &a)]);
        assert!(store.division_version(Feed::Registry, "410611").unwrap() > one);
        assert!(store.division_version(Feed::Registry, "410621").unwrap() > two);
        assert_eq!(duplicates(&mut store, &params), ["P1|P3"]);

        // P3 back in 410621 with P1's number: a pair across counties, which only the merge's
        // look-up of numbers held in several counties finds.
        load(&mut store, "fourth", vec![person("P3", "410621", &a)]);
        assert_eq!(duplicates(&mut store, &params), ["P1|P3"]);
        // Their own number again: the kept look-up is brought up to date.
        load(&mut store, "fifth", vec![person("P3", "410621", &b)]);
        assert!(duplicates(&mut store, &params).is_empty());
        // The county digest and the shared numbers have taken in the last change: forgotten.
        let now = store.division_version(Feed::Registry, "410621").unwrap();
        assert_eq!(
            store.registry_changes("410621", now - 1, now).unwrap(),
            None
        );
    }

    /// A person of `division` born on day `day` of 1990 (1-28), with a mother.
    fn resident(key: &str, division: &str, seq: u32, name: &str, day: u32) -> Person {
        let body = format!("{division}199001{day:02}{seq:03}");
        let mother = format!("{division}19650304{:03}", seq % 7);
        Person {
            person_key: key.into(),
            id_number: IdNumber::parse(&format!("{body}{}", check_char(&body))),
            name: name.into(),
            sex: if seq.is_multiple_of(2) {
                Sex::Male
            } else {
                Sex::Female
            },
            birth_date: chrono::NaiveDate::from_ymd_opt(1990, 1, day),
            hukou_division: division.parse().ok(),
            residence_division: None,
            marital_status: None,
            spouse_id_number: None,
            mother_id_number: IdNumber::parse(&format!("{mother}{}", check_char(&mother))),
            father_id_number: None,
            status: PersonStatus::Resident,
            updated_at: None,
        }
    }

    #[test]
    fn a_digest_brought_up_to_date_holds_what_one_made_from_the_whole_county_would() {
        let mut store = Store::open_in_memory().unwrap();
        let params = october();
        let names = ["张伟", "王芳", "李娜", "刘洋", "陈静"];
        let mut people: Vec<Person> = (0..60u32)
            .map(|n| {
                let d = if n < 45 { "410611" } else { "410621" };
                resident(&format!("P{n:03}"), d, n, names[n as usize % 5], 1 + n % 9)
            })
            .collect();
        // A duplicate by number, and one with a bad number.
        people[7].id_number = people[6].id_number.clone();
        people[9].id_number = IdNumber::parse("410611199001019990");
        load(
            &mut store,
            "first",
            people.iter().cloned().map(Record::Person).collect(),
        );
        let (_, read, _) = registry_digest(&mut store, &params, "410611").unwrap();
        assert!(read.is_some(), "the first digest reads the county whole");

        let mut changed: Vec<Person> = Vec::new();
        let mut edit = |n: usize, f: &dyn Fn(&mut Person)| {
            let mut p = people[n].clone();
            f(&mut p);
            changed.push(p);
        };
        // Renamed into a duplicate of P000 (same name, sex, birth date and mother, no number).
        edit(10, &|p| {
            p.name = "张伟".into();
            p.sex = Sex::Male;
            p.birth_date = chrono::NaiveDate::from_ymd_opt(1990, 1, 1);
            p.mother_id_number = people[0].mother_id_number.clone();
            p.id_number = None;
        });
        edit(11, &|p| p.hukou_division = "410621".parse().ok()); // moves out
        edit(50, &|p| p.hukou_division = "410611".parse().ok()); // moves in
        edit(9, &|p| p.id_number = people[8].id_number.clone()); // bad number corrected...
        edit(20, &|p| {
            p.father_id_number = IdNumber::parse("110101197001010000")
        }); // ...one made
        edit(7, &|p| p.name = "赵敏".into()); // still P006's duplicate by number
        let mut born = resident("P100", "410611", 100, "孙丽", 3);
        born.id_number = people[30].id_number.clone();
        changed.push(born);
        load(
            &mut store,
            "second",
            changed.into_iter().map(Record::Person).collect(),
        );

        let (updated, read, used) = registry_digest(&mut store, &params, "410611").unwrap();
        assert!(
            read.is_none(),
            "brought up to date from the persons that changed"
        );
        assert_eq!(used, DigestUse::Updated { changed: 7 });
        let (whole, _) = whole_county_digest(&mut store, &params, "410611").unwrap();
        assert_eq!(updated.persons, whole.persons);
        assert_eq!(
            serde_json::to_value(&updated.checks).unwrap(),
            serde_json::to_value(&whole.checks).unwrap()
        );
        let anchors: Vec<&str> = updated.checks.iter().map(|d| d.anchor.as_str()).collect();
        assert!(anchors.contains(&"P000|P010"), "{anchors:?}");
        assert!(anchors.contains(&"P006|P007"), "{anchors:?}");
        assert!(anchors.contains(&"P008|P009"), "{anchors:?}");
        assert!(anchors.contains(&"P030|P100"), "{anchors:?}");
        assert!(
            updated
                .checks
                .iter()
                .any(|d| d.kind == DiscrepancyKind::InvalidIdentifier
                    && d.registry_key.as_deref() == Some("P020")),
            "{anchors:?}"
        );
        assert!(
            !updated
                .checks
                .iter()
                .any(|d| d.kind == DiscrepancyKind::InvalidIdentifier
                    && d.registry_key.as_deref() == Some("P009")),
            "{anchors:?}"
        );
        // 45 persons became 46, more than U_DRIFT: u measured again, so all of it is equal.
        assert_eq!(updated.population, whole.population);
        assert_eq!(updated.u_measured_on, 46);

        // A rename: u is kept, the counts follow.
        let mut renamed = people[12].clone();
        renamed.name = "周杰".into();
        load(&mut store, "third", vec![Record::Person(renamed)]);
        let (again, read, used_again) = registry_digest(&mut store, &params, "410611").unwrap();
        assert!(read.is_none());
        assert_eq!(used_again, DigestUse::Updated { changed: 1 });
        let (whole, _) = whole_county_digest(&mut store, &params, "410611").unwrap();
        assert_eq!(again.persons, whole.persons);
        assert_ne!(again.population.counts, updated.population.counts);
        assert_eq!(again.population.counts, whole.population.counts);
        assert_eq!(again.population.u, updated.population.u);
        assert_eq!(again.u_measured_on, 46);

        // Kept as made at the county's version: the next month reads nothing more.
        let (made_at, _) = store.registry_digest("410611").unwrap().expect("kept");
        assert_eq!(
            made_at,
            store.division_version(Feed::Registry, "410611").unwrap()
        );
    }

    #[test]
    fn the_change_log_is_kept_only_while_a_reader_needs_it() {
        let (mut store, params, a, b) = two_numbers();
        load(
            &mut store,
            "first",
            vec![person("P1", "410611", &a), person("P3", "410621", &b)],
        );
        let last_write = |store: &Store| {
            let v = store.division_version(Feed::Registry, "410611").unwrap();
            store.registry_changes("410611", v - 1, v).unwrap()
        };
        assert_eq!(last_write(&store), Some(vec!["P1".to_owned()]));
        // No digest and no shared numbers: a whole-region run leaves no log behind.
        crate::reconcile::run(&mut store, &params, false).unwrap();
        assert_eq!(last_write(&store), None);

        // Digests made; a change after them stays through whole-region runs...
        assert!(duplicates(&mut store, &params).is_empty());
        load(
            &mut store,
            "second",
            vec![person("P1", "410611", &id("41061119900101002"))],
        );
        crate::reconcile::run(&mut store, &params, false).unwrap();
        assert_eq!(last_write(&store), Some(vec!["P1".to_owned()]));
        // ... until the next partitioned run has taken it in.
        assert!(duplicates(&mut store, &params).is_empty());
        assert_eq!(last_write(&store), None);
    }
}
