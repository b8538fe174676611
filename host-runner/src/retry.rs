//! What a provider's answer means for a revocation (SPEC §8), and how long to
//! wait before the next try. Pure functions: the clock and the dice are inputs.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::config::RetryConfig;

/// What to do after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Any 2xx: the sessions are revoked.
    Done,
    /// Throttled or unavailable: try again after `after` (the provider's
    /// `Retry-After`) or after a backoff.
    Retry { after: Option<Duration> },
    /// 401: the token was refused; fetch a new one once, then retry.
    Refresh,
    /// Permanent: retrying cannot help.
    Failed,
}

/// One attempt's result as the journal records it: no token, no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// Our stable code, e.g. `user-not-found`, `throttled`, `timeout`.
    pub code: Option<&'static str>,
    /// The provider's own error code (Graph `error.code`, Google
    /// `error.errors[0].reason`, OAuth `error`) and message, clipped.
    pub provider_code: Option<String>,
    pub message: Option<String>,
}

impl Outcome {
    /// A transport failure: no response (timeout, reset, refused).
    pub fn transport(code: &'static str, message: String) -> Self {
        Self {
            verdict: Verdict::Retry { after: None },
            status: None,
            code: Some(code),
            provider_code: None,
            message: Some(clip(&message)),
        }
    }
}

/// Google's quota reasons, retried like a 429 although they come as 403.
const GOOGLE_QUOTA_REASONS: [&str; 3] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "quotaExceeded",
];

/// An HTTP answer from a provider, as far as classifying it goes.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: u16,
    pub body: &'a [u8],
    pub retry_after: Option<&'a str>,
}

/// Which endpoint answered: they fail differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `revokeSignInSessions` or `signOut`.
    Revoke,
    /// A token endpoint; only its refusals are classified.
    Token,
}

/// Classifies a provider's answer (SPEC §8). At the token endpoint, throttling
/// and outages are retried; any other refusal (a wrong secret, a missing
/// delegation) is permanent.
pub fn classify(endpoint: Endpoint, answer: Answer<'_>, now: SystemTime) -> Outcome {
    let (provider_code, message) = error_of(answer.body);
    let after = answer.retry_after.and_then(|v| parse_retry_after(v, now));
    let retry = Verdict::Retry { after };
    let quota = provider_code
        .as_deref()
        .is_some_and(|c| GOOGLE_QUOTA_REASONS.contains(&c));
    let (verdict, code) = match (endpoint, answer.status) {
        (_, 429) => (retry, Some("throttled")),
        (_, 500 | 502 | 503 | 504) => (retry, Some("unavailable")),
        (Endpoint::Token, _) => (Verdict::Failed, Some("auth-failed")),
        (Endpoint::Revoke, 200..=299) => (Verdict::Done, None),
        (Endpoint::Revoke, 401) => (Verdict::Refresh, Some("unauthorized")),
        (Endpoint::Revoke, 403) if quota => (retry, Some("throttled")),
        (Endpoint::Revoke, 403) => (Verdict::Failed, Some("permission-denied")),
        (Endpoint::Revoke, 404) => (Verdict::Failed, Some("user-not-found")),
        (Endpoint::Revoke, _) => (Verdict::Failed, Some("rejected")),
    };
    Outcome {
        verdict,
        status: Some(answer.status),
        code,
        provider_code,
        message,
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date
/// in the past means now.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait before retry number `retry` (0 for the first retry): exponential,
/// capped, with "equal jitter" (half fixed, half random) so many tasks
/// throttled together do not come back together. `unit` is a random number
/// in [0, 1).
pub fn backoff(config: &RetryConfig, retry: u32, unit: f64) -> Duration {
    let cap = config.max_backoff_ms;
    let base = config
        .initial_backoff_ms
        .saturating_mul(1u64.checked_shl(retry.min(32)).unwrap_or(u64::MAX))
        .min(cap);
    let half = base / 2;
    // `unit` < 1, so the random half never exceeds `base - half`.
    let jitter = ((base - half) as f64 * unit.clamp(0.0, 1.0)) as u64;
    Duration::from_millis(half + jitter)
}

/// The longest provider text kept, in characters.
const MAX_MESSAGE: usize = 200;

/// Clips provider text for the journal and the screen.
pub fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or(text)),
        None => text.to_owned(),
    }
}

/// Graph: `{"error":{"code","message"}}`. Google: `{"error":{"message",
/// "errors":[{"reason"}]}}`. OAuth token endpoints: `{"error","error_description"}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorField,
    error_description: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorField {
    OAuth(String),
    Api {
        code: Option<serde_json::Value>,
        message: Option<String>,
        #[serde(default)]
        errors: Vec<GoogleError>,
    },
}

#[derive(Deserialize)]
struct GoogleError {
    reason: Option<String>,
}

/// The provider's error code and message, if the body is one of the documented shapes.
fn error_of(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return (None, None);
    };
    let (code, message) = match parsed.error {
        ErrorField::OAuth(code) => (Some(code), parsed.error_description),
        ErrorField::Api {
            code,
            message,
            errors,
        } => {
            // Google's reason says more than its numeric code; Graph's code is a string.
            let reason = errors.into_iter().find_map(|e| e.reason);
            let graph_code = code.and_then(|c| c.as_str().map(str::to_owned));
            (reason.or(graph_code), message)
        }
    };
    (code.map(|c| clip(&c)), message.map(|m| clip(&m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_revoke(
        status: u16,
        body: &[u8],
        retry_after: Option<&str>,
        now: SystemTime,
    ) -> Outcome {
        classify(
            Endpoint::Revoke,
            Answer {
                status,
                body,
                retry_after,
            },
            now,
        )
    }

    fn classify_token_error(
        status: u16,
        body: &[u8],
        retry_after: Option<&str>,
        now: SystemTime,
    ) -> Outcome {
        classify(
            Endpoint::Token,
            Answer {
                status,
                body,
                retry_after,
            },
            now,
        )
    }

    const NOW: Duration = Duration::from_secs(1_790_000_000);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + NOW
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("7", now()), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now() + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now()),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now() - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("-1", now()), None);
    }

    #[test]
    fn graph_errors() {
        let body = br#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist","innerError":{}}}"#;
        let o = classify_revoke(404, body, None, now());
        assert_eq!(o.verdict, Verdict::Failed);
        assert_eq!(o.code, Some("user-not-found"));
        assert_eq!(o.provider_code.as_deref(), Some("Request_ResourceNotFound"));
        let o = classify_revoke(
            429,
            br#"{"error":{"code":"TooManyRequests"}}"#,
            Some("3"),
            now(),
        );
        assert_eq!(
            o.verdict,
            Verdict::Retry {
                after: Some(Duration::from_secs(3))
            }
        );
        let o = classify_revoke(
            403,
            br#"{"error":{"code":"Authorization_RequestDenied"}}"#,
            None,
            now(),
        );
        assert_eq!(
            (o.verdict, o.code),
            (Verdict::Failed, Some("permission-denied"))
        );
        assert_eq!(
            classify_revoke(204, b"", None, now()).verdict,
            Verdict::Done
        );
        assert_eq!(
            classify_revoke(200, b"{\"value\":true}", None, now()).verdict,
            Verdict::Done
        );
        assert_eq!(
            classify_revoke(401, b"", None, now()).verdict,
            Verdict::Refresh
        );
        assert_eq!(
            classify_revoke(400, b"", None, now()).code,
            Some("rejected")
        );
        assert_eq!(
            classify_revoke(501, b"", None, now()).verdict,
            Verdict::Failed
        );
        assert_eq!(
            classify_revoke(502, b"<html>", None, now()).verdict,
            Verdict::Retry { after: None }
        );
    }

    #[test]
    fn google_403_is_split_by_reason() {
        let quota = |reason: &str| {
            format!(
                r#"{{"error":{{"code":403,"message":"m","errors":[{{"domain":"usageLimits","reason":"{reason}"}}]}}}}"#
            )
        };
        for reason in GOOGLE_QUOTA_REASONS {
            let o = classify_revoke(403, quota(reason).as_bytes(), None, now());
            assert_eq!(
                (o.verdict, o.code),
                (Verdict::Retry { after: None }, Some("throttled")),
                "{reason}"
            );
            assert_eq!(o.provider_code.as_deref(), Some(reason));
        }
        let o = classify_revoke(403, quota("forbidden").as_bytes(), None, now());
        assert_eq!(
            (o.verdict, o.code),
            (Verdict::Failed, Some("permission-denied"))
        );
    }

    #[test]
    fn token_errors() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
        let o = classify_token_error(401, body, None, now());
        assert_eq!((o.verdict, o.code), (Verdict::Failed, Some("auth-failed")));
        assert_eq!(o.provider_code.as_deref(), Some("invalid_client"));
        assert!(o.message.unwrap().starts_with("AADSTS7000215"));
        assert_eq!(
            classify_token_error(503, b"", None, now()).verdict,
            Verdict::Retry { after: None }
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let c = RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            deadline_ms: 10_000,
        };
        assert_eq!(backoff(&c, 0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(&c, 0, 0.999_999), Duration::from_millis(99));
        assert_eq!(backoff(&c, 2, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(&c, 10, 0.0), Duration::from_millis(500));
        assert!(backoff(&c, 200, 0.999_999) <= Duration::from_millis(1_000));
    }

    #[test]
    fn provider_text_is_clipped() {
        let long = "x".repeat(1_000);
        assert_eq!(clip(&long).chars().count(), MAX_MESSAGE + 1);
        assert_eq!(clip("short"), "short");
    }
}
