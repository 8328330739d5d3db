//! Marriages, household moves and deaths, and partner-region migrant records.

use foldhash::HashSet;

use super::{division_text, is_ours, Finding, Findings, Inputs, Params, PersonRow};
use crate::linkage::fs::{Population, Table};
use crate::linkage::ExactLinker;
use crate::model::*;

pub(super) fn reconcile(
    inputs: &Inputs,
    params: &Params,
    linker: &ExactLinker,
    persons: &[PersonRow],
    population: &Population,
    out: &mut Findings,
) {
    for m in inputs
        .marriages
        .iter()
        .filter(|m| params.period.contains(m.reg_date))
    {
        marriage(m, params, linker, out);
    }
    for h in inputs
        .hukou
        .iter()
        .filter(|h| h.event != HukouEventKind::Birth && params.period.contains(h.reg_date))
    {
        hukou_event(h, params, linker, out);
    }
    for m in inputs
        .migrants
        .iter()
        .filter(|m| params.period.contains(m.event_date))
    {
        migrant(m, params, linker, out);
    }
    resolve_unknown(persons, population, out);
}

fn person<'a>(linker: &ExactLinker<'a>, id: &IdNumber) -> Option<&'a Person> {
    linker.by_id(id).first().map(|&i| &linker.persons()[i])
}

/// A record naming persons of this region whose numbers the registry does not hold; reported
/// as `unknown_person` unless the probabilistic search finds them ([`resolve_unknown`]).
pub(crate) struct UnknownProbe {
    finding: Finding,
    /// Each unknown person's number and name, as the record gives them.
    persons: Vec<(IdNumber, String)>,
    /// For a move-out or death: the status the registry should now show.
    status_change: Option<&'static str>,
}

fn unknown_person(
    out: &mut Findings,
    feed: &str,
    key: String,
    division: Option<String>,
    persons: &[(&IdNumber, &str)],
    what: &str,
    status_change: Option<&'static str>,
) {
    let finding = Finding {
        kind: DiscrepancyKind::UnknownPerson,
        division,
        sources: vec![SourceRef::new(feed, &key)],
        registry_key: None,
        fields: persons
            .iter()
            .map(|(id, _)| FieldDiff {
                field: "id_number".into(),
                registry: None,
                source: Some(id.as_str().to_owned()),
                feed: Some(feed.into()),
            })
            .collect(),
        explanation: format!(
            "{what} names identity number {} of this region, which the registry does not hold",
            persons
                .iter()
                .map(|(i, _)| i.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        anchor: format!("{feed}|{key}"),
    };
    let persons = persons
        .iter()
        .map(|(id, name)| ((*id).clone(), (*name).to_owned()))
        .collect();
    out.unknown.push(UnknownProbe {
        finding,
        persons,
        status_change,
    });
}

/// Settings of the search for unknown persons; see config/linkage-persons.toml.
const PERSON_SETTINGS: &str = include_str!("../../config/linkage-persons.toml");

/// Registry persons among whom the search for unknown persons measures its u-probabilities.
const POPULATION_SAMPLE: usize = 200_000;

/// The best registry person for each probed person: (person, probability, evidence, sure).
type PersonLink = Option<(usize, f64, serde_json::Value, bool)>;

fn person_settings() -> crate::linkage::fs::Settings {
    crate::linkage::fs::Settings::from_toml(PERSON_SETTINGS)
        .expect("the shipped linkage settings are valid")
}

/// The columns the search compares, in the order of [`search_row`].
fn search_columns() -> Vec<String> {
    ["key", "id_number", "name", "birth_date", "sex", "division"]
        .map(String::from)
        .to_vec()
}

/// Registry person `i` as the search compares them.
fn search_row(i: usize, p: &PersonRow) -> Vec<String> {
    vec![
        i.to_string(),
        p.id_number.clone(),
        p.name.clone(),
        p.birth_date.clone(),
        p.sex.clone(),
        p.division.clone(),
    ]
}

/// What the search for unknown persons needs of the population it looks among (a county's
/// or a region's registry persons): measured once, kept while they do not change.
pub(crate) fn measure_population(persons: &[PersonRow]) -> Population {
    Population::measure(
        &person_settings(),
        &search_table(persons),
        POPULATION_SAMPLE,
    )
    .expect("the search's columns are the settings' columns")
}

/// `measured` brought to `persons`, a population it was measured on before a few persons
/// changed: see [`Population::recounted`].
pub(crate) fn recount_population(measured: &Population, persons: &[PersonRow]) -> Population {
    measured
        .recounted(&person_settings(), &search_table(persons))
        .expect("the search's columns are the settings' columns")
}

/// `persons` as the search's table.
fn search_table(persons: &[PersonRow]) -> Table {
    Table {
        columns: search_columns(),
        rows: persons
            .iter()
            .enumerate()
            .map(|(i, p)| search_row(i, p))
            .collect(),
    }
}

/// Compares each probed person with the registry persons sharing a blocking key with them
/// (birth date and sex, or name and sex), trained and scored as against all of `persons`
/// (measured in `population`).
fn search_persons(
    probes: &[UnknownProbe],
    persons: &[PersonRow],
    population: &Population,
) -> Vec<Vec<PersonLink>> {
    use crate::linkage::fs::{Decision, Linker};
    let mut left = Table {
        columns: search_columns(),
        rows: Vec::new(),
    };
    let mut index = Vec::new();
    for (pi, probe) in probes.iter().enumerate() {
        for (k, (id, name)) in probe.persons.iter().enumerate() {
            left.rows.push(vec![
                format!("{pi}/{k}"),
                id.as_str().to_owned(),
                name.clone(),
                id.birth_date().map(|d| d.to_string()).unwrap_or_default(),
                id.sex().map(|s| s.code().to_owned()).unwrap_or_default(),
                id.division().unwrap_or_default().to_owned(),
            ]);
            index.push((pi, k));
        }
    }
    let blocks: HashSet<(&str, &str)> = left
        .rows
        .iter()
        .flat_map(|r| {
            [
                (r[3].as_str(), r[4].as_str()),
                (r[2].as_str(), r[4].as_str()),
            ]
        })
        .collect();
    let right = Table {
        columns: search_columns(),
        rows: persons
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                blocks.contains(&(p.birth_date.as_str(), p.sex.as_str()))
                    || blocks.contains(&(p.name.as_str(), p.sex.as_str()))
            })
            .map(|(i, p)| search_row(i, p))
            .collect(),
    };
    let mut found: Vec<Vec<PersonLink>> =
        probes.iter().map(|p| vec![None; p.persons.len()]).collect();
    let Ok(linker) = Linker::with_population(person_settings(), &left, &right, population) else {
        return found;
    };
    let candidates = linker.candidates();
    let model = linker.train(&candidates.pairs);
    let mut best: Vec<Option<crate::linkage::fs::Scored>> = vec![None; left.rows.len()];
    for s in linker.score(&model, &candidates.pairs) {
        let slot = &mut best[s.left as usize];
        if slot.is_none_or(|b| s.weight > b.weight) {
            *slot = Some(s);
        }
    }
    for (row, s) in best.into_iter().enumerate() {
        let Some(s) = s else { continue };
        let decision = linker.decide(s.probability);
        if decision == Decision::NonMatch {
            continue;
        }
        let (pi, k) = index[row];
        let evidence =
            serde_json::to_value(linker.explain(&model, s.left, s.right)).unwrap_or_default();
        // The right side's key column holds the person's place in `persons`.
        let Ok(person) = linker.right_id(s.right).parse::<usize>() else {
            continue;
        };
        found[pi][k] = Some((person, s.probability, evidence, decision == Decision::Match));
    }
    found
}

/// Reports the probed records: a person the search finds surely is no unknown person (a
/// move-out or death of theirs is checked against their registry status); one found unsurely
/// is a possible match for an operator to confirm; the rest are unknown persons.
fn resolve_unknown(persons: &[PersonRow], population: &Population, out: &mut Findings) {
    let probes = std::mem::take(&mut out.unknown);
    if probes.is_empty() {
        return;
    }
    let found = search_persons(&probes, persons, population);
    for (probe, links) in probes.into_iter().zip(found) {
        let all_sure = links.iter().all(|l| l.as_ref().is_some_and(|l| l.3));
        let all_found = links.iter().all(Option::is_some);
        let best = links.iter().flatten().min_by(|a, b| a.1.total_cmp(&b.1));
        match (all_sure, all_found, best) {
            (true, _, Some((p, prob, evidence, _))) => {
                let person = &persons[*p];
                if let (Some(status), PersonStatus::Resident) = (probe.status_change, person.status)
                {
                    let source = probe.finding.sources.clone();
                    let key = source.first().map(|s| s.key.clone()).unwrap_or_default();
                    out.push_scored(
                        Finding {
                            kind: DiscrepancyKind::MovedOutNotRecorded,
                            division: Some(person.division.clone())
                                .filter(|d| !d.is_empty())
                                .or(probe.finding.division),
                            sources: source,
                            registry_key: Some(person.key.clone()),
                            fields: vec![FieldDiff {
                                field: "status".into(),
                                registry: Some("resident".into()),
                                source: Some(status.into()),
                                feed: Some("police.hukou".into()),
                            }],
                            explanation: format!(
                                "police registered {status} for {}; the registry holds this person as {} (under another identity number) still resident",
                                probe.persons[0].0, person.key
                            ),
                            anchor: format!("police.hukou|{key}"),
                        },
                        *prob,
                        Some(evidence.clone()),
                        false,
                    );
                }
            }
            (false, true, Some((p, prob, evidence, _))) => {
                let mut finding = probe.finding;
                finding.registry_key = Some(persons[*p].key.clone());
                finding.explanation = format!(
                    "possible match, please confirm: {} (registry person {}, match probability {prob:.2})",
                    finding.explanation, persons[*p].key
                );
                out.push_scored(finding, *prob, Some(evidence.clone()), true);
            }
            _ => out.push(probe.finding),
        }
    }
}

fn marriage(m: &MarriageRegistration, params: &Params, linker: &ExactLinker, out: &mut Findings) {
    if m.kind == MarriageKind::Reissue {
        // A reissued certificate records no change of status.
        return;
    }
    let parties = [
        ("husband", &m.husband, &m.wife),
        ("wife", &m.wife, &m.husband),
    ];
    let mut unknown = Vec::new();
    let mut fields = Vec::new();
    let mut registry_key = None;
    let mut division = division_text(&m.office);
    for (role, party, other) in parties {
        let Some(id) = party.id_number.as_ref().filter(|i| i.is_valid()) else {
            continue;
        };
        let Some(p) = person(linker, id) else {
            if is_ours(id, &params.region_prefix) {
                unknown.push((id, party.name.as_str()));
            }
            continue;
        };
        let other_id = other.id_number.as_ref().filter(|i| i.is_valid());
        let status_ok = match m.kind {
            MarriageKind::Marriage => p.marital_status.is_some_and(MaritalStatus::is_married),
            _ => p.marital_status == Some(MaritalStatus::Divorced),
        };
        let spouse_ok = match m.kind {
            MarriageKind::Marriage => other_id.is_none() || p.spouse_id_number.as_ref() == other_id,
            _ => other_id.is_none() || p.spouse_id_number.as_ref() != other_id,
        };
        let expected_status = if m.kind == MarriageKind::Marriage {
            "20"
        } else {
            "40"
        };
        if !status_ok {
            fields.push(FieldDiff {
                field: format!("{role}.marital_status"),
                registry: p.marital_status.map(|s| s.code().to_owned()),
                source: Some(expected_status.into()),
                feed: Some("civil.marriages".into()),
            });
        }
        if !spouse_ok {
            fields.push(FieldDiff {
                field: format!("{role}.spouse_id_number"),
                registry: p.spouse_id_number.as_ref().map(|s| s.as_str().to_owned()),
                source: if m.kind == MarriageKind::Marriage {
                    other_id.map(|o| o.as_str().to_owned())
                } else {
                    None
                },
                feed: Some("civil.marriages".into()),
            });
        }
        if (!status_ok || !spouse_ok) && registry_key.is_none() {
            registry_key = Some(p.person_key.clone());
            division = division.or_else(|| division_text(&p.hukou_division));
        }
    }
    let what = if m.kind == MarriageKind::Marriage {
        "marriage"
    } else {
        "divorce"
    };
    if !fields.is_empty() {
        out.push(Finding {
            kind: DiscrepancyKind::MarriageNotRecorded,
            division: division.clone(),
            sources: vec![SourceRef::new("civil.marriages", &m.reg_no)],
            registry_key,
            fields,
            explanation: format!(
                "{what} registration {} of {} is not reflected in the registry",
                m.reg_no, m.reg_date
            ),
            anchor: format!("civil.marriages|{}", m.reg_no),
        });
    }
    if !unknown.is_empty() {
        unknown_person(
            out,
            "civil.marriages",
            m.reg_no.clone(),
            division,
            &unknown,
            &format!("{what} registration {}", m.reg_no),
            None,
        );
    }
}

fn hukou_event(h: &HukouEvent, params: &Params, linker: &ExactLinker, out: &mut Findings) {
    let key = h.key();
    let Some(p) = person(linker, &h.id_number) else {
        if is_ours(&h.id_number, &params.region_prefix) {
            let what = format!(
                "household {} registration of {}",
                h.event.label(),
                h.reg_date
            );
            let status_change = match h.event {
                HukouEventKind::MoveOut => Some("moved_out"),
                HukouEventKind::Death => Some("deceased"),
                _ => None,
            };
            unknown_person(
                out,
                "police.hukou",
                key,
                division_text(&h.hukou_division),
                &[(&h.id_number, h.name.as_str())],
                &what,
                status_change,
            );
        }
        return;
    };
    let new_status = match h.event {
        HukouEventKind::MoveOut => "moved_out",
        HukouEventKind::Death => "deceased",
        _ => return,
    };
    if p.status == PersonStatus::Resident {
        out.push(Finding {
            kind: DiscrepancyKind::MovedOutNotRecorded,
            division: division_text(&p.hukou_division).or_else(|| division_text(&h.hukou_division)),
            sources: vec![SourceRef::new("police.hukou", &key)],
            registry_key: Some(p.person_key.clone()),
            fields: vec![FieldDiff {
                field: "status".into(),
                registry: Some("resident".into()),
                source: Some(new_status.into()),
                feed: Some("police.hukou".into()),
            }],
            explanation: format!(
                "police registered {} for {} on {}; the registry still has person {} resident",
                h.event.label(),
                h.id_number,
                h.reg_date,
                p.person_key
            ),
            anchor: format!("police.hukou|{key}"),
        });
    }
}

fn migrant(m: &MigrantRecord, params: &Params, linker: &ExactLinker, out: &mut Findings) {
    let key = m.key();
    let lives_here = |d: &Option<Division>| {
        d.as_ref()
            .is_some_and(|d| d.as_str().starts_with(&params.region_prefix))
    };
    let p = person(linker, &m.id_number);
    let inflow_elsewhere = m.event == MigrantEvent::Inflow
        && p.is_some_and(|p| {
            p.status == PersonStatus::Resident && lives_here(&p.residence_division)
        });
    let arrived_here = m.event == MigrantEvent::Outflow
        && lives_here(&m.residence_division)
        && p.is_none()
        && m.id_number.is_valid();
    if inflow_elsewhere || arrived_here {
        let (registry, source) = match p {
            Some(p) => (
                division_text(&p.residence_division),
                division_text(&m.residence_division),
            ),
            None => (None, division_text(&m.residence_division)),
        };
        out.push(Finding {
            kind: DiscrepancyKind::MigrantInflowNotRecorded,
            division: division_text(&m.hukou_division).or_else(|| p.and_then(|p| division_text(&p.hukou_division))),
            sources: vec![SourceRef::new("exchange.migrants", &key)],
            registry_key: p.map(|p| p.person_key.clone()),
            fields: vec![FieldDiff { field: "residence_division".into(), registry, source, feed: Some("exchange.migrants".into()) }],
            explanation: if inflow_elsewhere {
                format!(
                    "partner region {} reports {} living there since {}; the registry still has them resident here",
                    division_text(&m.from_region).unwrap_or_default(),
                    m.id_number,
                    m.event_date
                )
            } else {
                format!("partner region reports {} moved here on {}; the registry does not hold them", m.id_number, m.event_date)
            },
            anchor: format!("exchange.migrants|{key}"),
        });
        return;
    }
    if p.is_none() && is_ours(&m.id_number, &params.region_prefix) && !arrived_here {
        let what = format!(
            "partner-region migrant record ({} on {})",
            m.event.name(),
            m.event_date
        );
        unknown_person(
            out,
            "exchange.migrants",
            key,
            division_text(&m.hukou_division),
            &[(&m.id_number, m.name.as_str())],
            &what,
            None,
        );
    }
}
