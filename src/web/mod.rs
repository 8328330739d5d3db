//! The operator review page and the REST API: one axum server, started by `vitalhub serve` or
//! inside the daemon.
//!
//! Pages are rendered on the server (minijinja, templates and assets embedded in the binary)
//! and work without JavaScript. Every request is scoped to the operator's division prefix, and
//! every view of personal data, action, export and login goes to the hash-chained audit log.

mod api;
mod auth;
mod i18n;
mod pages;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::config::Config;
use crate::store::{Scope, Store, User};

pub use auth::{hash_password, new_token, token_hash};

/// `[web]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Where `vitalhub serve` listens, and the daemon when `enabled`.
    pub listen: String,
    /// Whether the daemon serves the page too.
    pub enabled: bool,
    /// Minutes a session lasts from login.
    pub session_minutes: u64,
    /// Mark cookies `Secure` (when a TLS proxy is in front, as it should be off loopback).
    pub secure_cookies: bool,
    /// Failed logins per user name or address before further tries wait out `login_window_s`.
    pub login_failures: usize,
    pub login_window_s: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:8080".into(),
            enabled: false,
            session_minutes: 480,
            secure_cookies: false,
            login_failures: 5,
            login_window_s: 900,
        }
    }
}

pub struct AppState {
    store: Mutex<Store>,
    config: Config,
    templates: minijinja::Environment<'static>,
    limiter: auth::LoginLimiter,
}

impl AppState {
    pub fn new(store: Store, config: Config) -> AppState {
        let limiter = auth::LoginLimiter::new(
            config.web.login_failures.max(1),
            Duration::from_secs(config.web.login_window_s),
        );
        AppState {
            store: Mutex::new(store),
            templates: pages::templates(),
            config,
            limiter,
        }
    }

    /// The store, for one short piece of work; never held across an await.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub type Shared = Arc<AppState>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/lang/{lang}", get(pages::set_language))
        .route("/dashboard", get(pages::dashboard))
        .route("/discrepancies", get(pages::list))
        .route("/discrepancies/export", get(pages::export))
        .route("/discrepancies/bulk", post(pages::bulk))
        .route("/discrepancies/{id}", get(pages::detail).post(pages::act))
        .route("/quarantine", get(pages::quarantine))
        .route("/admin/users", get(pages::users).post(pages::manage_user))
        .route("/static/app.css", get(pages::css))
        .route("/static/app.js", get(pages::js))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/dashboard", get(api::dashboard))
        .route("/api/v1/discrepancies", get(api::list))
        .route("/api/v1/discrepancies/export", get(api::export))
        .route("/api/v1/discrepancies/{id}", get(api::detail))
        .route("/api/v1/discrepancies/{id}/actions", post(api::act))
        .route("/api/v1/quarantine", get(api::quarantine))
        .with_state(state)
}

/// Serves until the future is dropped or `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Errors of a request, as the operator or API client sees them.
#[derive(Debug)]
pub enum WebError {
    /// Not found, or outside the operator's scope: the two look the same on purpose.
    NotFound,
    Forbidden(&'static str),
    BadRequest(String),
    Unauthorized,
    Internal(String),
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NotFound(_) => WebError::NotFound,
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
            WebError::Forbidden(why) => (StatusCode::FORBIDDEN, why.to_owned()),
            WebError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            WebError::Unauthorized => (StatusCode::UNAUTHORIZED, "log in first".to_owned()),
            WebError::Internal(why) => {
                // The reason goes to the log (it holds no personal data), not to the client.
                tracing::error!(error = %why, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the server log".to_owned(),
                )
            }
        };
        (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            serde_json::json!({ "error": text }).to_string(),
        )
            .into_response()
    }
}

/// Who is asking, with what they may see.
#[derive(Debug, Clone)]
pub struct Operator {
    pub user: User,
    pub scope: Scope,
}

impl Operator {
    fn new(user: User) -> Operator {
        Operator {
            scope: Scope(user.scope.clone()),
            user,
        }
    }

    fn must_be_admin(&self) -> Result<(), WebError> {
        if self.user.role == crate::store::Role::Admin {
            Ok(())
        } else {
            Err(WebError::Forbidden("operators are managed by admins"))
        }
    }

    /// Whether another operator's scope lies within this one's (an admin manages only those).
    fn oversees(&self, other: &User) -> bool {
        other.scope.starts_with(&self.scope.0)
    }

    fn may_act(&self) -> Result<(), WebError> {
        if self.user.role.may_act() {
            Ok(())
        } else {
            Err(WebError::Forbidden("viewers may look but not act"))
        }
    }
}

/// One review action, from a form or the API.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Action {
    /// assign | confirm | resolve | dismiss | reopen
    pub action: String,
    pub note: String,
    pub assignee: String,
}

/// Applies an action to one discrepancy in the operator's scope and audits it.
fn apply_action(
    state: &AppState,
    who: &Operator,
    id: &str,
    action: &Action,
) -> Result<String, WebError> {
    who.may_act()?;
    let mut store = state.store();
    let item = store
        .review_item(&who.scope, id)?
        .ok_or(WebError::NotFound)?;
    let actor = who.user.name.as_str();
    let note = action.note.trim();
    let required = |what: &str| -> Result<(), WebError> {
        if note.is_empty() {
            Err(WebError::BadRequest(format!("{what} needs a note")))
        } else {
            Ok(())
        }
    };
    let to = match action.action.as_str() {
        "assign" => {
            let assignee = action.assignee.trim();
            // Only to someone who may act on it: an active reviewer or admin whose scope covers
            // the discrepancy.
            if !assignee.is_empty() {
                let fits = store.user(assignee)?.is_some_and(|u| {
                    !u.disabled
                        && u.role.may_act()
                        && Scope(u.scope.clone())
                            .covers(item.stored.discrepancy.division.as_deref())
                });
                if !fits {
                    return Err(WebError::BadRequest(format!(
                        "{assignee} cannot take this discrepancy (unknown, disabled, a viewer, or another district)"
                    )));
                }
            }
            store.assign_discrepancy(id, (!assignee.is_empty()).then_some(assignee), actor)?;
            store.audit(actor, "assign", Some(id), Some(assignee))?;
            return Ok(item.stored.status);
        }
        "confirm" => "confirmed",
        "resolve" => {
            required("resolving")?;
            "resolved"
        }
        "dismiss" => {
            required("dismissing")?;
            "dismissed"
        }
        "reopen" => "open",
        other => return Err(WebError::BadRequest(format!("unknown action {other:?}"))),
    };
    store.review_discrepancy(id, to, actor, (!note.is_empty()).then_some(note))?;
    store.audit(actor, action.action.as_str(), Some(id), Some(note))?;
    Ok(to.to_owned())
}
