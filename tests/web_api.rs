//! The review server through HTTP: the API with every endpoint and the scope rules, the pages'
//! login, CSRF and session rules, and the audit trail behind them.

mod common;

use common::web::{client, json, Review, PASSWORD};
use common::{ok, vitalhub};
use reqwest::blocking::Response;
use serde_json::Value;

fn act(r: &Review, token: &str, id: &str, body: &str) -> Response {
    client()
        .post(format!("{}/api/v1/discrepancies/{id}/actions", r.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .unwrap()
}

fn ids_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_api_keeps_every_operator_inside_their_scope() {
    let r = Review::start("1500");
    // The admin sees the whole region; ana only 410611.
    let all = json(r.get(&r.boss, "/api/v1/discrepancies?per_page=500"));
    let mine = json(r.get(&r.ana, "/api/v1/discrepancies?per_page=500"));
    let total_all = all["total"].as_u64().unwrap();
    let total_mine = mine["total"].as_u64().unwrap();
    assert!(
        total_mine > 0 && total_mine < total_all,
        "{total_mine} of {total_all}"
    );
    for item in mine["items"].as_array().unwrap() {
        assert!(
            item["division"].as_str().unwrap().starts_with("410611"),
            "{item}"
        );
    }
    let other = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["division"].as_str() == Some("410621"))
        .expect("a 410621 discrepancy")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Outside the scope: 404 by id, absent from filtered lists and exports, no action.
    assert_eq!(
        r.get(&r.ana, &format!("/api/v1/discrepancies/{other}"))
            .status(),
        404
    );
    let filtered = json(r.get(&r.ana, "/api/v1/discrepancies?division=410621"));
    assert_eq!(filtered["total"], 0);
    let searched = json(r.get(&r.ana, &format!("/api/v1/discrepancies?q={other}")));
    assert_eq!(searched["total"], 0);
    let csv = r
        .get(&r.ana, "/api/v1/discrepancies/export?format=csv")
        .text()
        .unwrap();
    assert_eq!(
        csv.lines().count() as u64,
        total_mine + 1,
        "header + every row of 410611"
    );
    assert!(!csv.contains(&other) && !csv.contains(",410621,"));
    let resp = act(&r, &r.ana, &other, r#"{"action":"resolve","note":"x"}"#);
    assert_eq!(resp.status(), 404);
    let still = json(r.get(&r.boss, &format!("/api/v1/discrepancies/{other}")));
    assert_eq!(still["status"], "open", "nothing changed outside the scope");

    // Inside: the detail carries records, evidence and history.
    let id = ids_of(&mine)[0].clone();
    let detail = json(r.get(&r.ana, &format!("/api/v1/discrepancies/{id}")));
    assert_eq!(detail["id"], id.as_str());
    assert!(
        !detail["records"].as_array().unwrap().is_empty(),
        "{detail}"
    );
    assert_eq!(detail["history"][0]["actor"], "system");

    // A viewer reads but may not act; no token or a wrong one is 401.
    assert_eq!(
        r.get(&r.vic, &format!("/api/v1/discrepancies/{id}"))
            .status(),
        200
    );
    assert_eq!(
        act(&r, &r.vic, &id, r#"{"action":"confirm"}"#).status(),
        403
    );
    assert_eq!(r.get("nonsense", "/api/v1/discrepancies").status(), 401);
    let anonymous = client()
        .get(format!("{}/api/v1/discrepancies", r.base))
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // The quarantine is for region-wide accounts; the dashboard is scoped.
    assert_eq!(r.get(&r.ana, "/api/v1/quarantine").status(), 403);
    assert!(json(r.get(&r.boss, "/api/v1/quarantine"))["items"].is_array());
    let board = json(r.get(&r.ana, "/api/v1/dashboard?period=2026-10"));
    for d in board["by_division"].as_array().unwrap() {
        assert!(d[0].as_str().unwrap().starts_with("410611"), "{board}");
    }
    let counted: u64 = board["by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k[2].as_u64().unwrap())
        .sum();
    assert_eq!(counted, total_mine);

    // The OpenAPI document names every route the server has.
    let doc = json(
        client()
            .get(format!("{}/api/v1/openapi.json", r.base))
            .send()
            .unwrap(),
    );
    for p in [
        "/discrepancies",
        "/discrepancies/export",
        "/discrepancies/{id}",
        "/discrepancies/{id}/actions",
        "/dashboard",
        "/quarantine",
        "/openapi.json",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from openapi.json");
    }
}

#[test]
fn actions_keep_their_history_and_need_their_notes() {
    let r = Review::start("800");
    let mine = json(r.get(&r.ana, "/api/v1/discrepancies?status=open"));
    let id = ids_of(&mine)[0].clone();

    assert_eq!(
        act(&r, &r.ana, &id, r#"{"action":"resolve"}"#).status(),
        400
    );
    assert_eq!(
        act(&r, &r.ana, &id, r#"{"action":"dismiss","note":" "}"#).status(),
        400
    );
    assert_eq!(
        act(&r, &r.ana, &id, r#"{"action":"explode"}"#).status(),
        400
    );
    for (nobody, why) in [("vic", "a viewer"), ("ghost", "unknown")] {
        let body = format!(r#"{{"action":"assign","assignee":"{nobody}"}}"#);
        assert_eq!(act(&r, &r.ana, &id, &body).status(), 400, "{why}");
    }
    let assigned = json(act(
        &r,
        &r.ana,
        &id,
        r#"{"action":"assign","assignee":"ana"}"#,
    ));
    assert_eq!(assigned["status"], "open");
    let by_ana = json(r.get(&r.ana, "/api/v1/discrepancies?assignee=ana"));
    assert_eq!(ids_of(&by_ana), vec![id.clone()]);
    json(act(&r, &r.ana, &id, r#"{"action":"confirm"}"#));
    let done = json(act(
        &r,
        &r.ana,
        &id,
        r#"{"action":"resolve","note":"registry corrected"}"#,
    ));
    assert_eq!(done["status"], "resolved");
    let open = json(r.get(
        &r.ana,
        "/api/v1/discrepancies?status=unresolved&per_page=500",
    ));
    assert!(
        !ids_of(&open).contains(&id),
        "a resolved one leaves the open list"
    );
    json(act(&r, &r.ana, &id, r#"{"action":"reopen"}"#));
    json(act(
        &r,
        &r.ana,
        &id,
        r#"{"action":"dismiss","note":"duplicate certificate"}"#,
    ));

    let detail = json(r.get(&r.ana, &format!("/api/v1/discrepancies/{id}")));
    let trail: Vec<(String, String, String)> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["actor"].as_str().unwrap().to_owned(),
                h["to_status"].as_str().unwrap().to_owned(),
                h["note"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected = [
        ("system", "open", "found by reconciliation"),
        ("ana", "open", "assigned to ana"),
        ("ana", "confirmed", ""),
        ("ana", "resolved", "registry corrected"),
        ("ana", "open", ""),
        ("ana", "dismissed", "duplicate certificate"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(trail, expected);

    // Every one of those is in the audit log, and the chain holds.
    let shown = ok(&vitalhub(
        r.dir.path(),
        &["audit", "show", "--actor", "ana", "--target", &id],
    ));
    for action in ["assign", "confirm", "resolve", "reopen", "dismiss", "view"] {
        assert!(
            shown.contains(&format!(" {action} ")),
            "{action} not audited:\n{shown}"
        );
    }
    assert!(ok(&vitalhub(r.dir.path(), &["audit", "verify"])).contains("intact"));
}

/// Logs in through the form; returns the session cookie or the response status.
fn login(r: &Review, name: &str, password: &str) -> Result<String, u16> {
    let c = client();
    let form = c.get(format!("{}/login", r.base)).send().unwrap();
    let pre = cookie(&form, "vh_pre").unwrap();
    let html = form.text().unwrap();
    let csrf = field(&html, "csrf");
    let resp = c
        .post(format!("{}/login", r.base))
        .header("cookie", format!("vh_pre={pre}"))
        .form(&[("name", name), ("password", password), ("csrf", &csrf)])
        .send()
        .unwrap();
    if resp.status() != 303 {
        return Err(resp.status().as_u16());
    }
    let set = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("vh_session="))
        .unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Max-Age=28800", "Path=/"] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    Ok(cookie(&resp, "vh_session").unwrap())
}

fn cookie(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}

/// The value of the first hidden input called `name`.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in page"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn page(r: &Review, session: &str, path: &str) -> Response {
    client()
        .get(format!("{}{path}", r.base))
        .header("cookie", format!("vh_session={session}"))
        .send()
        .unwrap()
}

#[test]
fn pages_need_a_session_forms_need_their_csrf_and_logins_are_limited() {
    let r = Review::start("600");
    let to_login = page(&r, "forged", "/discrepancies");
    assert_eq!(to_login.status(), 303);
    assert_eq!(to_login.headers()["location"], "/login");

    let session = login(&r, "ana", PASSWORD).unwrap();
    let list = page(&r, &session, "/discrepancies?status=open")
        .text()
        .unwrap();
    assert!(list.contains("差异清单"), "Chinese by default");
    let id = list
        .split("href=\"/discrepancies/d-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(|s| format!("d-{s}"))
        .unwrap();
    let detail = page(&r, &session, &format!("/discrepancies/{id}"))
        .text()
        .unwrap();
    let csrf = field(&detail, "csrf");
    let post = |token: &str| {
        client()
            .post(format!("{}/discrepancies/{id}", r.base))
            .header("cookie", format!("vh_session={session}"))
            .form(&[("csrf", token), ("action", "resolve"), ("note", "fixed")])
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(
        post("0000"),
        403,
        "a form without the session's token is refused"
    );
    assert_eq!(post(""), 403);
    assert_eq!(post(&csrf), 303);
    let after = page(&r, &session, &format!("/discrepancies/{id}"))
        .text()
        .unwrap();
    assert!(after.contains("id=\"status\">已解决"), "resolved");

    // English on request.
    let en = client()
        .get(format!("{}/discrepancies", r.base))
        .header("cookie", format!("vh_session={session}; vh_lang=en"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(en.contains("Discrepancies") && en.contains("lang=\"en\""));

    // Logging out ends the session on the server, not only in the browser.
    let out = client()
        .post(format!("{}/logout", r.base))
        .header("cookie", format!("vh_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(page(&r, &session, "/dashboard").status(), 303);

    // A disabled operator cannot log in at all.
    ok(&vitalhub(r.dir.path(), &["user", "disable", "boss"]));
    assert_eq!(login(&r, "boss", PASSWORD), Err(401));
    ok(&vitalhub(r.dir.path(), &["user", "enable", "boss"]));
    let boss = login(&r, "boss", PASSWORD).unwrap();

    // Admins manage operators on the page too; others may not even look.
    let admin_page = page(&r, &boss, "/admin/users");
    assert_eq!(admin_page.status(), 200);
    let admin_html = admin_page.text().unwrap();
    assert!(admin_html.contains(">ana<") && admin_html.contains(">vic<"));
    let vic = login(&r, "vic", PASSWORD).unwrap();
    assert_eq!(page(&r, &vic, "/admin/users").status(), 403);
    let add = client()
        .post(format!("{}/admin/users", r.base))
        .header("cookie", format!("vh_session={boss}"))
        .form(&[
            ("csrf", field(&admin_html, "csrf").as_str()),
            ("action", "add"),
            ("name", "zhao"),
            ("role", "viewer"),
            ("scope", "410611"),
            ("password", "another long secret"),
        ])
        .send()
        .unwrap();
    assert_eq!(add.status(), 303);
    assert!(login(&r, "zhao", "another long secret").is_ok());

    // An admin of one district sees and manages that district's operators only.
    common::web::add_user(r.dir.path(), "li", "admin", "410611");
    let li = login(&r, "li", PASSWORD).unwrap();
    let li_page = page(&r, &li, "/admin/users").text().unwrap();
    assert!(
        li_page.contains(">ana<") && !li_page.contains(">boss<"),
        "{li_page}"
    );
    let disable_boss = client()
        .post(format!("{}/admin/users", r.base))
        .header("cookie", format!("vh_session={li}"))
        .form(&[
            ("csrf", field(&li_page, "csrf").as_str()),
            ("action", "disable"),
            ("name", "boss"),
        ])
        .send()
        .unwrap();
    assert_eq!(disable_boss.status(), 404);
    assert!(login(&r, "boss", PASSWORD).is_ok(), "boss is still enabled");

    // Five wrong passwords, then even the right one waits (per name and per address).
    for _ in 0..5 {
        assert_eq!(login(&r, "vic", "wrong password!"), Err(401));
    }
    assert_eq!(login(&r, "vic", PASSWORD), Err(429));
    let audit = ok(&vitalhub(
        r.dir.path(),
        &["audit", "show", "--actor", "vic"],
    ));
    assert_eq!(audit.matches(" login_failed ").count(), 5, "{audit}");
    assert_eq!(
        login(&r, "boss", PASSWORD),
        Err(429),
        "the same address is held back for every name"
    );
    assert!(audit.contains(" login_refused "), "{audit}");
}

#[test]
fn an_edited_audit_row_makes_verify_fail_and_name_it() {
    let r = Review::start("600");
    for _ in 0..3 {
        json(r.get(&r.ana, "/api/v1/discrepancies"));
    }
    let intact = ok(&vitalhub(r.dir.path(), &["audit", "verify"]));
    assert!(intact.contains("intact"), "{intact}");
    r.server_stop();
    let db = rusqlite::Connection::open(r.db()).unwrap();
    let target: i64 = db
        .query_row(
            "SELECT id FROM audit_log WHERE action = 'api_list' ORDER BY id LIMIT 1 OFFSET 1",
            [],
            |row| row.get(0),
        )
        .unwrap();
    db.execute(
        "UPDATE audit_log SET actor = 'somebody else' WHERE id = ?1",
        [target],
    )
    .unwrap();
    let out = vitalhub(r.dir.path(), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("BROKEN at entry {target}")),
        "{text}"
    );
}
