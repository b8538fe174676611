//! The endpoints of SPEC §10. Every error body is
//! `{"errors": [{"code", "path", "message"}]}`, with the §5 codes where they
//! fit. Tokens are compared in constant time and never logged or echoed.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use policy_core::{Diagnostic, Mode, Provider};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use super::metrics::{CONTENT_TYPE, Metrics};
use super::pool::{LineResult, Pool, check_policy};
use crate::config::Secret;
use crate::gate::{DeviceVerdict, Gate, Verdict};
use crate::journal::{Journal, Recorded, Task, TaskId};
use crate::revocation::intake::Checked;
use crate::revocation::intake::{Decided, EventWriter};
use crate::revocation::{Ended, Executor, rfc3339, unix_ms};

/// The bearer tokens, read from the environment at start.
#[derive(Debug, Default)]
pub struct Tokens {
    pub intake: Option<Secret>,
    pub admin: Option<Secret>,
    pub check: Option<Secret>,
}

/// Everything the endpoints share.
#[derive(Debug)]
pub struct Service {
    pub pool: Pool,
    pub journal: Arc<dyn Journal>,
    /// Group commit of pushed events.
    pub events: EventWriter,
    pub gate: RwLock<Gate>,
    /// Woken when events scheduled revocations, so the timer looks again.
    pub schedule: tokio::sync::Notify,
    /// Shared Signals, when `[ssf]` is configured.
    pub ssf: Option<super::ssf::Ssf>,
    pub executor: Executor,
    pub done: mpsc::UnboundedSender<Ended>,
    pub metrics: Arc<Metrics>,
    pub tokens: Tokens,
    pub user_header: HeaderName,
    /// The user header as the config spells it, for messages.
    pub user_header_label: String,
    pub device_header: HeaderName,
    pub max_body: usize,
    /// How long a client may take to send a body.
    pub body_timeout: std::time::Duration,
}

type Shared = State<Arc<Service>>;

impl Service {
    /// The newest arrival order the gate holds.
    pub fn gate_newest_seq(&self) -> i64 {
        self.gate().newest_seq()
    }

    /// The gate, for reading.
    pub(super) fn gate(&self) -> std::sync::RwLockReadGuard<'_, Gate> {
        self.gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub fn router(service: Arc<Service>) -> Router {
    let intake = Router::new()
        .route("/v1/events", post(post_events))
        .route_layer(from_fn_with_state(service.clone(), intake_token));
    let admin = Router::new()
        .route("/v1/devices/{id}", get(device))
        .route("/v1/users/{subject}", get(user))
        .route("/v1/policy", put(put_policy))
        .route("/v1/status", get(status))
        .merge(super::console::admin_routes())
        .route_layer(from_fn_with_state(service.clone(), admin_token));
    Router::new()
        .merge(intake)
        .merge(admin)
        .merge(super::ssf::routes(&service))
        .merge(super::console::asset_routes())
        // Any method and any path below: Envoy's ext_authz (HTTP) keeps the
        // client's method and appends its path.
        .route("/v1/check", any(check))
        .route("/v1/check/{*rest}", any(check))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { StatusCode::NO_CONTENT }))
        .route("/readyz", get(ready))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not-found",
                "",
                "no such endpoint (SPEC §10)",
            )
        })
        .with_state(service)
}

/// An error answer with one error.
pub(super) fn error(status: StatusCode, code: &str, path: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "path": path, "message": message}]});
    (status, axum::Json(body)).into_response()
}

pub(super) fn unauthorized(what: &str) -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "header Authorization",
        &format!("a valid bearer token for {what} is required"),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Whether the request carries `token` (or no token is configured).
pub(super) fn authorized(headers: &HeaderMap, token: Option<&Secret>) -> bool {
    let Some(token) = token else { return true };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    let expected = token.expose().as_bytes();
    given.len() == expected.len() && bool::from(given.ct_eq(expected))
}

/// Lets through requests with the intake token.
async fn intake_token(State(service): Shared, request: Request, next: Next) -> Response {
    if authorized(request.headers(), service.tokens.intake.as_ref()) {
        next.run(request).await
    } else {
        unauthorized("POST /v1/events (the intake token)")
    }
}

/// Lets through requests with the admin token.
async fn admin_token(State(service): Shared, request: Request, next: Next) -> Response {
    if authorized(request.headers(), service.tokens.admin.as_ref()) {
        next.run(request).await
    } else {
        unauthorized("the admin API")
    }
}

/// Reads a body up to the limit and within the time: `Err` is the answer
/// (413, 408, or 400 if the connection broke).
pub(super) async fn read_body(service: &Service, body: Body) -> Result<Bytes, Response> {
    let limit = service.max_body;
    let read = tokio::time::timeout(service.body_timeout, Limited::new(body, limit).collect());
    let Ok(read) = read.await else {
        return Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "",
            "the request body was not sent in time",
        ));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "",
            &format!("the request body is over {limit} bytes"),
        )),
        Err(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "",
            "the request body could not be read",
        )),
    }
}

fn errors_json(errors: &[Diagnostic]) -> Value {
    serde_json::to_value(errors).unwrap_or_default()
}

/// `POST /v1/events`: decide, journal, then answer 202; execute after.
async fn post_events(State(service): Shared, headers: HeaderMap, body: Body) -> Response {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let ndjson = match media.as_str() {
        "application/json" => false,
        "application/x-ndjson" | "application/jsonl" => true,
        _ => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid-value",
                "header Content-Type",
                "send one event as application/json or many as application/x-ndjson",
            );
        }
    };
    let body = match read_body(&service, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    // (line number, bytes); blank NDJSON lines are skipped.
    let lines: Vec<(usize, Vec<u8>)> = if ndjson {
        body.split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(n, line)| (n + 1, line.to_vec()))
            .collect()
    } else {
        vec![(1, body.to_vec())]
    };
    if lines.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "missing-field",
            "",
            "the request has no event",
        );
    }
    let numbers: Vec<usize> = lines.iter().map(|(n, _)| *n).collect();
    let events = lines.into_iter().map(|(_, bytes)| bytes).collect();
    let (results, took) = match service.pool.decide(events).await {
        Ok(decided) => decided,
        Err(e) => return internal(&e),
    };
    service.metrics.decided(results.len(), took);
    // A single event refused by the module is the request refused.
    if !ndjson && let Some(Err(errors)) = results.first() {
        service.metrics.rejected();
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"errors": errors_json(errors)})),
        )
            .into_response();
    }
    match accept(&service, numbers, results).await {
        Ok(lines) => (StatusCode::ACCEPTED, axum::Json(json!({"results": lines}))).into_response(),
        Err(e) => internal(&e),
    }
}

/// Journals the decided lines in one commit, moves the gate, starts the
/// revocations; returns one result per line, in order.
pub(super) async fn accept(
    service: &Arc<Service>,
    numbers: Vec<usize>,
    results: Vec<LineResult>,
) -> anyhow::Result<Vec<Value>> {
    let mut lines: Vec<Value> = Vec::with_capacity(results.len());
    let mut decided: Vec<Decided> = Vec::new();
    let mut slots = Vec::new();
    for (number, result) in numbers.into_iter().zip(results) {
        match result {
            Ok(d) => {
                slots.push(lines.len());
                lines.push(Value::Null);
                decided.push(d);
            }
            Err(errors) => {
                service.metrics.rejected();
                lines.push(json!({"line": number, "errors": errors_json(&errors)}));
            }
        }
    }
    if decided.is_empty() {
        return Ok(lines);
    }
    let received_ms = unix_ms(SystemTime::now());
    if let Some(ssf) = &service.ssf {
        for d in &mut decided {
            d.announcements = ssf.announcements(d, received_ms);
        }
    }
    let (decided, recorded) = service.events.record(decided, received_ms).await?;
    if let Some(ssf) = &service.ssf
        && decided.iter().any(|d| !d.announcements.is_empty())
    {
        ssf.courier.wake();
    }
    {
        let mut gate = service
            .gate
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (d, r) in decided.iter().zip(&recorded) {
            if let Recorded::New { seq, .. } = r
                && let Some(verdict) = d.verdict(received_ms, *seq)
            {
                gate.apply(verdict);
            }
        }
    }
    if recorded
        .iter()
        .any(|r| matches!(r, Recorded::New { scheduled, .. } if !scheduled.is_empty()))
    {
        service.schedule.notify_one();
    }
    for ((d, r), slot) in decided.iter().zip(recorded).zip(slots) {
        let line = match r {
            Recorded::Duplicate => {
                service.metrics.duplicate();
                json!({"event_id": d.decision.event_id, "outcome": d.decision.outcome, "duplicate": true})
            }
            Recorded::New { tasks, .. } => {
                service.metrics.event(d.decision.outcome);
                for task in tasks {
                    start(service, task.id, task.provider, task.subject)?;
                }
                json!({"event_id": d.decision.event_id, "outcome": d.decision.outcome})
            }
        };
        if let Some(place) = lines.get_mut(slot) {
            *place = line;
        }
    }
    Ok(lines)
}

/// Starts a task unless it is executing already.
pub fn start(
    service: &Service,
    task: TaskId,
    provider: Provider,
    subject: String,
) -> anyhow::Result<()> {
    service
        .executor
        .start(task, provider, subject, service.done.clone())?;
    Ok(())
}

/// Resumes the journal's pending tasks that are not executing.
pub fn resume(service: &Service, pending: Vec<Task>) -> anyhow::Result<()> {
    for task in pending {
        start(service, task.id, task.provider, task.subject)?;
    }
    Ok(())
}

pub(super) fn internal(e: &anyhow::Error) -> Response {
    eprintln!("srs serve: internal error: {e:#}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "",
        "internal error; nothing of this request was acknowledged",
    )
}

/// `GET /v1/check`: 204 allow, 403 block with the decision.
async fn check(State(service): Shared, headers: HeaderMap) -> Response {
    if !authorized(&headers, service.tokens.check.as_ref()) {
        service.metrics.check("unauthorized");
        return unauthorized("GET /v1/check (the check token)");
    }
    let Some(user) = headers
        .get(&service.user_header)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        service.metrics.check("bad_request");
        return error(
            StatusCode::BAD_REQUEST,
            "missing-field",
            &format!("header {}", service.user_header_label),
            "the gate needs the user signing in",
        );
    };
    let device = headers
        .get(&service.device_header)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let gate = service.gate();
    match gate.check(user, device, unix_ms(SystemTime::now())) {
        Verdict::Allow => {
            service.metrics.check("allow");
            StatusCode::NO_CONTENT.into_response()
        }
        Verdict::Block(verdict) => {
            service.metrics.check("block");
            let mut body = json!({
                "access": "block",
                "device": verdict.device_id,
                "event_id": verdict.event_id,
                "outcome": verdict.outcome,
                "reasons": verdict.reasons,
            });
            // A grace period that ended: when it did.
            if let (Some(due), Some(fields)) = (verdict.due_ms, body.as_object_mut()) {
                fields.insert("due".into(), json!(rfc3339(due)));
            }
            blocked(&body)
        }
        Verdict::BlockUnknown => {
            service.metrics.check("block");
            let body = json!({
                "access": "block",
                "device": device,
                "event_id": null,
                "outcome": null,
                "reasons": [],
                "message": "no decision is known for this user or device, and [serve] unknown = \"block\"",
            });
            blocked(&body)
        }
    }
}

/// A 403 with the decision as the body, and again in the `X-SRS-Decision`
/// header (ASCII JSON) for gateways that cannot pass a check's body on
/// (nginx `auth_request`: see `examples/gateways/nginx.conf`).
fn blocked(body: &Value) -> Response {
    let text = body.to_string();
    let mut response = json_text(StatusCode::FORBIDDEN, text.clone());
    if let Ok(value) = HeaderValue::from_str(&ascii_json(&text)) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-srs-decision"), value);
    }
    response
}

/// JSON text with every non-ASCII character written as a `\u` escape: the
/// same JSON value, fit for a header.
fn ascii_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

pub(super) fn device_json(d: &DeviceVerdict, now_ms: i64) -> Value {
    json!({
        "device": d.device_id,
        "user": {"upn": d.upn, "email": d.email},
        "time_ms": d.order.0,
        "event_id": d.event_id,
        "outcome": d.outcome,
        "enforced": d.enforced,
        "access": d.access,
        "due": d.due_ms.map(rfc3339),
        "verdict": if d.blocks(now_ms) { "block" } else { "allow" },
        "reasons": d.reasons,
    })
}

/// `GET /v1/devices/{id}`: the device's latest decision.
async fn device(State(service): Shared, Path(id): Path<String>) -> Response {
    let gate = service.gate();
    match gate.device(&id) {
        Some(d) => axum::Json(device_json(d, unix_ms(SystemTime::now()))).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not-found",
            "device",
            "no event for this device has been journaled",
        ),
    }
}

/// `GET /v1/users/{subject}`: the user's devices and the gate's verdict.
async fn user(State(service): Shared, Path(subject): Path<String>) -> Response {
    let gate = service.gate();
    let now = unix_ms(SystemTime::now());
    let verdict = match gate.check(&subject, None, now) {
        Verdict::Allow => "allow",
        Verdict::Block(_) | Verdict::BlockUnknown => "block",
    };
    let devices: Vec<Value> = gate
        .user_devices(&subject)
        .into_iter()
        .map(|d| device_json(d, now))
        .collect();
    axum::Json(json!({"user": subject.to_lowercase(), "verdict": verdict, "devices": devices}))
        .into_response()
}

/// `PUT /v1/policy`: check in the sandbox, then switch; the old policy
/// stays in force on any failure.
async fn put_policy(State(service): Shared, body: Body) -> Response {
    let body = match read_body(&service, body).await {
        Ok(body) => body.to_vec(),
        Err(response) => return response,
    };
    let plugin = service.pool.plugin().clone();
    let checked = tokio::task::spawn_blocking(move || {
        let checked = check_policy(&plugin, &body);
        (body, checked)
    })
    .await;
    let (body, checked) = match checked {
        Ok((body, Ok(checked))) => (body, checked),
        Ok((_, Err(e))) => return internal(&e),
        Err(e) => return internal(&e.into()),
    };
    let (summary, answer) = match checked {
        Checked::Invalid { answer } => return json_text(StatusCode::BAD_REQUEST, answer),
        Checked::Valid { summary, answer } => (summary, answer),
    };
    if summary.mode == Mode::Enforce
        && let Some(missing) = summary
            .providers
            .iter()
            .find(|p| service.executor.clients().get(**p).is_none())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid-value",
            "policy.providers",
            &format!(
                "the host config has no usable [{missing}] section; add it and restart srs serve before enforcing this policy"
            ),
        );
    }
    let generation = service.pool.switch(body, summary);
    service.metrics.set_policy_generation(generation);
    json_text(StatusCode::OK, answer)
}

fn json_text(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// `GET /v1/status`: what `srs status` shows, as JSON.
async fn status(State(service): Shared) -> Response {
    let journal = service.journal.clone();
    let status = match tokio::task::spawn_blocking(move || journal.status()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return internal(&e.into()),
        Err(e) => return internal(&e.into()),
    };
    let policy = service.pool.policy();
    let task = |t: &Task| {
        json!({"id": t.id, "provider": t.provider, "subject": t.subject,
               "attempts": t.attempts, "events": t.events})
    };
    let body = json!({
        "policy": {"generation": policy.generation, "summary": policy.summary},
        "events": status.events,
        "dry_run_events": status.dry_run_events,
        "tasks": {
            "scheduled": status.tasks.scheduled, "pending": status.tasks.pending,
            "done": status.tasks.done, "failed": status.tasks.failed,
            "cancelled": status.tasks.cancelled,
        },
        "executing": service.executor.running(),
        "deliveries": {
            "scheduled": status.deliveries.scheduled, "pending": status.deliveries.pending,
            "done": status.deliveries.done, "failed": status.deliveries.failed,
            "cancelled": status.deliveries.cancelled,
        },
        "failed_deliveries": status.failed_deliveries.iter().map(|d| json!({
            "id": d.id, "receiver": d.receiver, "event_id": d.event_id,
            "http_status": d.http_status, "err": d.err, "message": d.message,
            "attempts": d.attempts,
        })).collect::<Vec<_>>(),
        "pending": status.pending.iter().map(task).collect::<Vec<_>>(),
        "scheduled": status.scheduled.iter().map(|t| json!({
            "id": t.id, "provider": t.provider, "subject": t.subject,
            "device": t.device_id, "due": rfc3339(t.due_ms), "due_ms": t.due_ms,
            "events": t.events,
        })).collect::<Vec<_>>(),
        "failed": status.failed.iter().map(|t| json!({
            "id": t.id, "provider": t.provider, "subject": t.subject,
            "http_status": t.http_status, "error_code": t.error_code,
            "provider_code": t.provider_code, "message": t.message,
            "attempts": t.attempts, "updated_ms": t.updated_ms, "events": t.events,
        })).collect::<Vec<_>>(),
    });
    axum::Json(body).into_response()
}

/// `GET /metrics`.
async fn metrics(State(service): Shared) -> Response {
    let journal = service.journal.clone();
    let tasks = tokio::task::spawn_blocking(move || journal.task_counts())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        service.metrics.render(tasks),
    )
        .into_response()
}

/// `GET /readyz`: the module answers and the journal reads.
async fn ready(State(service): Shared) -> Response {
    let journal = service.journal.clone();
    let journal_ok = tokio::task::spawn_blocking(move || journal.task_counts().is_ok())
        .await
        .unwrap_or(false);
    if journal_ok {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "",
            "the journal cannot be read",
        )
    }
}

/// Records a task's end in the metrics.
pub fn ended(service: &Service, ended: &Ended) {
    match &ended.end {
        Ok(end) => service.metrics.revocation(ended.provider, end.state),
        Err(e) => eprintln!("srs serve: task {}: {e:#}", ended.task),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_json_is_the_same_json() {
        let text = r#"{"m":"Lock Down ✓ 🔒","c":"a\u0001"}"#;
        let escaped = ascii_json(text);
        assert!(escaped.is_ascii(), "{escaped}");
        let a: Value = serde_json::from_str(text).unwrap();
        let b: Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(a, b);
        assert!(HeaderValue::from_str(&escaped).is_ok());
    }
}
