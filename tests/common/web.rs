//! A month reconciled, three operators, and `vitalhub serve` on a free loopback port.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{ok, path, simulate, vitalhub};

pub const PASSWORD: &str = "correct horse battery";

pub struct Review {
    pub dir: tempfile::TempDir,
    pub base: String,
    server: Child,
    /// API tokens of ana (reviewer, 410611), vic (viewer, 410611) and boss (admin, all).
    pub ana: String,
    pub vic: String,
    pub boss: String,
}

impl Drop for Review {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

pub fn add_user(dir: &Path, name: &str, role: &str, scope: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitalhub"))
        .arg("--db")
        .arg(dir.join("vitalhub.db"))
        .args(["user", "add", name, "--role", role, "--scope", scope])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    ok(&child.wait_with_output().unwrap());
    ok(&vitalhub(dir, &["user", "token", name]))
        .trim()
        .to_owned()
}

impl Review {
    pub fn start(families: &str) -> Review {
        let dir = tempfile::tempdir().unwrap();
        let feeds = simulate(dir.path(), families, "5");
        ok(&vitalhub(dir.path(), &["ingest", path(&feeds)]));
        ok(&vitalhub(
            dir.path(),
            &["reconcile", "--period", "2026-10", "--as-of", "2026-11-20"],
        ));
        let ana = add_user(dir.path(), "ana", "reviewer", "410611");
        let vic = add_user(dir.path(), "vic", "viewer", "410611");
        let boss = add_user(dir.path(), "boss", "admin", "");
        let mut server = Command::new(env!("CARGO_BIN_EXE_vitalhub"))
            .arg("--db")
            .arg(dir.path().join("vitalhub.db"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Review {
            dir,
            base,
            server,
            ana,
            vic,
            boss,
        }
    }

    /// Stops the server (a test that edits the database behind its back).
    pub fn server_stop(&self) {
        let _ = Command::new("kill")
            .arg(self.server.id().to_string())
            .status();
    }

    /// GETs an API path with a token and parses the JSON answer (which must be a success).
    pub fn api(&self, token: &str, path: &str) -> serde_json::Value {
        json(self.get(token, path))
    }

    pub fn get(&self, token: &str, path: &str) -> reqwest::blocking::Response {
        client()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("vitalhub.db")
    }
}

/// An HTTP client that does not follow redirects (tests look at them).
pub fn client() -> reqwest::blocking::Client {
    // reqwest is built without a TLS provider of its own (the hub installs ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The JSON of an answer that must be a success.
pub fn json(resp: reqwest::blocking::Response) -> serde_json::Value {
    let (status, url) = (resp.status(), resp.url().to_string());
    let text = resp.text().unwrap();
    assert!(status.is_success(), "{url}: {status}: {text}");
    serde_json::from_str(&text).unwrap()
}
