//! Pulls from the agency simulator on loopback: faults survived, records exactly once, the rate
//! limit held, and a daemon killed mid-pull that ends where an undisturbed run does.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::agency::{get, Agency};
use common::{ok, path, simulate, vitalhub};
use vitalhub::model::Feed;
use vitalhub::store::Store;

/// A config with the two agency APIs at `url`, `source_extra` TOML for the births API and
/// `extra` TOML after both.
fn config(
    dir: &Path,
    url: &str,
    page_size: u32,
    source_extra: &str,
    extra: &str,
) -> std::path::PathBuf {
    std::fs::write(dir.join("token"), "t0ken-for-tests\n").unwrap();
    let text = format!(
        r#"[region]
code = "410600"
[database]
path = "vitalhub.db"
[[sources]]
name = "health"
api = "health-births-json"
base_url = "{url}"
token_file = "token"
page_size = {page_size}
backoff_initial_ms = 20
backoff_max_s = 0.3
max_retry_after_s = 1
request_timeout_s = 2
max_attempts = 12
{source_extra}
[[sources]]
name = "civil"
api = "civil-marriages-xml"
base_url = "{url}"
token_file = "token"
backoff_initial_ms = 20
backoff_max_s = 0.3
max_retry_after_s = 1
request_timeout_s = 2
max_attempts = 12
{extra}"#
    );
    let file = dir.join("vitalhub.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// The records of `feed` in a database, as (key, canonical JSON), sorted by key.
fn records(db: &Path, feed: Feed) -> Vec<(String, String)> {
    let store = Store::open(db).unwrap();
    store
        .records(feed)
        .unwrap()
        .into_iter()
        .map(|r| (r.record.key(), serde_json::to_string(&r.record).unwrap()))
        .collect()
}

/// What ingesting the simulated files directly gives: the undisturbed reference.
fn reference(dir: &Path, feeds: &Path) -> std::path::PathBuf {
    let only = dir.join("reference-feeds");
    std::fs::create_dir_all(&only).unwrap();
    for entry in std::fs::read_dir(feeds).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("births-") || name.starts_with("marriages-") {
            std::fs::copy(&p, only.join(&name)).unwrap();
        }
    }
    let db = dir.join("reference.db");
    ok(&Command::new(env!("CARGO_BIN_EXE_vitalhub"))
        .arg("--db")
        .arg(&db)
        .arg("ingest")
        .arg(&only)
        .output()
        .unwrap());
    db
}

#[test]
fn a_month_is_pulled_exactly_once_through_5xx_429_and_cut_off_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "6000", "11");
    let agency = Agency::start(
        &feeds,
        &[
            "--token-file",
            path(&token_file(dir.path())),
            "--server-errors",
            "0.2",
            "--throttles",
            "0.1",
            "--truncations",
            "0.1",
            "--seed",
            "7",
        ],
    );
    let config = config(
        dir.path(),
        &agency.url(),
        40,
        "requests_per_second = 100",
        "",
    );
    let db = dir.path().join("vitalhub.db");
    let out = ok(&vitalhub(
        dir.path(),
        &["--config", path(&config), "pull", "health"],
    ));
    let out_civil = ok(&vitalhub(
        dir.path(),
        &[
            "--config",
            path(&config),
            "pull",
            "civil",
            "--month",
            "2026-10",
        ],
    ));
    let reference = reference(dir.path(), &feeds);
    for feed in [Feed::HealthBirths, Feed::CivilMarriages] {
        let (got, want) = (records(&db, feed), records(&reference, feed));
        assert!(!want.is_empty());
        assert_eq!(got.len(), want.len(), "{feed:?}: {out}{out_civil}");
        assert_eq!(got, want, "{feed:?}: the same records, field for field");
    }
    // Every served item was read once: the pages did not overlap and none was stored twice.
    let items = records(&reference, Feed::HealthBirths).len();
    let read: usize = out
        .split(" records read")
        .next()
        .and_then(|s| s.rsplit(", ").next())
        .and_then(|n| n.parse().ok())
        .expect(&out);
    assert!(read >= items, "{out}");
    let seen = agency.requests();
    let count = |status: u16| seen.iter().filter(|s| s.2 == status).count();
    assert!(
        count(503) > 0 && count(429) > 0,
        "faults were injected: {seen:?}"
    );
    let jobs = ok(&vitalhub(dir.path(), &["jobs"]));
    assert!(
        jobs.contains("pull:health") && jobs.contains(" ok "),
        "{jobs}"
    );
    // A pull with nothing new since the watermark stores nothing again.
    let again = ok(&vitalhub(
        dir.path(),
        &["--config", path(&config), "pull", "health"],
    ));
    assert!(again.contains("(0 new or changed"), "{again}");
}

fn token_file(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("agency-token");
    std::fs::write(&file, "t0ken-for-tests").unwrap();
    file
}

#[test]
fn a_wrong_token_is_refused_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "300", "2");
    let other = dir.path().join("other-token");
    std::fs::write(&other, "someone-else").unwrap();
    let agency = Agency::start(&feeds, &["--token-file", path(&other)]);
    let config = config(dir.path(), &agency.url(), 40, "", "");
    let out = vitalhub(dir.path(), &["--config", path(&config), "pull", "health"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("answered 401"), "{err}");
    assert!(!err.contains("t0ken"), "the token is never printed: {err}");
    assert_eq!(agency.requests().len(), 1);
}

#[test]
fn the_rate_limit_holds_at_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "3000", "5");
    let agency = Agency::start(&feeds, &["--token-file", path(&token_file(dir.path()))]);
    let config = config(dir.path(), &agency.url(), 10, "requests_per_second = 4", "");
    ok(&vitalhub(
        dir.path(),
        &["--config", path(&config), "pull", "health"],
    ));
    let times: Vec<u64> = agency
        .requests()
        .iter()
        .filter(|r| r.1.contains("birth"))
        .map(|r| r.0)
        .collect();
    assert!(times.len() >= 10, "{times:?}");
    // No one-second window holds more than the 4 allowed (one more for arrival jitter).
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < t + 1000).count();
        assert!(
            in_window <= 5,
            "{in_window} requests within 1 s from {t} ms: {times:?}"
        );
    }
    let span = (times[times.len() - 1] - times[0]) as f64 / 1000.0;
    let rate = (times.len() - 1) as f64 / span;
    // A late first request (connection set-up under load) shortens the span; allow for it.
    assert!(rate <= 4.4, "{rate:.2} requests/s over {span:.1} s");
    println!("{} requests in {span:.2} s: {rate:.2}/s", times.len());
}

#[test]
fn a_daemon_killed_mid_pull_resumes_and_ends_with_the_records_of_an_undisturbed_run() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "6000", "13");
    let agency = Agency::start(
        &feeds,
        &[
            "--token-file",
            path(&token_file(dir.path())),
            "--latency-ms",
            "60",
            "--server-errors",
            "0.1",
        ],
    );
    let jobs = r#"
[daemon]
listen = "127.0.0.1:0"
[[jobs]]
name = "pull-health"
kind = "pull"
source = "health"
schedule = "*/2 * * * * *"
"#;
    let config = config(dir.path(), &agency.url(), 10, "", jobs);
    let db = dir.path().join("vitalhub.db");
    let landing = dir.path().join("landing").join("health");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_vitalhub"))
            .args(["--config", path(&config), "daemon"])
            .env("VITALHUB_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    let pages = || std::fs::read_dir(&landing).map(|d| d.count()).unwrap_or(0);

    let mut first = start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pages() < 4 {
        assert!(Instant::now() < deadline, "the daemon never pulled");
        assert!(first.try_wait().unwrap().is_none(), "the daemon ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let state = Store::open(&db).unwrap().pull_state("health").unwrap();
    assert!(state.cursor.is_some(), "killed mid-pull: {state:?}");

    let mut second = start();
    let mut address = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(second.stdout.take().unwrap()),
        &mut address,
    )
    .unwrap();
    let address = address.split("http://").nth(1).unwrap().trim().to_owned();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let done = Store::open(&db)
            .unwrap()
            .jobs(Some("pull-health"), 50)
            .unwrap()
            .iter()
            .any(|j| j.trigger == "resume" && j.status == "ok");
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the resumed pull never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    let health = get(&address, "/healthz");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    let metrics = get(&address, "/metrics");
    assert!(
        metrics.contains("vitalhub_records_pulled_total{source=\"health\"}"),
        "{metrics}"
    );
    // SIGTERM: the daemon finishes or checkpoints its job and exits cleanly.
    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    let status = second.wait().unwrap();
    assert!(status.success(), "{status:?}");

    let reference = reference(dir.path(), &feeds);
    assert_eq!(
        records(&db, Feed::HealthBirths),
        records(&reference, Feed::HealthBirths)
    );
    let history = ok(&vitalhub(dir.path(), &["jobs", "--name", "pull-health"]));
    assert!(history.contains("interrupted"), "{history}");
    assert!(history.contains("resumed from a saved cursor"), "{history}");
}

#[test]
fn hanging_requests_time_out_and_are_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    let feeds = simulate(dir.path(), "1500", "17");
    let agency = Agency::start(
        &feeds,
        &[
            "--token-file",
            path(&token_file(dir.path())),
            "--hangs",
            "0.3",
            "--seed",
            "3",
        ],
    );
    let config = config(dir.path(), &agency.url(), 20, "", "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("request_timeout_s = 2", "request_timeout_s = 0.5");
    std::fs::write(&config, text).unwrap();
    let out = ok(&vitalhub(
        dir.path(),
        &["--config", path(&config), "pull", "health"],
    ));
    let hung = agency.requests().iter().filter(|r| r.2 == 408).count();
    assert!(hung > 0, "hangs were injected");
    let reference = reference(dir.path(), &feeds);
    assert_eq!(
        records(&dir.path().join("vitalhub.db"), Feed::HealthBirths),
        records(&reference, Feed::HealthBirths),
        "{out}"
    );
}
