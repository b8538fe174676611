//! The Google OAuth (service account JWT bearer grant) + Admin SDK Directory API dialect.

use std::ops::Deref;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::server::{ApiError, Dialect, FakeServer, Reply, Route, field, percent_decode};

/// The only scope the fake token endpoint grants.
pub const DIRECTORY_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.security";

/// The `grant_type` of the service account token request.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Longest accepted assertion lifetime (`exp - iat`), and allowed clock skew, in seconds.
const MAX_LIFETIME: i64 = 3600;
const SKEW: i64 = 60;

/// Configuration of [`FakeGoogle`]: the service account and the admin it impersonates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleOptions {
    /// The service account email, required as the assertion's `iss`.
    pub client_email: String,
    /// The admin user impersonated through domain-wide delegation, required as `sub`.
    pub admin_subject: String,
    /// `expires_in` of issued tokens, in seconds (default 3600); tokens are refused after it.
    pub token_expires_in: u64,
}

impl Default for GoogleOptions {
    /// Fixed test values: `srs-test@srs-test-project.iam.gserviceaccount.com` impersonating
    /// `admin@example.com`, 3600 s tokens.
    fn default() -> Self {
        Self {
            client_email: "srs-test@srs-test-project.iam.gserviceaccount.com".to_owned(),
            admin_subject: "admin@example.com".to_owned(),
            token_expires_in: 3600,
        }
    }
}

/// A fake Google OAuth + Admin SDK Directory API on one loopback port:
///
/// - `POST /token` (JWT bearer grant: an RS256 assertion signed with
///   [`crate::TEST_PRIVATE_KEY_PEM`], `iss` = client email, `sub` = admin subject, `scope` =
///   [`DIRECTORY_SCOPE`], `aud` = [`FakeGoogle::token_url`]);
/// - `POST /admin/directory/v1/users/{userKey}/signOut` (bearer token, empty body), answered
///   204 with no body.
///
/// The common controls and counters are on [`FakeServer`], reached through `Deref`.
#[derive(Debug)]
pub struct FakeGoogle {
    server: FakeServer,
    options: GoogleOptions,
}

impl FakeGoogle {
    /// Starts the server on `127.0.0.1` with a random port.
    pub fn start(options: GoogleOptions) -> anyhow::Result<Self> {
        let key = DecodingKey::from_rsa_pem(crate::TEST_PUBLIC_KEY_PEM.as_bytes())?;
        let server = FakeServer::start(options.token_expires_in, |base_url| {
            Ok(Box::new(Directory {
                client_email: options.client_email.clone(),
                admin_subject: options.admin_subject.clone(),
                token_url: format!("{base_url}/token"),
                key,
            }) as Box<dyn Dialect>)
        })?;
        Ok(Self { server, options })
    }

    /// The token URL, `{base}/token`: the required `aud` of assertions.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.server.base_url())
    }

    /// The Directory API root: [`FakeServer::base_url`].
    pub fn directory_url(&self) -> String {
        self.server.base_url()
    }

    /// A service account JSON key file for this server (see [`crate::google_key_file_json`]).
    pub fn key_file_json(&self) -> String {
        crate::google_key_file_json(&self.options.client_email, &self.token_url())
    }

    /// The options the server was started with.
    pub fn options(&self) -> &GoogleOptions {
        &self.options
    }
}

impl Deref for FakeGoogle {
    type Target = FakeServer;

    fn deref(&self) -> &FakeServer {
        &self.server
    }
}

struct Directory {
    client_email: String,
    admin_subject: String,
    token_url: String,
    key: DecodingKey,
}

/// A Google OAuth error.
fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

fn invalid_grant(description: &str) -> Reply {
    oauth_error(400, "invalid_grant", description)
}

/// A Google API error (the Admin SDK's format).
fn api_error(code: u16, message: &str, domain: &str, reason: &str, status: &str) -> Reply {
    Reply::json(
        code,
        json!({
            "error": {
                "code": code,
                "message": message,
                "errors": [{ "message": message, "domain": domain, "reason": reason }],
                "status": status,
            },
        }),
    )
}

impl Directory {
    /// Verifies the assertion as Google does: signature, issuer, audience, lifetime, then
    /// whether the subject and scope are authorized.
    fn check_assertion(&self, assertion: &str) -> Result<(), Reply> {
        let malformed = || invalid_grant("Invalid JWT: the assertion is not a well-formed JWT.");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = match jsonwebtoken::decode::<Value>(assertion, &self.key, &validation) {
            Ok(data) => data.claims,
            Err(error) => {
                return Err(match error.kind() {
                    ErrorKind::InvalidSignature
                    | ErrorKind::InvalidAlgorithm
                    | ErrorKind::InvalidAlgorithmName => invalid_grant("Invalid JWT Signature."),
                    _ => malformed(),
                });
            }
        };
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("iss") != Some(self.client_email.as_str()) {
            return Err(invalid_grant("Invalid grant: account not found"));
        }
        if text("aud") != Some(self.token_url.as_str()) {
            return Err(invalid_grant(&format!(
                "Invalid JWT: Failed audience check. The right audience is {}",
                self.token_url
            )));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let number = |name: &str| claims.get(name).and_then(Value::as_i64);
        let in_time = match (number("iat"), number("exp")) {
            (Some(iat), Some(exp)) => {
                iat <= exp && exp - iat <= MAX_LIFETIME && iat <= now + SKEW && exp >= now - SKEW
            }
            _ => false,
        };
        if !in_time {
            return Err(invalid_grant(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            ));
        }
        if text("sub") != Some(self.admin_subject.as_str())
            || text("scope") != Some(DIRECTORY_SCOPE)
        {
            return Err(self.token_error(401));
        }
        Ok(())
    }
}

impl Dialect for Directory {
    fn route(&self, path: &str) -> Route {
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["", "token"] => Route::Token,
            ["", "admin", "directory", "v1", "users", user_key, "signOut"]
                if !user_key.is_empty() =>
            {
                Route::Revoke(percent_decode(user_key, false))
            }
            _ => Route::Unknown,
        }
    }

    fn content_type(&self) -> &'static str {
        "application/json; charset=UTF-8"
    }

    fn token_prefix(&self) -> &'static str {
        "ya29.fake-"
    }

    fn check_token(&self, _path: &str, form: &[(String, String)]) -> Result<(), Reply> {
        match field(form, "grant_type") {
            None => {
                return Err(oauth_error(
                    400,
                    "invalid_request",
                    "Missing required parameter: grant_type",
                ));
            }
            Some(JWT_BEARER_GRANT) => {}
            Some(other) => {
                return Err(oauth_error(
                    400,
                    "unsupported_grant_type",
                    &format!("Invalid grant_type: {other}"),
                ));
            }
        }
        let assertion = field(form, "assertion").ok_or_else(|| {
            oauth_error(
                400,
                "invalid_request",
                "Missing required parameter: assertion",
            )
        })?;
        self.check_assertion(assertion)
    }

    fn token_success(&self, access_token: &str, expires_in: u64) -> Value {
        json!({
            "access_token": access_token,
            "expires_in": expires_in,
            "token_type": "Bearer",
            "scope": DIRECTORY_SCOPE,
        })
    }

    fn token_error(&self, status: u16) -> Reply {
        match status {
            400 => invalid_grant("Bad Request"),
            401 => oauth_error(
                401,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
            ),
            403 => oauth_error(403, "access_denied", "Requested client not authorized."),
            405 => oauth_error(405, "invalid_request", "Method Not Allowed"),
            429 | 503 => oauth_error(
                status,
                "temporarily_unavailable",
                "The service is temporarily unavailable. Try again later.",
            ),
            500.. => oauth_error(status, "internal_failure", "Backend Error"),
            _ => oauth_error(status, "invalid_request", "Bad Request"),
        }
    }

    fn revoke_success(&self) -> Reply {
        Reply::empty(204)
    }

    fn api_error(&self, error: ApiError<'_>) -> Reply {
        match error {
            ApiError::Unauthenticated(_) => {
                let message = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
                Reply::json(
                    401,
                    json!({
                        "error": {
                            "code": 401,
                            "message": message,
                            "errors": [{
                                "message": "Invalid Credentials",
                                "domain": "global",
                                "reason": "authError",
                                "location": "Authorization",
                                "locationType": "header",
                            }],
                            "status": "UNAUTHENTICATED",
                        },
                    }),
                )
            }
            ApiError::UnknownUser(_) => api_error(
                404,
                "Resource Not Found: userKey",
                "global",
                "notFound",
                "NOT_FOUND",
            ),
            ApiError::Forbidden => api_error(
                403,
                "Not Authorized to access this resource/api",
                "global",
                "forbidden",
                "PERMISSION_DENIED",
            ),
            ApiError::BadRequest(message) => {
                api_error(400, message, "global", "badRequest", "INVALID_ARGUMENT")
            }
            ApiError::NoSuchPath => api_error(404, "Not Found", "global", "notFound", "NOT_FOUND"),
            ApiError::MethodNotAllowed => api_error(
                405,
                "Method Not Allowed",
                "global",
                "methodNotAllowed",
                "UNIMPLEMENTED",
            ),
            ApiError::TooManyRequests => api_error(
                429,
                "Rate Limit Exceeded",
                "usageLimits",
                "rateLimitExceeded",
                "RESOURCE_EXHAUSTED",
            ),
            ApiError::Quota(reason) => {
                let message = match reason {
                    "userRateLimitExceeded" => "User Rate Limit Exceeded",
                    "rateLimitExceeded" => "Rate Limit Exceeded",
                    "quotaExceeded" => {
                        "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute'."
                    }
                    "dailyLimitExceeded" => "Daily Limit Exceeded",
                    other => other,
                };
                api_error(403, message, "usageLimits", reason, "PERMISSION_DENIED")
            }
            ApiError::Unavailable => api_error(
                503,
                "The service is currently unavailable.",
                "global",
                "backendError",
                "UNAVAILABLE",
            ),
            ApiError::Other(status @ 400) => api_error(
                status,
                "Bad Request",
                "global",
                "badRequest",
                "INVALID_ARGUMENT",
            ),
            ApiError::Other(status @ 500..) => api_error(
                status,
                "Internal error encountered.",
                "global",
                "backendError",
                "INTERNAL",
            ),
            ApiError::Other(status) => {
                api_error(status, "Request failed.", "global", "failed", "UNKNOWN")
            }
        }
    }
}
