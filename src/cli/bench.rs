//! `vitalhub bench review`: how fast the review list answers over real HTTP with many
//! discrepancies in the store.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::{RngExt, SeedableRng};

use crate::config::Config;
use crate::model::{Discrepancy, DiscrepancyKind, Severity, SourceRef};
use crate::store::{Role, Store};
use crate::web;

const DIVISIONS: &[&str] = &["410602", "410603", "410611", "410621", "410622"];
const PERIODS: &[&str] = &["2026-08", "2026-09", "2026-10"];

/// Fills the store with `count` synthetic discrepancies over three periods, five districts and
/// every kind, then times list pages through the server.
pub fn review(config: &Config, mut store: Store, count: u64, requests: usize) -> Result<ExitCode> {
    let started = Instant::now();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let per_period = count / PERIODS.len() as u64;
    for period in PERIODS {
        let found: Vec<Discrepancy> = (0..per_period)
            .map(|i| {
                let kind = DiscrepancyKind::ALL[rng.random_range(0..DiscrepancyKind::ALL.len())];
                let anchor = format!("Q{period}{i:08}");
                Discrepancy {
                    kind,
                    period: (*period).to_owned(),
                    division: Some(DIVISIONS[rng.random_range(0..DIVISIONS.len())].to_owned()),
                    severity: [Severity::High, Severity::Medium, Severity::Low]
                        [rng.random_range(0..3)],
                    score: rng.random_range(0.0..1.0),
                    sources: vec![SourceRef::new("health.births", anchor.clone())],
                    registry_key: Some(format!("P{i:08}")),
                    fields: vec![],
                    explanation: format!("synthetic discrepancy {i} of {period} for 王{i}"),
                    anchor,
                    evidence: None,
                    possible_match: false,
                }
            })
            .collect();
        store.save_discrepancies(period, &found)?;
    }
    outln!(
        "stored {} discrepancies in {:.1} s",
        per_period * PERIODS.len() as u64,
        started.elapsed().as_secs_f64()
    );
    let password = web::new_token();
    let user_id = store.add_user(
        "bench",
        &web::hash_password(&password).map_err(anyhow::Error::msg)?,
        Role::Admin,
        "",
    )?;
    let token = web::new_token();
    store.create_session(
        &web::token_hash(&token),
        user_id,
        &web::new_token(),
        "2999-01-01T00:00:00Z",
    )?;

    let runtime = super::server_runtime()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let address = listener.local_addr()?;
    let state = Arc::new(web::AppState::new(store, config.clone()));
    runtime.spawn(web::serve(listener, state, std::future::pending()));

    let scenarios = [
        ("first visit (newest period, unresolved)", "/discrepancies"),
        (
            "one kind",
            "/discrepancies?period=2026-10&kind=unreported_birth&status=unresolved",
        ),
        (
            "one district, sorted by score",
            "/discrepancies?period=2026-10&division=410611&sort=score&dir=desc",
        ),
        ("all periods, page 500", "/discrepancies?page=500"),
        (
            "free text (a name)",
            "/discrepancies?period=2026-10&q=%E7%8E%8B12345",
        ),
        ("the whole region's dashboard", "/dashboard?period=2026-10"),
    ];
    outln!(
        "{:<42} {:>9} {:>9} {:>9}",
        "page",
        "median ms",
        "p95 ms",
        "max ms"
    );
    for (label, path) in scenarios {
        let mut times = Vec::with_capacity(requests);
        fetch(address, path, &token)?; // warm the caches once
        for _ in 0..requests {
            let t = Instant::now();
            let (status, bytes) = fetch(address, path, &token)?;
            anyhow::ensure!(status == 200, "{path} answered {status}");
            anyhow::ensure!(bytes > 1000, "{path} answered only {bytes} bytes");
            times.push(t.elapsed());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        outln!(
            "{:<42} {:>9.1} {:>9.1} {:>9.1}",
            label,
            ms(times[times.len() / 2]),
            ms(times[(times.len() * 95 / 100).min(times.len() - 1)]),
            ms(times[times.len() - 1])
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One GET over a fresh connection, read to the end: what a browser's page load waits for.
fn fetch(address: std::net::SocketAddr, path: &str, session: &str) -> Result<(u16, usize)> {
    let mut stream = TcpStream::connect(address).context("connecting to the bench server")?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nCookie: vh_session={session}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let status = std::str::from_utf8(answer.get(9..12).unwrap_or(b"000"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, answer.len()))
}
