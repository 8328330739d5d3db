//! The REST API under `/api/v1`: the same reads and actions as the pages, as JSON, for an
//! operator's API token (`Authorization: Bearer ...`, made by `vitalhub user token NAME`).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{apply_action, auth, pages, Action, Operator, Shared, WebError};
use crate::store::ListQuery;

/// The operator whose token the request carries.
fn operator(state: &Shared, headers: &HeaderMap) -> Result<Operator, WebError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(WebError::Unauthorized)?;
    state
        .store()
        .user_by_token(&auth::token_hash(token.trim()))?
        .map(Operator::new)
        .ok_or(WebError::Unauthorized)
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

pub async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(mut q): Query<ListQuery>,
) -> Result<Json<Value>, WebError> {
    let who = operator(&state, &headers)?;
    if q.per_page == 0 {
        q.per_page = 100;
    }
    q.page = q.page.max(1);
    let mut store = state.store();
    let (total, items) = store.discrepancy_page(&who.scope, &q)?;
    store.audit(
        &who.user.name,
        "api_list",
        None,
        Some(&format!("{} rows", items.len())),
    )?;
    Ok(Json(json!({
        "total": total,
        "page": q.page,
        "per_page": q.per_page.clamp(1, 500),
        "items": items,
    })))
}

pub async fn detail(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    let who = operator(&state, &headers)?;
    Ok(Json(pages::detail_view(&state, &who, &id)?))
}

pub async fn act(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(action): Json<Action>,
) -> Result<Json<Value>, WebError> {
    let who = operator(&state, &headers)?;
    let status = apply_action(&state, &who, &id, &action)?;
    Ok(Json(json!({ "id": id, "status": status })))
}

#[derive(Deserialize)]
pub struct Format {
    #[serde(default)]
    format: String,
}

pub async fn export(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
    Query(f): Query<Format>,
) -> Result<Response, WebError> {
    let who = operator(&state, &headers)?;
    pages::export_response(&state, &who, &q, &f.format)
}

#[derive(Deserialize)]
pub struct PeriodQuery {
    #[serde(default)]
    period: String,
}

pub async fn dashboard(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(p): Query<PeriodQuery>,
) -> Result<Json<Value>, WebError> {
    let who = operator(&state, &headers)?;
    let board = state.store().dashboard(&who.scope, &p.period)?;
    serde_json::to_value(&board)
        .map(Json)
        .map_err(|e| WebError::Internal(e.to_string()))
}

pub async fn quarantine(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Value>, WebError> {
    let who = operator(&state, &headers)?;
    if !who.scope.0.is_empty() {
        return Err(WebError::Forbidden(
            "the quarantine is open to region-wide accounts only",
        ));
    }
    let mut store = state.store();
    let entries = store.quarantine_entries(false)?;
    store.audit(&who.user.name, "api_quarantine", None, None)?;
    Ok(Json(json!({ "items": entries })))
}
