//! Reconciliation: compares the feeds with the registry and lists what disagrees.
//!
//! [`find_discrepancies`] is a pure function of the stored records and the parameters, so the
//! same data always gives the same discrepancies; [`run`] loads, finds and saves them.

mod births;
mod events;
pub mod partition;
mod registry;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use foldhash::HashSet;

use crate::linkage::fs::{Model, Population};
use crate::linkage::ExactLinker;
use crate::model::*;
use crate::store::{SaveSummary, Store, StoreError};

/// What a reconciliation run looks at.
#[derive(Debug, Clone)]
pub struct Params {
    pub period: Period,
    /// The day the grace period for household registration counts to.
    pub as_of: NaiveDate,
    pub grace_days: i64,
    /// Identity numbers and divisions starting with this belong to our region (`4106`).
    pub region_prefix: String,
}

impl Params {
    /// The parameters a configured region reconciles a period with.
    pub fn from_config(config: &crate::config::Config, period: Period, as_of: NaiveDate) -> Params {
        Params {
            period,
            as_of,
            grace_days: config.reconcile.grace_days,
            region_prefix: config.region.prefix().to_owned(),
        }
    }
}

/// Every current record of every feed.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    pub registry: Vec<Person>,
    pub births: Vec<BirthNotification>,
    pub hukou: Vec<HukouEvent>,
    pub marriages: Vec<MarriageRegistration>,
    pub migrants: Vec<MigrantRecord>,
}

impl Inputs {
    pub fn load(store: &Store) -> Result<Inputs, StoreError> {
        let mut inputs = Inputs::default();
        for feed in Feed::ALL {
            for stored in store.records(feed)? {
                match stored.record {
                    Record::Person(p) => inputs.registry.push(p),
                    Record::Birth(b) => inputs.births.push(b),
                    Record::Hukou(h) => inputs.hukou.push(h),
                    Record::Marriage(m) => inputs.marriages.push(m),
                    Record::Migrant(m) => inputs.migrants.push(m),
                }
            }
        }
        Ok(inputs)
    }
}

/// The outcome of a run: discrepancies found per kind and what saving them changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub period: String,
    pub as_of: String,
    pub by_kind: BTreeMap<String, u64>,
    pub saved: SaveSummary,
    /// How the births linkage model was obtained: "trained", "reused from TIME", or "not needed".
    pub births_model: String,
    /// Partitioned runs: how the county jobs had their registry digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_digests: Option<String>,
}

/// The name the births linkage model is saved under.
const BIRTHS_MODEL: &str = "births";

/// Loads everything, finds the period's discrepancies and saves them with stable ids. The
/// births linkage model saved by an earlier run is reused unless `retrain` is set (or the
/// shipped settings changed); a newly trained one is saved for the next run.
pub fn run(store: &mut Store, params: &Params, retrain: bool) -> Result<RunSummary, StoreError> {
    let started = crate::store::now();
    let inputs = Inputs::load(store)?;
    let saved_model = if retrain {
        None
    } else {
        store.linkage_model(BIRTHS_MODEL)?
    };
    let reused: Option<(Model, String)> = saved_model.and_then(|(json, at)| {
        serde_json::from_str::<Model>(&json)
            .ok()
            .filter(births::model_fits)
            .map(|m| (m, at))
    });
    let (found, trained) =
        find_discrepancies_with(&inputs, params, reused.as_ref().map(|(m, _)| m));
    let births_model = match (&trained, &reused) {
        (Some(model), _) => {
            store.save_linkage_model(
                BIRTHS_MODEL,
                &serde_json::to_string(model).expect("models serialise"),
            )?;
            "trained".to_owned()
        }
        (None, Some((_, at))) => format!("reused from {at}"),
        (None, None) => "not needed".to_owned(),
    };
    // The registry change log serves partitioned runs; what none of their readers needs goes.
    partition::forget_taken_changes(store)?;
    save_run(store, params, &found, &started, births_model, None)
}

/// Saves a run's discrepancies and records the run; `started` is when it began.
pub(crate) fn save_run(
    store: &mut Store,
    params: &Params,
    found: &[Discrepancy],
    started: &str,
    births_model: String,
    registry_digests: Option<String>,
) -> Result<RunSummary, StoreError> {
    let period = params.period.to_string();
    let saved = store.save_discrepancies(&period, found)?;
    let mut by_kind: BTreeMap<String, u64> = DiscrepancyKind::ALL
        .iter()
        .map(|k| (k.name().to_owned(), 0))
        .collect();
    for d in found {
        *by_kind.entry(d.kind.name().to_owned()).or_default() += 1;
    }
    let summary = RunSummary {
        period: period.clone(),
        as_of: params.as_of.to_string(),
        by_kind,
        saved,
        births_model,
        registry_digests,
    };
    let text = serde_json::to_string(&summary).expect("summaries serialise");
    store.record_reconcile_run(&period, &params.as_of.to_string(), started, &text)?;
    Ok(summary)
}

/// Every discrepancy of `params.period` in the inputs, deterministic for the same inputs.
pub fn find_discrepancies(inputs: &Inputs, params: &Params) -> Vec<Discrepancy> {
    find_discrepancies_with(inputs, params, None).0
}

/// As [`find_discrepancies`], scoring births with `model` when given; returns the model it
/// trained when it had to train one.
pub fn find_discrepancies_with(
    inputs: &Inputs,
    params: &Params,
    model: Option<&Model>,
) -> (Vec<Discrepancy>, Option<Model>) {
    find_in_scope(inputs, params, model, Scope::Whole)
}

/// How much of the registry [`Inputs::registry`] holds.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// All of it (a whole-region run).
    Whole,
    /// The persons a county job's feed records need (holders of the numbers they name, the
    /// children of the mothers they name, persons born around the period); `persons` is
    /// every person the search for unknown persons looks among, `population` what it measured
    /// of them. The checks of the registry persons alone (duplicates, bad numbers) are made
    /// where the whole county is read.
    Part {
        persons: &'a [PersonRow],
        population: &'a Population,
    },
}

pub(crate) fn find_in_scope(
    inputs: &Inputs,
    params: &Params,
    model: Option<&Model>,
    scope: Scope,
) -> (Vec<Discrepancy>, Option<Model>) {
    let linker = ExactLinker::new(&inputs.registry);
    let mut out = Findings::new(params);
    let trained = births::reconcile(inputs, params, &linker, model, &mut out);
    let whole;
    let (persons, population) = match scope {
        Scope::Whole => {
            let rows = person_rows(&inputs.registry);
            let measured = events::measure_population(&rows);
            whole = (rows, measured);
            (&whole.0[..], &whole.1)
        }
        Scope::Part {
            persons,
            population,
        } => (persons, population),
    };
    events::reconcile(inputs, params, &linker, persons, population, &mut out);
    match scope {
        Scope::Whole => registry::reconcile(inputs, persons, params, &mut out),
        Scope::Part { .. } => {
            // Pairs with persons of other counties this job loaded; the county's own pairs
            // come with its checks.
            registry::duplicates(&person_rows(&inputs.registry), &mut out);
            registry::invalid_feed_identifiers(inputs, params, &mut out);
        }
    }
    let mut items = out.items;
    in_order_once(&mut items);
    (items, trained)
}

/// The checks of registry persons alone (duplicates among `persons`, whose rows are `rows`,
/// and their bad identity numbers), stamped with `params`' period, in (kind, anchor) order.
pub(crate) fn registry_checks(
    persons: &[Person],
    rows: &[PersonRow],
    params: &Params,
) -> Vec<Discrepancy> {
    let mut out = Findings::new(params);
    registry::persons(persons, rows, &mut out);
    let mut items = out.items;
    in_order_once(&mut items);
    items
}

/// [`registry_checks`] of a population whose persons with keys in `changed` changed since
/// `checks` were made: `rows` are every person now, `changed_persons` those of them whose
/// records changed. Duplicates are found again among all rows (a changed person may pair with
/// any other); bad numbers are per person, so only the changed persons' are checked again.
pub(crate) fn registry_checks_updated(
    checks: Vec<Discrepancy>,
    rows: &[PersonRow],
    changed: &HashSet<&str>,
    changed_persons: &[Person],
    params: &Params,
) -> Vec<Discrepancy> {
    let mut out = Findings::new(params);
    registry::duplicates(rows, &mut out);
    registry::invalid_registry_identifiers(changed_persons, &mut out);
    let mut items = out.items;
    items.extend(checks.into_iter().filter(|d| {
        d.kind == DiscrepancyKind::InvalidIdentifier
            && d.registry_key
                .as_deref()
                .is_some_and(|k| !changed.contains(k))
    }));
    in_order_once(&mut items);
    items
}

/// A registry person as the search for unknown persons compares and reports them: text as
/// the comparisons take it (empty when unknown).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PersonRow {
    #[serde(rename = "k")]
    pub key: String,
    #[serde(rename = "i")]
    pub id_number: String,
    /// Whether `id_number` passes its checks (the duplicate rule groups valid numbers only).
    #[serde(rename = "v", default)]
    pub id_valid: bool,
    #[serde(rename = "n")]
    pub name: String,
    #[serde(rename = "b")]
    pub birth_date: String,
    #[serde(rename = "s")]
    pub sex: String,
    /// The household-registration county.
    #[serde(rename = "d")]
    pub division: String,
    #[serde(rename = "t")]
    pub status: PersonStatus,
    /// The mother's number when valid (duplicates by name, sex, birth date and mother).
    #[serde(rename = "m")]
    pub mother_id: String,
}

impl PersonRow {
    pub fn of(p: &Person) -> PersonRow {
        PersonRow {
            key: p.person_key.clone(),
            id_number: p
                .id_number
                .as_ref()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            id_valid: p.id_number.as_ref().is_some_and(IdNumber::is_valid),
            name: p.name.clone(),
            birth_date: p.birth_date.map(|d| d.to_string()).unwrap_or_default(),
            sex: if p.sex.is_known() {
                p.sex.code().to_owned()
            } else {
                String::new()
            },
            division: division_text(&p.hukou_division).unwrap_or_default(),
            status: p.status,
            mother_id: p
                .mother_id_number
                .as_ref()
                .filter(|m| m.is_valid())
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
        }
    }

    /// The identity number when it passes its checks.
    pub fn valid_id(&self) -> Option<&str> {
        self.id_valid.then_some(self.id_number.as_str())
    }
}

/// What the search for unknown persons measures of `persons` (see [`Scope::Part`]).
pub(crate) fn measure_population(persons: &[PersonRow]) -> Population {
    events::measure_population(persons)
}

/// `measured` brought to `persons` after a few of them changed (u kept, counts made again).
pub(crate) fn recount_population(measured: &Population, persons: &[PersonRow]) -> Population {
    events::recount_population(measured, persons)
}

/// The rows of `persons`, in their order.
pub(crate) fn person_rows(persons: &[Person]) -> Vec<PersonRow> {
    persons.iter().map(PersonRow::of).collect()
}

/// Sorts discrepancies by (kind, anchor) and keeps one of each: the order runs save them in.
pub(crate) fn in_order_once(items: &mut Vec<Discrepancy>) {
    items.sort_by(|a, b| (a.kind, &a.anchor).cmp(&(b.kind, &b.anchor)));
    items.dedup_by(|a, b| a.kind == b.kind && a.anchor == b.anchor);
}

/// Only the duplicate-record rule, over `persons` (the cross-county pass of a partitioned run).
pub(crate) fn duplicate_records(persons: &[Person], params: &Params) -> Vec<Discrepancy> {
    let mut out = Findings::new(params);
    registry::duplicates(&person_rows(persons), &mut out);
    out.items
}

/// Collects discrepancies for one period.
pub(crate) struct Findings {
    period: String,
    items: Vec<Discrepancy>,
    /// Records naming persons exact keys did not find, for the probabilistic search.
    unknown: Vec<events::UnknownProbe>,
}

pub(crate) struct Finding {
    pub kind: DiscrepancyKind,
    pub division: Option<String>,
    pub sources: Vec<SourceRef>,
    pub registry_key: Option<String>,
    pub fields: Vec<FieldDiff>,
    pub explanation: String,
    pub anchor: String,
}

impl Findings {
    fn new(params: &Params) -> Findings {
        Findings {
            period: params.period.to_string(),
            items: Vec::new(),
            unknown: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, f: Finding) {
        self.push_scored(f, 1.0, None, false);
    }

    /// A finding resting on a probabilistic link (or a probable one awaiting confirmation).
    pub(crate) fn push_scored(
        &mut self,
        f: Finding,
        score: f64,
        evidence: Option<serde_json::Value>,
        possible_match: bool,
    ) {
        let severity = match f.kind {
            DiscrepancyKind::UnreportedBirth | DiscrepancyKind::UnregisteredChild => Severity::High,
            DiscrepancyKind::DuplicateRegistryRecord | DiscrepancyKind::InvalidIdentifier => {
                Severity::Low
            }
            _ => Severity::Medium,
        };
        self.items.push(Discrepancy {
            kind: f.kind,
            period: self.period.clone(),
            division: f.division,
            severity,
            score: (score * 1000.0).round() / 1000.0,
            sources: f.sources,
            registry_key: f.registry_key,
            fields: f.fields,
            explanation: f.explanation,
            anchor: f.anchor,
            evidence,
            possible_match,
        });
    }
}

pub(crate) fn is_ours(id: &IdNumber, region_prefix: &str) -> bool {
    id.is_valid() && id.as_str().starts_with(region_prefix)
}

pub(crate) fn division_text(d: &Option<Division>) -> Option<String> {
    d.as_ref().map(|d| d.as_str().to_owned())
}

#[cfg(test)]
mod tests;
