use chrono::NaiveDate;

use super::*;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn id(body17: &str) -> IdNumber {
    IdNumber::parse(&format!("{body17}{}", check_char(body17))).unwrap()
}

const MOTHER: &str = "41061119920315432";

fn params() -> Params {
    Params {
        period: "2026-10".parse().unwrap(),
        as_of: d("2026-11-20"),
        grace_days: 30,
        region_prefix: "4106".into(),
    }
}

fn child(key: &str, name: &str, sex: Sex, born: &str, child_id: Option<IdNumber>) -> Person {
    Person {
        person_key: key.into(),
        id_number: child_id,
        name: name.into(),
        sex,
        birth_date: Some(d(born)),
        hukou_division: "410611".parse().ok(),
        residence_division: "410611".parse().ok(),
        marital_status: None,
        spouse_id_number: None,
        mother_id_number: Some(id(MOTHER)),
        father_id_number: None,
        status: PersonStatus::Resident,
        updated_at: None,
    }
}

fn notification(
    cert: &str,
    name: &str,
    sex: Sex,
    born: &str,
    mother: Option<IdNumber>,
) -> BirthNotification {
    BirthNotification {
        cert_no: cert.into(),
        status: CertStatus::Issued,
        child_name: name.into(),
        child_sex: sex,
        birth_date: d(born),
        birth_time: None,
        birth_division: "410611".parse().ok(),
        hospital_code: None,
        hospital_name: None,
        mother_name: "李娜".into(),
        mother_id: mother,
        mother_division: "410611".parse().ok(),
        father_name: None,
        father_id: None,
        updated_at: None,
    }
}

fn kinds(found: &[Discrepancy]) -> Vec<(DiscrepancyKind, String)> {
    found.iter().map(|d| (d.kind, d.anchor.clone())).collect()
}

#[test]
fn twins_stay_two_people_even_when_one_name_is_empty() {
    // Born on the last day, no household registration yet: matched by mother and birth date.
    let inputs = Inputs {
        registry: vec![
            child("P1", "王梓涵", Sex::Female, "2026-10-31", None),
            child("P2", "王梓轩", Sex::Female, "2026-10-31", None),
        ],
        births: vec![
            notification(
                "Q000000001",
                "",
                Sex::Female,
                "2026-10-31",
                Some(id(MOTHER)),
            ),
            notification(
                "Q000000002",
                "王梓涵",
                Sex::Female,
                "2026-10-31",
                Some(id(MOTHER)),
            ),
        ],
        ..Inputs::default()
    };
    let found = find_discrepancies(&inputs, &params());
    assert!(
        found.is_empty(),
        "twins paired one-to-one, no conflict: {:?}",
        kinds(&found)
    );

    // One twin missing from the registry: exactly one unreported birth, the unnamed one.
    let mut one = inputs.clone();
    one.registry.remove(1);
    one.births[0].child_name = "王梓轩".into();
    let found = find_discrepancies(&one, &params());
    assert_eq!(
        kinds(&found),
        vec![(
            DiscrepancyKind::UnreportedBirth,
            "health.births|Q000000001".into()
        )]
    );
}

#[test]
fn a_bad_checksum_is_an_invalid_identifier_never_a_conflict() {
    let registered = id("41061120261003582");
    let bad_mother = IdNumber::parse(&format!("{MOTHER}0")).unwrap();
    assert!(!bad_mother.is_valid());
    let inputs = Inputs {
        registry: vec![child(
            "P1",
            "王梓涵",
            Sex::Female,
            "2026-10-03",
            Some(registered.clone()),
        )],
        births: vec![notification(
            "Q000000001",
            "王梓涵",
            Sex::Female,
            "2026-10-03",
            Some(bad_mother),
        )],
        hukou: vec![HukouEvent {
            event: HukouEventKind::Birth,
            id_number: registered,
            name: "王梓涵".into(),
            sex: Sex::Female,
            birth_date: Some(d("2026-10-03")),
            hukou_division: "410611".parse().ok(),
            cert_no: Some("Q000000001".into()),
            father_name: None,
            father_id: None,
            mother_name: None,
            mother_id: Some(id(MOTHER)),
            reg_date: d("2026-10-10"),
            office: None,
        }],
        ..Inputs::default()
    };
    let found = find_discrepancies(&inputs, &params());
    assert_eq!(
        kinds(&found),
        vec![(
            DiscrepancyKind::InvalidIdentifier,
            "health.births|Q000000001".into()
        )]
    );
    assert_eq!(found[0].fields[0].field, "mother_id");
}

#[test]
fn name_sex_and_date_disagreements_are_one_conflict_listing_each_field() {
    let inputs = Inputs {
        registry: vec![child("P1", "王子涵", Sex::Male, "2026-10-03", None)],
        births: vec![notification(
            "Q000000001",
            "王梓涵",
            Sex::Female,
            "2026-10-03",
            Some(id(MOTHER)),
        )],
        ..Inputs::default()
    };
    let found = find_discrepancies(&inputs, &params());
    let conflict = found
        .iter()
        .find(|d| d.kind == DiscrepancyKind::BirthConflict)
        .expect("a conflict");
    let fields: Vec<&str> = conflict.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["sex", "name"]);
    assert_eq!(conflict.registry_key.as_deref(), Some("P1"));
    assert_eq!(conflict.fields[1].registry.as_deref(), Some("王子涵"));
    assert_eq!(conflict.fields[1].source.as_deref(), Some("王梓涵"));

    // An empty child name on the notification is no conflict.
    let mut unnamed = inputs.clone();
    unnamed.births[0].child_name.clear();
    unnamed.births[0].child_sex = Sex::Male;
    let found = find_discrepancies(&unnamed, &params());
    assert!(
        found
            .iter()
            .all(|d| d.kind != DiscrepancyKind::BirthConflict),
        "{:?}",
        kinds(&found)
    );
}

#[test]
fn the_grace_period_counts_to_the_as_of_day() {
    let inputs = Inputs {
        registry: vec![child("P1", "王梓涵", Sex::Female, "2026-10-01", None)],
        births: vec![notification(
            "Q000000001",
            "王梓涵",
            Sex::Female,
            "2026-10-01",
            Some(id(MOTHER)),
        )],
        ..Inputs::default()
    };
    let at = |as_of: &str| {
        let p = Params {
            as_of: d(as_of),
            ..params()
        };
        kinds(&find_discrepancies(&inputs, &p))
    };
    assert!(
        at("2026-10-31").is_empty(),
        "30 days old: still within grace"
    );
    assert_eq!(
        at("2026-11-01"),
        vec![(
            DiscrepancyKind::UnregisteredChild,
            "health.births|Q000000001".into()
        )]
    );
}

#[test]
fn marriages_check_both_parties_and_unknown_ones_of_this_region() {
    let husband = id("41062219900101231");
    let wife = id("41061119920315432");
    let stranger = id("41062119950506123");
    let mut p_h = child("H", "王强", Sex::Male, "1990-01-01", Some(husband.clone()));
    p_h.marital_status = Some(MaritalStatus::FirstMarriage);
    p_h.spouse_id_number = Some(wife.clone());
    let mut p_w = child("W", "李娜", Sex::Female, "1992-03-15", Some(wife.clone()));
    p_w.marital_status = Some(MaritalStatus::Unmarried);
    let party = |name: &str, id: &IdNumber| Party {
        name: name.into(),
        id_number: Some(id.clone()),
        birth_date: None,
    };
    let reg = |no: &str, h: Party, w: Party| MarriageRegistration {
        reg_no: no.into(),
        kind: MarriageKind::Marriage,
        reg_date: d("2026-10-08"),
        office: "410611".parse().ok(),
        husband: h,
        wife: w,
    };
    let inputs = Inputs {
        registry: vec![p_h, p_w],
        marriages: vec![
            reg("J1", party("王强", &husband), party("李娜", &wife)),
            reg(
                "J2",
                party("张伟", &stranger),
                party("外地", &id("32041119950506123")),
            ),
        ],
        ..Inputs::default()
    };
    let found = find_discrepancies(&inputs, &params());
    assert_eq!(
        kinds(&found),
        vec![
            (
                DiscrepancyKind::MarriageNotRecorded,
                "civil.marriages|J1".into()
            ),
            (DiscrepancyKind::UnknownPerson, "civil.marriages|J2".into()),
        ],
        "the partner from another region is not ours to know"
    );
    let fields: Vec<&str> = found[0].fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["wife.marital_status", "wife.spouse_id_number"]);
}
