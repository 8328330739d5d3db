use super::*;
use crate::model::*;

fn birth(cert: &str, status: CertStatus, name: &str, updated: &str) -> Record {
    Record::Birth(BirthNotification {
        cert_no: cert.into(),
        status,
        child_name: name.into(),
        child_sex: Sex::Female,
        birth_date: chrono::NaiveDate::from_ymd_opt(2026, 10, 3).unwrap(),
        birth_time: None,
        birth_division: None,
        hospital_code: None,
        hospital_name: None,
        mother_name: "李娜".into(),
        mother_id: IdNumber::parse("410611199203154325"),
        mother_division: None,
        father_name: None,
        father_id: None,
        updated_at: Some(updated.into()),
    })
}

#[test]
fn migrations_apply_once_and_reopen_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
}

#[test]
fn reissue_replaces_older_void_retires_and_stale_versions_are_ignored() {
    let mut store = Store::open_in_memory().unwrap();
    let mut w = store
        .begin_file("births.xml", "sha-1", 10, "health.births", "builtin:x")
        .unwrap();
    let issued = birth(
        "Q410123456",
        CertStatus::Issued,
        "王子涵",
        "2026-10-05T09:12:00+08:00",
    );
    assert_eq!(
        w.upsert(&issued, "element 1").unwrap(),
        UpsertOutcome::Inserted
    );
    assert_eq!(
        w.upsert(&issued, "element 1").unwrap(),
        UpsertOutcome::Unchanged
    );
    let reissued = birth(
        "Q410123456",
        CertStatus::Reissued,
        "王梓涵",
        "2026-10-09T10:00:00+08:00",
    );
    assert_eq!(
        w.upsert(&reissued, "element 2").unwrap(),
        UpsertOutcome::Updated
    );
    // An older version arriving late (same instant expressed in UTC is older still) is ignored.
    assert_eq!(
        w.upsert(&issued, "element 1").unwrap(),
        UpsertOutcome::Stale
    );
    w.finish(3, None).unwrap();
    let current = store.records(Feed::HealthBirths).unwrap();
    assert_eq!(current.len(), 1);
    let Record::Birth(b) = &current[0].record else {
        panic!()
    };
    assert_eq!(b.child_name, "王梓涵");
    assert_eq!(current[0].location.as_deref(), Some("element 2"));

    let mut w = store
        .begin_file("births2.xml", "sha-2", 10, "health.births", "builtin:x")
        .unwrap();
    let void = birth(
        "Q410123456",
        CertStatus::Void,
        "王梓涵",
        "2026-10-10T00:00:00Z",
    );
    assert_eq!(
        w.upsert(&void, "element 1").unwrap(),
        UpsertOutcome::Updated
    );
    w.finish(1, None).unwrap();
    assert!(
        store.records(Feed::HealthBirths).unwrap().is_empty(),
        "void retires the certificate"
    );
    assert!(store
        .record(Feed::HealthBirths, "Q410123456")
        .unwrap()
        .unwrap()
        .is_retired());
}

#[test]
fn an_uncommitted_file_leaves_nothing_behind() {
    let mut store = Store::open_in_memory().unwrap();
    {
        let mut w = store
            .begin_file("b.xml", "sha-x", 1, "health.births", "m")
            .unwrap();
        w.upsert(
            &birth("Q1", CertStatus::Issued, "", "2026-10-05T00:00:00Z"),
            "element 1",
        )
        .unwrap();
        // dropped without finish(): as if the process died mid-file
    }
    assert!(store.records(Feed::HealthBirths).unwrap().is_empty());
    assert!(store
        .landed_file_by_sha("sha-x", "health.births")
        .unwrap()
        .is_none());
}

fn finding(kind: DiscrepancyKind, anchor: &str, explanation: &str) -> Discrepancy {
    Discrepancy {
        kind,
        period: "2026-10".into(),
        division: Some("410611".into()),
        severity: Severity::High,
        score: 1.0,
        sources: vec![SourceRef::new("health.births", anchor)],
        registry_key: None,
        fields: vec![],
        explanation: explanation.into(),
        anchor: anchor.into(),
        evidence: None,
        possible_match: false,
    }
}

#[test]
fn discrepancy_ids_are_stable_and_reviews_survive_unchanged_data() {
    let mut store = Store::open_in_memory().unwrap();
    let run1 = vec![
        finding(DiscrepancyKind::UnreportedBirth, "Q2", "a"),
        finding(DiscrepancyKind::UnreportedBirth, "Q1", "b"),
    ];
    assert_eq!(store.save_discrepancies("2026-10", &run1).unwrap().new, 2);
    let ids: Vec<(String, String)> = store
        .discrepancies("2026-10", None)
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.discrepancy.anchor))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("d-2026-10-000001".into(), "Q1".into()),
            ("d-2026-10-000002".into(), "Q2".into())
        ]
    );

    // Same data again, in another order: nothing new, same ids.
    let mut run2 = run1.clone();
    run2.reverse();
    let s = store.save_discrepancies("2026-10", &run2).unwrap();
    assert_eq!((s.new, s.unchanged), (0, 2));

    store
        .review_discrepancy(
            "d-2026-10-000001",
            "resolved",
            "clerk-1",
            Some("registry fixed"),
        )
        .unwrap();
    store.save_discrepancies("2026-10", &run2).unwrap();
    let status = |store: &Store, id: &str| {
        store
            .discrepancies("2026-10", None)
            .unwrap()
            .into_iter()
            .find(|d| d.id == id)
            .unwrap()
            .status
    };
    assert_eq!(
        status(&store, "d-2026-10-000001"),
        "resolved",
        "unchanged data keeps the review"
    );

    // The data behind the resolved one changes: it is reopened, under the same id.
    let run3 = vec![
        finding(DiscrepancyKind::UnreportedBirth, "Q1", "changed"),
        run1[0].clone(),
    ];
    assert_eq!(
        store.save_discrepancies("2026-10", &run3).unwrap().reopened,
        1
    );
    assert_eq!(status(&store, "d-2026-10-000001"), "open");

    // One that is no longer found is marked gone; a new one gets the next number.
    let run4 = vec![finding(DiscrepancyKind::UnreportedBirth, "Q3", "c")];
    let s = store.save_discrepancies("2026-10", &run4).unwrap();
    assert_eq!((s.new, s.gone), (1, 2));
    assert_eq!(status(&store, "d-2026-10-000003"), "open");
    let history = store.discrepancy_history("d-2026-10-000001").unwrap();
    let trail: Vec<&str> = history.iter().map(|h| h.to_status.as_str()).collect();
    assert_eq!(trail, ["open", "resolved", "open", "gone"]);
    assert_eq!(history[1].actor, "clerk-1");
}
