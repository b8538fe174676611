//! The provider clients (SPEC §8): Microsoft Graph `revokeSignInSessions`
//! with a client-credentials token, and the Google Directory API
//! `users.signOut` with a service-account JWT bearer grant (RFC 7523).
//!
//! One [`Client`] per provider: a token cached until shortly before it
//! expires and shared by every concurrent call, a concurrency limit, an
//! optional requests-per-second pace, and a timeout on every request.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use policy_core::Provider;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::config::{CallLimits, GoogleConfig, Office365Config, Secret, base_url};
use crate::retry::{self, Answer, Endpoint, Outcome, Verdict};

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.security";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The longest lifetime Google accepts for the grant's JWT.
const GOOGLE_JWT_LIFETIME: u64 = 3600;
/// A token is replaced this long before it expires (or at half its life, if shorter).
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// How a client gets its bearer token.
enum Grant {
    /// Microsoft identity platform v2.0, client credentials.
    ClientCredentials {
        url: Url,
        client_id: String,
        secret: Secret,
    },
    /// Google OAuth 2.0, JWT bearer grant signed RS256 with the service account key.
    JwtBearer {
        url: Url,
        client_email: String,
        subject: String,
        key: EncodingKey,
    },
}

/// A cached access token.
struct Token {
    value: Secret,
    refresh_at: Instant,
}

/// One provider's client.
pub struct Client {
    provider: Provider,
    http: reqwest::Client,
    grant: Grant,
    /// The revocation URL with `{subject}` still to be appended as a segment.
    revoke_base: Url,
    revoke_suffix: &'static str,
    token: Mutex<Option<Token>>,
    permits: Semaphore,
    pace: Option<Pace>,
}

impl Client {
    /// An Office 365 client; reads the client secret from the environment.
    pub fn office365(config: &Office365Config) -> Result<Self> {
        let mut token_url = base_url("office365.login_url", &config.login_url)?;
        push_segments(
            &mut token_url,
            &[&config.tenant_id, "oauth2", "v2.0", "token"],
        )?;
        let mut revoke_base = base_url("office365.graph_url", &config.graph_url)?;
        push_segments(&mut revoke_base, &["v1.0", "users"])?;
        let grant = Grant::ClientCredentials {
            url: token_url,
            client_id: config.client_id.clone(),
            secret: config.client_secret()?,
        };
        Self::new(
            Provider::Office365,
            grant,
            revoke_base,
            "revokeSignInSessions",
            config.limits(),
        )
    }

    /// A Google Workspace client; reads the service account key file.
    pub fn google(config: &GoogleConfig) -> Result<Self> {
        let key = config.key()?;
        let signing_key =
            EncodingKey::from_rsa_pem(key.private_key.expose().as_bytes()).map_err(|_| {
                anyhow::anyhow!("the Google key file's private_key is not an RSA key in PEM")
            })?;
        let mut revoke_base = base_url("google_workspace.directory_url", &config.directory_url)?;
        push_segments(&mut revoke_base, &["admin", "directory", "v1", "users"])?;
        let grant = Grant::JwtBearer {
            url: base_url("the Google token url", &key.token_url)?,
            client_email: key.client_email,
            subject: config.admin_subject.clone(),
            key: signing_key,
        };
        Self::new(
            Provider::GoogleWorkspace,
            grant,
            revoke_base,
            "signOut",
            config.limits(),
        )
    }

    fn new(
        provider: Provider,
        grant: Grant,
        revoke_base: Url,
        revoke_suffix: &'static str,
        limits: CallLimits,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(limits.timeout)
            .connect_timeout(limits.timeout)
            .user_agent(concat!("srs/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            provider,
            http,
            grant,
            revoke_base,
            revoke_suffix,
            token: Mutex::new(None),
            permits: Semaphore::new(limits.max_concurrency),
            pace: limits.requests_per_second.map(Pace::new),
        })
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// One revocation attempt: a token (cached or fetched), then the call.
    /// Returns the outcome and the token used. `refused` is a token a
    /// provider answered 401 to: it is replaced, once, whichever concurrent
    /// call notices first.
    pub async fn revoke(
        &self,
        subject: &str,
        refused: Option<&Secret>,
    ) -> (Outcome, Option<Secret>) {
        let Ok(_permit) = self.permits.acquire().await else {
            return (
                Outcome::transport("connection", "the client is shutting down".into()),
                None,
            );
        };
        let token = match self.token(refused).await {
            Ok(token) => token,
            Err(outcome) => return (outcome, None),
        };
        (self.call(subject, &token).await, Some(token))
    }

    async fn call(&self, subject: &str, token: &Secret) -> Outcome {
        let mut url = self.revoke_base.clone();
        if let Err(e) = push_segments(&mut url, &[subject, self.revoke_suffix]) {
            return Outcome::transport("connection", e.to_string());
        }
        if let Some(pace) = &self.pace {
            pace.wait().await;
        }
        let response = self
            .http
            .post(url)
            .header(AUTHORIZATION, format!("Bearer {}", token.expose()))
            .body(Vec::new())
            .send()
            .await;
        match response {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = header_text(&r, RETRY_AFTER);
                let body = r.bytes().await.unwrap_or_default();
                let answer = Answer {
                    status,
                    body: &body,
                    retry_after: retry_after.as_deref(),
                };
                retry::classify(Endpoint::Revoke, answer, SystemTime::now())
            }
            Err(e) => transport_error(&e),
        }
    }

    /// The cached token, or a new one. The lock is held while fetching, so
    /// concurrent calls wait for one fetch instead of each making their own.
    async fn token(&self, refused: Option<&Secret>) -> Result<Secret, Outcome> {
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

    async fn fetch_token(&self) -> Result<Token, Outcome> {
        let request = match &self.grant {
            Grant::ClientCredentials {
                url,
                client_id,
                secret,
            } => self.http.post(url.clone()).form(&[
                ("client_id", client_id.as_str()),
                ("client_secret", secret.expose()),
                ("scope", GRAPH_SCOPE),
                ("grant_type", "client_credentials"),
            ]),
            Grant::JwtBearer {
                url,
                client_email,
                subject,
                key,
            } => {
                let assertion = google_assertion(url, client_email, subject, key)?;
                self.http.post(url.clone()).form(&[
                    ("grant_type", JWT_BEARER),
                    ("assertion", assertion.expose()),
                ])
            }
        };
        let sent = Instant::now();
        let response = request.send().await.map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let retry_after = header_text(&response, RETRY_AFTER);
        let body = response.bytes().await.map_err(|e| transport_error(&e))?;
        if !(200..300).contains(&status) {
            let answer = Answer {
                status,
                body: &body,
                retry_after: retry_after.as_deref(),
            };
            return Err(retry::classify(Endpoint::Token, answer, SystemTime::now()));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| Outcome {
            verdict: Verdict::Failed,
            status: Some(status),
            code: Some("auth-failed"),
            provider_code: None,
            message: Some("the token endpoint's answer has no access_token and expires_in".into()),
        })?;
        let life = Duration::from_secs(parsed.expires_in);
        let margin = TOKEN_MARGIN.min(life / 2);
        Ok(Token {
            value: Secret::new(parsed.access_token),
            refresh_at: sent + life - margin,
        })
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Serialize)]
struct GoogleClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// The signed JWT for Google's JWT bearer grant.
fn google_assertion(url: &Url, iss: &str, sub: &str, key: &EncodingKey) -> Result<Secret, Outcome> {
    let iat = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = GoogleClaims {
        iss,
        sub,
        scope: GOOGLE_SCOPE,
        aud: url.as_str(),
        iat,
        exp: iat + GOOGLE_JWT_LIFETIME,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
        .map(Secret::new)
        .map_err(|_| Outcome {
            verdict: Verdict::Failed,
            status: None,
            code: Some("auth-failed"),
            provider_code: None,
            message: Some("cannot sign the Google JWT with the service account key".into()),
        })
}

/// Appends path segments, percent-encoding each (a subject's `/` or `%`
/// cannot change the path).
fn push_segments(url: &mut Url, segments: &[&str]) -> Result<()> {
    let text = url.to_string();
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("`{text}` cannot take a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(())
}

fn header_text(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// A request that got no response. reqwest's message names the URL, which
/// holds only the subject, never a token.
fn transport_error(e: &reqwest::Error) -> Outcome {
    let code = if e.is_timeout() {
        "timeout"
    } else {
        "connection"
    };
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    Outcome::transport(code, message)
}

/// Spaces requests `1/rps` apart.
struct Pace {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pace {
    fn new(rps: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / rps),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// The configured clients, by provider.
#[derive(Default, Clone)]
pub struct Clients {
    pub office365: Option<Arc<Client>>,
    pub google_workspace: Option<Arc<Client>>,
}

impl Clients {
    pub fn get(&self, provider: Provider) -> Option<&Arc<Client>> {
        match provider {
            Provider::Office365 => self.office365.as_ref(),
            Provider::GoogleWorkspace => self.google_workspace.as_ref(),
        }
    }
}
