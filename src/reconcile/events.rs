//! Marriages, household moves and deaths, and partner-region migrant records.

use super::{division_text, is_ours, Finding, Findings, Inputs, Params};
use crate::linkage::ExactLinker;
use crate::model::*;

pub(super) fn reconcile(
    inputs: &Inputs,
    params: &Params,
    linker: &ExactLinker,
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
}

fn person<'a>(linker: &ExactLinker<'a>, id: &IdNumber) -> Option<&'a Person> {
    linker.by_id(id).first().map(|&i| &linker.persons()[i])
}

fn unknown_person(
    out: &mut Findings,
    feed: &str,
    key: String,
    division: Option<String>,
    ids: &[&IdNumber],
    what: &str,
) {
    out.push(Finding {
        kind: DiscrepancyKind::UnknownPerson,
        division,
        sources: vec![SourceRef::new(feed, &key)],
        registry_key: None,
        fields: ids
            .iter()
            .map(|id| FieldDiff {
                field: "id_number".into(),
                registry: None,
                source: Some(id.as_str().to_owned()),
                feed: Some(feed.into()),
            })
            .collect(),
        explanation: format!(
            "{what} names identity number {} of this region, which the registry does not hold",
            ids.iter()
                .map(|i| i.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        anchor: format!("{feed}|{key}"),
    });
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
                unknown.push(id);
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
        );
    }
}

fn hukou_event(h: &HukouEvent, params: &Params, linker: &ExactLinker, out: &mut Findings) {
    let key = Record::Hukou(h.clone()).key();
    let Some(p) = person(linker, &h.id_number) else {
        if is_ours(&h.id_number, &params.region_prefix) {
            let what = format!(
                "household {} registration of {}",
                h.event.label(),
                h.reg_date
            );
            unknown_person(
                out,
                "police.hukou",
                key,
                division_text(&h.hukou_division),
                &[&h.id_number],
                &what,
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
    let key = Record::Migrant(m.clone()).key();
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
            "partner-region migrant record ({:?} on {})",
            m.event, m.event_date
        )
        .to_lowercase();
        unknown_person(
            out,
            "exchange.migrants",
            key,
            division_text(&m.hukou_division),
            &[&m.id_number],
            &what,
        );
    }
}
