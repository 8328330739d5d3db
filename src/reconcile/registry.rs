//! Registry-only kinds and identity numbers that fail their checks, wherever they are.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};

use super::{division_text, Finding, Findings, Inputs, Params, PersonRow};
use crate::model::*;

/// Every registry-only finding and every bad identity number, over a whole registry (whose
/// persons' rows are `rows`).
pub(super) fn reconcile(inputs: &Inputs, rows: &[PersonRow], params: &Params, out: &mut Findings) {
    persons(&inputs.registry, rows, out);
    invalid_feed_identifiers(inputs, params, out);
}

/// The checks of registry persons alone (`rows` theirs, in their order): duplicates among them
/// and their bad numbers.
pub(super) fn persons(persons: &[Person], rows: &[PersonRow], out: &mut Findings) {
    duplicates(rows, out);
    invalid_registry_identifiers(persons, out);
}

/// Two registry records are the same person when they hold the same valid identity number,
/// or when they agree on name, sex, birth date and mother and at most one has a valid number.
///
/// It works on [`PersonRow`]s, what a county's digest keeps of every person, so that a digest
/// brought up to date from the persons that changed finds the duplicates a fresh one would.
pub(super) fn duplicates(persons: &[PersonRow], out: &mut Findings) {
    let mut pairs: BTreeSet<(usize, usize, &'static str)> = BTreeSet::new();
    // Hash maps: the pairs are collected in order whatever order the groups come in.
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_identity: HashMap<(&str, &str, &str, &str), Vec<usize>> = HashMap::new();
    for (i, p) in persons.iter().enumerate() {
        if let Some(id) = p.valid_id() {
            by_id.entry(id).or_default().push(i);
        }
        if !p.birth_date.is_empty() && !p.mother_id.is_empty() && !p.name.is_empty() {
            by_identity
                .entry((
                    p.name.as_str(),
                    p.sex.as_str(),
                    p.birth_date.as_str(),
                    p.mother_id.as_str(),
                ))
                .or_default()
                .push(i);
        }
    }
    let valid = |i: usize| persons[i].valid_id();
    for group in by_id.values() {
        for (a, &i) in group.iter().enumerate() {
            for &j in &group[a + 1..] {
                pairs.insert((i.min(j), i.max(j), "the same identity number"));
            }
        }
    }
    for group in by_identity.values() {
        for (a, &i) in group.iter().enumerate() {
            for &j in &group[a + 1..] {
                let (i, j) = (i.min(j), i.max(j));
                let conflicting_ids = matches!((valid(i), valid(j)), (Some(x), Some(y)) if x != y);
                let same_number = pairs
                    .range((i, j, "")..)
                    .next()
                    .is_some_and(|&(x, y, _)| (x, y) == (i, j));
                if !conflicting_ids && !same_number {
                    pairs.insert((i, j, "the same name, sex, birth date and mother"));
                }
            }
        }
    }
    for (i, j, why) in pairs {
        let (a, b) = if persons[i].key <= persons[j].key {
            (&persons[i], &persons[j])
        } else {
            (&persons[j], &persons[i])
        };
        out.push(Finding {
            kind: DiscrepancyKind::DuplicateRegistryRecord,
            division: (!a.division.is_empty()).then(|| a.division.clone()),
            sources: vec![SourceRef::new("registry", &b.key)],
            registry_key: Some(a.key.clone()),
            fields: Vec::new(),
            explanation: format!("registry persons {} and {} have {why}", a.key, b.key),
            anchor: format!("{}|{}", a.key, b.key),
        });
    }
}

/// One `invalid_identifier` per registry person carrying at least one bad identity number.
pub(super) fn invalid_registry_identifiers(persons: &[Person], out: &mut Findings) {
    for p in persons {
        let ids = [
            ("id_number", &p.id_number),
            ("mother_id_number", &p.mother_id_number),
            ("father_id_number", &p.father_id_number),
            ("spouse_id_number", &p.spouse_id_number),
        ];
        flag(
            out,
            "registry",
            &p.person_key,
            Some(&p.person_key),
            division_text(&p.hukou_division),
            &ids,
        );
    }
}

/// One `invalid_identifier` per feed record of the period carrying at least one bad number.
pub(super) fn invalid_feed_identifiers(inputs: &Inputs, params: &Params, out: &mut Findings) {
    let in_period = |d: chrono::NaiveDate| params.period.contains(d);
    for b in inputs.births.iter().filter(|b| in_period(b.birth_date)) {
        let ids = [("mother_id", &b.mother_id), ("father_id", &b.father_id)];
        let division =
            division_text(&b.mother_division).or_else(|| division_text(&b.birth_division));
        flag(out, "health.births", &b.cert_no, None, division, &ids);
    }
    for h in inputs.hukou.iter().filter(|h| in_period(h.reg_date)) {
        let own = Some(h.id_number.clone());
        let ids = [
            ("id_number", &own),
            ("mother_id", &h.mother_id),
            ("father_id", &h.father_id),
        ];
        flag(
            out,
            "police.hukou",
            &h.key(),
            None,
            division_text(&h.hukou_division),
            &ids,
        );
    }
    for m in inputs.marriages.iter().filter(|m| in_period(m.reg_date)) {
        let ids = [
            ("husband.id_number", &m.husband.id_number),
            ("wife.id_number", &m.wife.id_number),
        ];
        flag(
            out,
            "civil.marriages",
            &m.reg_no,
            None,
            division_text(&m.office),
            &ids,
        );
    }
    for m in inputs.migrants.iter().filter(|m| in_period(m.event_date)) {
        let own = Some(m.id_number.clone());
        let mut ids = vec![("id_number".to_owned(), own)];
        ids.extend(
            m.children
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("children[{i}].id_number"), c.id_number.clone())),
        );
        let refs: Vec<(&str, &Option<IdNumber>)> =
            ids.iter().map(|(f, v)| (f.as_str(), v)).collect();
        flag(
            out,
            "exchange.migrants",
            &m.key(),
            None,
            division_text(&m.hukou_division),
            &refs,
        );
    }
}

fn flag(
    out: &mut Findings,
    feed: &str,
    key: &str,
    registry_key: Option<&str>,
    division: Option<String>,
    ids: &[(&str, &Option<IdNumber>)],
) {
    let bad: Vec<(&str, &IdNumber)> = ids
        .iter()
        .filter_map(|(field, id)| {
            id.as_ref()
                .filter(|id| !id.is_valid())
                .map(|id| (*field, id))
        })
        .collect();
    if bad.is_empty() {
        return;
    }
    out.push(Finding {
        kind: DiscrepancyKind::InvalidIdentifier,
        division,
        sources: vec![SourceRef::new(feed, key)],
        registry_key: registry_key.map(str::to_owned),
        fields: bad
            .iter()
            .map(|(field, id)| FieldDiff {
                field: (*field).into(),
                registry: (feed == "registry").then(|| id.as_str().to_owned()),
                source: (feed != "registry").then(|| id.as_str().to_owned()),
                feed: Some(feed.into()),
            })
            .collect(),
        explanation: format!(
            "{feed} record {key}: {}",
            bad.iter()
                .map(|(field, id)| format!(
                    "{field} {} ({})",
                    id.as_str(),
                    id.problem().map(|p| p.to_string()).unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        anchor: format!("{feed}|{key}"),
    });
}
