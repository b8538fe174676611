//! Office 365 (Microsoft Graph): a client-credentials token from the Microsoft
//! identity platform v2.0, then `POST /v1.0/users/{subject}/revokeSignInSessions`
//! (permission `User.RevokeSessions.All`).

use std::path::Path;

use anyhow::{Result, bail};
use reqwest::Url;
use serde::Deserialize;

use super::{Api, ApiError, Section, error_member, push_segments};
use crate::config::{Secret, base_url};

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// `[office365]`: an app registration with `User.RevokeSessions.All`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Office365 {
    tenant_id: String,
    client_id: String,
    /// The name of the environment variable holding the client secret.
    client_secret_env: String,
    #[serde(default = "default_graph_url")]
    graph_url: String,
    #[serde(default = "default_login_url")]
    login_url: String,
}

fn default_graph_url() -> String {
    "https://graph.microsoft.com".into()
}
fn default_login_url() -> String {
    "https://login.microsoftonline.com".into()
}

impl Section for Office365 {
    fn check(&self, _dir: &Path) -> Result<()> {
        self.urls().map(drop)
    }

    fn api(self, _dir: &Path) -> Result<Box<dyn Api>> {
        let secret = match std::env::var(&self.client_secret_env) {
            Ok(value) if !value.is_empty() => Secret::new(value),
            _ => bail!(
                "office365.client_secret_env: the environment variable `{}` is not set",
                self.client_secret_env
            ),
        };
        let (token_url, users_url) = self.urls()?;
        Ok(Box::new(Graph {
            token_url,
            users_url,
            client_id: self.client_id,
            secret,
        }))
    }
}

impl Office365 {
    /// The token URL and the Graph users collection.
    fn urls(&self) -> Result<(Url, Url)> {
        let mut token = base_url("office365.login_url", &self.login_url)?;
        push_segments(&mut token, &[&self.tenant_id, "oauth2", "v2.0", "token"])
            .map_err(anyhow::Error::msg)?;
        let mut users = base_url("office365.graph_url", &self.graph_url)?;
        push_segments(&mut users, &["v1.0", "users"]).map_err(anyhow::Error::msg)?;
        Ok((token, users))
    }
}

struct Graph {
    token_url: Url,
    users_url: Url,
    client_id: String,
    secret: Secret,
}

impl Api for Graph {
    fn token_request(&self, http: &reqwest::Client) -> Result<reqwest::RequestBuilder, String> {
        Ok(http.post(self.token_url.clone()).form(&[
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.expose()),
            ("scope", GRAPH_SCOPE),
            ("grant_type", "client_credentials"),
        ]))
    }

    fn revoke_endpoint(&self) -> (&Url, &'static str) {
        (&self.users_url, "revokeSignInSessions")
    }

    /// Graph: `{"error": {"code", "message"}}`.
    fn api_error(&self, body: &[u8]) -> ApiError {
        #[derive(Deserialize)]
        struct Error {
            code: Option<String>,
            message: Option<String>,
        }
        error_member::<Error>(body)
            .map(|error| {
                ApiError {
                    code: error.code,
                    message: error.message,
                    quota: false,
                }
                .clipped()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Graph {
        Graph {
            token_url: Url::parse("https://login.example/t/oauth2/v2.0/token").unwrap(),
            users_url: Url::parse("https://graph.example/v1.0/users").unwrap(),
            client_id: "c".into(),
            secret: Secret::new("s".into()),
        }
    }

    #[test]
    fn graph_errors() {
        let body = br#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist","innerError":{}}}"#;
        let e = graph().api_error(body);
        assert_eq!(e.code.as_deref(), Some("Request_ResourceNotFound"));
        assert_eq!(e.message.as_deref(), Some("Resource 'x' does not exist"));
        assert!(!e.quota);
        assert_eq!(graph().api_error(b"<html>"), ApiError::default());
    }

    #[test]
    fn subjects_are_one_path_segment() {
        let graph = graph();
        let (users, action) = graph.revoke_endpoint();
        let mut url = users.clone();
        push_segments(&mut url, &["a/b%c@example.com", action]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://graph.example/v1.0/users/a%2Fb%25c@example.com/revokeSignInSessions"
        );
    }
}
