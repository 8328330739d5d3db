//! Births: health notifications and hukou birth registrations against the registry.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use chrono::NaiveDate;

use super::{division_text, Finding, Findings, Params};
use crate::linkage::fs::Model;
use crate::linkage::ExactLinker;
use crate::model::*;

/// The source records of one birth: a health notification and/or hukou birth registrations.
struct Cluster<'a> {
    health: Option<&'a BirthNotification>,
    hukou: Vec<&'a HukouEvent>,
}

impl<'a> Cluster<'a> {
    fn period_date(&self) -> NaiveDate {
        match self.health {
            Some(h) => h.birth_date,
            None => self.hukou[0].reg_date,
        }
    }

    fn anchor(&self) -> String {
        match self.health {
            Some(h) => format!("health.births|{}", h.cert_no),
            None => format!("police.hukou|{}", self.hukou[0].key()),
        }
    }

    fn sources(&self) -> Vec<SourceRef> {
        let mut out: Vec<SourceRef> = self
            .health
            .iter()
            .map(|h| SourceRef::new("health.births", &h.cert_no))
            .collect();
        out.extend(
            self.hukou
                .iter()
                .map(|h| SourceRef::new("police.hukou", h.key())),
        );
        out
    }

    fn child_ids(&self) -> impl Iterator<Item = &'a IdNumber> + '_ {
        self.hukou
            .iter()
            .map(|h| &h.id_number)
            .filter(|id| id.is_valid())
    }

    fn mother_id(&self) -> Option<&'a IdNumber> {
        self.health
            .and_then(|h| h.mother_id.as_ref())
            .filter(|m| m.is_valid())
            .or_else(|| {
                self.hukou
                    .iter()
                    .filter_map(|h| h.mother_id.as_ref())
                    .find(|m| m.is_valid())
            })
    }

    fn birth_dates(&self) -> Vec<NaiveDate> {
        let mut out: Vec<NaiveDate> = self.health.map(|h| h.birth_date).into_iter().collect();
        out.extend(self.hukou.iter().filter_map(|h| h.birth_date));
        out.dedup();
        out
    }

    fn name(&self) -> &str {
        self.health
            .map(|h| h.child_name.as_str())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                self.hukou
                    .iter()
                    .map(|h| h.name.as_str())
                    .find(|n| !n.is_empty())
            })
            .unwrap_or("")
    }

    fn sex(&self) -> Sex {
        self.health
            .map(|h| h.child_sex)
            .filter(|s| s.is_known())
            .or_else(|| self.hukou.iter().map(|h| h.sex).find(|s| s.is_known()))
            .unwrap_or(Sex::Unknown)
    }

    fn division(&self) -> Option<String> {
        self.health
            .and_then(|h| {
                division_text(&h.mother_division).or_else(|| division_text(&h.birth_division))
            })
            .or_else(|| {
                self.hukou
                    .iter()
                    .find_map(|h| division_text(&h.hukou_division))
            })
    }
}

fn build_clusters(inputs: &super::Inputs) -> Vec<Cluster<'_>> {
    let mut clusters: Vec<Cluster> = inputs
        .births
        .iter()
        .map(|h| Cluster {
            health: Some(h),
            hukou: Vec::new(),
        })
        .collect();
    let by_cert: HashMap<&str, usize> = clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.health.map(|h| h.cert_no.as_str()).unwrap_or(""), i))
        .collect();
    let mut orphans = Vec::new();
    for h in inputs
        .hukou
        .iter()
        .filter(|h| h.event == HukouEventKind::Birth)
    {
        match h.cert_no.as_deref().and_then(|c| by_cert.get(c)) {
            Some(&i) => clusters[i].hukou.push(h),
            None => orphans.push(h),
        }
    }
    // A registration without a known certificate number joins the notification of the same
    // mother and birth date that has no registration yet, preferring the same name.
    let mut by_mother_date: HashMap<(&str, NaiveDate), Vec<usize>> = HashMap::new();
    for (i, c) in clusters.iter().enumerate() {
        if let (Some(h), Some(m)) = (c.health, c.mother_id()) {
            by_mother_date
                .entry((m.as_str(), h.birth_date))
                .or_default()
                .push(i);
        }
    }
    for h in orphans {
        let key = h
            .mother_id
            .as_ref()
            .filter(|m| m.is_valid())
            .zip(h.birth_date);
        let slot = key
            .and_then(|(m, d)| by_mother_date.get(&(m.as_str(), d)))
            .and_then(|idxs| {
                let free: Vec<usize> = idxs
                    .iter()
                    .copied()
                    .filter(|&i| clusters[i].hukou.is_empty())
                    .collect();
                free.iter()
                    .copied()
                    .find(|&i| clusters[i].name() == h.name)
                    .or(free.first().copied())
            });
        match slot {
            Some(i) => clusters[i].hukou.push(h),
            None => clusters.push(Cluster {
                health: None,
                hukou: vec![h],
            }),
        }
    }
    clusters
}

/// Matches clusters to registry persons one-to-one: first by the child's identity number, then
/// by mother and birth date, where twins are paired by name and sex so they stay two people.
fn assign(clusters: &[Cluster], linker: &ExactLinker) -> Vec<Option<usize>> {
    let persons = linker.persons();
    let mut matched: Vec<Option<usize>> = vec![None; clusters.len()];
    let mut taken: HashSet<usize> = HashSet::new();
    for (ci, c) in clusters.iter().enumerate() {
        if let Some(p) = c
            .child_ids()
            .flat_map(|id| linker.by_id(id).iter().copied())
            .find(|p| !taken.contains(p))
        {
            matched[ci] = Some(p);
            taken.insert(p);
        }
    }
    let mut groups: BTreeMap<(String, NaiveDate), Vec<usize>> = BTreeMap::new();
    for (ci, c) in clusters.iter().enumerate() {
        if matched[ci].is_none() {
            if let Some(m) = c.mother_id() {
                for d in c.birth_dates() {
                    groups
                        .entry((m.as_str().to_owned(), d))
                        .or_default()
                        .push(ci);
                }
            }
        }
    }
    for ((mother, date), members) in groups {
        let Some(mother) = IdNumber::parse(&mother) else {
            continue;
        };
        let people = linker.by_mother_and_date(&mother, date);
        let mut pairs: Vec<(u8, usize, usize)> = Vec::new();
        for &ci in &members {
            for &p in &people {
                let c = &clusters[ci];
                let person = &persons[p];
                let score = 2 * u8::from(!c.name().is_empty() && c.name() == person.name)
                    + u8::from(c.sex().is_known() && c.sex() == person.sex);
                pairs.push((score, ci, p));
            }
        }
        pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        for (_, ci, p) in pairs {
            if matched[ci].is_none() && !taken.contains(&p) {
                matched[ci] = Some(p);
                taken.insert(p);
            }
        }
    }
    matched
}

/// Settings of the probabilistic step; see config/linkage-births.toml.
const LINKAGE_SETTINGS: &str = include_str!("../../config/linkage-births.toml");

/// A link the probabilistic step found where exact keys found none.
struct ProbableLink {
    person: usize,
    probability: f64,
    evidence: serde_json::Value,
    /// At or above the match threshold; below it the link awaits an operator's confirmation.
    sure: bool,
}

/// Links births that exact keys left unmatched to registry persons born around the period,
/// with a model trained on every birth and registry person around the period.
fn probable_links(
    clusters: &[Cluster],
    matched: &[Option<usize>],
    persons: &[Person],
    params: &Params,
    model: Option<&Model>,
) -> (Vec<Option<ProbableLink>>, Option<Model>) {
    use crate::linkage::fs::{Decision, Linker, Settings, Table};
    let mut out: Vec<Option<ProbableLink>> = clusters.iter().map(|_| None).collect();
    if matched.iter().all(Option::is_some) {
        return (out, None);
    }
    let (from, to) = (
        params.period.first_day() - chrono::Duration::days(45),
        params.period.last_day() + chrono::Duration::days(45),
    );
    let near = |d: NaiveDate| d >= from && d <= to;
    let columns: Vec<String> = [
        "key",
        "name",
        "sex",
        "birth_date",
        "mother_id",
        "child_id",
        "division",
    ]
    .map(String::from)
    .to_vec();
    let sex = |s: Sex| {
        if s.is_known() {
            s.code().to_owned()
        } else {
            String::new()
        }
    };
    let id_text = |id: Option<&IdNumber>| id.map(|i| i.as_str().to_owned()).unwrap_or_default();
    let mut left = Table {
        columns: columns.clone(),
        rows: Vec::new(),
    };
    let mut left_index = Vec::new();
    for (ci, c) in clusters.iter().enumerate() {
        let Some(&date) = c.birth_dates().first() else {
            continue;
        };
        if !near(date) {
            continue;
        }
        let mother = c
            .health
            .and_then(|h| h.mother_id.as_ref())
            .or_else(|| c.hukou.iter().find_map(|h| h.mother_id.as_ref()));
        left.rows.push(vec![
            ci.to_string(),
            c.name().to_owned(),
            sex(c.sex()),
            date.to_string(),
            id_text(mother),
            id_text(c.hukou.first().map(|h| &h.id_number)),
            c.division().unwrap_or_default(),
        ]);
        left_index.push(ci);
    }
    let mut right = Table {
        columns,
        rows: Vec::new(),
    };
    let mut right_index = Vec::new();
    for (pi, p) in persons.iter().enumerate() {
        let Some(date) = p.birth_date.filter(|d| near(*d)) else {
            continue;
        };
        right.rows.push(vec![
            pi.to_string(),
            p.name.clone(),
            sex(p.sex),
            date.to_string(),
            id_text(p.mother_id_number.as_ref()),
            id_text(p.id_number.as_ref()),
            division_text(&p.hukou_division).unwrap_or_default(),
        ]);
        right_index.push(pi);
    }
    if left.rows.is_empty() || right.rows.is_empty() {
        return (out, None);
    }
    let settings =
        Settings::from_toml(LINKAGE_SETTINGS).expect("the shipped linkage settings are valid");
    let Ok(linker) = Linker::new(settings, &left, Some(&right)) else {
        return (out, None);
    };
    let taken: HashSet<usize> = matched.iter().flatten().copied().collect();
    let open_left = |i: u32| matched[left_index[i as usize]].is_none();
    let open_right = |j: u32| !taken.contains(&right_index[j as usize]);
    // Training needs every candidate pair; scoring with a kept model only the open ones.
    let (model, trained, open) = match model {
        Some(m) => (
            m.clone(),
            None,
            linker.candidates_among(open_left, open_right).pairs,
        ),
        None => {
            let candidates = linker.candidates();
            let m = linker.train(&candidates.pairs);
            let open: Vec<(u32, u32)> = candidates
                .pairs
                .into_iter()
                .filter(|&(i, j)| open_left(i) && open_right(j))
                .collect();
            (m.clone(), Some(m), open)
        }
    };
    let mut scored = linker.score(&model, &open);
    scored.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then(a.left.cmp(&b.left))
            .then(a.right.cmp(&b.right))
    });
    let mut used = HashSet::new();
    for s in scored {
        let (ci, pi) = (left_index[s.left as usize], right_index[s.right as usize]);
        let decision = linker.decide(s.probability);
        if decision == Decision::NonMatch || out[ci].is_some() || used.contains(&pi) {
            continue;
        }
        used.insert(pi);
        let evidence =
            serde_json::to_value(linker.explain(&model, s.left, s.right)).unwrap_or_default();
        out[ci] = Some(ProbableLink {
            person: pi,
            probability: s.probability,
            evidence,
            sure: decision == Decision::Match,
        });
    }
    (out, trained)
}

/// Whether a saved model was trained with the settings shipped now.
pub(super) fn model_fits(model: &Model) -> bool {
    crate::linkage::fs::Settings::from_toml(LINKAGE_SETTINGS).is_ok_and(|s| s == model.settings)
}

/// Births of the period against the registry; returns the linkage model if it trained one.
pub(super) fn reconcile(
    inputs: &super::Inputs,
    params: &Params,
    linker: &ExactLinker,
    model: Option<&Model>,
    out: &mut Findings,
) -> Option<Model> {
    let clusters = build_clusters(inputs);
    let mut matched = assign(&clusters, linker);
    let persons = linker.persons();
    let (probable, trained) = probable_links(&clusters, &matched, persons, params, model);
    let mut link_score: Vec<(f64, Option<serde_json::Value>)> = vec![(1.0, None); clusters.len()];
    let mut possible: Vec<Option<&ProbableLink>> = vec![None; clusters.len()];
    for (ci, link) in probable.iter().enumerate() {
        match link {
            Some(l) if l.sure => {
                matched[ci] = Some(l.person);
                link_score[ci] = (l.probability, Some(l.evidence.clone()));
            }
            Some(l) => possible[ci] = Some(l),
            None => {}
        }
    }
    for (ci, (c, m)) in clusters.iter().zip(&matched).enumerate() {
        if !params.period.contains(c.period_date()) {
            continue;
        }
        let person = m.map(|p| &persons[p]);
        if let (None, Some(l)) = (person, possible[ci]) {
            let candidate = &persons[l.person];
            out.push_scored(
                Finding {
                    kind: DiscrepancyKind::UnreportedBirth,
                    division: c.division(),
                    sources: c.sources(),
                    registry_key: Some(candidate.person_key.clone()),
                    fields: Vec::new(),
                    explanation: format!(
                        "possible match, please confirm: {} may be registry person {} (match probability {:.2})",
                        describe(c),
                        candidate.person_key,
                        l.probability
                    ),
                    anchor: c.anchor(),
                },
                l.probability,
                Some(l.evidence.clone()),
                true,
            );
            continue;
        }
        let (score, evidence) = link_score[ci].clone();
        match person {
            None => out.push(Finding {
                kind: DiscrepancyKind::UnreportedBirth,
                division: c.division(),
                sources: c.sources(),
                registry_key: None,
                fields: Vec::new(),
                explanation: format!(
                    "{} (mother {}, born {}) has no registry person",
                    describe(c),
                    c.mother_id().map(|m| m.as_str()).unwrap_or("unknown"),
                    c.period_date_birth()
                ),
                anchor: c.anchor(),
            }),
            Some(p) => {
                let fields = conflicts(c, p);
                if !fields.is_empty() {
                    let mut names: Vec<String> = fields.iter().map(|f| f.field.clone()).collect();
                    names.dedup();
                    out.push_scored(
                        Finding {
                            kind: DiscrepancyKind::BirthConflict,
                            division: c.division().or_else(|| division_text(&p.hukou_division)),
                            sources: c.sources(),
                            registry_key: Some(p.person_key.clone()),
                            fields,
                            explanation: format!(
                                "{} and registry person {} disagree on {}",
                                describe(c),
                                p.person_key,
                                names.join(", ")
                            ),
                            anchor: c.anchor(),
                        },
                        score,
                        evidence.clone(),
                        false,
                    );
                }
            }
        }
        if let Some(h) = c.health {
            let registered = !c.hukou.is_empty()
                || person.is_some_and(|p| p.id_number.as_ref().is_some_and(IdNumber::is_valid));
            let age_days = (params.as_of - h.birth_date).num_days();
            if !registered && age_days > params.grace_days {
                out.push(Finding {
                    kind: DiscrepancyKind::UnregisteredChild,
                    division: c.division(),
                    sources: vec![SourceRef::new("health.births", &h.cert_no)],
                    registry_key: person.map(|p| p.person_key.clone()),
                    fields: Vec::new(),
                    explanation: format!(
                        "birth notification {} is {age_days} days old (grace {} days) with no household birth registration and no identity number in the registry",
                        h.cert_no, params.grace_days
                    ),
                    anchor: format!("health.births|{}", h.cert_no),
                });
            }
        }
    }
    let mut taken: HashSet<usize> = matched.iter().flatten().copied().collect();
    // A registry person named by a possible match is already in front of an operator.
    taken.extend(possible.iter().flatten().map(|l| l.person));
    for (i, p) in persons.iter().enumerate() {
        if taken.contains(&i) || !p.birth_date.is_some_and(|d| params.period.contains(d)) {
            continue;
        }
        out.push(Finding {
            kind: DiscrepancyKind::RegistryBirthUnconfirmed,
            division: division_text(&p.hukou_division).or_else(|| division_text(&p.residence_division)),
            sources: Vec::new(),
            registry_key: Some(p.person_key.clone()),
            fields: Vec::new(),
            explanation: format!(
                "registry person {} born {} is confirmed by no birth notification or household birth registration",
                p.person_key,
                p.birth_date.map(|d| d.to_string()).unwrap_or_default()
            ),
            anchor: format!("registry|{}", p.person_key),
        });
    }
    trained
}

impl Cluster<'_> {
    fn period_date_birth(&self) -> String {
        self.birth_dates()
            .first()
            .map(|d| d.to_string())
            .unwrap_or_else(|| "on an unknown date".into())
    }
}

fn describe(c: &Cluster) -> String {
    match c.health {
        Some(h) if c.hukou.is_empty() => format!("health notification {}", h.cert_no),
        Some(h) => format!(
            "health notification {} and its household birth registration",
            h.cert_no
        ),
        None => format!("household birth registration of {}", c.hukou[0].id_number),
    }
}

/// Field-by-field comparison of the sources of one birth with the registry person.
fn conflicts(c: &Cluster, p: &Person) -> Vec<FieldDiff> {
    let mut fields = Vec::new();
    let mut compare =
        |field: &str, registry: Option<String>, sources: Vec<(&str, Option<String>)>| {
            let present: Vec<(&str, String)> = sources
                .into_iter()
                .filter_map(|(f, v)| v.map(|v| (f, v)))
                .collect();
            match &registry {
                Some(r) => {
                    for (feed, v) in &present {
                        if v != r {
                            fields.push(FieldDiff {
                                field: field.into(),
                                registry: Some(r.clone()),
                                source: Some(v.clone()),
                                feed: Some((*feed).into()),
                            });
                        }
                    }
                }
                None => {
                    let distinct: HashSet<&String> = present.iter().map(|(_, v)| v).collect();
                    if distinct.len() > 1 {
                        for (feed, v) in &present {
                            fields.push(FieldDiff {
                                field: field.into(),
                                registry: None,
                                source: Some(v.clone()),
                                feed: Some((*feed).into()),
                            });
                        }
                    }
                }
            }
        };
    let health = c.health.into_iter();
    let hukou = c.hukou.iter();
    compare(
        "birth_date",
        p.birth_date.map(|d| d.to_string()),
        health
            .clone()
            .map(|h| ("health.births", Some(h.birth_date.to_string())))
            .chain(
                hukou
                    .clone()
                    .map(|h| ("police.hukou", h.birth_date.map(|d| d.to_string()))),
            )
            .collect(),
    );
    let known_sex = |s: Sex| s.is_known().then(|| s.code().to_owned());
    compare(
        "sex",
        known_sex(p.sex),
        health
            .clone()
            .map(|h| ("health.births", known_sex(h.child_sex)))
            .chain(hukou.clone().map(|h| ("police.hukou", known_sex(h.sex))))
            .collect(),
    );
    let valid_id =
        |id: Option<&IdNumber>| id.filter(|i| i.is_valid()).map(|i| i.as_str().to_owned());
    compare(
        "mother_id_number",
        valid_id(p.mother_id_number.as_ref()),
        health
            .clone()
            .map(|h| ("health.births", valid_id(h.mother_id.as_ref())))
            .chain(
                hukou
                    .clone()
                    .map(|h| ("police.hukou", valid_id(h.mother_id.as_ref()))),
            )
            .collect(),
    );
    let name = |n: &str| (!n.is_empty()).then(|| n.to_owned());
    compare(
        "name",
        name(&p.name),
        health
            .map(|h| ("health.births", name(&h.child_name)))
            .chain(hukou.map(|h| ("police.hukou", name(&h.name))))
            .collect(),
    );
    fields
}
