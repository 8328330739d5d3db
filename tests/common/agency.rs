//! The agency simulator (`vitalhub simulate serve`) on loopback, and plain HTTP GETs to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Agency {
    child: Child,
    pub address: String,
}

impl Agency {
    /// Serves `data` with the given `simulate serve` fault flags.
    pub fn start(data: &Path, flags: &[&str]) -> Agency {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vitalhub"))
            .args(["simulate", "serve", "--port", "0", "--data"])
            .arg(data)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the simulator starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the simulator prints its address");
        let address = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Agency { child, address }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// (milliseconds since start, path, status) of every request the simulator saw.
    pub fn requests(&self) -> Vec<(u64, String, u16)> {
        let body = get(&self.address, "/_sim/requests");
        let seen: Vec<serde_json::Value> = serde_json::from_str(&body).expect("request log");
        seen.iter()
            .map(|s| {
                (
                    s["at_ms"].as_u64().unwrap(),
                    s["path"].as_str().unwrap().to_owned(),
                    s["status"].as_u64().unwrap() as u16,
                )
            })
            .collect()
    }
}

impl Drop for Agency {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET over a plain TCP connection; returns the body.
pub fn get(address: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("connects");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    body.to_owned()
}
