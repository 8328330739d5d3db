#![allow(dead_code)]

pub mod agency;
pub mod rabbit;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the real `vitalhub` binary with `--db` pointing into `dir`.
pub fn vitalhub(dir: &Path, args: &[&str]) -> Output {
    vitalhub_on(&sqlite_in(dir), args)
}

/// Runs the real `vitalhub` binary on a database: an SQLite path or a `postgres://` URL.
pub fn vitalhub_on(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vitalhub"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("vitalhub runs")
}

/// The embedded default's database file in `dir`.
pub fn sqlite_in(dir: &Path) -> String {
    path(&dir.join("vitalhub.db")).to_owned()
}

/// A new, empty PostgreSQL database on the test server (started if none is given).
pub fn postgres_database() -> String {
    match vitalhub::store::testing::fresh_postgres_database() {
        vitalhub::store::Target::Postgres(url) => url,
        other => panic!("not a PostgreSQL database: {other}"),
    }
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "vitalhub failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes the JSON-lines report of period 2026-10 to `out` and returns it.
pub fn report_json(db: &str, out: &Path) -> String {
    ok(&vitalhub_on(
        db,
        &[
            "report",
            "--period",
            "2026-10",
            "--format",
            "json",
            "--output",
            path(out),
        ],
    ));
    std::fs::read_to_string(out).expect("the report was written")
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Simulates one month (2026-10) of `families` families with `seed` into `dir/feeds`.
pub fn simulate(dir: &Path, families: &str, seed: &str) -> PathBuf {
    let feeds = dir.join("feeds");
    ok(&vitalhub(
        dir,
        &[
            "simulate",
            "--out",
            path(&feeds),
            "--families",
            families,
            "--seed",
            seed,
        ],
    ));
    feeds
}

/// A region's config in `dir`: the default routes, its own code and key (`KEYS/CODE.key`), one
/// trusted partner (`KEYS/PARTNER.pub`), and `extra` TOML appended.
pub fn region_config(dir: &Path, code: &str, keys: &Path, partner: &str, extra: &str) -> PathBuf {
    let base = std::fs::read_to_string("config/vitalhub.toml")
        .unwrap()
        .replace("code = \"410600\"", &format!("code = \"{code}\""));
    let config = dir.join(format!("{code}.toml"));
    let text = format!(
        "{base}\n[exchange]\nprivate_key = \"{}\"\n[[exchange.partners]]\nregion = \"{partner}\"\npublic_key = \"{}\"\n{extra}",
        keys.join(format!("{code}.key")).display(),
        keys.join(format!("{partner}.pub")).display()
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&config, text).unwrap();
    config
}
