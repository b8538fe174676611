//! What every provider's calls share: one [`Client`] per provider with a
//! bearer token cached until shortly before it expires and shared by every
//! concurrent call, a concurrency limit, an optional requests-per-second pace,
//! a timeout on every request, and bounded reads of whatever comes back.
//!
//! Numbers from the provider are bounded before use: a body is read up to
//! [`MAX_BODY_BYTES`], a token's `expires_in` is clamped to
//! [`MAX_TOKEN_LIFETIME`], and no time arithmetic can overflow.

use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use serde::Deserialize;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use super::{Api, ApiError, Endpoint, Exchange};
use crate::config::{CallLimits, Secret};
use crate::journal::MAX_MESSAGE_BYTES;

/// The most srs reads of any provider answer; the rest is not read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest a token is kept, whatever its `expires_in` says.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The lifetime assumed when a token answer gives none.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// A token is replaced this long before it expires (or at half its life, if shorter).
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Answers that may wait for their attempt's group commit, per place for a
/// call in flight: enough that the calls go on through a slow commit (an
/// fsync, an event batch's transaction) when the provider answers within a
/// millisecond, as the loopback servers of `scripts/bench e2e` do (1, 4, 8
/// and 16 measured there: `BENCHMARKS.md`, stop 22). A provider answering in
/// 100 ms leaves about one answer waiting at a time.
pub const WAITING_PER_CALL: usize = 16;

/// A cached access token.
struct Token {
    value: Secret,
    refresh_at: Instant,
}

/// One provider's client.
pub struct Client {
    api: Box<dyn Api>,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
    permits: Semaphore,
    unrecorded: Semaphore,
    pace: Option<Pace>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    pub(super) fn new(api: Box<dyn Api>, limits: CallLimits) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(limits.timeout)
            .connect_timeout(limits.timeout)
            .user_agent(concat!("srs/", env!("CARGO_PKG_VERSION")))
            // A revocation endpoint never redirects: a redirect is an answer
            // (rejected, with its status), and the token goes nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| anyhow::anyhow!("cannot set up the HTTP client"))?;
        Ok(Self {
            api,
            http,
            token: Mutex::new(None),
            permits: Semaphore::new(limits.max_concurrency),
            unrecorded: Semaphore::new(limits.max_concurrency.saturating_mul(WAITING_PER_CALL)),
            pace: limits.requests_per_second.map(Pace::new),
        })
    }

    /// A place among this provider's `max_concurrency` calls in flight. The
    /// caller holds it for the call and until it holds a place among the
    /// answers waiting for the journal ([`Client::unrecorded`]).
    pub async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.permits.acquire().await.ok()
    }

    /// A place among this provider's answered calls whose attempt is not yet
    /// journaled ([`WAITING_PER_CALL`] × `max_concurrency`), taken while the
    /// call's [`Client::permit`] is still held and kept until the attempt is
    /// committed. The next call starts while an answer waits for its group
    /// commit, and a killed `srs` has at most 17 × `max_concurrency` calls
    /// per provider that the provider may have applied and the journal does
    /// not show: those in flight and those answered.
    pub async fn unrecorded(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.unrecorded.acquire().await.ok()
    }

    /// One revocation attempt, under a [`Client::permit`]: a token (cached
    /// or fetched), then the call. Returns how it ended and the token used.
    /// `refused` is a token a provider answered 401 to: it is replaced, once,
    /// whichever concurrent call notices first.
    pub async fn revoke(
        &self,
        subject: &str,
        refused: Option<&Secret>,
    ) -> (Exchange, Option<Secret>) {
        let token = match self.token(refused).await {
            Ok(token) => token,
            Err(exchange) => return (exchange, None),
        };
        (self.call(subject, &token).await, Some(token))
    }

    async fn call(&self, subject: &str, token: &Secret) -> Exchange {
        let (users, action) = self.api.revoke_endpoint();
        let mut url = users.clone();
        if let Err(why) = super::push_segments(&mut url, &[subject, action]) {
            return Exchange::Unsendable { why };
        }
        if let Some(pace) = &self.pace {
            pace.wait().await;
        }
        let request = self
            .http
            .post(url)
            .bearer_auth(token.expose())
            .body(Vec::new());
        match send(request).await {
            Ok(answer) if answer.status.is_success() => Exchange::Answered {
                endpoint: Endpoint::Revoke,
                status: answer.status.as_u16(),
                retry_after: answer.retry_after,
                error: ApiError::default(),
            },
            Ok(answer) => answer.refusal(Endpoint::Revoke, self.api.as_ref()),
            Err(exchange) => exchange,
        }
    }

    /// The cached token, or a new one. The lock is held while fetching, so
    /// concurrent calls wait for one fetch instead of each making their own.
    async fn token(&self, refused: Option<&Secret>) -> Result<Secret, Exchange> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
            && refused != Some(&token.value)
        {
            return Ok(token.value.clone());
        }
        let fetched = self.fetch_token().await?;
        let value = fetched.value.clone();
        *cached = Some(fetched);
        Ok(value)
    }

    async fn fetch_token(&self) -> Result<Token, Exchange> {
        let request = self
            .api
            .token_request(&self.http)
            .map_err(|why| Exchange::Unsendable { why })?;
        let sent = Instant::now();
        let answer = send(request).await?;
        if !answer.status.is_success() {
            return Err(answer.refusal(Endpoint::Token, self.api.as_ref()));
        }
        let status = answer.status.as_u16();
        let bad = |why: &str| Exchange::BadToken {
            status,
            why: why.to_owned(),
        };
        if answer.truncated {
            return Err(bad("the token endpoint's answer is larger than srs reads"));
        }
        let parsed: TokenAnswer = serde_json::from_slice(&answer.body)
            .map_err(|_| bad("the token endpoint's answer is not a JSON token answer"))?;
        let value = parsed
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("the token endpoint's answer has no access_token"))?;
        let life = token_lifetime(parsed.expires_in.as_ref());
        let margin = TOKEN_MARGIN.min(life / 2);
        Ok(Token {
            value: Secret::new(value),
            refresh_at: sent.checked_add(life - margin).unwrap_or(sent),
        })
    }
}

/// A token answer (RFC 6749 §5.1), leniently: whatever is missing or odd is
/// reported, not a parse error.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

/// A token's lifetime from `expires_in` (a number of seconds, or a string of
/// one as some endpoints send), clamped to [0, [`MAX_TOKEN_LIFETIME`]];
/// [`DEFAULT_TOKEN_LIFETIME`] when it is missing or not a number.
fn token_lifetime(expires_in: Option<&serde_json::Value>) -> Duration {
    let seconds = match expires_in {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match seconds {
        Some(s) if s.is_finite() => {
            Duration::from_secs_f64(s.clamp(0.0, MAX_TOKEN_LIFETIME.as_secs_f64()))
        }
        _ => DEFAULT_TOKEN_LIFETIME,
    }
}

/// An HTTP answer, its body read up to [`MAX_BODY_BYTES`].
struct Answer {
    status: reqwest::StatusCode,
    retry_after: Option<String>,
    body: Vec<u8>,
    truncated: bool,
}

impl Answer {
    /// A non-2xx answer, its error body read by the provider.
    fn refusal(self, endpoint: Endpoint, api: &dyn Api) -> Exchange {
        let error = match endpoint {
            Endpoint::Token => oauth_error(&self.body),
            Endpoint::Revoke => api.api_error(&self.body),
        };
        Exchange::Answered {
            endpoint,
            status: self.status.as_u16(),
            retry_after: self.retry_after,
            error,
        }
    }
}

/// Sends a request and reads the answer, bounded.
async fn send(request: reqwest::RequestBuilder) -> Result<Answer, Exchange> {
    let mut response = request.send().await.map_err(|e| no_answer(&e))?;
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(|v| crate::clip(v, 64).to_owned());
    let status = response.status();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await.map_err(|e| no_answer(&e))? {
        let room = MAX_BODY_BYTES - body.len();
        if chunk.len() > room {
            body.extend_from_slice(chunk.get(..room).unwrap_or_default());
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        retry_after,
        body,
        truncated,
    })
}

/// A request that got no (whole) answer. reqwest's message names the URL,
/// which holds only the subject, never a token.
fn no_answer(e: &reqwest::Error) -> Exchange {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    Exchange::NoAnswer {
        timeout: e.is_timeout(),
        message: crate::clip(&message, MAX_MESSAGE_BYTES).to_owned(),
    }
}

/// OAuth 2.0 token endpoints (RFC 6749 §5.2): `{"error", "error_description"}`.
fn oauth_error(body: &[u8]) -> ApiError {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) => ApiError {
            code: Some(e.error),
            message: e.error_description,
            quota: false,
        }
        .clipped(),
        Err(_) => ApiError::default(),
    }
}

impl ApiError {
    /// The same error with its code and message cut to [`MAX_MESSAGE_BYTES`].
    pub fn clipped(self) -> Self {
        let clip = |s: String| crate::clip(&s, MAX_MESSAGE_BYTES).to_owned();
        Self {
            code: self.code.map(clip),
            message: self.message.map(clip),
            quota: self.quota,
        }
    }
}

/// Spaces requests `1/rps` apart.
struct Pace {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pace {
    /// `rps` is within the config's bounds, so the interval is finite.
    fn new(rps: f64) -> Self {
        Self {
            interval: Duration::try_from_secs_f64(1.0 / rps).unwrap_or(Duration::from_secs(100)),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(Instant::now());
            *next = at.checked_add(self.interval).unwrap_or(at);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_lifetimes_are_clamped() {
        let life = |v: serde_json::Value| token_lifetime(Some(&v));
        assert_eq!(life(json!(3599)), Duration::from_secs(3599));
        assert_eq!(life(json!("3599")), Duration::from_secs(3599));
        assert_eq!(life(json!(u64::MAX)), MAX_TOKEN_LIFETIME);
        assert_eq!(life(json!(1e300)), MAX_TOKEN_LIFETIME);
        assert_eq!(life(json!(-5)), Duration::ZERO);
        assert_eq!(life(json!("soon")), DEFAULT_TOKEN_LIFETIME);
        assert_eq!(token_lifetime(None), DEFAULT_TOKEN_LIFETIME);
    }

    #[test]
    fn oauth_errors_are_read_and_clipped() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
        let e = oauth_error(body);
        assert_eq!(e.code.as_deref(), Some("invalid_client"));
        assert!(e.message.unwrap().starts_with("AADSTS7000215"));
        let long = format!(r#"{{"error":"{}"}}"#, "x".repeat(5_000));
        assert_eq!(
            oauth_error(long.as_bytes()).code.unwrap().len(),
            MAX_MESSAGE_BYTES
        );
        assert_eq!(oauth_error(b"<html>"), ApiError::default());
    }
}
