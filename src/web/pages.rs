//! The server-rendered pages. Forms post back with a CSRF token bound to the session; every
//! page works without JavaScript.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{self, same_secret};
use super::i18n::{words, Lang};
use super::{apply_action, Action, AppState, Operator, Shared, WebError};
use crate::model::{DiscrepancyKind, Feed};
use crate::store::ListQuery;

const SESSION: &str = "vh_session";
const PRE_LOGIN: &str = "vh_pre";
const LANG: &str = "vh_lang";

pub fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("dashboard.html", include_str!("templates/dashboard.html")),
        ("list.html", include_str!("templates/list.html")),
        ("detail.html", include_str!("templates/detail.html")),
        ("quarantine.html", include_str!("templates/quarantine.html")),
        ("users.html", include_str!("templates/users.html")),
    ] {
        env.add_template(name, text)
            .expect("the embedded templates are valid");
    }
    env
}

fn lang_of(jar: &CookieJar) -> Lang {
    Lang::parse(jar.get(LANG).map(|c| c.value()).unwrap_or("zh"))
}

fn render(state: &AppState, name: &str, ctx: Value) -> Result<Response, WebError> {
    let html = state
        .templates
        .get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(&ctx)))
        .map_err(|e| WebError::Internal(format!("template {name}: {e:#}")))?;
    Ok(Html(html).into_response())
}

fn cookie(state: &AppState, name: &'static str, value: String, max_age_s: i64) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.web.secure_cookies)
        .max_age(time::Duration::seconds(max_age_s))
        .build()
}

/// The logged-in operator and their session's CSRF token.
fn session(state: &AppState, jar: &CookieJar) -> Result<Option<(Operator, String)>, WebError> {
    let Some(token) = jar.get(SESSION) else {
        return Ok(None);
    };
    Ok(state
        .store()
        .session(&auth::token_hash(token.value()))?
        .map(|(user, csrf)| (Operator::new(user), csrf)))
}

/// Pages need a session; without one the browser goes to the login form.
macro_rules! logged_in {
    ($state:expr, $jar:expr) => {
        match session(&$state, &$jar)? {
            Some(s) => s,
            None => return Ok(Redirect::to("/login").into_response()),
        }
    };
}

fn check_csrf(expected: &str, given: &str) -> Result<(), WebError> {
    if !expected.is_empty() && same_secret(expected, given) {
        Ok(())
    } else {
        Err(WebError::Forbidden(
            "the form is stale or came from elsewhere (CSRF check); reload the page",
        ))
    }
}

/// The context every page shares, with the page's own `extra` keys.
fn page_context(jar: &CookieJar, who: &Operator, csrf: &str, page: &str, extra: Value) -> Value {
    let lang = lang_of(jar);
    let mut ctx = json!({
        "t": words(lang),
        "lang": lang.code(),
        "user": who.user.name,
        "role": who.user.role.name(),
        "scope": who.user.scope,
        "may_act": who.user.role.may_act(),
        "csrf": csrf,
        "page": page,
    });
    if let (Some(base), Value::Object(more)) = (ctx.as_object_mut(), extra) {
        base.extend(more);
    }
    ctx
}

pub async fn home() -> Redirect {
    Redirect::to("/dashboard")
}

pub async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("static/app.css"),
    )
}

pub async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("static/app.js"),
    )
}

#[derive(Deserialize)]
pub struct Back {
    back: Option<String>,
}

pub async fn set_language(
    State(state): State<Shared>,
    Path(lang): Path<String>,
    Query(back): Query<Back>,
    jar: CookieJar,
) -> impl IntoResponse {
    let code = if lang == "en" { "en" } else { "zh" };
    // Only a path on this site, so the switch cannot send anyone elsewhere.
    let back = back
        .back
        .filter(|b| b.starts_with('/') && !b.starts_with("//"))
        .unwrap_or_else(|| "/dashboard".into());
    (
        jar.add(cookie(&state, LANG, code.into(), 365 * 86400)),
        Redirect::to(&back),
    )
}

pub async fn login_form(State(state): State<Shared>, jar: CookieJar) -> Result<Response, WebError> {
    login_page(&state, jar, None, StatusCode::OK)
}

fn login_page(
    state: &AppState,
    jar: CookieJar,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let pre = auth::new_token();
    let lang = lang_of(&jar);
    let page = render(
        state,
        "login.html",
        json!({ "t": words(lang), "lang": lang.code(), "csrf": pre, "error": error }),
    )?;
    Ok((status, jar.add(cookie(state, PRE_LOGIN, pre, 3600)), page).into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    csrf: String,
}

pub async fn login(
    State(state): State<Shared>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    check_csrf(
        jar.get(PRE_LOGIN).map(|c| c.value()).unwrap_or(""),
        &form.csrf,
    )?;
    let name = form.name.trim().to_owned();
    let keys = vec![format!("user:{name}"), format!("ip:{}", addr.ip())];
    if !state.limiter.allows(&keys) {
        state.store().audit(
            &name,
            "login_refused",
            None,
            Some("too many failed attempts"),
        )?;
        return login_page(
            &state,
            jar,
            Some("login_limited"),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let user = state.store().user(&name)?;
    // The hash is checked even for an unknown name, so timing does not tell names apart.
    let stored = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| auth::DUMMY_HASH.to_owned());
    let password = form.password.clone();
    let matches = tokio::task::spawn_blocking(move || auth::verify_password(&password, &stored))
        .await
        .unwrap_or(false);
    let user = match user {
        Some(u) if matches && !u.disabled => u,
        _ => {
            state.limiter.failed(&keys);
            state.store().audit(&name, "login_failed", None, None)?;
            return login_page(&state, jar, Some("login_failed"), StatusCode::UNAUTHORIZED);
        }
    };
    state.limiter.succeeded(&keys);
    let (token, csrf) = (auth::new_token(), auth::new_token());
    let minutes = state.config.web.session_minutes.max(1);
    let expires = chrono::Utc::now() + chrono::Duration::minutes(minutes as i64);
    {
        let mut store = state.store();
        store.create_session(
            &auth::token_hash(&token),
            user.id,
            &csrf,
            &expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )?;
        store.audit(&user.name, "login", None, None)?;
    }
    let jar = jar.remove(Cookie::build(PRE_LOGIN).path("/")).add(cookie(
        &state,
        SESSION,
        token,
        minutes as i64 * 60,
    ));
    Ok((jar, Redirect::to("/dashboard")).into_response())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(
    State(state): State<Shared>,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    if let Some((who, csrf)) = session(&state, &jar)? {
        check_csrf(&csrf, &form.csrf)?;
        let mut store = state.store();
        if let Some(token) = jar.get(SESSION) {
            store.end_session(&auth::token_hash(token.value()))?;
        }
        store.audit(&who.user.name, "logout", None, None)?;
    }
    Ok((
        jar.remove(Cookie::build(SESSION).path("/")),
        Redirect::to("/login"),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct PeriodQuery {
    period: Option<String>,
}

pub async fn dashboard(
    State(state): State<Shared>,
    jar: CookieJar,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, WebError> {
    let (who, csrf) = logged_in!(state, jar);
    let (periods, board) = {
        let store = state.store();
        let periods = store.review_periods()?;
        let period = q
            .period
            .filter(|p| periods.contains(p))
            .or_else(|| periods.first().cloned())
            .unwrap_or_default();
        let board = store.dashboard(&who.scope, &period)?;
        (periods, board)
    };
    let max_trend = board.trend.iter().map(|t| t.2).max().unwrap_or(0).max(1);
    let ctx = page_context(
        &jar,
        &who,
        &csrf,
        "dashboard",
        json!({ "periods": periods, "board": board, "max_trend": max_trend }),
    );
    render(&state, "dashboard.html", ctx)
}

/// The list's query with the defaults a first visit gets: the newest period, unresolved only.
fn list_query(raw: Option<&str>, q: ListQuery, periods: &[String]) -> ListQuery {
    let mut q = q;
    if raw.is_none_or(|r| r.is_empty()) {
        q.status = "unresolved".into();
        q.period = periods.first().cloned().unwrap_or_default();
    }
    if q.per_page == 0 {
        q.per_page = 50;
    }
    q.page = q.page.max(1);
    q
}

/// The filter as a query string, for links that keep it (pages, sorting, export).
fn query_string(q: &ListQuery, page: u64) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("period", q.period.as_str()),
        ("kind", &q.kind),
        ("division", &q.division),
        ("status", &q.status),
        ("severity", &q.severity),
        ("assignee", &q.assignee),
        ("q", &q.q),
        ("sort", &q.sort),
        ("dir", &q.dir),
    ] {
        s.append_pair(k, v);
    }
    s.append_pair("page", &page.to_string());
    s.append_pair("per_page", &q.per_page.to_string());
    s.finish()
}

pub async fn list(
    State(state): State<Shared>,
    jar: CookieJar,
    RawQuery(raw): RawQuery,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let (who, csrf) = logged_in!(state, jar);
    let (q, total, rows, periods, assignees) = {
        let mut store = state.store();
        let periods = store.review_periods()?;
        let q = list_query(raw.as_deref(), q, &periods);
        let (total, rows) = store.discrepancy_page(&who.scope, &q)?;
        let assignees: Vec<String> = store
            .users()?
            .into_iter()
            .filter(|u| !u.disabled && u.role.may_act() && who.oversees(u))
            .map(|u| u.name)
            .collect();
        // Lists show record keys (identity numbers): the view is audited with its filter.
        store.audit(
            &who.user.name,
            "list",
            None,
            Some(&query_string(&q, q.page)),
        )?;
        (q, total, rows, periods, assignees)
    };
    let pages = total.div_ceil(q.per_page).max(1);
    let link = |page: u64| format!("/discrepancies?{}", query_string(&q, page));
    let ctx = page_context(
        &jar,
        &who,
        &csrf,
        "list",
        json!({
            "q": q,
            "total": total,
            "rows": rows,
            "pages": pages,
            "periods": periods,
            "assignees": assignees,
            "kinds": DiscrepancyKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "statuses": ["unresolved", "open", "possible_match", "confirmed", "resolved", "dismissed", "gone"],
            "severities": ["high", "medium", "low"],
            "here": link(q.page),
            "prev_link": (q.page > 1).then(|| link(q.page - 1)),
            "next_link": (q.page < pages).then(|| link(q.page + 1)),
            "export_query": query_string(&q, 1),
            "sort_links": sort_links(&q),
        }),
    );
    render(&state, "list.html", ctx)
}

/// Column -> link that sorts by it (flipping the direction when it is the current sort).
fn sort_links(q: &ListQuery) -> std::collections::BTreeMap<&'static str, String> {
    [
        "id",
        "kind",
        "division",
        "severity",
        "status",
        "score",
        "first_seen",
    ]
    .into_iter()
    .map(|col| {
        let mut s = q.clone();
        s.dir = if q.sort == col && q.dir != "desc" {
            "desc".into()
        } else {
            "asc".into()
        };
        s.sort = col.into();
        (col, format!("/discrepancies?{}", query_string(&s, 1)))
    })
    .collect()
}

/// A record as (field, value) rows, for the side-by-side view.
fn record_fields(record: &crate::model::Record) -> Vec<(String, String)> {
    match serde_json::to_value(record) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .flat_map(|(k, v)| match v {
                // A record's payload is one level down (the feed's tag around it).
                serde_json::Value::Object(inner) => inner
                    .into_iter()
                    .map(|(k2, v2)| (k2, show(&v2)))
                    .collect::<Vec<_>>(),
                other => vec![(k, show(&other))],
            })
            // `feed` is the record's type tag, already in the heading.
            .filter(|(k, v)| !v.is_empty() && k != "feed")
            .collect(),
        _ => Vec::new(),
    }
}

fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn detail(
    State(state): State<Shared>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (who, csrf) = logged_in!(state, jar);
    let view = detail_view(&state, &who, &id)?;
    let ctx = page_context(&jar, &who, &csrf, "detail", view);
    render(&state, "detail.html", ctx)
}

/// Everything the detail page shows, audited as a view of the persons in it.
pub(super) fn detail_view(state: &AppState, who: &Operator, id: &str) -> Result<Value, WebError> {
    let mut store = state.store();
    let item = store
        .review_item(&who.scope, id)?
        .ok_or(WebError::NotFound)?;
    let d = &item.stored.discrepancy;
    let differing: Vec<&str> = d.fields.iter().map(|f| f.field.as_str()).collect();
    let mut records = Vec::new();
    if let Some(key) = &d.registry_key {
        if let Some(r) = store.record(Feed::Registry, key)? {
            records.push(json!({ "title": "registry", "feed": "registry", "key": key, "fields": record_fields(&r) }));
        }
    }
    for s in &d.sources {
        let record = Feed::from_name(&s.feed)
            .map(|feed| store.record(feed, &s.key))
            .transpose()?
            .flatten();
        records.push(json!({
            "title": "source",
            "feed": s.feed,
            "key": s.key,
            "fields": record.as_ref().map(record_fields).unwrap_or_default(),
        }));
    }
    let persons: Vec<&str> = d
        .registry_key
        .iter()
        .map(String::as_str)
        .chain(d.sources.iter().map(|s| s.key.as_str()))
        .collect();
    store.audit(&who.user.name, "view", Some(id), Some(&persons.join(",")))?;
    Ok(json!({
        "id": id,
        "status": item.stored.status,
        "assignee": item.assignee,
        "first_seen": item.first_seen,
        "last_seen": item.last_seen,
        "d": d,
        "kind": d.kind.name(),
        "records": records,
        "differing": differing,
        "history": store.discrepancy_history(id)?,
    }))
}

pub async fn act(
    State(state): State<Shared>,
    jar: CookieJar,
    Path(id): Path<String>,
    Form(form): Form<ActForm>,
) -> Result<Response, WebError> {
    let (who, csrf) = logged_in!(state, jar);
    check_csrf(&csrf, &form.csrf)?;
    apply_action(&state, &who, &id, &form.action)?;
    let back = form
        .back
        .filter(|b| b.starts_with("/discrepancies") && !b.starts_with("//"))
        .unwrap_or_else(|| format!("/discrepancies/{id}"));
    Ok(Redirect::to(&back).into_response())
}

#[derive(Deserialize)]
pub struct ActForm {
    csrf: String,
    back: Option<String>,
    #[serde(flatten)]
    action: Action,
}

/// A bulk action: the action and the list's filter fields (`f_` prefix keeps them apart).
#[derive(Deserialize)]
pub struct BulkForm {
    csrf: String,
    action: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    f_period: String,
    #[serde(default)]
    f_kind: String,
    #[serde(default)]
    f_division: String,
    #[serde(default)]
    f_status: String,
    #[serde(default)]
    f_severity: String,
    #[serde(default)]
    f_assignee: String,
    #[serde(default)]
    f_q: String,
}

pub async fn bulk(
    State(state): State<Shared>,
    jar: CookieJar,
    Form(form): Form<BulkForm>,
) -> Result<Response, WebError> {
    let (who, csrf) = logged_in!(state, jar);
    check_csrf(&csrf, &form.csrf)?;
    who.may_act()?;
    let q = ListQuery {
        period: form.f_period,
        kind: form.f_kind,
        division: form.f_division,
        status: form.f_status,
        severity: form.f_severity,
        assignee: form.f_assignee,
        q: form.f_q,
        ..ListQuery::default()
    };
    let ids = state.store().discrepancy_ids(&who.scope, &q)?;
    let action = Action {
        action: form.action,
        note: form.note,
        assignee: form.assignee,
    };
    for id in &ids {
        apply_action(&state, &who, id, &action)?;
    }
    Ok(Redirect::to(&format!("/discrepancies?{}", query_string(&q, 1))).into_response())
}

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    format: String,
}

pub async fn export(
    State(state): State<Shared>,
    jar: CookieJar,
    Query(q): Query<ListQuery>,
    Query(f): Query<ExportQuery>,
) -> Result<Response, WebError> {
    let (who, _) = logged_in!(state, jar);
    export_response(&state, &who, &q, &f.format)
}

/// The filtered list as CSV or xlsx, audited with its size and filter.
pub(super) fn export_response(
    state: &AppState,
    who: &Operator,
    q: &ListQuery,
    format: &str,
) -> Result<Response, WebError> {
    let entries: Vec<crate::report::Entry> = {
        let mut store = state.store();
        let found = store.review_export(&who.scope, q)?;
        store.audit(
            &who.user.name,
            "export",
            None,
            Some(&format!(
                "{} rows as {format}; {}",
                found.len(),
                query_string(q, 1)
            )),
        )?;
        found.iter().map(crate::report::Entry::from).collect()
    };
    let label = if q.period.is_empty() {
        "all"
    } else {
        &q.period
    };
    match format {
        "xlsx" => {
            let bytes = crate::report::xlsx_bytes(&entries, label)
                .map_err(|e| WebError::Internal(format!("{e:#}")))?;
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                            .to_owned(),
                    ),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"discrepancies-{label}.xlsx\""),
                    ),
                ],
                bytes,
            )
                .into_response())
        }
        _ => {
            let mut out = Vec::new();
            crate::report::write_csv(&entries, &mut out)
                .map_err(|e| WebError::Internal(format!("{e:#}")))?;
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"discrepancies-{label}.csv\""),
                    ),
                ],
                out,
            )
                .into_response())
        }
    }
}

pub async fn quarantine(State(state): State<Shared>, jar: CookieJar) -> Result<Response, WebError> {
    let (who, csrf) = logged_in!(state, jar);
    // Quarantined rows could not be mapped, so their district is unknown: region-wide only.
    let entries = if who.scope.0.is_empty() {
        let mut store = state.store();
        let entries = store.quarantine_entries(false)?;
        store.audit(&who.user.name, "quarantine", None, None)?;
        Some(entries)
    } else {
        None
    };
    let ctx = page_context(
        &jar,
        &who,
        &csrf,
        "quarantine",
        json!({ "entries": entries }),
    );
    render(&state, "quarantine.html", ctx)
}

pub async fn users(State(state): State<Shared>, jar: CookieJar) -> Result<Response, WebError> {
    let (who, csrf) = logged_in!(state, jar);
    who.must_be_admin()?;
    let users: Vec<_> = state
        .store()
        .users()?
        .into_iter()
        .filter(|u| who.oversees(u))
        .collect();
    let ctx = page_context(&jar, &who, &csrf, "users", json!({ "users": users }));
    render(&state, "users.html", ctx)
}

#[derive(Deserialize)]
pub struct UserForm {
    csrf: String,
    /// add | disable | enable
    action: String,
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    password: String,
}

pub async fn manage_user(
    State(state): State<Shared>,
    jar: CookieJar,
    Form(form): Form<UserForm>,
) -> Result<Response, WebError> {
    let (who, csrf) = logged_in!(state, jar);
    check_csrf(&csrf, &form.csrf)?;
    who.must_be_admin()?;
    let name = form.name.trim();
    match form.action.as_str() {
        "add" => {
            let role = crate::store::Role::parse(&form.role)
                .ok_or_else(|| WebError::BadRequest("role: viewer, reviewer or admin".into()))?;
            let scope = form.scope.trim();
            // An admin hands out no more than their own scope.
            if !scope.starts_with(who.scope.0.as_str())
                || scope.len() > 6
                || !scope.chars().all(|c| c.is_ascii_digit())
            {
                return Err(WebError::BadRequest(format!(
                    "scope must be a division prefix within {}",
                    who.scope.0
                )));
            }
            if form.password.chars().count() < 10 {
                return Err(WebError::BadRequest(
                    "a password has at least 10 characters".into(),
                ));
            }
            let password = form.password.clone();
            let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
                .await
                .map_err(|e| WebError::Internal(e.to_string()))?
                .map_err(WebError::Internal)?;
            let mut store = state.store();
            store
                .add_user(name, &hash, role, scope)
                .map_err(|e| WebError::BadRequest(e.to_string()))?;
            store.audit(
                &who.user.name,
                "user_add",
                Some(name),
                Some(&format!("{} {scope}", role.name())),
            )?;
        }
        "disable" | "enable" => {
            if name == who.user.name {
                return Err(WebError::BadRequest("not your own account".into()));
            }
            let mut store = state.store();
            // Someone outside the admin's scope is as unknown to them as a missing name.
            if !store.user(name)?.is_some_and(|u| who.oversees(&u)) {
                return Err(WebError::NotFound);
            }
            store.set_disabled(name, form.action == "disable")?;
            store.audit(
                &who.user.name,
                &format!("user_{}", form.action),
                Some(name),
                None,
            )?;
        }
        other => return Err(WebError::BadRequest(format!("unknown action {other:?}"))),
    }
    Ok(Redirect::to("/admin/users").into_response())
}
