//! The review page in real headless Chromium: Debian's `chromium` driven by playwright-core
//! (tests/browser/review.mjs; `.ci/run` installs both). Fails, never skips, when they are
//! missing. Saves the screenshots the README shows under docs/screenshots/.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::web::{Review, PASSWORD};

#[test]
fn a_clerk_logs_in_filters_resolves_exports_and_logs_out_in_chromium() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix tests/browser` (.ci/run does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (.ci/run does)"
    );

    let r = Review::start("2500");
    // A birth conflict shows the registry and the certificate side by side (the screenshot of
    // the README); else the kind with the most open items in ana's district.
    let page = r.api(
        &r.ana,
        "/api/v1/discrepancies?status=unresolved&period=2026-10&per_page=500",
    );
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for item in page["items"].as_array().unwrap() {
        *kinds
            .entry(item["kind"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let kind = if kinds.contains_key("birth_conflict") {
        "birth_conflict".to_owned()
    } else {
        kinds
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(k, _)| k.clone())
            .expect("ana has open discrepancies")
    };

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .current_dir(&browser_dir)
        .env("CHROMIUM", &chromium)
        .args([
            "review.mjs",
            &r.base,
            "ana",
            PASSWORD,
            &kind,
            shots.to_str().unwrap(),
        ])
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser round failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let id = result["id"].as_str().unwrap();

    // What the browser did, checked from the server's side.
    let detail = r.api(&r.boss, &format!("/api/v1/discrepancies/{id}"));
    assert_eq!(detail["status"], "resolved");
    let last = detail["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["actor"], "ana");
    assert_eq!(last["note"], "户籍系统已更正 / registry corrected");
    let audit = common::ok(&common::vitalhub(
        r.dir.path(),
        &["audit", "show", "--actor", "ana", "--limit", "200"],
    ));
    for action in ["login", "list", "view", "resolve", "export", "logout"] {
        assert!(
            audit.contains(&format!(" {action} ")),
            "{action} not audited:\n{audit}"
        );
    }
    for shot in ["dashboard.png", "detail.png"] {
        let size = std::fs::metadata(shots.join(shot)).unwrap().len();
        assert!(size > 10_000, "{shot} is only {size} bytes");
    }
}
