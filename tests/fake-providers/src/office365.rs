//! The Microsoft identity platform (client credentials) + Microsoft Graph dialect.

use std::ops::Deref;
use std::time::SystemTime;

use hyper::header::HeaderName;
use serde_json::json;

use crate::server::{
    ApiError, AuthProblem, Dialect, FakeServer, Reply, Route, field, iso_datetime, percent_decode,
    random_uuid,
};

/// The only scope the fake token endpoint grants.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Configuration of [`FakeOffice365`]: the app registration it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Office365Options {
    /// The directory (tenant) ID expected in the token path.
    pub tenant_id: String,
    /// The application (client) ID.
    pub client_id: String,
    /// The client secret value; never echoed in any response.
    pub client_secret: String,
    /// `expires_in` of issued tokens, in seconds (default 3599); tokens are refused after it.
    pub token_expires_in: u64,
}

impl Default for Office365Options {
    /// Fixed test values: tenant `11111111-1111-1111-1111-111111111111`, client
    /// `22222222-2222-2222-2222-222222222222`, secret `test-client-secret`, 3599 s tokens.
    fn default() -> Self {
        Self {
            tenant_id: "11111111-1111-1111-1111-111111111111".to_owned(),
            client_id: "22222222-2222-2222-2222-222222222222".to_owned(),
            client_secret: "test-client-secret".to_owned(),
            token_expires_in: 3599,
        }
    }
}

/// A fake Microsoft identity platform + Microsoft Graph on one loopback port:
///
/// - `POST /{tenant_id}/oauth2/v2.0/token` (client credentials grant, scope [`GRAPH_SCOPE`]);
/// - `POST /v1.0/users/{id or UPN}/revokeSignInSessions` (bearer token, empty body), answered
///   200 `{"@odata.context":…,"value":true}`.
///
/// The common controls and counters are on [`FakeServer`], reached through `Deref`.
#[derive(Debug)]
pub struct FakeOffice365 {
    server: FakeServer,
    options: Office365Options,
}

impl FakeOffice365 {
    /// Starts the server on `127.0.0.1` with a random port.
    pub fn start(options: Office365Options) -> anyhow::Result<Self> {
        let graph = Graph {
            tenant_id: options.tenant_id.clone(),
            client_id: options.client_id.clone(),
            client_secret: options.client_secret.clone(),
        };
        let server = FakeServer::start(options.token_expires_in, |_| {
            Ok(Box::new(graph) as Box<dyn Dialect>)
        })?;
        Ok(Self { server, options })
    }

    /// The login (authority host) URL: [`FakeServer::base_url`].
    pub fn login_url(&self) -> String {
        self.server.base_url()
    }

    /// The Graph URL: [`FakeServer::base_url`].
    pub fn graph_url(&self) -> String {
        self.server.base_url()
    }

    /// The full token URL, `{base}/{tenant_id}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.server.base_url(),
            self.options.tenant_id
        )
    }

    /// The options the server was started with.
    pub fn options(&self) -> &Office365Options {
        &self.options
    }
}

impl Deref for FakeOffice365 {
    type Target = FakeServer;

    fn deref(&self) -> &FakeServer {
        &self.server
    }
}

struct Graph {
    tenant_id: String,
    client_id: String,
    client_secret: String,
}

/// A Microsoft identity platform OAuth error.
fn aad_error(status: u16, error: &str, code: u32, message: &str) -> Reply {
    let trace_id = random_uuid();
    let correlation_id = random_uuid();
    let timestamp = format!("{}Z", iso_datetime(SystemTime::now()).replace('T', " "));
    Reply::json(
        status,
        json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}"
            ),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

fn missing(parameter: &str) -> Reply {
    aad_error(
        400,
        "invalid_request",
        900_144,
        &format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

/// A Microsoft Graph error.
fn graph_error(status: u16, code: &str, message: &str) -> Reply {
    let request_id = random_uuid();
    Reply::json(
        status,
        json!({
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": iso_datetime(SystemTime::now()),
                    "request-id": request_id,
                    "client-request-id": request_id,
                },
            },
        }),
    )
    .header(HeaderName::from_static("request-id"), request_id)
}

impl Dialect for Graph {
    fn route(&self, path: &str) -> Route {
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["", tenant, "oauth2", "v2.0", "token"] if !tenant.is_empty() => Route::Token,
            ["", "v1.0", "users", subject, "revokeSignInSessions"] if !subject.is_empty() => {
                Route::Revoke(percent_decode(subject, false))
            }
            _ => Route::Unknown,
        }
    }

    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn token_prefix(&self) -> &'static str {
        "fake-aad."
    }

    fn check_token(&self, path: &str, form: &[(String, String)]) -> Result<(), Reply> {
        let tenant = path
            .split('/')
            .nth(1)
            .map(|t| percent_decode(t, false))
            .unwrap_or_default();
        if tenant != self.tenant_id {
            return Err(aad_error(
                400,
                "invalid_request",
                90_002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
                ),
            ));
        }
        match field(form, "grant_type") {
            None => return Err(missing("grant_type")),
            Some("client_credentials") => {}
            Some(other) => {
                return Err(aad_error(
                    400,
                    "unsupported_grant_type",
                    70_003,
                    &format!("The app requested an unsupported grant type '{other}'."),
                ));
            }
        }
        let client_id = field(form, "client_id").ok_or_else(|| missing("client_id"))?;
        if client_id != self.client_id {
            return Err(aad_error(
                400,
                "unauthorized_client",
                700_016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                    self.tenant_id
                ),
            ));
        }
        let scope = field(form, "scope").ok_or_else(|| missing("scope"))?;
        if scope != GRAPH_SCOPE {
            return Err(aad_error(
                400,
                "invalid_scope",
                70_011,
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid.",
            ));
        }
        match field(form, "client_secret") {
            None => Err(aad_error(
                401,
                "invalid_client",
                7_000_216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            )),
            Some(secret) if secret == self.client_secret => Ok(()),
            Some(_) => Err(self.token_error(401)),
        }
    }

    fn token_success(&self, access_token: &str, expires_in: u64) -> serde_json::Value {
        json!({
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": access_token,
        })
    }

    fn token_error(&self, status: u16) -> Reply {
        match status {
            401 => aad_error(
                401,
                "invalid_client",
                7_000_215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    self.client_id
                ),
            ),
            403 => aad_error(
                403,
                "unauthorized_client",
                7_000_112,
                "Application is disabled.",
            ),
            405 => aad_error(
                405,
                "invalid_request",
                900_561,
                "The endpoint only accepts POST, OPTIONS requests.",
            ),
            429 | 503 => aad_error(
                status,
                "temporarily_unavailable",
                90_033,
                "A transient error has occurred. Please try again.",
            ),
            500.. => aad_error(
                status,
                "server_error",
                90_100,
                "An internal server error occurred.",
            ),
            _ => aad_error(
                status,
                "invalid_request",
                90_013,
                "Invalid input received from the user.",
            ),
        }
    }

    fn revoke_success(&self) -> Reply {
        Reply::json(
            200,
            json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean",
                "value": true,
            }),
        )
    }

    fn api_error(&self, error: ApiError<'_>) -> Reply {
        match error {
            ApiError::Unauthenticated(problem) => graph_error(
                401,
                "InvalidAuthenticationToken",
                match problem {
                    AuthProblem::Missing => "Access token is empty.",
                    AuthProblem::Unknown => "Access token validation failure. Invalid audience.",
                    AuthProblem::Expired => "Lifetime validation failed, the token is expired.",
                },
            ),
            ApiError::UnknownUser(id) => graph_error(
                404,
                "Request_ResourceNotFound",
                &format!(
                    "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
                ),
            ),
            ApiError::Forbidden => graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ),
            ApiError::BadRequest(message) => graph_error(400, "BadRequest", message),
            ApiError::NoSuchPath => graph_error(
                404,
                "itemNotFound",
                "The requested resource does not exist.",
            ),
            ApiError::MethodNotAllowed => graph_error(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request uri.",
            ),
            ApiError::TooManyRequests | ApiError::Quota(_) => graph_error(
                429,
                "TooManyRequests",
                "Too many requests have been sent. Retry after the time in the Retry-After header.",
            ),
            ApiError::Unavailable => graph_error(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Try the request again after a delay.",
            ),
            ApiError::Other(status @ 400) => graph_error(
                status,
                "invalidRequest",
                "The request is malformed or incorrect.",
            ),
            ApiError::Other(status @ 500..) => graph_error(
                status,
                "generalException",
                "An unspecified error has occurred.",
            ),
            ApiError::Other(status) => graph_error(status, "UnknownError", "The request failed."),
        }
    }
}
