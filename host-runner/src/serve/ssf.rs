//! Shared Signals in `srs serve` (SPEC §11): announcing revocations to
//! receivers, discovery, the SSF stream-management endpoints, and
//! `POST /v1/ssf/push` for transmitters.
//!
//! Streams a receiver registers are journaled (they survive a restart) and
//! become receivers while `enabled`. A stream's delivery carries no
//! credential: the journal keeps no secret, so a receiver that needs an
//! `Authorization` header is configured in `[[ssf.receivers]]` with
//! `authorization_env` instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use policy_core::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api::{self, Service};
use crate::config::{RetryConfig, Secret, SsfConfig};
use crate::journal::Journal;
use crate::revocation::intake::{Announcement, Decided};
use crate::revocation::{self, unix_ms};
use crate::ssf::{
    Courier, PUSH_METHOD, Receiver, Receivers, SESSION_REVOKED, Signer, Status, Transmitters,
};

/// Shared Signals as `srs serve` runs it.
#[derive(Debug)]
pub struct Ssf {
    pub courier: Arc<Courier>,
    transmitters: Transmitters,
    issuer: String,
    skew_s: u64,
    stream_token: Option<Secret>,
    /// The registered streams, by id.
    streams: Mutex<BTreeMap<String, Stream>>,
}

/// A stream's configuration (SSF 1.0 §8.1.1), with its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stream {
    stream_id: String,
    iss: String,
    aud: String,
    delivery: PushDelivery,
    events_supported: Vec<String>,
    events_requested: Vec<String>,
    events_delivered: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// `enabled`, `paused` or `disabled` (read and set at `/ssf/status`).
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PushDelivery {
    method: String,
    endpoint_url: String,
}

impl Stream {
    /// The stream as a receiver, if it takes `session-revoked` SETs.
    fn receiver(&self) -> Option<Receiver> {
        if !self.events_delivered.iter().any(|e| e == SESSION_REVOKED) {
            return None;
        }
        Some(Receiver {
            endpoint: crate::config::base_url("endpoint_url", &self.delivery.endpoint_url).ok()?,
            audience: self.aud.clone(),
            authorization: None,
            status: match self.status.as_str() {
                "enabled" => Status::Enabled,
                "paused" => Status::Paused,
                _ => Status::Disabled,
            },
        })
    }

    /// The configuration as receivers see it (the status has its own endpoint).
    fn public(&self) -> Value {
        let mut out = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = out.as_object_mut() {
            fields.remove("status");
        }
        out
    }
}

type Shared = State<Arc<Service>>;

impl Ssf {
    /// Reads the key, the transmitters' keys, the receivers' credentials and
    /// the journaled streams. Paths are relative to the config's `dir`.
    pub fn start(
        config: &SsfConfig,
        dir: &std::path::Path,
        journal: Arc<dyn Journal>,
        retry: RetryConfig,
    ) -> Result<Self> {
        let signer = Signer::load(&dir.join(&config.signing_key_file), &config.key_id)?;
        let transmitters = Transmitters::load(&config.transmitters, dir)?;
        let receivers = Receivers::default();
        for (i, r) in config.receivers.iter().enumerate() {
            let authorization = super::secret_from_env(
                r.authorization_env.as_deref(),
                &format!("ssf.receivers[{i}].authorization_env"),
            )?;
            receivers.insert(
                r.endpoint.clone(),
                Receiver {
                    endpoint: crate::config::base_url(
                        &format!("ssf.receivers[{i}].endpoint"),
                        &r.endpoint,
                    )?,
                    audience: r.audience.clone(),
                    authorization,
                    status: Status::Enabled,
                },
            );
        }
        let mut streams = BTreeMap::new();
        for (id, text) in journal.streams()? {
            let stream: Stream = serde_json::from_str(&text)
                .with_context(|| format!("the journaled SSF stream {id} is unreadable"))?;
            if let Some(receiver) = stream.receiver() {
                receivers.insert(stream_key(&id), receiver);
            }
            streams.insert(id, stream);
        }
        let stream_token =
            super::secret_from_env(config.stream_token_env.as_deref(), "ssf.stream_token_env")?;
        let courier = Courier::new(
            journal,
            Arc::new(signer),
            config.issuer.clone(),
            Arc::new(receivers),
            retry,
        )?;
        Ok(Self {
            courier: Arc::new(courier),
            transmitters,
            issuer: config.issuer.clone(),
            skew_s: config.max_clock_skew_s,
            stream_token,
            streams: Mutex::new(streams),
        })
    }

    /// One `session-revoked` SET per receiver not disabled for an enforced
    /// `revoke` or `grace` decision (a `grace`'s wait with its revocations).
    pub fn announcements(&self, d: &Decided, received_ms: i64) -> Vec<Announcement> {
        let decision = &d.decision;
        let event_ms = match decision.outcome {
            Outcome::Revoke => d.facts.as_ref().map(|f| f.time_or(received_ms)),
            Outcome::Grace => revocation::intake::due_ms(decision),
            Outcome::NoAction | Outcome::Unsupported => None,
        };
        let (Some(facts), Some(event_ms), true) = (&d.facts, event_ms, decision.enforced) else {
            return Vec::new();
        };
        let Some(user) = facts.email.as_ref().or(facts.upn.as_ref()) else {
            return Vec::new();
        };
        let rules: Vec<&str> = decision.reasons.iter().map(|r| r.rule.as_str()).collect();
        let reason = format!(
            "SRS policy revoked the sessions: device {} is out of compliance ({})",
            facts.device_id,
            rules.join(", ")
        );
        self.courier
            .receivers()
            .taking()
            .into_iter()
            .map(|receiver| Announcement {
                receiver,
                jti: format!("{:032x}", fastrand::u128(..)),
                user: user.clone(),
                device_id: facts.device_id.clone(),
                event_ms,
                reason: reason.clone(),
            })
            .collect()
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Stream>> {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn stream_key(id: &str) -> String {
    format!("stream:{id}")
}

/// The SSF routes: discovery and JWKS (open), push (SETs authenticate
/// themselves), stream management (the stream token).
pub fn routes(service: &Arc<Service>) -> Router<Arc<Service>> {
    let streams = Router::new()
        .route(
            "/ssf/stream",
            get(read_stream)
                .post(create_stream)
                .patch(update_stream)
                .put(replace_stream)
                .delete(delete_stream),
        )
        .route("/ssf/status", get(read_status).post(update_status))
        .route("/ssf/verify", post(verify))
        .route_layer(from_fn_with_state(service.clone(), stream_token));
    Router::new()
        .route("/.well-known/ssf-configuration", get(configuration))
        .route("/jwks.json", get(jwks))
        .route("/v1/ssf/push", post(push))
        .merge(streams)
}

fn off() -> Response {
    api::error(
        StatusCode::NOT_FOUND,
        "not-found",
        "",
        "Shared Signals are not configured ([ssf] in the host config)",
    )
}

/// Lets through requests with the stream token; without one configured,
/// stream management is off.
async fn stream_token(State(service): Shared, request: Request, next: Next) -> Response {
    let Some(ssf) = &service.ssf else {
        return off();
    };
    let Some(token) = &ssf.stream_token else {
        return api::error(
            StatusCode::NOT_FOUND,
            "not-found",
            "",
            "stream management is off: set [ssf] stream_token_env",
        );
    };
    if api::authorized(request.headers(), Some(token)) {
        next.run(request).await
    } else {
        api::unauthorized("SSF stream management")
    }
}

/// `GET /.well-known/ssf-configuration` (SSF 1.0 §7.1).
async fn configuration(State(service): Shared) -> Response {
    let Some(ssf) = &service.ssf else {
        return off();
    };
    let base = ssf.issuer.trim_end_matches('/');
    let mut metadata = json!({
        "spec_version": "1_0",
        "issuer": ssf.issuer,
        "jwks_uri": format!("{base}/jwks.json"),
        "delivery_methods_supported": [PUSH_METHOD],
        "default_subjects": "ALL",
    });
    if ssf.stream_token.is_some()
        && let Some(fields) = metadata.as_object_mut()
    {
        for (key, path) in [
            ("configuration_endpoint", "/ssf/stream"),
            ("status_endpoint", "/ssf/status"),
            ("verification_endpoint", "/ssf/verify"),
        ] {
            fields.insert(key.into(), json!(format!("{base}{path}")));
        }
        fields.insert(
            "authorization_schemes".into(),
            json!([{"spec_urn": "urn:ietf:rfc:6750"}]),
        );
    }
    axum::Json(metadata).into_response()
}

/// `GET /jwks.json`: our public key.
async fn jwks(State(service): Shared) -> Response {
    match &service.ssf {
        Some(ssf) => axum::Json(ssf.courier.signer().jwks()).into_response(),
        None => off(),
    }
}

/// An RFC 8935 refusal: 400 with `{"err", "description"}`.
fn refused(err: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"err": err, "description": description})),
    )
        .into_response()
}

/// `POST /v1/ssf/push`: a SET from a configured transmitter (RFC 8935).
async fn push(State(service): Shared, headers: HeaderMap, body: Body) -> Response {
    let Some(ssf) = &service.ssf else {
        return off();
    };
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some("application/secevent+jwt") {
        return refused(
            "invalid_request",
            "send the SET as application/secevent+jwt",
        );
    }
    let body = match api::read_body(&service, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Ok(token) = std::str::from_utf8(&body) else {
        return refused("invalid_request", "the body is not UTF-8");
    };
    let now = unix_ms(SystemTime::now()).div_euclid(1000);
    let incoming = match ssf.transmitters.verify(token, &ssf.issuer, now, ssf.skew_s) {
        Ok(incoming) => incoming,
        Err(refusal) => {
            eprintln!(
                "srs serve: SSF push refused ({}): {}",
                refusal.err, refusal.description
            );
            return refused(refusal.err, &refusal.description);
        }
    };
    let Some(change) = &incoming.change else {
        eprintln!(
            "srs serve: SSF event {} from {} accepted and ignored (type {})",
            crate::clip(&incoming.jti, 64),
            incoming.issuer,
            crate::clip(&incoming.event_type, 128)
        );
        return StatusCode::ACCEPTED.into_response();
    };
    let event = match change.event(&incoming) {
        Ok(event) => event,
        Err(e) => return refused("invalid_request", &format!("{e:#}")),
    };
    let (results, took) = match service.pool.decide(vec![event]).await {
        Ok(decided) => decided,
        Err(e) => return api::internal(&e),
    };
    service.metrics.decided(results.len(), took);
    if let Some(Err(errors)) = results.first() {
        service.metrics.rejected();
        let why: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return refused("invalid_request", &why.join("; "));
    }
    match api::accept(&service, vec![1], results).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => api::internal(&e),
    }
}

/// What a receiver sends to create or change a stream (SSF 1.0 §8.1.1).
#[derive(Debug, Deserialize)]
struct StreamRequest {
    stream_id: Option<String>,
    delivery: Option<Delivery>,
    events_requested: Option<Vec<String>>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delivery {
    method: String,
    endpoint_url: Option<String>,
    authorization_header: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    stream_id: Option<String>,
}

fn stream_error(status: StatusCode, message: &str) -> Response {
    api::error(status, "invalid-value", "", message)
}

/// Reads a JSON body for the stream endpoints; `what` names it in the 400.
async fn json_body<T: serde::de::DeserializeOwned>(
    service: &Service,
    body: Body,
    what: &str,
) -> Result<T, Response> {
    let bytes = api::read_body(service, body).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        api::error(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "",
            &format!("not {what}: {e}"),
        )
    })
}

/// The events this transmitter sends: `session-revoked`, and the
/// verification event every stream carries.
fn delivered(requested: &[String]) -> Vec<String> {
    requested
        .iter()
        .filter(|e| *e == SESSION_REVOKED)
        .cloned()
        .collect()
}

/// Applies a request to a stream (`base` for a new one: `None`); `Err` is
/// why it is refused.
fn configure(
    ssf: &Ssf,
    id: &str,
    base: Option<Stream>,
    request: StreamRequest,
) -> Result<Stream, String> {
    let (delivery, aud) = match (request.delivery, &base) {
        (Some(delivery), _) => {
            if delivery.method != PUSH_METHOD {
                return Err(format!(
                    "delivery.method must be {PUSH_METHOD} (push); poll is not offered"
                ));
            }
            if delivery.authorization_header.is_some() {
                return Err("srs keeps no credential in its journal: configure a receiver that \
                            needs an Authorization header in [[ssf.receivers]] with authorization_env"
                    .into());
            }
            let endpoint = delivery
                .endpoint_url
                .ok_or("delivery.endpoint_url is required for push")?;
            let url = crate::config::base_url("delivery.endpoint_url", &endpoint)
                .map_err(|e| format!("{e:#}"))?;
            let aud = url.origin().ascii_serialization();
            (
                PushDelivery {
                    method: PUSH_METHOD.into(),
                    endpoint_url: endpoint,
                },
                aud,
            )
        }
        (None, Some(base)) => (base.delivery.clone(), base.aud.clone()),
        (None, None) => {
            return Err(
                "delivery is required: {\"method\": \"urn:ietf:rfc:8935\", \"endpoint_url\": …}"
                    .into(),
            );
        }
    };
    let requested = match (request.events_requested, &base) {
        (Some(requested), _) => requested,
        (None, Some(base)) => base.events_requested.clone(),
        (None, None) => Vec::new(),
    };
    Ok(Stream {
        stream_id: id.to_owned(),
        iss: ssf.issuer.clone(),
        aud,
        delivery,
        events_supported: vec![SESSION_REVOKED.into()],
        events_delivered: delivered(&requested),
        events_requested: requested,
        description: request
            .description
            .or_else(|| base.as_ref().and_then(|b| b.description.clone())),
        status: base.map_or_else(|| "enabled".into(), |b| b.status),
    })
}

/// Journals a stream and makes it (or stops it being) a receiver.
async fn save(service: &Arc<Service>, ssf: &Ssf, stream: &Stream) -> Result<(), Response> {
    let journal = service.journal.clone();
    let id = stream.stream_id.as_str();
    let text = serde_json::to_string(stream).map_err(|e| api::internal(&e.into()))?;
    let key = id.to_owned();
    let now = unix_ms(SystemTime::now());
    tokio::task::spawn_blocking(move || journal.put_stream(&key, &text, now))
        .await
        .map_err(|e| api::internal(&e.into()))?
        .map_err(|e| api::internal(&e.into()))?;
    match stream.receiver() {
        Some(receiver) => ssf.courier.receivers().insert(stream_key(id), receiver),
        None => ssf.courier.receivers().remove(&stream_key(id)),
    }
    ssf.streams().insert(id.to_owned(), stream.clone());
    ssf.courier.wake();
    Ok(())
}

/// `POST /ssf/stream`: a receiver registers itself.
async fn create_stream(State(service): Shared, body: Body) -> Response {
    let Some(ssf) = &service.ssf else {
        return off();
    };
    let request = match json_body::<StreamRequest>(&service, body, "a stream configuration").await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let id = format!("{:032x}", fastrand::u128(..));
    let stream = match configure(ssf, &id, None, request) {
        Ok(stream) => stream,
        Err(why) => return stream_error(StatusCode::BAD_REQUEST, &why),
    };
    if let Err(response) = save(&service, ssf, &stream).await {
        return response;
    }
    (StatusCode::CREATED, axum::Json(stream.public())).into_response()
}

fn no_stream(id: &str) -> Response {
    api::error(
        StatusCode::NOT_FOUND,
        "not-found",
        "stream_id",
        &format!("no stream `{}`", crate::clip(id, 64)),
    )
}

/// `GET /ssf/stream[?stream_id=…]`: one stream, or all of them.
async fn read_stream(State(service): Shared, Query(query): Query<StreamQuery>) -> Response {
    let Some(ssf) = &service.ssf else {
        return off();
    };
    let streams = ssf.streams();
    match query.stream_id {
        Some(id) => match streams.get(&id) {
            Some(stream) => axum::Json(stream.public()).into_response(),
            None => no_stream(&id),
        },
        None => {
            axum::Json(streams.values().map(Stream::public).collect::<Vec<_>>()).into_response()
        }
    }
}

/// `PATCH /ssf/stream`: changes the fields given.
async fn update_stream(State(service): Shared, body: Body) -> Response {
    change_stream(service, body, false).await
}

/// `PUT /ssf/stream`: replaces the receiver-supplied fields.
async fn replace_stream(State(service): Shared, body: Body) -> Response {
    change_stream(service, body, true).await
}

async fn change_stream(service: Arc<Service>, body: Body, replace: bool) -> Response {
    let Some(ssf) = &service.ssf else {
        return off();
    };
    let request = match json_body::<StreamRequest>(&service, body, "a stream configuration").await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let Some(id) = request.stream_id.clone() else {
        return api::error(
            StatusCode::BAD_REQUEST,
            "missing-field",
            "stream_id",
            "stream_id is required",
        );
    };
    let Some(current) = ssf.streams().get(&id).cloned() else {
        return no_stream(&id);
    };
    // PUT replaces what the receiver supplies: unsent fields start afresh.
    let base = if replace {
        Stream {
            events_requested: Vec::new(),
            description: None,
            ..current
        }
    } else {
        current
    };
    let stream = match configure(ssf, &id, Some(base), request) {
        Ok(stream) => stream,
        Err(why) => return stream_error(StatusCode::BAD_REQUEST, &why),
    };
    if let Err(response) = save(&service, ssf, &stream).await {
        return response;
    }
    axum::Json(stream.public()).into_response()
}

/// `DELETE /ssf/stream?stream_id=…`: 204; nothing more is sent to it.
async fn delete_stream(State(service): Shared, Query(query): Query<StreamQuery>) -> Response {
    let Some(ssf) = &service.ssf else {
        return off();
    };
    let Some(id) = query.stream_id else {
        return api::error(
            StatusCode::BAD_REQUEST,
            "missing-field",
            "stream_id",
            "stream_id is required",
        );
    };
    let journal = service.journal.clone();
    let key = id.clone();
    match tokio::task::spawn_blocking(move || journal.delete_stream(&key)).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return no_stream(&id),
        Ok(Err(e)) => return api::internal(&e.into()),
        Err(e) => return api::internal(&e.into()),
    }
    ssf.streams().remove(&id);
    ssf.courier.receivers().remove(&stream_key(&id));
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /ssf/status?stream_id=…` (SSF 1.0 §8.1.2).
async fn read_status(State(service): Shared, Query(query): Query<StreamQuery>) -> Response {
    let Some(ssf) = &service.ssf else {
        return off();
    };
    let id = query.stream_id.unwrap_or_default();
    match ssf.streams().get(&id) {
        Some(stream) => {
            axum::Json(json!({"stream_id": id, "status": stream.status})).into_response()
        }
        None => no_stream(&id),
    }
}

#[derive(Debug, Deserialize)]
struct StatusRequest {
    stream_id: String,
    status: String,
    reason: Option<String>,
}

/// `POST /ssf/status`: `enabled`, `paused` (SETs are held: journaled, sent
/// when enabled again) or `disabled` (nothing is journaled for it).
async fn update_status(State(service): Shared, body: Body) -> Response {
    let Some(ssf) = &service.ssf else {
        return off();
    };
    let request: StatusRequest = match json_body(&service, body, "a stream status").await {
        Ok(request) => request,
        Err(response) => return response,
    };
    if !["enabled", "paused", "disabled"].contains(&request.status.as_str()) {
        return api::error(
            StatusCode::BAD_REQUEST,
            "invalid-value",
            "status",
            "status is one of `enabled`, `paused`, `disabled`",
        );
    }
    let Some(mut stream) = ssf.streams().get(&request.stream_id).cloned() else {
        return no_stream(&request.stream_id);
    };
    stream.status.clone_from(&request.status);
    if let Err(response) = save(&service, ssf, &stream).await {
        return response;
    }
    let mut answer = json!({"stream_id": request.stream_id, "status": request.status});
    if let (Some(reason), Some(fields)) = (request.reason, answer.as_object_mut()) {
        fields.insert("reason".into(), json!(reason));
    }
    axum::Json(answer).into_response()
}

#[derive(Debug, Deserialize)]
struct VerifyRequest {
    stream_id: String,
    state: Option<String>,
}

/// `POST /ssf/verify` (SSF 1.0 §8.1.4): 204, then one verification SET to
/// the stream's endpoint (not journaled: the receiver asks again if it is lost).
async fn verify(State(service): Shared, body: Body) -> Response {
    let Some(ssf) = &service.ssf else {
        return off();
    };
    let request: VerifyRequest = match json_body(&service, body, "a verification request").await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let Some(receiver) = ssf.courier.receivers().get(&stream_key(&request.stream_id)) else {
        return no_stream(&request.stream_id);
    };
    let iat = unix_ms(SystemTime::now()).div_euclid(1000);
    let jti = format!("{:032x}", fastrand::u128(..));
    let claims = crate::ssf::verification(
        &ssf.issuer,
        &receiver.audience,
        iat,
        &jti,
        &request.stream_id,
        request.state.as_deref(),
    );
    let set = match ssf.courier.signer().sign(&claims) {
        Ok(set) => set,
        Err(e) => return api::internal(&e),
    };
    let courier = ssf.courier.clone();
    tokio::spawn(async move {
        if let Err(e) = courier.send_once(&receiver, set).await {
            eprintln!("srs serve: SSF verification event not delivered: {e:#}");
        }
    });
    StatusCode::NO_CONTENT.into_response()
}
