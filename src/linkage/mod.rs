//! Finding the registry person a source record is about.
//!
//! Reconciliation asks a [`Linker`] for candidates and decides what to do with them. The
//! [`ExactLinker`] here uses exact keys after normalisation (identity number; mother's
//! identity number with birth date). A probabilistic linker that tolerates typos implements
//! the same trait and is tried where exact keys find nobody.

pub mod compare;
pub mod fs;
pub mod run;

use foldhash::{HashMap, HashMapExt};

use chrono::NaiveDate;

use crate::model::{IdNumber, Person, Sex};

/// What a source record says about a person, to look them up with.
#[derive(Debug, Clone, Copy)]
pub struct Probe<'a> {
    pub id_number: Option<&'a IdNumber>,
    pub name: &'a str,
    pub sex: Sex,
    pub birth_date: Option<NaiveDate>,
    pub mother_id: Option<&'a IdNumber>,
}

/// A registry person a probe may be, with how sure the linker is and which rule found them.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Index into the registry slice the linker was built on.
    pub person: usize,
    /// 1.0 for exact keys; a match probability for probabilistic linkers.
    pub score: f64,
    pub rule: &'static str,
}

pub trait Linker {
    /// Registry persons the probe may be, best first.
    fn candidates(&self, probe: &Probe) -> Vec<Candidate>;
}

/// Exact-key lookups over the registry.
pub struct ExactLinker<'a> {
    persons: &'a [Person],
    by_id: HashMap<&'a str, Vec<usize>>,
    by_mother: HashMap<&'a str, Vec<usize>>,
}

impl<'a> ExactLinker<'a> {
    pub fn new(persons: &'a [Person]) -> Self {
        let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_mother: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, p) in persons.iter().enumerate() {
            if let Some(id) = p.id_number.as_ref().filter(|id| id.is_valid()) {
                by_id.entry(id.as_str()).or_default().push(i);
            }
            if let Some(m) = p.mother_id_number.as_ref().filter(|m| m.is_valid()) {
                by_mother.entry(m.as_str()).or_default().push(i);
            }
        }
        ExactLinker {
            persons,
            by_id,
            by_mother,
        }
    }

    pub fn persons(&self) -> &'a [Person] {
        self.persons
    }

    /// Registry persons holding this (valid) identity number.
    pub fn by_id(&self, id: &IdNumber) -> &[usize] {
        if !id.is_valid() {
            return &[];
        }
        self.by_id
            .get(id.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Registry children of this mother born on this date (twins give several).
    pub fn by_mother_and_date(&self, mother: &IdNumber, date: NaiveDate) -> Vec<usize> {
        if !mother.is_valid() {
            return Vec::new();
        }
        let children = self
            .by_mother
            .get(mother.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        children
            .iter()
            .copied()
            .filter(|&i| self.persons[i].birth_date == Some(date))
            .collect()
    }
}

impl Linker for ExactLinker<'_> {
    fn candidates(&self, probe: &Probe) -> Vec<Candidate> {
        if let Some(id) = probe.id_number {
            let found = self.by_id(id);
            if !found.is_empty() {
                return found
                    .iter()
                    .map(|&person| Candidate {
                        person,
                        score: 1.0,
                        rule: "id_number",
                    })
                    .collect();
            }
        }
        if let (Some(m), Some(d)) = (probe.mother_id, probe.birth_date) {
            return self
                .by_mother_and_date(m, d)
                .into_iter()
                .map(|person| Candidate {
                    person,
                    score: 1.0,
                    rule: "mother_id+birth_date",
                })
                .collect();
        }
        Vec::new()
    }
}
