//! Partitioned reconciliation: county by county in one process, and shared among `vitalhub
//! worker` processes through a RabbitMQ work queue on one PostgreSQL database, with a worker
//! killed while it holds a job. Needs PostgreSQL and Debian's rabbitmq-server (`.ci/run`).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::rabbit::Broker;
use common::{ok, path, postgres_database, report_json, simulate, sqlite_in, vitalhub_on};

const MONTH: [&str; 4] = ["--period", "2026-10", "--as-of", "2026-11-20"];

/// (kind, anchor, registry person, score) of every discrepancy in a JSON-lines report.
fn findings(report: &str) -> Vec<(String, String, String, String)> {
    let mut rows: Vec<_> = report
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["kind"].to_string(),
                v["sources"].to_string(),
                v["registry_key"].to_string(),
                v["score"].to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn county_by_county_finds_what_the_whole_region_run_finds() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = dir.path().join("sim");
    ok(&common::vitalhub(
        dir.path(),
        &[
            "simulate",
            "--out",
            path(&feeds),
            "--families",
            "2500",
            "--seed",
            "7",
            "--corrupt",
        ],
    ));
    let (whole, one_job, three_jobs) = (
        sqlite_in(&dir.path().join("whole")),
        sqlite_in(&dir.path().join("one")),
        sqlite_in(&dir.path().join("three")),
    );
    for db in [&whole, &one_job, &three_jobs] {
        std::fs::create_dir_all(std::path::Path::new(db).parent().unwrap()).unwrap();
        ok(&vitalhub_on(db, &["ingest", path(&feeds)]));
    }
    ok(&vitalhub_on(&whole, &[&["reconcile"][..], &MONTH].concat()));
    let a = findings(&report_json(&whole, &dir.path().join("whole.json")));
    assert!(a.len() > 100, "a month has discrepancies: {}", a.len());
    // County after county, and three county jobs at once on their own connections.
    for (db, jobs) in [(&one_job, "1"), (&three_jobs, "3")] {
        let out = ok(&vitalhub_on(
            db,
            &[&["reconcile", "--partitioned", "--jobs", jobs][..], &MONTH].concat(),
        ));
        assert!(out.contains("partitions"), "{out}");
        let b = findings(&report_json(db, &dir.path().join(format!("{jobs}.json"))));
        assert_eq!(
            b, a,
            "the same discrepancies county by county ({jobs} at once)"
        );
    }
}

/// A worker process whose progress lines arrive on a channel.
fn worker(db: &str, amqp: &str, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitalhub"))
        .args(["--db", db, "worker", "--amqp", amqp])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("vitalhub worker starts");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[test]
fn two_workers_one_killed_mid_job_give_the_single_process_result() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "1500", "5");
    let (single, queued) = (postgres_database(), postgres_database());
    for db in [&single, &queued] {
        ok(&vitalhub_on(db, &["ingest", path(&feeds)]));
    }
    ok(&vitalhub_on(
        &single,
        &[&["reconcile", "--partitioned"][..], &MONTH].concat(),
    ));

    let broker = Broker::start();
    let amqp = broker.url();
    // The first worker holds every job it takes for a minute: it is killed holding one.
    let (mut doomed, doomed_lines) = worker(&queued, &amqp, &["--hold-ms", "60000"]);
    let coordinator = Command::new(env!("CARGO_BIN_EXE_vitalhub"))
        .args(["--db", &queued, "reconcile", "--workers", "--amqp", &amqp])
        .args(MONTH)
        .args(["--wait-s", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the coordinator starts");
    let taken = doomed_lines
        .recv_timeout(Duration::from_secs(60))
        .expect("the first worker takes a job");
    assert!(taken.starts_with("took partition"), "{taken}");
    doomed.kill().unwrap();
    doomed.wait().unwrap();

    let (mut survivor, lines) = worker(&queued, &amqp, &["--idle-exit-s", "3"]);
    let coordinated = coordinator.wait_with_output().unwrap();
    assert!(
        coordinated.status.success(),
        "coordinator: {}",
        String::from_utf8_lossy(&coordinated.stderr)
    );
    survivor.wait().unwrap();
    let seen: Vec<String> = lines.try_iter().collect();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("took partition") && l.ends_with("(redelivered)")),
        "the killed worker's job came back to the other: {seen:?}"
    );
    let finished = seen.iter().filter(|l| l.starts_with("finished")).count();
    let summary = String::from_utf8_lossy(&coordinated.stdout).into_owned();
    assert!(
        summary.contains(&format!("({finished} partitions)")),
        "the survivor did every county's job: {seen:?}\n{summary}"
    );

    let a = report_json(&single, &dir.path().join("single.json"));
    let b = report_json(&queued, &dir.path().join("queued.json"));
    assert!(a.lines().count() > 50, "a month has discrepancies: {a}");
    assert_eq!(
        b, a,
        "the same discrepancies, ids and statuses as one process"
    );
}
