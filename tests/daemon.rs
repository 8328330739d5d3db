//! The daemon on its own: drop folders, a reconcile that follows them, one instance per database.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, path, postgres_database, simulate, sqlite_in, vitalhub_on};

#[test]
fn dropped_files_are_ingested_then_reconciled_and_reported_and_a_second_daemon_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop_folder_month(dir.path(), &sqlite_in(dir.path()));
}

#[test]
fn the_daemon_runs_the_same_on_postgresql_and_holds_its_lock_there() {
    let dir = tempfile::tempdir().unwrap();
    drop_folder_month(dir.path(), &postgres_database());
}

fn drop_folder_month(dir: &std::path::Path, db: &str) {
    let feeds = simulate(dir, "1500", "21");
    let config = dir.join("vitalhub.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[daemon]\nlisten = \"127.0.0.1:0\"\npoll_s = 1\n\n[[jobs]]\nname = \"drop\"\nkind = \"watch\"\nfolder = \"drop\"\n\n[[jobs]]\nname = \"month-end\"\nkind = \"reconcile\"\nafter = [\"drop\"]\nperiod = \"2026-10\"\nreports = \"reports\"\nformats = [\"json\", \"html\"]\n",
            std::fs::read_to_string("config/vitalhub.toml").unwrap()
        ),
    )
    .unwrap();
    let drop = dir.join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_vitalhub"))
            .args(["--config", path(&config), "--db", db, "daemon"])
            .env("VITALHUB_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut daemon = start();
    std::thread::sleep(Duration::from_millis(300));
    let second = start().wait_with_output().unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another vitalhub daemon is running"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // Staged elsewhere and moved in at once, finished writing long ago: one poll takes them all.
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(60);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&feeds).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name != "truth.jsonl" {
            std::fs::copy(&p, staging.join(&name)).unwrap();
            std::fs::File::options()
                .write(true)
                .open(staging.join(&name))
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
            names.push(name);
        }
    }
    for name in &names {
        std::fs::rename(staging.join(name), drop.join(name)).unwrap();
    }
    let report = dir.join("reports").join("discrepancies-202610.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !report.exists() {
        assert!(Instant::now() < deadline, "no report was written");
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(daemon.wait().unwrap().success());

    // Every routed file was moved into processed/; the partner key no route claims stays.
    let mut left: Vec<String> = std::fs::read_dir(&drop)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["partner-320411.pub", "processed"]);
    let history = ok(&vitalhub_on(db, &["jobs"]));
    assert!(
        history.contains("month-end") && history.contains("after"),
        "{history}"
    );
    assert!(!history.contains("failed"), "{history}");
    let table = ok(&vitalhub_on(
        db,
        &[
            "evaluate",
            "--truth",
            path(&feeds.join("truth.jsonl")),
            "--report",
            path(&report),
        ],
    ));
    // Every true discrepancy is found. The daemon reconciles as of today, later than the
    // simulation's as-of day, so more children are past their grace period: only that kind
    // may hold more than the truth file expects.
    assert!(table.lines().last().unwrap().ends_with("1.000"), "{table}");
    for line in table.lines().skip(1) {
        if !line.starts_with("unregistered_child") && !line.starts_with("overall") {
            assert!(line.ends_with("1.000   1.000"), "{table}");
        }
    }
    assert!(dir.join("reports/discrepancies-202610.html").exists());
}
