//! Signed partner batches through the file fallback: verified, rejected whole, applied once.

mod common;

use std::path::Path;

use common::{ok, path, region_config, simulate, vitalhub};

/// A config that accepts batches from the simulated partner region 320411 only.
fn config_with_partner(dir: &Path) -> std::path::PathBuf {
    let base = std::fs::read_to_string("config/vitalhub.toml").unwrap();
    let config = dir.join("vitalhub.toml");
    let text = format!("{base}\n[exchange]\n[[exchange.partners]]\nregion = \"320411\"\npublic_key = \"feeds/partner-320411.pub\"\n");
    std::fs::write(&config, text).unwrap();
    config
}

fn migrant_line(out: &str) -> String {
    out.lines()
        .skip_while(|l| !l.starts_with("migrants-202610.json "))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_signed_batch_is_verified_and_reconciled() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "1500", "4");
    let config = config_with_partner(dir.path());
    let out = ok(&vitalhub(
        dir.path(),
        &["--config", path(&config), "ingest", path(&feeds)],
    ));
    assert!(
        migrant_line(&out).contains("verified: signed by partner region 320411"),
        "{out}"
    );
    ok(&vitalhub(
        dir.path(),
        &[
            "--config",
            path(&config),
            "reconcile",
            "--period",
            "2026-10",
            "--as-of",
            "2026-11-20",
        ],
    ));
    let report = dir.path().join("r.jsonl");
    ok(&vitalhub(
        dir.path(),
        &["report", "--period", "2026-10", "-o", path(&report)],
    ));
    let table = ok(&vitalhub(
        dir.path(),
        &[
            "evaluate",
            "--truth",
            path(&feeds.join("truth.jsonl")),
            "--report",
            path(&report),
        ],
    ));
    let migrants = table
        .lines()
        .find(|l| l.starts_with("migrant_inflow_not_recorded"))
        .unwrap();
    assert!(migrants.ends_with("1.000   1.000"), "{table}");
}

#[test]
fn a_changed_byte_or_a_stranger_signature_rejects_the_batch_whole_and_keeps_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "1500", "4");
    let config = config_with_partner(dir.path());
    let batch = feeds.join("migrants-202610.json");
    let original = std::fs::read(&batch).unwrap();

    // One byte changed after signing.
    let mut changed = original.clone();
    let at = changed.windows(7).position(|w| w == b"inflow\"").unwrap();
    changed[at] = b'I';
    std::fs::write(&batch, &changed).unwrap();
    let out = vitalhub(
        dir.path(),
        &["--config", path(&config), "ingest", path(&feeds)],
    );
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = migrant_line(&stdout);
    assert!(line.contains("signature does not verify"), "{stdout}");
    assert_eq!(
        line.split_whitespace().nth(2),
        Some("0"),
        "no record of a rejected batch is read: {line}"
    );
    let list = ok(&vitalhub(dir.path(), &["quarantine", "list"]));
    assert!(
        list.contains("migrants-202610.json") && list.contains("signature does not verify"),
        "{list}"
    );

    // The original bytes signed by a key that is not the partner's.
    std::fs::write(&batch, &original).unwrap();
    let keys = dir.path().join("keys");
    ok(&vitalhub(
        dir.path(),
        &[
            "keys",
            "generate",
            "--out",
            path(&keys),
            "--region",
            "320411",
        ],
    ));
    let stranger = vitalhub::exchange::load_signing_key(&keys.join("320411.key")).unwrap();
    std::fs::write(
        feeds.join("migrants-202610.json.sig"),
        vitalhub::exchange::sign(&stranger, &original),
    )
    .unwrap();
    let out = vitalhub(
        dir.path(),
        &["--config", path(&config), "ingest", path(&feeds)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        migrant_line(&String::from_utf8_lossy(&out.stdout)).contains("signature does not verify")
    );

    // With no partner configured for the sender, the batch is rejected too.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("\"320411\"", "\"110105\""),
    )
    .unwrap();
    let out = vitalhub(
        dir.path(),
        &["--config", path(&config), "ingest", path(&feeds)],
    );
    assert!(migrant_line(&String::from_utf8_lossy(&out.stdout))
        .contains("no partner key configured for sending region '320411'"));
}

#[test]
fn a_replayed_batch_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "800", "4");
    let config = config_with_partner(dir.path());
    ok(&vitalhub(
        dir.path(),
        &["--config", path(&config), "ingest", path(&feeds)],
    ));
    let replay = dir.path().join("replay");
    std::fs::create_dir(&replay).unwrap();
    for f in ["migrants-202610.json", "migrants-202610.json.sig"] {
        std::fs::copy(
            feeds.join(f),
            replay.join(f.replace("202610", "202610-resent")),
        )
        .unwrap();
    }
    std::fs::copy(
        feeds.join("partner-320411.pub"),
        replay.join("partner-320411.pub"),
    )
    .unwrap();
    let out = ok(&vitalhub(
        dir.path(),
        &["--config", path(&config), "ingest", path(&replay)],
    ));
    assert!(
        out.contains("(already ingested)"),
        "the same batch under another name changes nothing: {out}"
    );
}

#[test]
fn two_regions_exchange_a_signed_batch_through_files_and_nothing_is_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (hebi, changzhou) = (dir.path().join("hebi"), dir.path().join("changzhou"));
    std::fs::create_dir_all(&hebi).unwrap();
    std::fs::create_dir_all(&changzhou).unwrap();
    let keys = dir.path().join("keys");
    ok(&vitalhub(
        dir.path(),
        &[
            "keys",
            "generate",
            "--out",
            path(&keys),
            "--region",
            "410600",
        ],
    ));
    ok(&vitalhub(
        dir.path(),
        &[
            "keys",
            "generate",
            "--out",
            path(&keys),
            "--region",
            "320411",
        ],
    ));
    let hebi_config = region_config(&hebi, "410600", &keys, "320411", "");
    let cz_config = region_config(&changzhou, "320411", &keys, "410600", "");

    // Hebi's registry holds people registered in 320411 who live in Hebi.
    let feeds = simulate(&hebi, "3000", "9");
    for f in ["migrants-202610.json", "migrants-202610.json.sig"] {
        std::fs::remove_file(feeds.join(f)).unwrap();
    }
    ok(&vitalhub(
        &hebi,
        &["--config", path(&hebi_config), "ingest", path(&feeds)],
    ));
    // Hebi's export of what is new for Changzhou into `folder`.
    let export = |folder: &Path| {
        ok(&vitalhub(
            &hebi,
            &[
                "--config",
                path(&hebi_config),
                "exchange",
                "export",
                "--to",
                "320411",
                "--out",
                path(folder),
            ],
        ))
    };
    let outbox = dir.path().join("shared-folder");
    let out = export(&outbox);
    let sent: usize = out
        .split('(')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect(&out);
    assert!(sent > 0, "{out}");

    // Changzhou verifies the batch against Hebi's key and applies every record.
    let got = ok(&vitalhub(
        &changzhou,
        &["--config", path(&cz_config), "ingest", path(&outbox)],
    ));
    assert!(
        got.contains("verified: signed by partner region 410600"),
        "{got}"
    );
    let line = got
        .lines()
        .find(|l| l.starts_with("migrants-410600-to-320411"))
        .expect(&got);
    assert_eq!(
        line.split_whitespace().nth(2),
        Some(sent.to_string().as_str()),
        "{got}"
    );

    // Nothing changed since: nothing is sent again.
    let again = export(&outbox);
    assert!(again.contains("nothing new for 320411"), "{again}");

    // Two of them leave Hebi: one goes home to Changzhou, one moves out elsewhere. The next
    // batch reports exactly those two, as a return and an outflow.
    let registry = std::fs::read_to_string(feeds.join("registry.csv")).unwrap();
    let mut lines = registry.lines();
    let header = lines.next().unwrap().to_owned();
    let column = |name: &str| header.split(',').position(|c| c.trim() == name).unwrap();
    let (hukou, residence, status) = (
        column("hukou_division"),
        column("residence_division"),
        column("status"),
    );
    let mut movers: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|f| {
            f[hukou].starts_with("3204")
                && f[residence].starts_with("4106")
                && f[status] == "resident"
        })
        .take(2)
        .collect();
    assert_eq!(
        movers.len(),
        2,
        "the simulated registry holds migrants from 320411"
    );
    movers[0][residence] = "320411".into();
    movers[1][status] = "moved_out".into();
    let update = hebi.join("update");
    std::fs::create_dir_all(&update).unwrap();
    // The one going home takes a daughter born this year, not yet issued an identity number.
    let mut daughter = vec![String::new(); header.split(',').count()];
    daughter[column("person_key")] = "P-DAUGHTER".into();
    daughter[column("name")] = "张一诺".into();
    daughter[column("sex")] = "2".into();
    daughter[column("birth_date")] = "2026-08-30".into();
    daughter[hukou] = movers[0][hukou].clone();
    daughter[residence] = "320411".into();
    daughter[column("mother_id_number")] = movers[0][column("id_number")].clone();
    daughter[status] = "resident".into();
    movers.push(daughter);
    let rows: Vec<String> = movers.iter().map(|f| f.join(",")).collect();
    std::fs::write(
        update.join("registry.csv"),
        format!("{header}\n{}\n", rows.join("\n")),
    )
    .unwrap();
    ok(&vitalhub(
        &hebi,
        &["--config", path(&hebi_config), "ingest", path(&update)],
    ));
    let moved_box = dir.path().join("shared-folder-2");
    export(&moved_box);
    let batch = std::fs::read_dir(&moved_box)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&batch).unwrap()).unwrap();
    let events: Vec<(String, String)> = doc["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id_number"].as_str().unwrap().to_owned(),
                r["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let id = column("id_number");
    assert_eq!(
        doc["records"][0]["children"],
        serde_json::json!([{"name": "张一诺", "sex": "2", "birth_date": "2026-08-30", "id_number": null}])
    );
    assert_eq!(doc["records"][1]["children"], serde_json::json!([]));
    assert_eq!(
        events,
        vec![
            (movers[0][id].clone(), "return".to_owned()),
            (movers[1][id].clone(), "outflow".to_owned())
        ]
    );
    let got = ok(&vitalhub(
        &changzhou,
        &["--config", path(&cz_config), "ingest", path(&moved_box)],
    ));
    assert!(
        got.contains("verified: signed by partner region 410600"),
        "{got}"
    );
}
