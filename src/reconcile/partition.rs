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

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

use chrono::Duration;

use super::{find_discrepancies_with, Inputs, Params, RunSummary};
use crate::linkage::fs::Model;
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
}

/// The name a county's births linkage model is saved under; each county trains its own, so
/// whichever worker runs a county, the model is the same.
fn births_model_name(division: &str) -> String {
    format!("births@{division}")
}

/// Loads everything a county's job needs; returns the inputs and the keys of the persons of
/// other counties among them.
pub fn partition_inputs(
    store: &Store,
    params: &Params,
    division: &str,
) -> Result<(Inputs, HashSet<String>), StoreError> {
    let mut inputs = Inputs::default();
    let window = (
        params.period.first_day() - Duration::days(WINDOW_DAYS),
        params.period.last_day() + Duration::days(WINDOW_DAYS),
    );
    let mut own: HashSet<String> = HashSet::new();
    store.for_each_in_division(Feed::Registry, division, None, |r| {
        if let Record::Person(p) = r {
            own.insert(p.person_key.clone());
            inputs.registry.push(p);
        }
    })?;
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
    let held: HashSet<&str> = inputs
        .registry
        .iter()
        .filter_map(|p| p.id_number.as_ref().map(IdNumber::as_str))
        .collect();
    let missing: Vec<&str> = named
        .iter()
        .map(String::as_str)
        .filter(|id| !held.contains(id))
        .collect();
    let mothers: Vec<&str> = mothers.iter().map(String::as_str).collect();
    let mut foreign: HashSet<String> = HashSet::new();
    let mut found = store.registry_by_ids(RegistryId::Own, &missing)?;
    found.extend(store.registry_by_ids(RegistryId::Mother, &mothers)?);
    for record in found {
        if let Record::Person(p) = record {
            if !own.contains(&p.person_key) && foreign.insert(p.person_key.clone()) {
                inputs.registry.push(p);
            }
        }
    }
    // The engine's results must not depend on the order rows came in.
    inputs
        .registry
        .sort_by(|a, b| a.person_key.cmp(&b.person_key));
    Ok((inputs, foreign))
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
    let (inputs, foreign) = partition_inputs(store, params, division)?;
    let name = births_model_name(division);
    let saved = if retrain {
        None
    } else {
        store.linkage_model(&name)?
    };
    let model: Option<Model> = saved
        .and_then(|(json, _)| serde_json::from_str::<Model>(&json).ok())
        .filter(super::births::model_fits);
    let (found, trained) = find_discrepancies_with(&inputs, params, model.as_ref());
    if let Some(m) = trained {
        store.save_linkage_model(&name, &serde_json::to_string(&m).expect("models serialise"))?;
    }
    let mut unconfirmed_foreign = HashSet::new();
    let mut findings = Vec::with_capacity(found.len());
    for d in found {
        let about_foreign = d.registry_key.as_ref().is_some_and(|k| foreign.contains(k));
        let registry_only = d.sources.first().is_some_and(|s| s.feed == "registry");
        match d.kind {
            DiscrepancyKind::RegistryBirthUnconfirmed if about_foreign => {
                if let Some(k) = &d.registry_key {
                    unconfirmed_foreign.insert(k.clone());
                }
            }
            // Their own county reports a bad number of its persons.
            DiscrepancyKind::InvalidIdentifier if about_foreign && registry_only => {}
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
    })
}

/// The second pass over every county's findings: see the module documentation.
pub fn merge(
    store: &Store,
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
    let shared = store.ids_in_several_divisions()?;
    if !shared.is_empty() {
        let ids: Vec<&str> = shared.iter().map(String::as_str).collect();
        let mut persons: Vec<Person> = store
            .registry_by_ids(RegistryId::Own, &ids)?
            .into_iter()
            .filter_map(|r| match r {
                Record::Person(p) => Some(p),
                _ => None,
            })
            .collect();
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
    let found = merge(store, params, parts)?;
    let births_model = format!("one per county ({} partitions)", run.partitions.len());
    let summary = super::save_run(store, params, &found, &started, births_model)?;
    store.finish_partition_run(&run.run)?;
    Ok(summary)
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
        let params = Params {
            period: "2026-10".parse().unwrap(),
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            grace_days: 30,
            region_prefix: "4106".into(),
        };
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
        };
        let merged = merge(&store, &params, vec![part]).unwrap();
        let duplicates: Vec<&Discrepancy> = merged
            .iter()
            .filter(|d| d.kind == DiscrepancyKind::DuplicateRegistryRecord)
            .collect();
        assert_eq!(duplicates.len(), 1, "{merged:?}");
        assert_eq!(duplicates[0].anchor, "P1|P2");
        assert!(merge(&store, &params, Vec::new())
            .unwrap()
            .iter()
            .any(|d| d.anchor == "P1|P2"));
    }
}
