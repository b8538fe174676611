//! Google Workspace (Admin SDK Directory API): a JWT bearer grant (RFC 7523)
//! signed RS256 with a service account key acting as `admin_subject`, then
//! `POST /admin/directory/v1/users/{subject}/signOut` (scope
//! `admin.directory.user.security`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::{Api, ApiError, Section, error_member, push_segments};
use crate::config::base_url;

const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.security";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The longest lifetime Google accepts for the grant's JWT.
const JWT_LIFETIME: u64 = 3600;
/// Google's quota reasons, retried like a 429 although they come as 403.
const QUOTA_REASONS: [&str; 3] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "quotaExceeded",
];

/// `[google_workspace]`: a service account with domain-wide delegation of
/// `admin.directory.user.security`, acting as `admin_subject`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleWorkspace {
    /// A Google JSON key file; a relative path is read from the config's directory.
    service_account_key_file: PathBuf,
    admin_subject: String,
    #[serde(default = "default_directory_url")]
    directory_url: String,
    /// Overrides the key file's `token_uri`.
    token_url: Option<String>,
}

fn default_directory_url() -> String {
    "https://admin.googleapis.com".into()
}

/// The parts of a Google JSON key file `srs` uses.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    token_uri: String,
}

impl Section for GoogleWorkspace {
    fn check(&self, _dir: &Path) -> Result<()> {
        self.users_url()?;
        if let Some(url) = &self.token_url {
            base_url("google_workspace.token_url", url)?;
        }
        Ok(())
    }

    fn api(self, dir: &Path) -> Result<Box<dyn Api>> {
        let path = dir.join(&self.service_account_key_file);
        let text = std::fs::read(&path)
            .with_context(|| format!("cannot read the Google key file {}", path.display()))?;
        // serde's messages can quote the value they choke on: report only where.
        let key: KeyFile = serde_json::from_slice(&text).map_err(|e| {
            anyhow::anyhow!(
                "the Google key file {} is not a service account JSON key (line {}, column {})",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        let signing_key = EncodingKey::from_rsa_pem(key.private_key.as_bytes()).map_err(|_| {
            anyhow::anyhow!("the Google key file's private_key is not an RSA key in PEM")
        })?;
        let token_url = self.token_url.clone().unwrap_or(key.token_uri);
        Ok(Box::new(Directory {
            token_url: base_url("the Google token url", &token_url)?,
            users_url: self.users_url()?,
            client_email: key.client_email,
            subject: self.admin_subject,
            key: signing_key,
        }))
    }
}

impl GoogleWorkspace {
    fn users_url(&self) -> Result<Url> {
        let mut url = base_url("google_workspace.directory_url", &self.directory_url)?;
        push_segments(&mut url, &["admin", "directory", "v1", "users"])
            .map_err(anyhow::Error::msg)?;
        Ok(url)
    }
}

struct Directory {
    token_url: Url,
    users_url: Url,
    client_email: String,
    subject: String,
    key: EncodingKey,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl Api for Directory {
    fn token_request(&self, http: &reqwest::Client) -> Result<reqwest::RequestBuilder, String> {
        let iat = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let claims = Claims {
            iss: &self.client_email,
            sub: &self.subject,
            scope: GOOGLE_SCOPE,
            aud: self.token_url.as_str(),
            iat,
            exp: iat.saturating_add(JWT_LIFETIME),
        };
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|_| "cannot sign the Google JWT with the service account key".to_owned())?;
        Ok(http
            .post(self.token_url.clone())
            .form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)]))
    }

    fn revoke_endpoint(&self) -> (&Url, &'static str) {
        (&self.users_url, "signOut")
    }

    /// Google: `{"error": {"code": 403, "message", "errors": [{"reason"}]}}`;
    /// the reason says more than the numeric code.
    fn api_error(&self, body: &[u8]) -> ApiError {
        #[derive(Deserialize)]
        struct Error {
            message: Option<String>,
            #[serde(default)]
            errors: Vec<Reason>,
        }
        #[derive(Deserialize)]
        struct Reason {
            reason: Option<String>,
        }
        error_member::<Error>(body)
            .map(|error| {
                let reason = error.errors.into_iter().find_map(|e| e.reason);
                ApiError {
                    quota: reason
                        .as_deref()
                        .is_some_and(|r| QUOTA_REASONS.contains(&r)),
                    code: reason,
                    message: error.message,
                }
                .clipped()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> Directory {
        Directory {
            token_url: Url::parse("https://oauth2.example/token").unwrap(),
            users_url: Url::parse("https://admin.example/admin/directory/v1/users").unwrap(),
            client_email: "sa@p.iam.gserviceaccount.com".into(),
            subject: "admin@example.com".into(),
            key: EncodingKey::from_secret(b"unused"),
        }
    }

    #[test]
    fn quota_403s_are_told_apart_by_reason() {
        let body = |reason: &str| {
            format!(
                r#"{{"error":{{"code":403,"message":"m","errors":[{{"domain":"usageLimits","reason":"{reason}"}}]}}}}"#
            )
        };
        for reason in QUOTA_REASONS {
            let e = directory().api_error(body(reason).as_bytes());
            assert!(e.quota, "{reason}");
            assert_eq!(e.code.as_deref(), Some(reason));
        }
        let e = directory().api_error(body("forbidden").as_bytes());
        assert!(!e.quota);
        assert_eq!(e.code.as_deref(), Some("forbidden"));
        assert_eq!(directory().api_error(b""), ApiError::default());
    }
}
