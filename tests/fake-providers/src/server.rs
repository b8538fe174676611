//! The shared server core: thread + runtime, accept loop, request pipeline, faults, counters.
//! What differs between providers (paths, token checks, bodies) is a [`Dialect`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot, watch};

use crate::Fault;

/// Largest request body read; a larger one is answered 400.
const MAX_BODY: usize = 64 * 1024;

/// Which endpoint a request path names.
pub(crate) enum Route {
    Token,
    /// The revoke endpoint, with the percent-decoded subject.
    Revoke(String),
    Unknown,
}

/// Why a bearer token was refused.
#[derive(Clone, Copy)]
pub(crate) enum AuthProblem {
    Missing,
    Unknown,
    Expired,
}

/// A provider API (not OAuth) error, rendered by the dialect.
pub(crate) enum ApiError<'a> {
    /// 401.
    Unauthenticated(AuthProblem),
    /// 404 for a user.
    UnknownUser(&'a str),
    /// 403 permission denied.
    Forbidden,
    /// 400 with a detail.
    BadRequest(&'a str),
    /// 404 for an unknown path.
    NoSuchPath,
    /// 405.
    MethodNotAllowed,
    /// 429.
    TooManyRequests,
    /// Google 403 `usageLimits`; Graph 429.
    Quota(&'a str),
    /// 503.
    Unavailable,
    /// Any other status.
    Other(u16),
}

impl<'a> ApiError<'a> {
    /// The error a `Fault::Status(status)` on the revoke endpoint for `subject` answers.
    fn for_status(status: u16, subject: &'a str) -> Self {
        match status {
            401 => Self::Unauthenticated(AuthProblem::Unknown),
            403 => Self::Forbidden,
            404 => Self::UnknownUser(subject),
            405 => Self::MethodNotAllowed,
            429 => Self::TooManyRequests,
            503 => Self::Unavailable,
            _ => Self::Other(status),
        }
    }
}

/// An HTTP answer: status, optional JSON body, extra headers.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Option<serde_json::Value>,
    /// A body sent as it is, with its content type, instead of JSON.
    pub raw: Option<(&'static str, &'static str)>,
    pub headers: Vec<(HeaderName, String)>,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            body: Some(body),
            raw: None,
            headers: Vec::new(),
        }
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            body: None,
            raw: None,
            headers: Vec::new(),
        }
    }

    /// Exactly these bytes, with this content type.
    pub fn raw(status: u16, content_type: &'static str, body: &'static str) -> Self {
        Self {
            raw: Some((content_type, body)),
            ..Self::empty(status)
        }
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn into_response(self, content_type: &'static str) -> Response<Full<Bytes>> {
        let (content_type, body) = match self.raw {
            Some((content_type, raw)) => (content_type, Bytes::from_static(raw.as_bytes())),
            None => (
                content_type,
                self.body
                    .map(|json| Bytes::from(json.to_string()))
                    .unwrap_or_default(),
            ),
        };
        let has_body = !body.is_empty();
        let mut response = Response::new(Full::new(body));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if has_body {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
        response
    }
}

/// What differs between providers.
pub(crate) trait Dialect: Send + Sync + 'static {
    /// The endpoint `path` names.
    fn route(&self, path: &str) -> Route;
    /// Content-Type of JSON bodies.
    fn content_type(&self) -> &'static str;
    /// Prefix of issued access tokens.
    fn token_prefix(&self) -> &'static str;
    /// Checks a token request (`path`, form fields); `Err` is the provider's OAuth error.
    fn check_token(&self, path: &str, form: &[(String, String)]) -> Result<(), Reply>;
    /// The token success body.
    fn token_success(&self, access_token: &str, expires_in: u64) -> serde_json::Value;
    /// An OAuth error for `status` on the token endpoint.
    fn token_error(&self, status: u16) -> Reply;
    /// A successful revocation.
    fn revoke_success(&self) -> Reply;
    /// A provider API error.
    fn api_error(&self, error: ApiError<'_>) -> Reply;
}

/// Everything behind the state mutex.
#[derive(Default)]
struct State {
    faults: VecDeque<Fault>,
    token_faults: VecDeque<Fault>,
    /// Issued tokens and when they expire.
    tokens: HashMap<String, Instant>,
    unknown_users: HashSet<String>,
    forbidden_users: HashSet<String>,
    applied: BTreeMap<String, u64>,
    applied_total: u64,
    revoke_requests: u64,
    token_requests: u64,
    tokens_issued: u64,
    stall_after: Option<u64>,
    latency: Duration,
}

impl State {
    fn stalled(&self) -> bool {
        self.stall_after.is_some_and(|n| self.applied_total >= n)
    }

    fn check_bearer(&self, authorization: Option<&str>) -> Result<(), AuthProblem> {
        let token = authorization
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(AuthProblem::Missing)?;
        match self.tokens.get(token) {
            None => Err(AuthProblem::Unknown),
            Some(expiry) if *expiry <= Instant::now() => Err(AuthProblem::Expired),
            Some(_) => Ok(()),
        }
    }
}

struct Shared {
    dialect: Box<dyn Dialect>,
    token_expires_in: u64,
    state: Mutex<State>,
    /// Notified whenever a revocation is applied.
    applied_changed: Condvar,
    /// Bumped by `release()`; stalled requests wait for a change.
    released: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The provider-independent part of a fake server; [`crate::FakeOffice365`] and
/// [`crate::FakeGoogle`] dereference to it. All methods take `&self` and may be called from
/// any thread while requests are being served. Dropping it stops the server.
pub struct FakeServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Binds `127.0.0.1:0` and serves `dialect` (built from the base URL) on a new thread.
    pub(crate) fn start(
        token_expires_in: u64,
        dialect: impl FnOnce(&str) -> anyhow::Result<Box<dyn Dialect>>,
    ) -> anyhow::Result<Self> {
        let listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let dialect = dialect(&format!("http://{addr}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-provider-worker")
            .enable_all()
            .build()
            .context("building the server runtime")?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared {
            dialect,
            token_expires_in,
            state: Mutex::new(State::default()),
            applied_changed: Condvar::new(),
            released: watch::Sender::new(0),
        });
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("fake-provider-{}", addr.port()))
            .spawn({
                let shared = Arc::clone(&shared);
                move || {
                    runtime.block_on(accept_loop(listener, shared, shutdown_rx));
                    runtime.shutdown_timeout(Duration::from_secs(1));
                }
            })
            .context("spawning the server thread")?;
        Ok(Self {
            shared,
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues faults for the revoke endpoint: each revoke request pops the front one, if any.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().faults.extend(faults);
    }

    /// Queues faults for the token endpoint: each token request pops the front one, if any.
    pub fn push_token_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.lock().token_faults.extend(faults);
    }

    /// How many revoke faults are still queued.
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.len()
    }

    /// From now on, revoking `subject` (the decoded path segment, compared exactly) always
    /// answers 404 (Graph `Request_ResourceNotFound`, Google `notFound`).
    pub fn unknown_user(&self, subject: impl Into<String>) {
        self.shared.lock().unknown_users.insert(subject.into());
    }

    /// From now on, revoking `subject` always answers 403 permission denied (Graph
    /// `Authorization_RequestDenied`, Google `forbidden`).
    pub fn forbid_user(&self, subject: impl Into<String>) {
        self.shared.lock().forbidden_users.insert(subject.into());
    }

    /// Once `n` revocations have been applied in total (counted since start), every further
    /// revoke request blocks without applying until [`release`](Self::release).
    pub fn stall_after(&self, n: u64) {
        self.shared.lock().stall_after = Some(n);
    }

    /// Ends a stall: blocked requests answer 503 without applying, new ones behave normally.
    pub fn release(&self) {
        self.shared.lock().stall_after = None;
        self.shared
            .released
            .send_modify(|generation| *generation += 1);
    }

    /// Delay applied to every revoke request before it is handled (default zero).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// How many times a revocation for `subject` was applied (answered 2xx).
    pub fn applied(&self, subject: &str) -> u64 {
        self.shared
            .lock()
            .applied
            .get(subject)
            .copied()
            .unwrap_or(0)
    }

    /// Revocations applied in total.
    pub fn applied_total(&self) -> u64 {
        self.shared.lock().applied_total
    }

    /// Applied revocations per subject.
    pub fn applied_subjects(&self) -> BTreeMap<String, u64> {
        self.shared.lock().applied.clone()
    }

    /// Requests to the revoke path, whatever their outcome (faulted, invalid, stalled, ...).
    pub fn revoke_requests(&self) -> u64 {
        self.shared.lock().revoke_requests
    }

    /// Requests to the token path, whatever their outcome.
    pub fn token_requests(&self) -> u64 {
        self.shared.lock().token_requests
    }

    /// Access tokens issued.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.lock().tokens_issued
    }

    /// Blocks until at least `n` revocations have been applied in total or `timeout` passes;
    /// returns whether `n` was reached.
    pub fn wait_for_applied(&self, n: u64, timeout: Duration) -> bool {
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .applied_changed
            .wait_timeout_while(state, timeout, |state| state.applied_total < n)
            .unwrap_or_else(PoisonError::into_inner);
        state.applied_total >= n
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(Arc::clone(&shared), stream));
                }
                // E.g. out of file descriptors: back off briefly.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
        }
    }
}

/// Serves one keep-alive connection; a request answered [`Outcome::Reset`] ends it with an RST.
async fn serve_connection(shared: Arc<Shared>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(Notify::new());
    let service = {
        let reset = Arc::clone(&reset);
        service_fn(move |request| respond(Arc::clone(&shared), request, Arc::clone(&reset)))
    };
    let was_reset = {
        let connection = http1::Builder::new().serve_connection(TokioIo::new(&mut stream), service);
        tokio::select! {
            _ = connection => false,
            () = reset.notified() => true,
        }
    };
    if was_reset {
        // Linger zero: closing sends an RST instead of a FIN, and does not block.
        #[expect(
            deprecated,
            reason = "SO_LINGER zero is exactly what a reset needs; it does not block"
        )]
        let _ = stream.set_linger(Some(Duration::ZERO));
    }
}

enum Outcome {
    Reply(Reply),
    /// Close the connection without a response.
    Reset,
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        Self::Reply(reply)
    }
}

async fn respond(
    shared: Arc<Shared>,
    request: Request<Incoming>,
    reset: Arc<Notify>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let outcome = match shared.dialect.route(request.uri().path()) {
        Route::Token => token(&shared, request).await,
        Route::Revoke(subject) => revoke(&shared, request, &subject).await,
        Route::Unknown => shared.dialect.api_error(ApiError::NoSuchPath).into(),
    };
    match outcome {
        Outcome::Reply(reply) => Ok(reply.into_response(shared.dialect.content_type())),
        Outcome::Reset => {
            reset.notify_one();
            std::future::pending().await
        }
    }
}

/// Reads the whole body; `None` if it cannot be read or is too large.
async fn read_body(body: Incoming) -> Option<Bytes> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .ok()
        .map(|collected| collected.to_bytes())
}

async fn token(shared: &Shared, request: Request<Incoming>) -> Outcome {
    shared.lock().token_requests += 1;
    let dialect = &*shared.dialect;
    let (parts, body) = request.into_parts();
    let body = read_body(body).await;
    if parts.method != Method::POST {
        return dialect
            .token_error(405)
            .header(header::ALLOW, "POST")
            .into();
    }
    let fault = shared.lock().token_faults.pop_front();
    let mut expires_in = shared.token_expires_in;
    if let Some(fault) = fault {
        let (status, retry_after) = match fault {
            Fault::ExpiresIn(seconds) => {
                expires_in = seconds;
                (200, None)
            }
            Fault::Body {
                status,
                content_type,
                body,
            } => return Reply::raw(status, content_type, body).into(),
            Fault::TooManyRequests { retry_after } => (429, retry_after),
            Fault::Unavailable { retry_after } => (503, retry_after),
            Fault::Redirect { .. } => (503, None),
            Fault::ExpiredToken => (401, None),
            Fault::QuotaExceeded { .. } => (429, None),
            Fault::Slow(delay) => {
                tokio::time::sleep(delay).await;
                (503, None)
            }
            Fault::Reset => return Outcome::Reset,
            Fault::Status(status) => (status, None),
        };
        if status != 200 {
            let reply = dialect.token_error(status);
            return match retry_after {
                Some(retry_after) => reply.header(header::RETRY_AFTER, retry_after.header_value()),
                None => reply,
            }
            .into();
        }
    }
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    // Like the providers, a body that is not a form reads as no parameters at all.
    let form = match (&body, is_form) {
        (Some(body), true) => parse_form(body),
        _ => Vec::new(),
    };
    if let Err(reply) = dialect.check_token(parts.uri.path(), &form) {
        return reply.into();
    }
    let access_token = format!("{}{}", dialect.token_prefix(), random_hex(32));
    {
        let mut state = shared.lock();
        // A lifetime past what an Instant can hold lasts as long as the server.
        let now = Instant::now();
        let expiry = now
            .checked_add(Duration::from_secs(expires_in))
            .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        state.tokens.insert(access_token.clone(), expiry);
        state.tokens_issued += 1;
    }
    Reply::json(200, dialect.token_success(&access_token, expires_in))
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .into()
}

async fn revoke(shared: &Shared, request: Request<Incoming>, subject: &str) -> Outcome {
    let latency = {
        let mut state = shared.lock();
        state.revoke_requests += 1;
        state.latency
    };
    let dialect = &*shared.dialect;
    let (parts, body) = request.into_parts();
    let body = read_body(body).await;
    if parts.method != Method::POST {
        return dialect
            .api_error(ApiError::MethodNotAllowed)
            .header(header::ALLOW, "POST")
            .into();
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // A stalled request never applies, not even after release.
    if !apply_unless_stalled(shared, None).await {
        return dialect.api_error(ApiError::Unavailable).into();
    }
    let fault = shared.lock().faults.pop_front();
    if let Some(fault) = fault {
        return revoke_fault(shared, fault, subject, parts.uri.path()).await;
    }
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let checked = {
        let state = shared.lock();
        if let Err(problem) = state.check_bearer(authorization) {
            Err(ApiError::Unauthenticated(problem))
        } else if body.is_none() {
            Err(ApiError::BadRequest("The request body could not be read."))
        } else if body.as_ref().is_some_and(|body| !body.is_empty()) {
            Err(ApiError::BadRequest("The request body must be empty."))
        } else if state.unknown_users.contains(subject) {
            Err(ApiError::UnknownUser(subject))
        } else if state.forbidden_users.contains(subject) {
            Err(ApiError::Forbidden)
        } else {
            Ok(())
        }
    };
    if let Err(error) = checked {
        return dialect.api_error(error).into();
    }
    if apply_unless_stalled(shared, Some(subject)).await {
        dialect.revoke_success().into()
    } else {
        dialect.api_error(ApiError::Unavailable).into()
    }
}

/// If a stall is in force, waits for `release()` and returns false. Otherwise applies the
/// revocation for `subject` (if any) atomically with the check, and returns true.
async fn apply_unless_stalled(shared: &Shared, subject: Option<&str>) -> bool {
    // Subscribing first marks the current generation seen, so a release racing with the
    // check below still wakes us.
    let mut released = shared.released.subscribe();
    {
        let mut state = shared.lock();
        if !state.stalled() {
            if let Some(subject) = subject {
                *state.applied.entry(subject.to_owned()).or_default() += 1;
                state.applied_total += 1;
                shared.applied_changed.notify_all();
            }
            return true;
        }
    }
    let _ = released.changed().await;
    false
}

/// The answer of the revoke endpoint at `path` for `subject` to `fault`.
async fn revoke_fault(shared: &Shared, fault: Fault, subject: &str, path: &str) -> Outcome {
    let dialect = &*shared.dialect;
    let (error, retry_after) = match fault {
        Fault::TooManyRequests { retry_after } => (ApiError::TooManyRequests, retry_after),
        Fault::Unavailable { retry_after } => (ApiError::Unavailable, retry_after),
        Fault::ExpiredToken => {
            let now = Instant::now();
            for expiry in shared.lock().tokens.values_mut() {
                *expiry = (*expiry).min(now);
            }
            (ApiError::Unauthenticated(AuthProblem::Expired), None)
        }
        Fault::QuotaExceeded { reason } => (ApiError::Quota(reason), None),
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            (ApiError::Unavailable, None)
        }
        Fault::Reset => return Outcome::Reset,
        Fault::Status(status) => (ApiError::for_status(status, subject), None),
        Fault::ExpiresIn(_) => (ApiError::Unavailable, None),
        // Back to the same endpoint: a client that follows it calls again.
        Fault::Redirect { status } => {
            return Reply::raw(status, "text/plain", "")
                .header(header::LOCATION, path)
                .into();
        }
        Fault::Body {
            status,
            content_type,
            body,
        } => return Reply::raw(status, content_type, body).into(),
    };
    let reply = dialect.api_error(error);
    match retry_after {
        Some(retry_after) => reply.header(header::RETRY_AFTER, retry_after.header_value()),
        None => reply,
    }
    .into()
}

/// Parses an `application/x-www-form-urlencoded` body.
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name, true), percent_decode(value, true))
        })
        .collect()
}

/// The first value of form field `name`.
pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.as_str())
}

/// Decodes `%XX` escapes (and `+` as a space if `plus_as_space`); malformed escapes stay as they
/// are, invalid UTF-8 becomes U+FFFD.
pub(crate) fn percent_decode(text: &str, plus_as_space: bool) -> String {
    let bytes = text.as_bytes();
    let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match (byte, hex(at + 1), hex(at + 2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.extend(u8::try_from(high * 16 + low).ok());
                at += 3;
                continue;
            }
            (b'+', _, _) if plus_as_space => decoded.push(b' '),
            _ => decoded.push(byte),
        }
        at += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// `len` random lowercase hex digits.
pub(crate) fn random_hex(len: usize) -> String {
    (0..len).map(|_| fastrand::digit(16)).collect()
}

/// A random (version 4 shaped) UUID.
pub(crate) fn random_uuid() -> String {
    format!(
        "{}-{}-4{}-{}-{}",
        random_hex(8),
        random_hex(4),
        random_hex(3),
        random_hex(4),
        random_hex(12)
    )
}

/// `now` in UTC as `YYYY-MM-DDTHH:MM:SS`.
pub(crate) fn iso_datetime(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let (hour, minute, second) = (rem / 3600, rem / 60 % 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_datetime_matches_known_instants() {
        let at = |secs| iso_datetime(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("alice%40example.com", false),
            "alice@example.com"
        );
        assert_eq!(percent_decode("a%2Fb+c", false), "a/b+c");
        assert_eq!(percent_decode("a+b%2", true), "a b%2");
        assert_eq!(percent_decode("%E2%9C%93%zz", false), "\u{2713}%zz");
    }
}
