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

/// Runs a store check on the embedded SQLite and on a fresh PostgreSQL database.
fn on_both(check: impl Fn(Store)) {
    eprintln!("-- on SQLite");
    check(Store::open_in_memory().unwrap());
    eprintln!("-- on PostgreSQL");
    check(testing::fresh_postgres_store());
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

    let target = testing::fresh_postgres_database();
    let store = Store::connect(&target).unwrap();
    assert!(store.is_postgres());
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
    drop(store);
    let store = Store::connect(&target).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
    // Migration 0014: room on each page for stamping a discrepancy seen in place.
    let options: String = scalar(
        &store,
        "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = 'discrepancies'",
    );
    assert_eq!(options, "fillfactor=70");
}

#[test]
fn reissue_replaces_older_void_retires_and_stale_versions_are_ignored() {
    on_both(|mut store| {
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
    });
}

#[test]
fn an_uncommitted_file_leaves_nothing_behind() {
    on_both(|mut store| {
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
    });
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

/// The stored discrepancy of October 2026 with `id`.
fn stored_by_id(store: &Store, id: &str) -> discrepancies::StoredDiscrepancy {
    store
        .discrepancies("2026-10", None)
        .unwrap()
        .into_iter()
        .find(|d| d.id == id)
        .unwrap()
}

#[test]
fn discrepancy_ids_are_stable_and_reviews_survive_unchanged_data() {
    on_both(|mut store| {
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
        let status = |store: &Store, id: &str| stored_by_id(store, id).status;
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
    });
}

#[test]
fn new_match_weights_alone_keep_a_review_and_replace_the_stored_evidence() {
    on_both(|mut store| {
        let weighed = |score: f64, weight: f64| {
            let mut d = finding(DiscrepancyKind::UnreportedBirth, "Q1", "a");
            d.score = score;
            d.evidence = Some(serde_json::json!({ "match_weight": weight }));
            d
        };
        store
            .save_discrepancies("2026-10", &[weighed(0.97, 5.1)])
            .unwrap();
        let id = "d-2026-10-000001";
        store
            .review_discrepancy(id, "resolved", "clerk-1", None)
            .unwrap();
        let stored = |store: &Store| stored_by_id(store, id);

        // The county's u measured again: other weights, same facts.
        let s = store
            .save_discrepancies("2026-10", &[weighed(0.95, 4.7)])
            .unwrap();
        assert_eq!((s.unchanged, s.updated, s.reopened), (1, 0, 0));
        let now = stored(&store);
        assert_eq!(
            now.status, "resolved",
            "weights alone do not reopen a review"
        );
        assert_eq!(now.discrepancy.score, 0.95);
        assert_eq!(
            now.discrepancy.evidence,
            Some(serde_json::json!({ "match_weight": 4.7 }))
        );

        // A fingerprint stored before the facts had their own hash: the whole body's.
        let body = serde_json::to_string(&weighed(0.95, 4.7)).unwrap();
        store
            .conn
            .execute(
                "UPDATE discrepancies SET fingerprint = ?2 WHERE id = ?1",
                args![id, crate::store::sha256_hex(body.as_bytes())],
            )
            .unwrap();
        let s = store
            .save_discrepancies("2026-10", &[weighed(0.95, 4.7)])
            .unwrap();
        assert_eq!(
            s.unchanged, 1,
            "an identical body matches the old fingerprint"
        );
        // ... which is then replaced, so that new weights alone keep the review from now on.
        let s = store
            .save_discrepancies("2026-10", &[weighed(0.93, 4.2)])
            .unwrap();
        assert_eq!((s.unchanged, s.reopened), (1, 0));
        assert_eq!(stored(&store).status, "resolved");

        // The facts change: reopened.
        let mut changed = weighed(0.95, 4.7);
        changed.explanation = "b".into();
        let s = store.save_discrepancies("2026-10", &[changed]).unwrap();
        assert_eq!(s.reopened, 1);
        assert_eq!(stored(&store).status, "open");
    });
}

#[test]
fn a_month_of_new_discrepancies_is_stored_whole_across_batches() {
    on_both(|mut store| {
        // One already known, then more than a batch of new ones: every value must arrive
        // as it was, whatever COPY's text format makes of tabs, newlines and backslashes.
        let known = finding(DiscrepancyKind::BirthConflict, "K", "known");
        assert_eq!(
            store
                .save_discrepancies("2026-10", std::slice::from_ref(&known))
                .unwrap()
                .new,
            1
        );
        let count = discrepancies::NEW_BATCH + 3;
        let mut found: Vec<Discrepancy> = (0..count)
            .map(|n| {
                let mut d = finding(
                    DiscrepancyKind::UnreportedBirth,
                    &format!("A{n:05}"),
                    "line one\nline two\twith a tab and a \\ backslash",
                );
                if n % 2 == 0 {
                    d.division = None;
                    d.registry_key = Some(format!("P{n}"));
                    d.possible_match = true;
                    d.score = 0.125;
                }
                d
            })
            .collect();
        found.push(known);
        let s = store.save_discrepancies("2026-10", &found).unwrap();
        assert_eq!((s.new, s.unchanged), (count as u64, 1));

        let stored = store.discrepancies("2026-10", None).unwrap();
        assert_eq!(stored.len(), count + 1);
        for (i, d) in stored.iter().enumerate() {
            assert_eq!(d.id, format!("d-2026-10-{:06}", i + 1), "ids follow seq");
        }
        let last = &stored[count];
        assert_eq!(
            last.discrepancy,
            found[count - 1],
            "the last of the last batch"
        );
        let first_new = &stored[1];
        assert_eq!(first_new.discrepancy, found[0]);
        assert_eq!(first_new.status, "possible_match");
        assert_eq!(stored[2].status, "open");
        let history = store.discrepancy_history(&last.id).unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(
            (history[0].actor.as_str(), history[0].from_status.as_deref()),
            ("system", None)
        );
        assert_eq!(history[0].note.as_deref(), Some("found by reconciliation"));
        let entries: i64 = scalar(&store, "SELECT COUNT(*) FROM discrepancy_history");
        assert_eq!(entries, count as i64 + 1);
        let (division, key, score): (Option<String>, Option<String>, f64) = {
            let row = store
                .conn
                .query_one(
                    "SELECT division, registry_key, score FROM discrepancies WHERE id = 'd-2026-10-000002'",
                    &[],
                )
                .unwrap();
            (
                row.get(0).unwrap(),
                row.get(1).unwrap(),
                row.get(2).unwrap(),
            )
        };
        assert_eq!((division, key, score), (None, Some("P0".into()), 0.125));
    });
}

#[test]
fn quarantine_keeps_one_open_entry_per_place_and_resolves_with_the_record() {
    on_both(|mut store| {
        let mut w = store
            .begin_file("b.csv", "sha-q", 5, "health.births", "builtin:x")
            .unwrap();
        w.quarantine("row 3", Some("birth_date"), "not a date", Some("{\"a\":1}"))
            .unwrap();
        // Read again after a mapping change: still one entry, with the new reason.
        w.quarantine("row 3", Some("birth_date"), "still not a date", None)
            .unwrap();
        w.quarantine("file", None, "cut off at byte 9", None)
            .unwrap();
        let file_id = w.finish(3, Some("cut off")).unwrap();
        let open = store.quarantine_entries(false).unwrap();
        assert_eq!(open.len(), 2);
        assert_eq!(open[0].reason, "still not a date");
        assert_eq!(open[0].file_id, Some(file_id));
        let landed = store.landed_file(file_id).unwrap().unwrap();
        assert_eq!(
            (landed.records_read, landed.quarantined, landed.size),
            (3, 3, 5)
        );
        assert_eq!(landed.error.as_deref(), Some("cut off"));

        let fixed = birth("Q9", CertStatus::Issued, "张伟", "2026-10-05T00:00:00Z");
        assert_eq!(
            store.resolve_quarantined(open[0].id, &fixed).unwrap(),
            UpsertOutcome::Inserted
        );
        store.close_quarantined(open[1].id).unwrap();
        assert!(store.quarantine_entries(false).unwrap().is_empty());
        let all = store.quarantine_entries(true).unwrap();
        assert!(all.iter().all(|e| e.status == QuarantineStatus::Resolved));
        assert_eq!(store.records(Feed::HealthBirths).unwrap().len(), 1);
        assert_eq!(
            store.record_counts().unwrap(),
            vec![("health.births".to_owned(), 1)]
        );
    });
}

#[test]
fn jobs_pull_checkpoints_and_models_round_trip() {
    on_both(|mut store| {
        let state = PullState {
            cursor: Some("page-3".into()),
            run_since: None,
            run_max: Some("2026-10-31T23:00:00+08:00".into()),
            watermark: Some("2026-09-30T00:00:00Z".into()),
        };
        assert_eq!(store.pull_state("health").unwrap(), PullState::default());
        store.save_pull_state("health", &state).unwrap();
        assert_eq!(store.pull_state("health").unwrap(), state);

        let first = store
            .start_job("pull-health", "pull", Some("health"), "schedule")
            .unwrap();
        let second = store
            .start_job("reconcile", "reconcile", None, "after")
            .unwrap();
        assert!(second > first);
        store
            .finish_job(
                first,
                &JobOutcome {
                    records: 1963,
                    quarantined: 2,
                    ..JobOutcome::default()
                },
            )
            .unwrap();
        assert_eq!(store.mark_abandoned_jobs().unwrap(), 1);
        let runs = store.jobs(None, 10).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[0].id, runs[0].status.as_str()),
            (second, "interrupted")
        );
        assert_eq!((runs[1].records, runs[1].status.as_str()), (1963, "ok"));
        assert_eq!(store.jobs(Some("pull-health"), 10).unwrap().len(), 1);
        let last = store.last_successes().unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].0, "pull-health");

        assert!(store.linkage_model("births").unwrap().is_none());
        store.save_linkage_model("births", "{\"m\":1}").unwrap();
        store.save_linkage_model("births", "{\"m\":2}").unwrap();
        assert_eq!(
            store.linkage_model("births").unwrap().unwrap().0,
            "{\"m\":2}"
        );
    });
}

#[test]
fn outbox_bytes_and_inbox_ids_round_trip() {
    on_both(|mut store| {
        let body: Vec<u8> = vec![0, 159, 146, 150, b'{', 255];
        let sent = vec![("410611199203154325".to_owned(), "fp1".to_owned())];
        assert!(store
            .queue_outbound("320411", "m-1", &body, "sig", 1, &sent)
            .unwrap());
        assert!(!store
            .queue_outbound("320411", "m-1", &body, "sig", 1, &sent)
            .unwrap());
        let pending = store.outbox_pending().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].body, body);
        store.outbox_attempted("m-1", Some("broker away")).unwrap();
        store.outbox_attempted("m-1", None).unwrap();
        let all = store.outbox().unwrap();
        assert_eq!(all[0].attempts, 2);
        assert!(all[0].confirmed_at.is_some() && all[0].last_error.is_none());
        assert_eq!(store.exchange_sent("320411").unwrap().len(), 1);

        store
            .record_inbox("in-1", Some("320411"), None, None)
            .unwrap();
        store
            .record_inbox("in-1", Some("320411"), None, None)
            .unwrap();
        store
            .record_inbox("in-2", None, Some("signature does not verify"), None)
            .unwrap();
        assert!(store.inbox_applied("in-1").unwrap());
        assert!(!store.inbox_applied("in-2").unwrap());
        assert_eq!(
            store.exchange_counts().unwrap(),
            ExchangeCounts {
                outbox_pending: 0,
                outbox_confirmed: 1,
                inbox_applied: 1,
                inbox_rejected: 1,
            }
        );
    });
}

#[test]
fn the_audit_chain_verifies_and_an_edit_or_a_removal_is_named() {
    on_both(|mut store| {
        for i in 0..5 {
            store
                .audit(
                    "clerk",
                    "view",
                    Some(&format!("d-2026-10-00000{i}")),
                    Some("x"),
                )
                .unwrap();
        }
        let check = store.verify_audit().unwrap();
        assert_eq!((check.entries, check.broken.clone()), (5, None));
        let shown = store
            .audit_entries(&AuditFilter {
                target: Some("d-2026-10-000003".into()),
                limit: 10,
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].id, 4);

        store
            .conn
            .execute("UPDATE audit_log SET detail = 'y' WHERE id = 3", &[])
            .unwrap();
        let check = store.verify_audit().unwrap();
        assert_eq!(check.broken.as_ref().map(|b| b.0), Some(3), "{check:?}");
        assert!(check.broken.unwrap().1.contains("edited"));

        store
            .conn
            .execute("UPDATE audit_log SET detail = 'x' WHERE id = 3", &[])
            .unwrap();
        assert!(store.verify_audit().unwrap().broken.is_none());
        store
            .conn
            .execute("DELETE FROM audit_log WHERE id = 2", &[])
            .unwrap();
        let check = store.verify_audit().unwrap();
        assert_eq!(check.broken.as_ref().map(|b| b.0), Some(3), "{check:?}");
        assert!(check.broken.unwrap().1.contains("entry 2 is missing"));
    });
}

#[test]
fn review_lists_stay_in_scope_and_filter_sort_and_page() {
    on_both(|mut store| {
        let mut found = Vec::new();
        for (i, division) in ["410611", "410611", "410621", "410611"].iter().enumerate() {
            let mut d = finding(
                DiscrepancyKind::UnreportedBirth,
                &format!("Q{i}"),
                &format!("王{i}"),
            );
            d.division = Some((*division).into());
            d.score = i as f64;
            found.push(d);
        }
        store.save_discrepancies("2026-10", &found).unwrap();
        let mine = Scope("410611".into());
        let q = ListQuery {
            per_page: 2,
            page: 1,
            sort: "score".into(),
            dir: "desc".into(),
            ..ListQuery::default()
        };
        let (total, rows) = store.discrepancy_page(&mine, &q).unwrap();
        assert_eq!(total, 3);
        let anchors: Vec<&str> = rows.iter().map(|r| r.anchor.as_str()).collect();
        assert_eq!(anchors, ["Q3", "Q1"]);
        let (_, page2) = store
            .discrepancy_page(
                &mine,
                &ListQuery {
                    page: 2,
                    ..q.clone()
                },
            )
            .unwrap();
        assert_eq!(page2.len(), 1);
        let other = store
            .discrepancies("2026-10", None)
            .unwrap()
            .into_iter()
            .find(|d| d.discrepancy.division.as_deref() == Some("410621"))
            .unwrap();
        assert!(store.review_item(&mine, &other.id).unwrap().is_none());
        assert!(store
            .review_item(&Scope(String::new()), &other.id)
            .unwrap()
            .is_some());
        assert_eq!(
            store
                .discrepancy_ids(&mine, &ListQuery::default())
                .unwrap()
                .len(),
            3
        );

        let text = ListQuery {
            q: "王2".into(),
            ..ListQuery::default()
        };
        assert_eq!(store.discrepancy_page(&mine, &text).unwrap().0, 0);
        assert_eq!(
            store
                .discrepancy_page(&Scope(String::new()), &text)
                .unwrap()
                .0,
            1
        );

        let id = &rows[0].id;
        store.assign_discrepancy(id, Some("ana"), "boss").unwrap();
        store
            .review_discrepancy(id, "resolved", "ana", Some("registry fixed"))
            .unwrap();
        let open = ListQuery {
            status: "unresolved".into(),
            ..ListQuery::default()
        };
        assert_eq!(store.discrepancy_page(&mine, &open).unwrap().0, 2);
        let by_ana = ListQuery {
            assignee: "ana".into(),
            ..ListQuery::default()
        };
        assert_eq!(store.discrepancy_page(&mine, &by_ana).unwrap().1[0].id, *id);
        let board = store.dashboard(&mine, "2026-10").unwrap();
        assert_eq!(board.by_kind, vec![("unreported_birth".to_owned(), 2, 3)]);
        assert_eq!(board.by_division, vec![("410611".to_owned(), 2)]);
        assert_eq!(board.trend, vec![("2026-10".to_owned(), 2, 3)]);
        assert_eq!(board.oldest_open.len(), 2);
        let item = store.review_item(&mine, id).unwrap().unwrap();
        assert_eq!(item.assignee.as_deref(), Some("ana"));
        assert_eq!(item.stored.status, "resolved");
        let notes: Vec<_> = store
            .discrepancy_history(id)
            .unwrap()
            .iter()
            .map(|h| h.note.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            notes,
            [
                "found by reconciliation",
                "assigned to ana",
                "registry fixed"
            ]
        );
    });
}

#[test]
fn operators_sessions_and_tokens() {
    on_both(|mut store| {
        let id = store
            .add_user("ana", "hash", Role::Reviewer, "410611")
            .unwrap();
        assert!(store.add_user("ana", "hash", Role::Viewer, "").is_err());
        store
            .create_session("s1", id, "c1", "2999-01-01T00:00:00Z")
            .unwrap();
        store
            .create_session("s2", id, "c2", "2000-01-01T00:00:00Z")
            .unwrap();
        let (user, csrf) = store.session("s1").unwrap().unwrap();
        assert_eq!(
            (user.name.as_str(), user.role, csrf.as_str()),
            ("ana", Role::Reviewer, "c1")
        );
        assert!(store.session("s2").unwrap().is_none(), "expired");
        store.set_api_token("ana", "t1").unwrap();
        assert_eq!(store.user_by_token("t1").unwrap().unwrap().name, "ana");
        store.set_disabled("ana", true).unwrap();
        assert!(store.user_by_token("t1").unwrap().is_none());
        assert!(store.session("s1").unwrap().is_none());
        assert!(store.set_password("nobody", "h").is_err());
    });
}

#[test]
fn batched_adds_end_as_one_upsert_at_a_time_would() {
    on_both(|mut store| {
        // More than one batch, a key repeated within a batch and across batches, a stale
        // version after a newer one, and identical content twice.
        let mut w = store
            .begin_file("b.xml", "sha-b", 1, "health.births", "m")
            .unwrap();
        for i in 0..900 {
            let b = birth(
                &format!("Q{i:04}"),
                CertStatus::Issued,
                "甲",
                "2026-10-05T00:00:00Z",
            );
            w.add(b, &format!("element {i}")).unwrap();
        }
        let newer = birth("Q0001", CertStatus::Reissued, "乙", "2026-10-09T00:00:00Z");
        let older = birth("Q0001", CertStatus::Issued, "丙", "2026-10-06T00:00:00Z");
        w.add(newer.clone(), "element 900").unwrap();
        w.add(older, "element 901").unwrap();
        w.add(newer, "element 902").unwrap();
        let reissued = birth("Q0899", CertStatus::Reissued, "丁", "2026-10-10T00:00:00Z");
        w.add(reissued, "element 903").unwrap();
        let id = w.finish(904, None).unwrap();
        let landed = store.landed_file(id).unwrap().unwrap();
        // 900 inserted + 2 updates changed; the stale one and the repeat did not.
        assert_eq!((landed.upserted, landed.unchanged), (902, 2));
        let records = store.records(Feed::HealthBirths).unwrap();
        assert_eq!(records.len(), 900);
        let name = |key: &str| match store.record(Feed::HealthBirths, key).unwrap() {
            Some(Record::Birth(b)) => b.child_name,
            other => panic!("{other:?}"),
        };
        assert_eq!(name("Q0001"), "乙");
        assert_eq!(name("Q0899"), "丁");
        let q1 = records
            .iter()
            .find(|r| r.location.as_deref() == Some("element 900"));
        assert!(q1.is_some(), "the location of the version kept");
    });
}

/// A registry person of `division` with a valid number made from `n` (and a mother's).
fn person(n: u32, division: &str) -> Record {
    let id = |seq: u32, birth: &str| {
        let body = format!("{division}{birth}{:03}", seq % 1000);
        IdNumber::parse(&format!("{body}{}", check_char(&body)))
    };
    Record::Person(Person {
        person_key: format!("P{n:08}"),
        id_number: id(n, &format!("2000{:02}{:02}", 1 + n / 1000 % 12, 1 + n % 28)),
        name: "张伟".into(),
        sex: Sex::Male,
        birth_date: chrono::NaiveDate::from_ymd_opt(2000, 1, 1),
        hukou_division: division.parse().ok(),
        residence_division: None,
        marital_status: None,
        spouse_id_number: None,
        mother_id_number: id(n, "19750101"),
        father_id_number: None,
        status: PersonStatus::Resident,
        updated_at: None,
    })
}

/// Index names and definitions of `records`, as the database reports them; on PostgreSQL its
/// constraints too. SQLite keeps its foreign key in the table's definition.
fn record_indexes(store: &Store) -> Vec<(String, String)> {
    let sql = if store.is_postgres() {
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'records'
         UNION ALL SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'records'::regclass
         ORDER BY 1"
    } else {
        "SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records' ORDER BY name"
    };
    store
        .conn
        .query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
        .collect()
}

#[test]
fn a_bulk_first_load_leaves_the_indexes_the_migrations_make() {
    on_both(|mut store| {
        let before = record_indexes(&store);
        assert!(before.iter().any(|(n, _)| n == "records_by_mother_id"));
        // PostgreSQL checks no foreign key per stored record (migration 0011).
        assert!(!before.iter().any(|(n, _)| n == "records_file_id_fkey"));
        // Large enough for a bulk load: the indexes are dropped and built again at the end.
        let mut w = store
            .begin_file("registry.csv", "sha-bulk", 64 << 20, "registry", "m")
            .unwrap();
        assert!(w.is_bulk());
        for n in 0..50 {
            w.add(person(n, "410611"), &format!("row {n}")).unwrap();
        }
        w.finish(50, None).unwrap();
        assert_eq!(record_indexes(&store), before);
        // The feed has records now: the next large file takes the ordinary path.
        let w = store
            .begin_file("registry.csv", "sha-bulk-2", 64 << 20, "registry", "m")
            .unwrap();
        assert!(!w.is_bulk());
        w.finish(0, None).unwrap();
        let found = store
            .registry_by_ids(RegistryId::Own, &[person_id(7).as_str()])
            .unwrap();
        assert_eq!(found.len(), 1);
    });
}

fn person_id(n: u32) -> String {
    match person(n, "410611") {
        Record::Person(p) => p.id_number.unwrap().as_str().to_owned(),
        _ => unreachable!(),
    }
}

#[test]
fn counties_stream_in_pages_and_persons_are_found_by_number_anywhere() {
    on_both(|mut store| {
        let mut w = store
            .begin_file("registry.csv", "sha-r", 10, "registry", "m")
            .unwrap();
        // More than a page (5,000) in one county.
        for n in 0..5_200 {
            w.add(person(n, "410611"), "row").unwrap();
        }
        for n in 0..30 {
            w.add(person(10_000 + n, "410621"), "row").unwrap();
        }
        // The same number as P00000003, held in another county.
        let mut twin = person(3, "410611");
        if let Record::Person(p) = &mut twin {
            p.person_key = "P09999999".into();
            p.hukou_division = "410621".parse().ok();
        }
        w.add(twin, "row").unwrap();
        w.finish(5_231, None).unwrap();

        assert_eq!(store.divisions().unwrap(), ["410611", "410621"]);
        let mut keys = Vec::new();
        let n = store
            .for_each_in_division(Feed::Registry, "410611", None, |r| keys.push(r.key()))
            .unwrap();
        assert_eq!((n, keys.len()), (5_200, 5_200));
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "in key order, no repeats"
        );
        let window = Some((
            chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        ));
        assert_eq!(
            store
                .for_each_in_division(Feed::Registry, "410621", window, |_| {})
                .unwrap(),
            0,
            "nobody born in 2026"
        );
        let id = person_id(3);
        let held: Vec<String> = store
            .registry_by_ids(RegistryId::Own, &[id.as_str()])
            .unwrap()
            .iter()
            .map(Record::key)
            .collect();
        assert_eq!(held.len(), 2, "{held:?}");
        assert_eq!(store.ids_in_several_divisions().unwrap(), vec![id.clone()]);
        let Record::Person(p) = person(3, "410611") else {
            unreachable!()
        };
        let mother = p.mother_id_number.unwrap();
        let children = store
            .registry_by_ids(RegistryId::Mother, &[mother.as_str()])
            .unwrap();
        assert!(children.iter().any(|c| c.key() == "P00000003"));
    });
}

#[test]
fn records_stored_before_partitions_get_their_county_and_numbers_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // A database as the release before partitions left it, with one registry person.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .unwrap();
        for (i, (name, sql)) in MIGRATIONS[..PARTITIONS_MIGRATION - 1].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 'then')",
                rusqlite::params![i as i64 + 1, name],
            )
            .unwrap();
        }
        // More than one page of the back-fill, in two counties.
        let tx = conn.unchecked_transaction().unwrap();
        for n in 1..=5_003 {
            let p = person(n, if n % 2 == 0 { "410622" } else { "410621" });
            tx.execute(
                "INSERT INTO records (feed, record_key, content_hash, data, changed_at) VALUES ('registry', ?1, 'h', ?2, 'then')",
                rusqlite::params![p.key(), serde_json::to_string(&p).unwrap()],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
    assert_eq!(store.divisions().unwrap(), ["410621", "410622"]);
    let unfilled: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM records WHERE division = ''",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unfilled, 0, "every page filled");
    let Record::Person(p) = person(5_003, "410621") else {
        unreachable!()
    };
    let id = p.id_number.unwrap();
    let found = store
        .registry_by_ids(RegistryId::Own, &[id.as_str()])
        .unwrap();
    assert_eq!(found.len(), 1);
}

/// The one value `sql` returns.
fn scalar<T: sql::FromValue>(store: &Store, sql: &str) -> T {
    store.conn.query_one(sql, &[]).unwrap().get(0).unwrap()
}

fn record_count(store: &Store) -> i64 {
    scalar(store, "SELECT COUNT(*) FROM records")
}

/// The journal mode `store`'s connection is in.
fn journal_mode(store: &Store) -> String {
    scalar(store, "PRAGMA journal_mode")
}

#[test]
fn a_bulk_load_on_sqlite_leaves_the_log_while_alone_and_takes_it_up_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vitalhub.db");
    let mut store = Store::open(&path).unwrap();
    assert_eq!(journal_mode(&store), "wal");
    // A load that fails half-way: rolled back, and the log taken up again.
    let mut w = store
        .begin_file("registry.csv", "sha-failed", 64 << 20, "registry", "m")
        .unwrap();
    assert!(w.is_bulk());
    for n in 0..500 {
        w.add(person(n, "410611"), "row").unwrap();
    }
    drop(w);
    assert_eq!(journal_mode(&store), "wal");
    assert!(!std::fs::exists(dir.path().join("vitalhub.db-journal")).unwrap());
    assert_eq!(record_count(&store), 0);

    let mut w = store
        .begin_file("registry.csv", "sha-bulk", 64 << 20, "registry", "m")
        .unwrap();
    for n in 0..500 {
        w.add(person(n, "410611"), "row").unwrap();
    }
    // Written with a rollback journal, not the log.
    let journal = dir.path().join("vitalhub.db-journal");
    assert!(std::fs::exists(&journal).unwrap());
    assert!(!std::fs::exists(dir.path().join("vitalhub.db-wal")).unwrap());
    w.finish(500, None).unwrap();
    assert_eq!(journal_mode(&store), "wal");
    assert_eq!(record_count(&store), 500);
    drop(store);

    // Another connection open: the switch is refused at once and the load goes through the
    // log, as loads always did.
    let reader = Store::open(&path).unwrap();
    let mut store = Store::open(&path).unwrap();
    let started = std::time::Instant::now();
    let mut w = store
        .begin_file("other.csv", "sha-other", 64 << 20, "births", "m")
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(w.is_bulk());
    w.add(person(9_000, "410611"), "row").unwrap();
    assert!(!std::fs::exists(&journal).unwrap());
    w.finish(1, None).unwrap();
    assert_eq!(journal_mode(&store), "wal");
    assert_eq!(journal_mode(&reader), "wal");
}

#[test]
fn record_keys_compare_byte_by_byte_on_both_stores() {
    on_both(|store| {
        // SQLite compares text byte by byte unless a column says otherwise.
        if !store.is_postgres() {
            return;
        }
        let collations: Vec<(String, String)> = store
                .conn
                .query(
                    "SELECT column_name, COALESCE(collation_name, 'default') FROM information_schema.columns
                     WHERE table_name = 'records' AND column_name IN ('feed', 'record_key', 'division', 'id_number', 'mother_id')
                     ORDER BY column_name",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
                .collect();
        assert_eq!(collations.len(), 5);
        assert!(collations.iter().all(|(_, c)| c == "C"), "{collations:?}");
    });
}

#[test]
fn a_key_repeated_in_a_bulk_load_keeps_its_last_version() {
    on_both(|mut store| {
        let mut w = store
            .begin_file("registry.csv", "sha-repeat", 64 << 20, "registry", "m")
            .unwrap();
        assert!(w.is_bulk());
        // More than a COPY batch (4,000) apart, and once again in the same batch.
        for n in 0..4_500 {
            w.add(person(n, "410611"), "row").unwrap();
        }
        let renamed = |name: &str| match person(7, "410611") {
            Record::Person(mut p) => {
                p.name = name.into();
                Record::Person(p)
            }
            _ => unreachable!(),
        };
        w.add(renamed("李娜"), "row 4501").unwrap();
        w.add(renamed("王芳"), "row 4502").unwrap();
        w.add(person(8, "410611"), "row 4503").unwrap();
        let id = w.finish(4_503, None).unwrap();
        let landed = store.landed_file(id).unwrap().unwrap();
        assert_eq!((landed.upserted, landed.unchanged), (4_502, 1));
        assert_eq!(record_count(&store), 4_500);
        match &store.registry_by_keys(&["P00000007"]).unwrap()[..] {
            [Record::Person(p)] => assert_eq!(p.name, "王芳"),
            other => panic!("{other:?}"),
        }
    });
}

/// PostgreSQL: records a file found new go by COPY, which would fail on a key another writer
/// stored meanwhile; a second writer of the same feed waits for the first instead, and then
/// finds its records.
#[test]
fn a_second_writer_of_a_feed_waits_for_the_first_on_postgres() {
    let target = testing::fresh_postgres_database();
    let mut first = Store::connect(&target).unwrap();
    let mut second = Store::connect(&target).unwrap();
    let mut w = first
        .begin_file("a.csv", "sha-a", 10, "registry", "m")
        .unwrap();
    for n in 0..100 {
        w.add(person(n, "410611"), "row").unwrap();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let mut w = second
                .begin_file("b.csv", "sha-b", 10, "registry", "m")
                .unwrap();
            for n in 0..100 {
                w.add(person(n, "410611"), "row").unwrap();
            }
            let id = w.finish(100, None).unwrap();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            second.landed_file(id).unwrap().unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(!done.load(std::sync::atomic::Ordering::SeqCst));
        w.finish(100, None).unwrap();
        let landed = waiting.join().unwrap();
        assert_eq!((landed.upserted, landed.unchanged), (0, 100));
    });
    assert_eq!(record_count(&first), 100);
}

/// Writes `records` as one registry file of `size` bytes (64 MB or more into an empty feed is a
/// bulk load).
fn load(store: &mut Store, sha: &str, size: u64, records: Vec<Record>) {
    let mut w = store
        .begin_file("registry.csv", sha, size, "registry", "m")
        .unwrap();
    let n = records.len() as u64;
    for r in records {
        w.add(r, "row").unwrap();
    }
    w.finish(n, None).unwrap();
}

#[test]
fn registry_writes_log_the_persons_they_changed_per_county_and_bulk_loads_log_none() {
    on_both(|mut store| {
        load(
            &mut store,
            "bulk",
            64 << 20,
            (0..20).map(|n| person(n, "410611")).collect(),
        );
        let version = |store: &Store, d: &str| store.division_version(Feed::Registry, d).unwrap();
        assert_eq!(version(&store, "410611"), 1);
        assert_eq!(
            store.registry_changes("410611", 0, 1).unwrap(),
            None,
            "a bulk load lists nothing: the county is read whole"
        );

        // An edit, one unchanged person, and a move to another county.
        let renamed = match person(3, "410611") {
            Record::Person(mut p) => {
                p.name = "李娜".into();
                Record::Person(p)
            }
            _ => unreachable!(),
        };
        load(
            &mut store,
            "edits",
            10,
            vec![renamed, person(4, "410611"), person(5, "410621")],
        );
        assert_eq!(version(&store, "410611"), 2);
        assert_eq!(
            store.registry_changes("410611", 1, 2).unwrap(),
            Some(vec!["P00000003".to_owned(), "P00000005".to_owned()])
        );
        assert_eq!(
            store
                .registry_changes(
                    "410621",
                    version(&store, "410621") - 1,
                    version(&store, "410621")
                )
                .unwrap(),
            Some(vec!["P00000005".to_owned()])
        );
        // From before the bulk load the log is incomplete.
        assert_eq!(store.registry_changes("410611", 0, 2).unwrap(), None);

        load(&mut store, "more", 10, vec![person(6, "410621")]);
        assert_eq!(version(&store, "410611"), 3);
        assert_eq!(
            store.registry_changes("410611", 1, 3).unwrap(),
            Some(
                ["P00000003", "P00000005", "P00000006"]
                    .map(str::to_owned)
                    .to_vec()
            )
        );
        // What every reader of the log has taken in is forgotten.
        store
            .forget_registry_changes(&[("410611".to_owned(), 2)].into())
            .unwrap();
        assert_eq!(store.registry_changes("410611", 1, 3).unwrap(), None);
        assert_eq!(
            store.registry_changes("410611", 2, 3).unwrap(),
            Some(vec!["P00000006".to_owned()])
        );
        // Feed records are not logged.
        let mut w = store
            .begin_file("births.xml", "sha-births", 10, "health.births", "m")
            .unwrap();
        w.add(
            birth(
                "B1",
                CertStatus::Issued,
                "王小明",
                "2026-10-02T08:00:00+08:00",
            ),
            "row",
        )
        .unwrap();
        w.finish(1, None).unwrap();
        let logged: i64 = scalar(&store, "SELECT COUNT(*) FROM registry_changes");
        assert_eq!(
            logged, 3,
            "P00000006 in 410611, P00000005 and P00000006 in 410621"
        );
    });
}

#[test]
fn numbers_of_changed_persons_and_those_held_in_several_counties_are_looked_up_in_bulk() {
    on_both(|mut store| {
        // More than one look-up's worth, and one number held in two counties.
        let mut records: Vec<Record> = (0..1_200).map(|n| person(n, "410611")).collect();
        let mut twin = match person(5, "410621") {
            Record::Person(p) => p,
            _ => unreachable!(),
        };
        twin.person_key = "Q00000005".into();
        twin.id_number = IdNumber::parse(&person_id(5));
        records.push(Record::Person(twin));
        load(&mut store, "sha-ids", 10, records);

        let keys: Vec<String> = (0..1_200).map(|n| format!("P{n:08}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut ids = store.registry_ids_of_keys(&keys).unwrap();
        ids.sort();
        let mut expected: Vec<String> = (0..1_200).map(person_id).collect();
        expected.sort();
        assert_eq!(ids, expected);

        let asked: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(
            store.ids_in_several_divisions_among(&asked).unwrap(),
            [person_id(5)]
        );
        assert_eq!(store.ids_in_several_divisions().unwrap(), [person_id(5)]);
    });
}

#[test]
fn a_write_changing_too_many_persons_of_a_county_lists_none_of_them() {
    on_both(|mut store| {
        let many = files::MAX_LOGGED as u32 + 1;
        let mut records: Vec<Record> = (0..many).map(|n| person(n, "410611")).collect();
        records.push(person(many, "410621"));
        load(&mut store, "sha-many", 10, records);
        let version = |d: &str| store.division_version(Feed::Registry, d).unwrap();
        assert_eq!(
            store
                .registry_changes("410611", 0, version("410611"))
                .unwrap(),
            None,
            "the county is read whole instead"
        );
        assert_eq!(
            store
                .registry_changes("410621", 0, version("410621"))
                .unwrap(),
            Some(vec![format!("P{many:08}")])
        );
    });
}
