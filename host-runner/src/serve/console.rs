//! The admin console at `/console/`: its files and the JS package, embedded
//! in the binary (no network at run time), and the admin endpoints it reads
//! beyond SPEC §10 (documented in the README): events with their decisions,
//! tasks by state, retrying a failed task, the policy in force, and who the
//! gate blocks now. The endpoints sit behind the admin token; the files do
//! not (they hold no data: the page asks for the token and sends it).

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{Service, device_json, error, internal};
use crate::journal::{EventQuery, EventRecord, JournalError, Retried, TaskRecord, TaskState};
use crate::revocation::{rfc3339, unix_ms};

/// The most events or tasks one request lists: the what-if replays up to
/// this many.
pub const MAX_LIMIT: u32 = 10_000;

/// How many are listed when the request does not say.
const DEFAULT_LIMIT: u32 = 50;

/// The console's own files and the rendering it shares with the playground.
#[derive(rust_embed::Embed)]
#[folder = "../web/"]
#[include = "console/*"]
#[include = "shared/*"]
struct Site;

/// The JS package's web build (`scripts/build-js`), if it was built before srs.
#[derive(rust_embed::Embed)]
#[folder = "../wasm-plugin/js/web/"]
#[include = "srs_policy.js"]
#[include = "srs_policy_bg.wasm"]
#[allow_missing = true]
struct Package;

/// Only this origin's files and API; the module needs `wasm-unsafe-eval`.
const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

type Shared = State<Arc<Service>>;

/// `/console/` and its files.
pub(super) fn asset_routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(|| async { asset("index.html") }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>| async move { asset(&path) }),
        )
}

/// The admin endpoints the console reads (behind the admin token).
pub(super) fn admin_routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/v1/events", get(events))
        .route("/v1/tasks", get(tasks))
        .route("/v1/tasks/{id}/retry", post(retry))
        .route("/v1/policy", get(policy))
        .route("/v1/blocked", get(blocked))
}

/// One embedded file: `pkg/…` from the JS package, `shared/…` the shared
/// rendering, anything else the console's own.
fn asset(path: &str) -> Response {
    let file = if let Some(name) = path.strip_prefix("pkg/") {
        match Package::get(name) {
            Some(file) => Some(file),
            None if Package::iter().next().is_none() => {
                return error(
                    StatusCode::NOT_FOUND,
                    "not-found",
                    path,
                    "this srs was built without the JS package: run `bash scripts/build-js`, then build srs again",
                );
            }
            None => None,
        }
    } else if path.starts_with("shared/") {
        Site::get(path)
    } else {
        Site::get(&format!("console/{path}"))
    };
    let Some(file) = file else {
        return error(
            StatusCode::NOT_FOUND,
            "not-found",
            path,
            "no such file in the console",
        );
    };
    let mime = file.metadata.mimetype();
    let mut response = file.data.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// A query string that does not parse: 400 naming what is wrong.
fn bad_query(rejection: &QueryRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid-value",
        "query",
        &rejection.body_text(),
    )
}

/// `limit`, checked: 1..=[`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
fn limit(given: Option<u32>) -> Option<u32> {
    Some(given.unwrap_or(DEFAULT_LIMIT)).filter(|n| (1..=MAX_LIMIT).contains(n))
}

fn bad_limit() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid-value",
        "query.limit",
        &format!("`limit` must be between 1 and {MAX_LIMIT}"),
    )
}

/// Runs a journal read off the async threads; a failure is the answer.
async fn journal_call<T: Send + 'static>(
    service: &Service,
    f: impl FnOnce(&dyn crate::journal::Journal) -> Result<T, JournalError> + Send + 'static,
) -> Result<T, Response> {
    let journal = service.journal.clone();
    match tokio::task::spawn_blocking(move || f(journal.as_ref())).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(internal(&e.into())),
        Err(e) => Err(internal(&e.into())),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    user: Option<String>,
    device: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// JSON text as a value (kept as a string if the journal holds something else).
fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn event_json(e: &EventRecord) -> Value {
    json!({
        "seq": e.seq,
        "id": e.id,
        "received": rfc3339(e.received_ms),
        "outcome": e.outcome,
        "enforced": e.enforced,
        "device": e.device_id,
        "user": {"upn": e.upn, "email": e.email},
        "time": e.time_ms.map(rfc3339),
        "answer": parsed(&e.decision),
        "event": e.body.as_deref().map(parsed),
    })
}

/// `GET /v1/events?user=&device=&before=&limit=`: journaled events and
/// their decisions, newest first; `next` is the `before` of the next page.
async fn events(
    State(service): Shared,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(rejection) => return bad_query(&rejection),
    };
    let Some(limit) = limit(q.limit) else {
        return bad_limit();
    };
    let query = EventQuery {
        before: q.before,
        limit,
        user: q.user.filter(|u| !u.is_empty()),
        device: q.device.filter(|d| !d.is_empty()),
    };
    let listed = match journal_call(&service, move |j| j.events(&query)).await {
        Ok(listed) => listed,
        Err(response) => return response,
    };
    let next = listed
        .last()
        .filter(|_| listed.len() == limit as usize)
        .map(|e| e.seq);
    let events: Vec<Value> = listed.iter().map(event_json).collect();
    axum::Json(json!({"events": events, "next": next})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TasksQuery {
    state: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

fn task_json(t: &TaskRecord) -> Value {
    json!({
        "id": t.id,
        "provider": t.provider,
        "subject": t.subject,
        "state": t.state.as_str(),
        "device": t.device_id,
        "due": t.due_ms.map(rfc3339),
        "attempts": t.attempts,
        "http_status": t.http_status,
        "error_code": t.error_code,
        "provider_code": t.provider_code,
        "message": t.message,
        "updated": rfc3339(t.updated_ms),
        "events": t.events,
    })
}

/// `GET /v1/tasks?state=&before=&limit=`: revocation tasks in one state,
/// newest first, with the last attempt's error.
async fn tasks(
    State(service): Shared,
    query: Result<Query<TasksQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(rejection) => return bad_query(&rejection),
    };
    let states = TaskState::ALL.map(TaskState::as_str).join("`, `");
    let Some(state) = q.state.as_deref().and_then(|s| s.parse::<TaskState>().ok()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid-value",
            "query.state",
            &format!("`state` must be one of `{states}`"),
        );
    };
    let Some(limit) = limit(q.limit) else {
        return bad_limit();
    };
    let before = q.before;
    let listed = match journal_call(&service, move |j| j.tasks(state, before, limit)).await {
        Ok(listed) => listed,
        Err(response) => return response,
    };
    let next = listed
        .last()
        .filter(|_| listed.len() == limit as usize)
        .map(|t| t.id);
    let tasks: Vec<Value> = listed.iter().map(task_json).collect();
    axum::Json(json!({"tasks": tasks, "next": next})).into_response()
}

/// `POST /v1/tasks/{id}/retry`: a failed task pending again (or joined to
/// the pending one for the same revocation), executed at once.
async fn retry(State(service): Shared, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid-value",
            "id",
            &format!("`{id}` is not a task id"),
        );
    };
    let now = unix_ms(SystemTime::now());
    let retried = match journal_call(&service, move |j| j.retry_failed(id, now)).await {
        Ok(retried) => retried,
        Err(response) => return response,
    };
    match retried {
        Retried::Unknown => error(
            StatusCode::NOT_FOUND,
            "not-found",
            "id",
            &format!("task {id} is not in the journal"),
        ),
        Retried::NotFailed(state) => error(
            StatusCode::CONFLICT,
            "invalid-value",
            "id",
            &format!("task {id} is {state}, not failed: only a failed task is retried"),
        ),
        Retried::Pending { task, joined } => {
            let mut body = json!({"task": task.id, "provider": task.provider,
                                  "subject": task.subject, "state": "pending", "joined": joined});
            // Pending in the journal either way; if this process cannot call
            // the provider, another one (or a restart with the config) will.
            if let (Err(e), Some(fields)) = (
                super::api::start(&service, task.id, task.provider, task.subject),
                body.as_object_mut(),
            ) {
                fields.insert("message".into(), json!(format!("{e:#}")));
            }
            axum::Json(body).into_response()
        }
    }
}

/// `GET /v1/policy`: the policy in force, its generation and summary. The
/// policy is given as it was written (its fields in their order), which the
/// module accepted as JSON.
async fn policy(State(service): Shared) -> Response {
    let policy = service.pool.policy();
    let text = std::str::from_utf8(&policy.bytes)
        .ok()
        .filter(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok());
    let (Some(text), Ok(summary)) = (text, serde_json::to_string(&policy.summary)) else {
        return internal(&anyhow::anyhow!("the policy in force is not JSON text"));
    };
    let body = format!(
        r#"{{"generation":{},"summary":{summary},"policy":{}}}"#,
        policy.generation,
        text.trim()
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /v1/blocked`: the devices the gate blocks now, and their users.
async fn blocked(State(service): Shared) -> Response {
    let now = unix_ms(SystemTime::now());
    let gate = service.gate();
    let blocked = gate.blocked(now);
    let mut users: Vec<&str> = blocked.iter().flat_map(|d| d.users()).collect();
    users.sort_unstable();
    users.dedup();
    let devices: Vec<Value> = blocked.iter().map(|d| device_json(d, now)).collect();
    axum::Json(json!({"devices_known": gate.len(), "users": users, "devices": devices}))
        .into_response()
}
