//! Loopback fakes of two identity providers, for integration tests and benchmarks:
//!
//! - [`FakeOffice365`]: the Microsoft identity platform token endpoint (client credentials)
//!   and Microsoft Graph `revokeSignInSessions`;
//! - [`FakeGoogle`]: Google OAuth (service account JWT bearer grant) and the Admin SDK
//!   Directory API `users.signOut`.
//!
//! Each server is a real HTTP/1.1 server on `127.0.0.1` (random port) running on its own
//! thread with its own tokio runtime, so plain synchronous `#[test]`s (and other processes,
//! such as a spawned `srs run`) can talk to it. Dropping the handle shuts the server down.
//!
//! Both share one core, [`FakeServer`] (reached through `Deref`), which validates requests as
//! the providers document them, injects scripted [`Fault`]s, can stall revocations for crash
//! tests, and counts what happened.
//!
//! [`gateways`] runs real nginx and Caddy with the shipped configs in `examples/gateways/`
//! in front of a (fake) sign-in gate and an upstream app.
//!
//! [`postgres`] runs a real, throwaway PostgreSQL server (own directory, free port, stopped
//! and removed afterwards).
//!
//! ```no_run
//! use fake_providers::{Fault, FakeOffice365, Office365Options, RetryAfter};
//! # fn main() -> anyhow::Result<()> {
//! let graph = FakeOffice365::start(Office365Options::default())?;
//! graph.push_faults([Fault::TooManyRequests { retry_after: Some(RetryAfter::Seconds(1)) }]);
//! // ... run the client against graph.base_url() ...
//! assert!(graph.wait_for_applied(1, std::time::Duration::from_secs(10)));
//! # Ok(())
//! # }
//! ```

pub mod gateways;
mod google;
mod office365;
pub mod postgres;
mod server;

use std::time::{Duration, SystemTime};

pub use google::{DIRECTORY_SCOPE, FakeGoogle, GoogleOptions, JWT_BEARER_GRANT};
pub use office365::{FakeOffice365, GRAPH_SCOPE, Office365Options};
pub use server::FakeServer;

/// The test service account's RSA 2048 private key (PKCS#8 PEM). Test-only: it is public in
/// this repository and never used anywhere real.
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("../keys/test-service-account.pem");

/// The public half of [`TEST_PRIVATE_KEY_PEM`] (SubjectPublicKeyInfo PEM); [`FakeGoogle`]
/// verifies JWT assertions with it.
pub const TEST_PUBLIC_KEY_PEM: &str = include_str!("../keys/test-service-account.pub.pem");

/// The `private_key_id` written by [`google_key_file_json`] (an arbitrary, fixed value).
pub const TEST_PRIVATE_KEY_ID: &str = "5f3c0a6e9b1d4c2a8e7f60b1c2d3e4f5a6b7c8d9";

/// A host config (`HOST.toml`, SPEC §8) for `srs run` pointing at these two servers. The
/// Google key file is `sa.json` beside it (write [`FakeGoogle::key_file_json`] there); the
/// client secret is read from the environment variable `secret_env`. `per_provider` lines
/// (e.g. `"max_concurrency = 4\n"`) go into both provider sections, `tail` after them (e.g.
/// a `[retry]` table).
pub fn host_toml(
    o365: &FakeOffice365,
    google: &FakeGoogle,
    secret_env: &str,
    per_provider: &str,
    tail: &str,
) -> String {
    let o = o365.options();
    format!(
        "[office365]\ntenant_id = '{}'\nclient_id = '{}'\nclient_secret_env = '{secret_env}'\n\
         graph_url = '{}'\nlogin_url = '{}'\n{per_provider}\n\
         [google_workspace]\nservice_account_key_file = 'sa.json'\nadmin_subject = '{}'\n\
         directory_url = '{}'\ntoken_url = '{}'\n{per_provider}\n{tail}",
        o.tenant_id,
        o.client_id,
        o365.graph_url(),
        o365.login_url(),
        google.options().admin_subject,
        google.directory_url(),
        google.token_url(),
    )
}

/// A Google service account JSON key file, as the Cloud console downloads it, holding
/// [`TEST_PRIVATE_KEY_PEM`] for `client_email`, with `token_uri` set to `token_uri` (usually
/// [`FakeGoogle::token_url`]).
pub fn google_key_file_json(client_email: &str, token_uri: &str) -> String {
    // `name@PROJECT.iam.gserviceaccount.com` names its project.
    let project_id = client_email
        .split_once('@')
        .and_then(|(_, domain)| domain.strip_suffix(".iam.gserviceaccount.com"))
        .unwrap_or("fake-providers-test");
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": TEST_PRIVATE_KEY_ID,
        "private_key": TEST_PRIVATE_KEY_PEM,
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": format!(
            "https://www.googleapis.com/robot/v1/metadata/x509/{}",
            client_email.replace('@', "%40")
        ),
        "universe_domain": "googleapis.com",
    });
    format!("{key:#}\n")
}

/// A scripted, one-shot misbehaviour: queued with [`FakeServer::push_faults`] (revoke
/// endpoint) or [`FakeServer::push_token_faults`] (token endpoint), consumed by the next
/// request to that endpoint. Only a normal answer applies a revocation; every fault answers
/// without applying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 (Graph `TooManyRequests`, Google `rateLimitExceeded`), with an optional `Retry-After`.
    TooManyRequests {
        /// The `Retry-After` header to send, if any.
        retry_after: Option<RetryAfter>,
    },
    /// 503 (Graph `serviceNotAvailable`, Google `backendError`), with an optional `Retry-After`.
    Unavailable {
        /// The `Retry-After` header to send, if any.
        retry_after: Option<RetryAfter>,
    },
    /// Revoke endpoint: invalidates every token issued so far and answers 401, so the client
    /// must fetch a new token. Token endpoint: answers like `Status(401)`.
    ExpiredToken,
    /// Google: 403 with this reason in the `usageLimits` domain (e.g. `"userRateLimitExceeded"`,
    /// `"quotaExceeded"`). Graph and both token endpoints: 429.
    QuotaExceeded {
        /// The Google error reason.
        reason: &'static str,
    },
    /// Sleeps this long, then answers 503 (models a stall before the provider acts).
    Slow(Duration),
    /// Reads the request, then closes the connection with a TCP RST and no response.
    Reset,
    /// Answers this status with the provider's error body for it (OAuth style on the token
    /// endpoint); never applies, even for a 2xx status.
    Status(u16),
    /// Token endpoint: issues a real token, but its answer says `expires_in` is this (the
    /// token stays valid for as long as the server runs, or for that long if shorter).
    /// Revoke endpoint: answers like `Status(503)`.
    ExpiresIn(u64),
    /// Revoke endpoint: answers this status (a 3xx) with `Location` set to the same endpoint,
    /// so a client that follows redirects calls again (and that call applies). Token
    /// endpoint: answers like `Status(503)`.
    Redirect {
        /// The HTTP status, e.g. 307 (a client following it sends the `POST` again).
        status: u16,
    },
    /// Answers exactly this status, content type and body (e.g. a 200 token answer without
    /// `access_token`, or an HTML page from a proxy); never applies.
    Body {
        /// The HTTP status.
        status: u16,
        /// The `Content-Type` header.
        content_type: &'static str,
        /// The body, as sent.
        body: &'static str,
    },
}

/// A `Retry-After` header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Delay in seconds: `Retry-After: 5`.
    Seconds(u64),
    /// A point in time, sent as an HTTP-date (IMF-fixdate), e.g.
    /// `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT`.
    Date(SystemTime),
    /// Any header value, as sent, valid or not (`-1`, `18446744073709551615`).
    Raw(&'static str),
}

impl RetryAfter {
    /// The header value as sent.
    pub fn header_value(&self) -> String {
        match self {
            Self::Seconds(seconds) => seconds.to_string(),
            Self::Date(when) => httpdate::fmt_http_date(*when),
            Self::Raw(value) => (*value).to_owned(),
        }
    }
}
