//! PostgreSQL for tests: each test gets a database of its own on a real server.
//!
//! The server is the one named by `VITALHUB_TEST_POSTGRES` (a URL without a database, such as
//! `postgres://postgres@127.0.0.1:55432`; `.ci/run` starts one and sets it), or else a private
//! cluster this process starts once from Debian's `postgresql` binaries and stops when it ends.
//! A test that needs PostgreSQL fails when neither is possible; it never skips.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use super::{Store, Target};

/// The server's base URL (no database name).
pub fn postgres_server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("VITALHUB_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
        _ => start_private_cluster(),
    })
}

/// A new, empty database on the test server.
pub fn fresh_postgres_database() -> Target {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let server = postgres_server();
    let name = format!(
        "vh_{}_{}_{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::SeqCst),
        chrono::Utc::now().timestamp_micros() % 1_000_000
    );
    let admin = super::sql::Postgres::connect(&format!("{server}/postgres"))
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {server}: {e}"));
    admin
        .batch(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    Target::Postgres(format!("{server}/{name}"))
}

/// An opened store on a new database.
pub fn fresh_postgres_store() -> Store {
    Store::connect(&fresh_postgres_database()).expect("the test database opens and migrates")
}

// The cluster's watchdog must outlive this process, so it is never waited for.
#[allow(clippy::zombie_processes)]
fn start_private_cluster() -> String {
    let bin = newest_postgres_bin().unwrap_or_else(|| {
        panic!("PostgreSQL server binaries are missing (/usr/lib/postgresql/*/bin): install Debian's postgresql (.ci/run does) or set VITALHUB_TEST_POSTGRES")
    });
    let dir = std::env::temp_dir().join(format!("vitalhub-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp folder for the test cluster");
    let root = is_root();
    if root {
        run(Command::new("chown").arg("postgres:postgres").arg(&dir));
    }
    let as_server = |program: PathBuf| -> Command {
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    let data = dir.join("data");
    run(as_server(bin.join("initdb")).arg("-D").arg(&data).args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
    ]));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
        dir.display()
    );
    run(as_server(bin.join("pg_ctl"))
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(["-w", "-t", "60", "-o", &options, "start"]));
    // The cluster outlives no test process: a watchdog stops it and removes its folder once
    // this process is gone, however it ends.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {runuser}{pg_ctl} -D {data} -m immediate -w stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        runuser = if root { "runuser -u postgres -- " } else { "" },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &stop])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the cluster's watchdog starts");
    format!("postgres://postgres@127.0.0.1:{port}")
}

fn newest_postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
