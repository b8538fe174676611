//! What one provider call means for its revocation (SPEC §8), and how long to
//! wait before the next try. Pure functions: the clock and the dice are inputs.

use std::time::{Duration, SystemTime};

use crate::config::RetryConfig;
use crate::providers::{Endpoint, Exchange};

/// What to do after one call.
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

/// One call as classified: the verdict and what the journal and the screen
/// show of it. No token, no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    pub verdict: Verdict,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Our stable code, e.g. `user-not-found`, `throttled`, `timeout`.
    pub code: Option<&'static str>,
    /// The provider's own error code, clipped.
    pub provider_code: Option<String>,
    /// The provider's message, or why there was no usable answer, clipped.
    pub message: Option<String>,
}

impl CallReport {
    /// `user-not-found 404 Request_ResourceNotFound`, for the table and errors.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(code) = self.code {
            parts.push(code.to_owned());
        }
        if let Some(status) = self.status {
            parts.push(status.to_string());
        }
        if let Some(code) = &self.provider_code {
            parts.push(code.clone());
        } else if let Some(message) = &self.message
            && (self.status.is_none() || self.code == Some("auth-failed"))
        {
            parts.push(message.clone());
        }
        parts.join(" ")
    }
}

/// Classifies how a call ended (SPEC §8). At the token endpoint, throttling
/// and outages are retried; any other refusal (a wrong secret, a missing
/// delegation) or an unusable token answer is permanent.
pub fn classify(exchange: Exchange, now: SystemTime) -> CallReport {
    let (endpoint, status, retry_after, error) = match exchange {
        Exchange::Answered {
            endpoint,
            status,
            retry_after,
            error,
        } => (endpoint, status, retry_after, error),
        Exchange::BadToken { status, why } => {
            return CallReport {
                verdict: Verdict::Failed,
                status: Some(status),
                code: Some("auth-failed"),
                provider_code: None,
                message: Some(why),
            };
        }
        Exchange::NoAnswer { timeout, message } => {
            return CallReport {
                verdict: Verdict::Retry { after: None },
                status: None,
                code: Some(if timeout { "timeout" } else { "connection" }),
                provider_code: None,
                message: Some(message),
            };
        }
        Exchange::Unsendable { why } => {
            return CallReport {
                verdict: Verdict::Failed,
                status: None,
                code: Some("invalid-request"),
                provider_code: None,
                message: Some(why),
            };
        }
    };
    let after = retry_after.and_then(|v| parse_retry_after(&v, now));
    let retry = Verdict::Retry { after };
    let (verdict, code) = match (endpoint, status) {
        (_, 429) => (retry, Some("throttled")),
        (_, 500 | 502 | 503 | 504) => (retry, Some("unavailable")),
        (Endpoint::Token, _) => (Verdict::Failed, Some("auth-failed")),
        (Endpoint::Revoke, 200..=299) => (Verdict::Done, None),
        (Endpoint::Revoke, 401) => (Verdict::Refresh, Some("unauthorized")),
        (Endpoint::Revoke, 403) if error.quota => (retry, Some("throttled")),
        (Endpoint::Revoke, 403) => (Verdict::Failed, Some("permission-denied")),
        (Endpoint::Revoke, 404) => (Verdict::Failed, Some("user-not-found")),
        (Endpoint::Revoke, _) => (Verdict::Failed, Some("rejected")),
    };
    CallReport {
        verdict,
        status: Some(status),
        code,
        provider_code: error.code,
        message: error.message,
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3). A date
/// in the past means now; anything else (`-1`, `soon`) is ignored. Any
/// number of seconds is accepted here: [`wait`] holds it against the deadline.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait before retry number `retry` (0 for the first retry): the
/// provider's `Retry-After` if it gave one, but never less than
/// `initial_backoff_ms` (so "now", again and again, cannot make srs spin);
/// else [`backoff`]. `unit` is a random number in [0, 1).
pub fn wait(config: &RetryConfig, after: Option<Duration>, retry: u32, unit: f64) -> Duration {
    match after {
        Some(after) => after.max(Duration::from_millis(config.initial_backoff_ms)),
        None => backoff(config, retry, unit),
    }
}

/// Exponential backoff, capped, with "equal jitter" (half fixed, half random)
/// so many tasks throttled together do not come back together.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ApiError;

    const NOW: Duration = Duration::from_secs(1_790_000_000);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + NOW
    }

    fn answered(endpoint: Endpoint, status: u16, retry_after: Option<&str>) -> Exchange {
        with_error(endpoint, status, retry_after, ApiError::default())
    }

    fn with_error(
        endpoint: Endpoint,
        status: u16,
        retry_after: Option<&str>,
        error: ApiError,
    ) -> Exchange {
        Exchange::Answered {
            endpoint,
            status,
            retry_after: retry_after.map(str::to_owned),
            error,
        }
    }

    fn revoke(status: u16, retry_after: Option<&str>) -> CallReport {
        classify(answered(Endpoint::Revoke, status, retry_after), now())
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
        assert_eq!(
            parse_retry_after("18446744073709551615", now()),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after("18446744073709551616", now()), None);
    }

    #[test]
    fn revoke_statuses() {
        let o = revoke(429, Some("3"));
        assert_eq!(
            (o.verdict, o.code),
            (
                Verdict::Retry {
                    after: Some(Duration::from_secs(3))
                },
                Some("throttled")
            )
        );
        assert_eq!(
            (revoke(403, None).verdict, revoke(403, None).code),
            (Verdict::Failed, Some("permission-denied"))
        );
        assert_eq!(revoke(404, None).code, Some("user-not-found"));
        assert_eq!(revoke(204, None).verdict, Verdict::Done);
        assert_eq!(revoke(200, None).verdict, Verdict::Done);
        assert_eq!(revoke(401, None).verdict, Verdict::Refresh);
        assert_eq!(revoke(400, None).code, Some("rejected"));
        assert_eq!(revoke(501, None).verdict, Verdict::Failed);
        assert_eq!(revoke(502, None).verdict, Verdict::Retry { after: None });
        let quota = ApiError {
            code: Some("quotaExceeded".into()),
            message: None,
            quota: true,
        };
        let o = classify(with_error(Endpoint::Revoke, 403, None, quota), now());
        assert_eq!(
            (o.verdict, o.code),
            (Verdict::Retry { after: None }, Some("throttled"))
        );
        assert_eq!(o.provider_code.as_deref(), Some("quotaExceeded"));
    }

    #[test]
    fn token_errors() {
        let error = ApiError {
            code: Some("invalid_client".into()),
            message: Some("AADSTS7000215: Invalid client secret provided.".into()),
            quota: false,
        };
        let o = classify(with_error(Endpoint::Token, 401, None, error), now());
        assert_eq!((o.verdict, o.code), (Verdict::Failed, Some("auth-failed")));
        assert_eq!(o.describe(), "auth-failed 401 invalid_client");
        assert_eq!(
            classify(answered(Endpoint::Token, 503, None), now()).verdict,
            Verdict::Retry { after: None }
        );
        let bad = Exchange::BadToken {
            status: 200,
            why: "the token endpoint's answer has no access_token".into(),
        };
        let o = classify(bad, now());
        assert_eq!(o.verdict, Verdict::Failed);
        assert_eq!(
            o.describe(),
            "auth-failed 200 the token endpoint's answer has no access_token"
        );
    }

    #[test]
    fn no_answer_is_retried() {
        let o = classify(
            Exchange::NoAnswer {
                timeout: true,
                message: "operation timed out".into(),
            },
            now(),
        );
        assert_eq!(o.verdict, Verdict::Retry { after: None });
        assert_eq!(o.describe(), "timeout operation timed out");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let c = RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            deadline_ms: 10_000,
            ..RetryConfig::default()
        };
        assert_eq!(backoff(&c, 0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(&c, 0, 0.999_999), Duration::from_millis(99));
        assert_eq!(backoff(&c, 2, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(&c, 10, 0.0), Duration::from_millis(500));
        assert!(backoff(&c, 200, 0.999_999) <= Duration::from_millis(1_000));
        // A Retry-After is honoured, but "now" waits the initial backoff.
        let after = |s| wait(&c, Some(Duration::from_secs(s)), 9, 0.5);
        assert_eq!(after(0), Duration::from_millis(100));
        assert_eq!(after(30), Duration::from_secs(30));
        assert_eq!(after(u64::MAX), Duration::from_secs(u64::MAX));
    }
}
