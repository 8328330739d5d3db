//! The simulated world: a registry and one month of agency records, with the truth.

use std::collections::HashMap;

use chrono::{Datelike, Duration, NaiveDate};
use rand::seq::IndexedRandom;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::names::{Names, SURNAMES};
use crate::model::{check_char, Period};

pub const COUNTIES: &[&str] = &["410602", "410603", "410611", "410621", "410622"];

/// Made-up county codes of the same prefecture beyond Hebi's five, for province-sized runs
/// (`simulate --counties`): a province has about a hundred counties, and ten million persons
/// in five would make each county's month of births sixty times denser than any real one.
static MORE_COUNTIES: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (30..100).map(|n| format!("4106{n}")).collect());

/// The first `n` county codes: Hebi's five, then made-up ones (at most 75 in all).
pub fn counties(n: usize) -> Vec<&'static str> {
    COUNTIES
        .iter()
        .copied()
        .chain(MORE_COUNTIES.iter().map(String::as_str))
        .take(n.max(1))
        .collect()
}
/// A partner region (常州市新北区) that exchanges migrants with us.
pub const PARTNER: &str = "320411";

#[derive(Debug, Clone)]
pub struct SimPerson {
    pub key: String,
    pub id: Option<String>,
    pub name: String,
    pub sex: u8,
    pub birth: NaiveDate,
    pub hukou_div: String,
    pub res_div: String,
    pub marital: &'static str,
    pub spouse: Option<String>,
    pub mother: Option<String>,
    pub father: Option<String>,
    pub status: &'static str,
}

#[derive(Debug, Clone)]
pub struct HealthRow {
    pub cert: String,
    pub status: &'static str,
    pub updated_at: String,
    pub child_name: String,
    pub sex: u8,
    pub birth: NaiveDate,
    pub time: String,
    pub division: String,
    pub mother_name: String,
    pub mother_id: String,
    pub father_name: String,
    pub father_id: String,
    pub gestation: u32,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct HukouRow {
    pub event: &'static str,
    pub id: String,
    pub name: String,
    pub sex: u8,
    pub birth: NaiveDate,
    pub division: String,
    pub cert: String,
    pub father_name: String,
    pub father_id: String,
    pub mother_name: String,
    pub mother_id: String,
    pub reg_date: NaiveDate,
}

#[derive(Debug, Clone)]
pub struct Spouse {
    pub name: String,
    pub id: String,
    pub birth: NaiveDate,
}

#[derive(Debug, Clone)]
pub struct MarriageRow {
    pub kind: &'static str,
    pub reg_no: String,
    pub reg_date: NaiveDate,
    pub husband: Spouse,
    pub wife: Spouse,
}

#[derive(Debug, Clone)]
pub struct MigrantRow {
    pub id: String,
    pub name: String,
    pub sex: u8,
    pub birth: NaiveDate,
    pub marital: &'static str,
    pub hukou_div: String,
    pub res_div: String,
    pub event: &'static str,
    pub event_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Truth {
    pub kind: &'static str,
    pub feed: &'static str,
    pub key: String,
}

/// The month's agency records and the truth, which grow with the month; registry persons are
/// handed out family by family ([`Generator::take_registry`]) so that a province-sized registry
/// streams to disk instead of living in memory.
#[derive(Default)]
pub struct World {
    pub registry: Vec<SimPerson>,
    pub births: Vec<HealthRow>,
    pub hukou: Vec<HukouRow>,
    pub marriages: Vec<MarriageRow>,
    pub migrants: Vec<MigrantRow>,
    pub truth: Vec<Truth>,
}

pub struct Generator {
    rng: ChaCha8Rng,
    counties: Vec<&'static str>,
    names: Names,
    period: Period,
    corrupt: bool,
    /// Identity numbers handed out per (division, birth day, sex): the next free sequence, so
    /// numbers stay unique without remembering every number (a province has ten million).
    sequences: HashMap<(u32, i32, u8), u16>,
    next_person: u64,
    next_cert: u64,
    next_reg: u64,
    pub world: World,
}

fn id_with_check(body: &str) -> String {
    format!("{body}{}", check_char(body))
}

impl Generator {
    pub fn new(rng: ChaCha8Rng, period: Period, corrupt: bool, counties: usize) -> Generator {
        Generator {
            rng,
            counties: self::counties(counties),
            names: Names::new(),
            period,
            corrupt,
            sequences: HashMap::new(),
            next_person: 0,
            next_cert: 410_100_000,
            next_reg: 0,
            world: World::default(),
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn date_between(&mut self, from_year: i32, to_year: i32) -> NaiveDate {
        let start = NaiveDate::from_ymd_opt(from_year, 1, 1).expect("valid");
        let end = NaiveDate::from_ymd_opt(to_year, 12, 31).expect("valid");
        start + Duration::days(self.rng.random_range(0..=(end - start).num_days()))
    }

    fn day_in_period(&mut self, from: u32, to: u32) -> NaiveDate {
        let d = self.rng.random_range(from..=to);
        self.period
            .first_day()
            .with_day(d)
            .expect("day within month")
    }

    fn last_day(&self) -> u32 {
        self.period.last_day().day()
    }

    /// A fresh, valid identity number: division, birth date, sequence with the sex's parity.
    /// Sequences advance by a random step, so numbers look scattered yet never repeat: at
    /// province scale about 50 persons share a division, day and sex, far below the 500
    /// sequences there are.
    pub fn new_id(&mut self, division: &str, birth: NaiveDate, sex: u8) -> String {
        let key = (division.parse().unwrap_or(0), birth.num_days_from_ce(), sex);
        let step = self.rng.random_range(1..=3);
        let next = self.sequences.entry(key).or_insert(0);
        let index = *next % 500;
        *next += step;
        let seq = u32::from(index) * 2 + u32::from(sex == 1);
        id_with_check(&format!("{division}{}{seq:03}", birth.format("%Y%m%d")))
    }

    /// The registry persons generated since the last call, in the order they were made.
    pub fn take_registry(&mut self) -> Vec<SimPerson> {
        std::mem::take(&mut self.world.registry)
    }

    fn person_key(&mut self) -> String {
        self.next_person += 1;
        format!("P{:08}", self.next_person)
    }

    fn cert(&mut self) -> String {
        self.next_cert += self.rng.random_range(1..40);
        format!("Q{}", self.next_cert)
    }

    fn reg_no(&mut self, office: &str, prefix: char) -> String {
        self.next_reg += 1;
        format!(
            "{prefix}{office}-{}-{:06}",
            self.period.first_day().year(),
            self.next_reg
        )
    }

    fn truth(&mut self, kind: &'static str, feed: &'static str, key: impl Into<String>) {
        self.world.truth.push(Truth {
            kind,
            feed,
            key: key.into(),
        });
    }

    fn surname(&mut self) -> &'static str {
        SURNAMES.choose(&mut self.rng).expect("non-empty")
    }

    fn make_person(
        &mut self,
        division: &str,
        birth: NaiveDate,
        sex: u8,
        surname: &str,
        with_id: bool,
    ) -> SimPerson {
        let id = with_id.then(|| self.new_id(division, birth, sex));
        let name = self.names.full_name(&mut self.rng, surname);
        SimPerson {
            key: self.person_key(),
            id,
            name,
            sex,
            birth,
            hukou_div: division.to_owned(),
            res_div: division.to_owned(),
            marital: "10",
            spouse: None,
            mother: None,
            father: None,
            status: "resident",
        }
    }

    /// One family: a married couple, minor children and sometimes an adult child, plus at
    /// most one life event this month and, independently, perhaps a birth.
    pub fn family(&mut self) {
        let county = *self.counties.choose(&mut self.rng).expect("non-empty");
        let surname = self.surname();
        let year = self.period.first_day().year();
        let mut husband = {
            let b = self.date_between(year - 50, year - 24);
            self.make_person(county, b, 1, surname, true)
        };
        let wife_surname = self.surname();
        let mut wife = {
            let b = self.date_between(year - 45, year - 22);
            self.make_person(county, b, 2, wife_surname, true)
        };
        husband.marital = "21";
        wife.marital = "21";
        husband.spouse = wife.id.clone();
        wife.spouse = husband.id.clone();
        let mut members = Vec::new();
        for _ in 0..self.rng.random_range(0..=2) {
            let sex = self.rng.random_range(1..=2);
            let mut kid = {
                let b = self.date_between(year - 17, year - 1);
                self.make_person(county, b, sex, surname, true)
            };
            kid.mother = wife.id.clone();
            kid.father = husband.id.clone();
            members.push(kid);
        }
        let adult = self.chance(0.3).then(|| {
            let sex = self.rng.random_range(1..=2);
            let mut a = {
                let b = self.date_between(year - 30, year - 22);
                self.make_person(county, b, sex, surname, true)
            };
            a.mother = wife.id.clone();
            a.father = husband.id.clone();
            a
        });
        let mut family = Family {
            county,
            husband,
            wife,
            members,
            adult,
        };
        if self.chance(0.09) {
            self.birth(&mut family);
        } else if self.chance(0.0015) {
            self.unconfirmed_registry_birth(&mut family);
        }
        let roll = self.rng.random_range(0..1000);
        match roll {
            0..40 => self.marriage(&mut family),
            40..48 => self.divorce(&mut family),
            48..63 => self.move_out(&mut family),
            63..71 => self.death(&mut family),
            71..79 => self.move_in(county),
            79..82 => self.hukou_unknown(county),
            82..97 => self.migrant_inflow(&mut family),
            97..105 => self.migrant_arrival(),
            105..109 => self.migrant_return(&mut family),
            109..111 => self.migrant_unknown(county),
            111..117 => self.duplicate(&mut family),
            117..123 => self.invalid_in_registry(&mut family),
            123..129 => self.move_out_of_mistyped_registry_person(&mut family),
            _ => {}
        }
        let Family {
            husband,
            wife,
            members,
            adult,
            ..
        } = family;
        self.world.registry.push(husband);
        self.world.registry.push(wife);
        self.world.registry.extend(members);
        self.world.registry.extend(adult);
    }

    fn birth(&mut self, f: &mut Family) {
        let last = self.last_day();
        let twins = self.chance(0.03);
        let scenario = self.rng.random_range(0..100);
        // Born early enough to be registered this month, or late and still inside the grace period.
        let pending = scenario >= 85;
        let birth = if scenario < 8 {
            self.day_in_period(1, 15)
        } else if pending {
            self.day_in_period(last - 9, last)
        } else {
            self.day_in_period(1, last - 10)
        };
        let count = if twins { 2 } else { 1 };
        let surname: String = f
            .husband
            .name
            .chars()
            .next()
            .map(String::from)
            .unwrap_or_default();
        let mut first_twin_name = String::new();
        for n in 0..count {
            let sex = self.rng.random_range(1..=2);
            let mut child = self.make_person(f.county, birth, sex, &surname, true);
            while child.name == first_twin_name {
                child.name = self.names.full_name(&mut self.rng, &surname);
            }
            first_twin_name = child.name.clone();
            child.mother = f.wife.id.clone();
            child.father = f.husband.id.clone();
            let cert = self.cert();
            let reg_date = birth + Duration::days(self.rng.random_range(2..=9));
            let child_id = child.id.clone().expect("generated with an id");
            let mut health = HealthRow {
                cert: cert.clone(),
                status: "issued",
                updated_at: format!(
                    "{}T09:{:02}:00+08:00",
                    birth + Duration::days(1),
                    self.rng.random_range(0..60)
                ),
                child_name: if self.chance(0.05) {
                    String::new()
                } else {
                    child.name.clone()
                },
                sex,
                birth,
                time: format!(
                    "{:02}:{:02}",
                    self.rng.random_range(0..24),
                    self.rng.random_range(0..60)
                ),
                division: f.county.to_owned(),
                mother_name: f.wife.name.clone(),
                mother_id: f.wife.id.clone().expect("id"),
                father_name: f.husband.name.clone(),
                father_id: f.husband.id.clone().expect("id"),
                gestation: self.rng.random_range(36..=41),
                weight: self.rng.random_range(2500..=4200),
            };
            let mut hukou = HukouRow {
                event: "出生登记",
                id: child_id.clone(),
                name: child.name.clone(),
                sex,
                birth,
                division: f.county.to_owned(),
                cert: cert.clone(),
                father_name: f.husband.name.clone(),
                father_id: f.husband.id.clone().expect("id"),
                mother_name: f.wife.name.clone(),
                mother_id: f.wife.id.clone().expect("id"),
                reg_date,
            };
            let mut in_registry = true;
            let mut with_hukou = !pending;
            let hukou_key = |h: &HukouRow| format!("{}|出生登记|{}", h.id, h.reg_date);
            match scenario {
                // Old enough for the grace period to have run out; never registered; the registry
                // has the child without an identity number.
                0..8 if n == 0 => {
                    with_hukou = false;
                    child.id = None;
                    self.truth("unregistered_child", "health.births", cert.clone());
                }
                8..12 if n == 0 => {
                    in_registry = false;
                    self.truth("unreported_birth", "health.births", cert.clone());
                }
                12..16 if n == 0 => {
                    match self.rng.random_range(0..3) {
                        0 => child.name = self.names.other_name(&mut self.rng, &child.name),
                        1 => child.sex = 3 - child.sex,
                        _ => {
                            child.birth = child.birth
                                + Duration::days(if child.birth.day() > 1 { -1 } else { 1 })
                        }
                    }
                    health.child_name = hukou.name.clone();
                    self.truth("birth_conflict", "health.births", cert.clone());
                }
                16..19 if n == 0 => {
                    // A certificate first issued with a wrong name, then reissued with the right one.
                    let mut first = health.clone();
                    first.child_name = self.names.other_name(&mut self.rng, &child.name);
                    first.updated_at = format!("{}T08:00:00+08:00", birth + Duration::days(1));
                    health.status = "reissued";
                    health.child_name = child.name.clone();
                    health.updated_at = format!("{}T10:00:00+08:00", birth + Duration::days(3));
                    self.world.births.push(first);
                }
                19..21 if n == 0 => {
                    // A second certificate issued in error for the same child, then voided.
                    let mut wrong = health.clone();
                    wrong.cert = self.cert();
                    self.world.births.push(wrong.clone());
                    wrong.status = "void";
                    wrong.updated_at = format!("{}T16:00:00+08:00", birth + Duration::days(2));
                    self.world.births.push(wrong);
                }
                21..23 if n == 0 => {
                    let bad = self.typo_id(&health.mother_id);
                    health.mother_id = bad;
                    self.truth("invalid_identifier", "health.births", cert.clone());
                }
                23..25 if n == 0 => {
                    let bad = self.typo_id(&hukou.father_id);
                    hukou.father_id = bad;
                    self.truth("invalid_identifier", "police.hukou", hukou_key(&hukou));
                }
                25..27 if n == 0 => {
                    // Registered by the police, but the health notification never came.
                    in_registry = false;
                    self.truth("unreported_birth", "police.hukou", hukou_key(&hukou));
                    health.cert.clear();
                }
                _ => {}
            }
            if !with_hukou {
                child.id = None;
            }
            if self.corrupt {
                let conflicted = (12..16).contains(&scenario) && n == 0;
                self.corrupt_birth(&mut health, &child, in_registry, conflicted);
            }
            if !health.cert.is_empty() {
                self.world.births.push(health);
            }
            if with_hukou {
                self.world.hukou.push(hukou);
            }
            if in_registry {
                f.members.push(child);
            }
        }
    }

    /// A child in the registry that no agency ever reported.
    fn unconfirmed_registry_birth(&mut self, f: &mut Family) {
        let surname: String = f
            .husband
            .name
            .chars()
            .next()
            .map(String::from)
            .unwrap_or_default();
        let birth = self.day_in_period(1, self.last_day());
        let sex = self.rng.random_range(1..=2);
        let mut ghost = self.make_person(f.county, birth, sex, &surname, false);
        ghost.mother = f.wife.id.clone();
        ghost.father = f.husband.id.clone();
        self.truth("registry_birth_unconfirmed", "registry", ghost.key.clone());
        f.members.push(ghost);
    }

    /// Typos real feeds carry: a mistyped digit in the mother's number, a homophone in the
    /// child's name, an empty child name.
    fn corrupt_birth(
        &mut self,
        health: &mut HealthRow,
        child: &SimPerson,
        in_registry: bool,
        conflicted: bool,
    ) {
        if health.cert.is_empty() {
            return;
        }
        if self.chance(0.03)
            && !health.mother_id.is_empty()
            && crate::model::IdNumber::parse(&health.mother_id).is_some_and(|i| i.is_valid())
        {
            health.mother_id = self.typo_id(&health.mother_id);
            self.truth("invalid_identifier", "health.births", health.cert.clone());
        }
        // A name emptied here cannot carry a homophone, so empty names are drawn first.
        if self.chance(0.05) {
            health.child_name.clear();
        }
        if self.chance(0.03)
            && !health.child_name.is_empty()
            && health.child_name == child.name
            && in_registry
        {
            if let Some(t) = self.names.homophone_typo(&mut self.rng, &health.child_name) {
                health.child_name = t;
                if !conflicted {
                    self.truth("birth_conflict", "health.births", health.cert.clone());
                }
            }
        }
    }

    /// One substituted digit or two adjacent digits swapped: always caught by the checksum.
    pub fn typo_id(&mut self, id: &str) -> String {
        let mut b = id.as_bytes().to_vec();
        loop {
            let pos = self.rng.random_range(6..16);
            if self.chance(0.5) {
                if b[pos] != b[pos + 1] {
                    b.swap(pos, pos + 1);
                    break;
                }
            } else {
                b[pos] = b'0' + (b[pos] - b'0' + self.rng.random_range(1..10)) % 10;
                break;
            }
        }
        String::from_utf8(b).expect("ascii")
    }

    fn marriage(&mut self, f: &mut Family) {
        let Some(adult) = f.adult.as_mut() else {
            return;
        };
        let year = self.period.first_day().year();
        let partner_sex = 3 - adult.sex;
        let kind = self.rng.random_range(0..100);
        let partner_div = if kind < 25 {
            PARTNER
        } else {
            *self.counties.choose(&mut self.rng).expect("non-empty")
        };
        let partner_birth = self.date_between(year - 32, year - 22);
        let partner_surname = self.surname();
        let mut partner = self.make_person(
            partner_div,
            partner_birth,
            partner_sex,
            partner_surname,
            true,
        );
        let recorded = self.chance(0.85);
        let reg_date = self.day_in_period(1, self.last_day());
        let reg_no = self.reg_no(f.county, 'J');
        let adult_spouse = Spouse {
            name: adult.name.clone(),
            id: adult.id.clone().expect("id"),
            birth: adult.birth,
        };
        let partner_spouse = Spouse {
            name: partner.name.clone(),
            id: partner.id.clone().expect("id"),
            birth: partner.birth,
        };
        let (husband, wife) = if adult.sex == 1 {
            (adult_spouse, partner_spouse)
        } else {
            (partner_spouse, adult_spouse)
        };
        let mut row = MarriageRow {
            kind: "结婚",
            reg_no: reg_no.clone(),
            reg_date,
            husband,
            wife,
        };
        if self.corrupt && self.chance(0.1) {
            row.husband.id = to_full_width(&row.husband.id);
        }
        self.world.marriages.push(row);
        let unknown_ours = (25..30).contains(&kind);
        if recorded || unknown_ours {
            adult.marital = "21";
            adult.spouse = partner.id.clone();
            partner.marital = "21";
            partner.spouse = adult.id.clone();
        } else {
            self.truth("marriage_not_recorded", "civil.marriages", reg_no.clone());
        }
        if unknown_ours {
            self.truth("unknown_person", "civil.marriages", reg_no);
        } else if partner_div != PARTNER {
            self.world.registry.push(partner);
        }
    }

    fn divorce(&mut self, f: &mut Family) {
        let reg_date = self.day_in_period(1, self.last_day());
        let reg_no = self.reg_no(f.county, 'L');
        let spouse = |p: &SimPerson| Spouse {
            name: p.name.clone(),
            id: p.id.clone().expect("id"),
            birth: p.birth,
        };
        self.world.marriages.push(MarriageRow {
            kind: "离婚",
            reg_no: reg_no.clone(),
            reg_date,
            husband: spouse(&f.husband),
            wife: spouse(&f.wife),
        });
        if self.chance(0.7) {
            for p in [&mut f.husband, &mut f.wife] {
                p.marital = "40";
                p.spouse = None;
            }
        } else {
            self.truth("marriage_not_recorded", "civil.marriages", reg_no);
        }
    }

    fn hukou_row(&mut self, event: &'static str, p: &SimPerson) -> HukouRow {
        let mut id = p.id.clone().expect("id");
        if self.corrupt && p.birth.year() < 2000 && self.chance(0.2) {
            // A legacy 15-digit number: division, 2-digit year, month, day, sequence.
            id = format!("{}{}", &id[..6], &id[8..17]);
        }
        HukouRow {
            event,
            id,
            name: p.name.clone(),
            sex: p.sex,
            birth: p.birth,
            division: p.hukou_div.clone(),
            cert: String::new(),
            father_name: String::new(),
            father_id: String::new(),
            mother_name: String::new(),
            mother_id: String::new(),
            reg_date: self.day_in_period(1, self.last_day()),
        }
    }

    fn record_status_change(
        &mut self,
        row: HukouRow,
        person: &mut SimPerson,
        status: &'static str,
    ) {
        let canonical = crate::model::IdNumber::parse(&row.id)
            .map(String::from)
            .unwrap_or_default();
        let key = format!("{canonical}|{}|{}", row.event, row.reg_date);
        self.world.hukou.push(row);
        if self.chance(0.75) {
            person.status = status;
        } else {
            self.truth("moved_out_not_recorded", "police.hukou", key);
        }
    }

    fn move_out(&mut self, f: &mut Family) {
        let row = self.hukou_row("迁出", &f.husband);
        let mut husband = f.husband.clone();
        self.record_status_change(row, &mut husband, "moved_out");
        f.husband = husband;
    }

    /// The police register a move-out with the right number, while the registry holds the
    /// person under a mistyped one: exact keys find nobody, the probabilistic linkage must.
    fn move_out_of_mistyped_registry_person(&mut self, f: &mut Family) {
        let row = self.hukou_row("迁出", &f.husband);
        let id = f.husband.id.clone().expect("id");
        f.husband.id = Some(self.typo_id(&id));
        let key = f.husband.key.clone();
        self.truth("invalid_identifier", "registry", key);
        let mut husband = f.husband.clone();
        self.record_status_change(row, &mut husband, "moved_out");
        f.husband = husband;
    }

    fn death(&mut self, f: &mut Family) {
        let row = self.hukou_row("死亡注销", &f.wife);
        let mut wife = f.wife.clone();
        self.record_status_change(row, &mut wife, "deceased");
        f.wife = wife;
    }

    fn move_in(&mut self, county: &str) {
        let year = self.period.first_day().year();
        let birth = self.date_between(year - 50, year - 20);
        let sex = self.rng.random_range(1..=2);
        let surname = self.surname();
        let mut p = self.make_person(PARTNER, birth, sex, surname, true);
        p.hukou_div = county.to_owned();
        p.res_div = county.to_owned();
        let row = self.hukou_row("迁入", &p);
        self.world.hukou.push(row);
        self.world.registry.push(p);
    }

    fn hukou_unknown(&mut self, county: &str) {
        let year = self.period.first_day().year();
        let birth = self.date_between(year - 60, year - 20);
        let surname = self.surname();
        let p = self.make_person(county, birth, 1, surname, true);
        let mut row = self.hukou_row("迁出", &p);
        row.id = p.id.clone().expect("id");
        let key = format!("{}|迁出|{}", row.id, row.reg_date);
        self.world.hukou.push(row);
        self.truth("unknown_person", "police.hukou", key);
    }

    fn migrant_row(&mut self, p: &SimPerson, event: &'static str, res_div: &str) -> MigrantRow {
        MigrantRow {
            id: p.id.clone().expect("id"),
            name: p.name.clone(),
            sex: p.sex,
            birth: p.birth,
            marital: p.marital,
            hukou_div: p.hukou_div.clone(),
            res_div: res_div.to_owned(),
            event,
            event_date: self.day_in_period(1, self.last_day()),
        }
    }

    fn migrant_key(row: &MigrantRow) -> String {
        format!("{}|{}|{}", row.id, row.event, row.event_date)
    }

    fn migrant_inflow(&mut self, f: &mut Family) {
        let row = self.migrant_row(&f.husband, "inflow", PARTNER);
        if self.chance(0.7) {
            f.husband.res_div = PARTNER.to_owned();
        } else {
            self.truth(
                "migrant_inflow_not_recorded",
                "exchange.migrants",
                Self::migrant_key(&row),
            );
        }
        self.world.migrants.push(row);
    }

    fn migrant_arrival(&mut self) {
        let year = self.period.first_day().year();
        let birth = self.date_between(year - 45, year - 20);
        let sex = self.rng.random_range(1..=2);
        let surname = self.surname();
        let county = *self.counties.choose(&mut self.rng).expect("non-empty");
        let mut p = self.make_person(PARTNER, birth, sex, surname, true);
        p.res_div = county.to_owned();
        let row = self.migrant_row(&p, "outflow", county);
        if self.chance(0.7) {
            self.world.registry.push(p);
        } else {
            self.truth(
                "migrant_inflow_not_recorded",
                "exchange.migrants",
                Self::migrant_key(&row),
            );
        }
        self.world.migrants.push(row);
    }

    fn migrant_return(&mut self, f: &mut Family) {
        let row = self.migrant_row(&f.husband, "return", f.county);
        self.world.migrants.push(row);
    }

    fn migrant_unknown(&mut self, county: &str) {
        let year = self.period.first_day().year();
        let birth = self.date_between(year - 45, year - 20);
        let surname = self.surname();
        let p = self.make_person(county, birth, 2, surname, true);
        let row = self.migrant_row(&p, "return", county);
        self.truth(
            "unknown_person",
            "exchange.migrants",
            Self::migrant_key(&row),
        );
        self.world.migrants.push(row);
    }

    fn duplicate(&mut self, f: &mut Family) {
        let Some(kid) = f
            .members
            .iter()
            .find(|m| m.birth < self.period.first_day())
            .cloned()
        else {
            return;
        };
        let mut copy = kid.clone();
        copy.key = self.person_key();
        if self.chance(0.5) {
            copy.id = None;
        }
        let (a, b) = if kid.key < copy.key {
            (&kid.key, &copy.key)
        } else {
            (&copy.key, &kid.key)
        };
        self.truth("duplicate_registry_record", "registry", format!("{a}|{b}"));
        f.members.push(copy);
    }

    fn invalid_in_registry(&mut self, f: &mut Family) {
        let Some(pos) = f
            .members
            .iter()
            .position(|m| m.birth < self.period.first_day())
        else {
            return;
        };
        let id = f.members[pos].id.clone().expect("id");
        f.members[pos].id = Some(self.typo_id(&id));
        let key = f.members[pos].key.clone();
        self.truth("invalid_identifier", "registry", key);
    }
}

pub struct Family {
    pub county: &'static str,
    pub husband: SimPerson,
    pub wife: SimPerson,
    pub members: Vec<SimPerson>,
    pub adult: Option<SimPerson>,
}

fn to_full_width(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}
