//! The host config of `srs run` (SPEC §8): where the providers are, how to
//! authenticate to them, and how hard to push them.
//!
//! Secrets never live in the file: the Office 365 client secret is read from
//! the environment variable the file names, the Google key from its own key
//! file. Both are held in [`Secret`], whose `Debug` prints nothing of them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::Url;
use serde::Deserialize;

/// The whole `HOST.toml`. A section may be left out when no policy needs it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    pub office365: Option<Office365Config>,
    pub google_workspace: Option<GoogleConfig>,
    #[serde(default)]
    pub retry: RetryConfig,
}

/// `[office365]`: an app registration with `User.RevokeSessions.All`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Office365Config {
    pub tenant_id: String,
    pub client_id: String,
    /// The name of the environment variable holding the client secret.
    pub client_secret_env: String,
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    #[serde(default = "default_login_url")]
    pub login_url: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    pub requests_per_second: Option<f64>,
}

/// `[google_workspace]`: a service account with domain-wide delegation of
/// `admin.directory.user.security`, acting as `admin_subject`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// A Google JSON key file; a relative path is read from the config's directory.
    pub service_account_key_file: PathBuf,
    pub admin_subject: String,
    #[serde(default = "default_directory_url")]
    pub directory_url: String,
    /// Overrides the key file's `token_uri`.
    pub token_url: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    pub requests_per_second: Option<f64>,
}

/// `[retry]`: backoff for throttling and outages (SPEC §8).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// The first backoff when a provider gives no `Retry-After`; doubled per attempt.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// The largest single wait, backoff or `Retry-After`.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// How long one run keeps retrying a task; after that it stays `pending`
    /// for the next run.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            deadline_ms: default_deadline_ms(),
        }
    }
}

fn default_graph_url() -> String {
    "https://graph.microsoft.com".into()
}
fn default_login_url() -> String {
    "https://login.microsoftonline.com".into()
}
fn default_directory_url() -> String {
    "https://admin.googleapis.com".into()
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_concurrency() -> usize {
    8
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    32_000
}
fn default_deadline_ms() -> u64 {
    120_000
}

/// How one provider's calls are paced.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub timeout: Duration,
    pub max_concurrency: usize,
    pub requests_per_second: Option<f64>,
}

impl HostConfig {
    /// Reads and checks `HOST.toml`. Errors name the file and the field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read host config {}", path.display()))?;
        let mut config: HostConfig = toml::from_str(&text)
            .with_context(|| format!("host config {} is invalid", path.display()))?;
        if let Some(google) = &mut config.google_workspace
            && google.service_account_key_file.is_relative()
            && let Some(dir) = path.parent()
        {
            google.service_account_key_file = dir.join(&google.service_account_key_file);
        }
        config
            .check()
            .with_context(|| format!("host config {} is invalid", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        if let Some(o) = &self.office365 {
            base_url("office365.graph_url", &o.graph_url)?;
            base_url("office365.login_url", &o.login_url)?;
            limits("office365", o.max_concurrency, o.requests_per_second)?;
        }
        if let Some(g) = &self.google_workspace {
            base_url("google_workspace.directory_url", &g.directory_url)?;
            if let Some(url) = &g.token_url {
                base_url("google_workspace.token_url", url)?;
            }
            limits("google_workspace", g.max_concurrency, g.requests_per_second)?;
        }
        let r = &self.retry;
        if r.initial_backoff_ms == 0 || r.max_backoff_ms < r.initial_backoff_ms {
            bail!("retry: need 0 < initial_backoff_ms <= max_backoff_ms");
        }
        Ok(())
    }
}

impl Office365Config {
    pub fn limits(&self) -> CallLimits {
        CallLimits {
            timeout: Duration::from_millis(self.timeout_ms),
            max_concurrency: self.max_concurrency,
            requests_per_second: self.requests_per_second,
        }
    }

    /// The client secret, from the environment variable the config names.
    pub fn client_secret(&self) -> Result<Secret> {
        match std::env::var(&self.client_secret_env) {
            Ok(value) if !value.is_empty() => Ok(Secret(value)),
            _ => bail!(
                "office365.client_secret_env: the environment variable `{}` is not set",
                self.client_secret_env
            ),
        }
    }
}

impl GoogleConfig {
    pub fn limits(&self) -> CallLimits {
        CallLimits {
            timeout: Duration::from_millis(self.timeout_ms),
            max_concurrency: self.max_concurrency,
            requests_per_second: self.requests_per_second,
        }
    }

    /// Reads the service account key file. Error messages never quote it.
    pub fn key(&self) -> Result<ServiceAccountKey> {
        let path = &self.service_account_key_file;
        let text = std::fs::read(path)
            .with_context(|| format!("cannot read the Google key file {}", path.display()))?;
        // serde's messages can quote the value they choke on: report only where.
        let raw: RawKey = serde_json::from_slice(&text).map_err(|e| {
            anyhow::anyhow!(
                "the Google key file {} is not a service account JSON key (line {}, column {})",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        let token_url = self.token_url.clone().unwrap_or(raw.token_uri);
        base_url("the Google token url", &token_url)?;
        Ok(ServiceAccountKey {
            client_email: raw.client_email,
            private_key: Secret(raw.private_key),
            token_url,
        })
    }
}

/// The parts of a Google JSON key file `srs` uses.
#[derive(Deserialize)]
struct RawKey {
    client_email: String,
    private_key: String,
    token_uri: String,
}

/// A service account: who it is, its private key, where it gets tokens.
#[derive(Debug)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: Secret,
    pub token_url: String,
}

/// A secret value: a client secret, a private key, an access token. Its
/// `Debug` shows nothing of it and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A provider base URL: https, or http to a loopback address (test servers).
pub fn base_url(field: &str, value: &str) -> Result<Url> {
    let url = Url::parse(value).with_context(|| format!("{field}: `{value}` is not a URL"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => bail!("{field}: `{value}` must be https (plain http only to a loopback address)"),
    }
}

fn limits(section: &str, concurrency: usize, rps: Option<f64>) -> Result<()> {
    if concurrency == 0 {
        bail!("{section}.max_concurrency must be at least 1");
    }
    if let Some(rps) = rps
        && !(rps.is_finite() && rps > 0.0)
    {
        bail!("{section}.requests_per_second must be a positive number");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: HostConfig =
            toml::from_str("[office365]\ntenant_id='t'\nclient_id='c'\nclient_secret_env='S'\n")
                .unwrap();
        let o = c.office365.unwrap();
        assert_eq!(o.graph_url, "https://graph.microsoft.com");
        assert_eq!(o.max_concurrency, 8);
        assert!(c.google_workspace.is_none());
        let typo = toml::from_str::<HostConfig>(
            "[office365]\ntenant_id='t'\nclient_id='c'\nclient_secret_env='S'\ngraph_ulr='x'\n",
        );
        assert!(typo.unwrap_err().to_string().contains("graph_ulr"));
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(base_url("f", "https://graph.microsoft.com").is_ok());
        assert!(base_url("f", "http://127.0.0.1:8080").is_ok());
        assert!(base_url("f", "http://graph.microsoft.com").is_err());
        assert!(base_url("f", "ftp://127.0.0.1").is_err());
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
    }
}
