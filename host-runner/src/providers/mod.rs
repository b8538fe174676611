//! The providers srs revokes sessions at (SPEC §8).
//!
//! A provider is one file here: its `HOST.toml` section, how it gets a bearer
//! token (its grant), where a revocation goes, and how its error bodies read.
//! It implements [`Api`]; [`kind`] is the registry, one line per provider.
//! `http.rs` holds what every provider shares: the [`Client`] with its token
//! cache, pacing, concurrency limit, bounded reads and timeouts.
//!
//! Nothing here decides what an answer means for a task: a call ends in an
//! [`Exchange`], which `revocation::retry` classifies.

mod google_workspace;
mod http;
mod office365;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use policy_core::Provider;
use reqwest::Url;
use serde::de::DeserializeOwned;

use crate::config::HostConfig;
pub use http::{Client, MAX_BODY_BYTES, MAX_TOKEN_LIFETIME};

/// What one provider knows about itself, once its section is read and its
/// secrets are loaded.
pub trait Api: Send + Sync {
    /// The token request (the grant), ready to send; `Err` says why it cannot
    /// be made, with nothing secret in it.
    fn token_request(&self, http: &reqwest::Client) -> Result<reqwest::RequestBuilder, String>;
    /// Where a revocation goes: `{users}/{subject}/{action}`, the users
    /// collection and the action.
    fn revoke_endpoint(&self) -> (&Url, &'static str);
    /// The provider's error code and message from an error body, and whether
    /// the refusal is a quota (retried like a 429).
    fn api_error(&self, body: &[u8]) -> ApiError;
}

/// A provider's section in `HOST.toml` (its call limits taken out).
pub trait Section: DeserializeOwned + 'static {
    /// Checks what can be checked without secrets: URLs, required keys.
    fn check(&self, dir: &Path) -> Result<()>;
    /// Reads the secrets (an environment variable, a key file) and returns
    /// the provider. `dir` is the config file's directory.
    fn api(self, dir: &Path) -> Result<Box<dyn Api>>;
}

/// A provider's error body, as far as srs reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiError {
    /// The provider's own code (Graph `error.code`, Google `errors[0].reason`,
    /// OAuth `error`), clipped.
    pub code: Option<String>,
    /// The provider's message, clipped.
    pub message: Option<String>,
    /// The refusal is a quota or rate limit although its status is not 429.
    pub quota: bool,
}

/// Which endpoint answered: they fail differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `revokeSignInSessions` or `signOut`.
    Revoke,
    /// A token endpoint.
    Token,
}

/// How one call to a provider ended, before anyone decides what it means.
/// Holds no token and no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// An HTTP answer (for the token endpoint: only a refusal comes here).
    Answered {
        endpoint: Endpoint,
        status: u16,
        /// The `Retry-After` header as sent, if any.
        retry_after: Option<String>,
        error: ApiError,
    },
    /// The token endpoint said 2xx but gave no usable token (no
    /// `access_token`, not JSON, HTML, too large).
    BadToken { status: u16, why: String },
    /// No answer: a timeout, a reset, a refused connection, a body cut off.
    NoAnswer { timeout: bool, message: String },
    /// The request could not be made (a URL or a signature).
    Unsendable { why: String },
}

/// How the registry reaches a provider's [`Section`] type.
trait Kind: Sync {
    fn check(&self, table: &toml::Table, dir: &Path) -> Result<()>;
    fn api(&self, table: &toml::Table, dir: &Path) -> Result<Box<dyn Api>>;
}

struct Of<S>(PhantomData<fn() -> S>);

impl<S: Section> Kind for Of<S> {
    fn check(&self, table: &toml::Table, dir: &Path) -> Result<()> {
        section::<S>(table)?.check(dir)
    }

    fn api(&self, table: &toml::Table, dir: &Path) -> Result<Box<dyn Api>> {
        section::<S>(table)?.api(dir)
    }
}

fn section<S: Section>(table: &toml::Table) -> Result<S> {
    Ok(toml::Value::Table(table.clone()).try_into()?)
}

/// The registry: each provider's section type, one line each.
fn kind(provider: Provider) -> &'static dyn Kind {
    match provider {
        Provider::Office365 => &Of::<office365::Office365>(PhantomData),
        Provider::GoogleWorkspace => &Of::<google_workspace::GoogleWorkspace>(PhantomData),
    }
}

/// Loads `HOST.toml` and has each provider check its own section, so a typo
/// is reported at start even in a section this run will not use.
pub fn load_config(path: &Path) -> Result<HostConfig> {
    let config = HostConfig::load(path)?;
    for (provider, section) in config.sections() {
        kind(provider)
            .check(&section.table, &config.dir)
            .with_context(|| format!("host config {} is invalid: [{provider}]", path.display()))?;
    }
    Ok(config)
}

/// The clients for the providers that will be called, by provider.
#[derive(Debug, Default, Clone)]
pub struct Clients {
    clients: BTreeMap<Provider, Arc<Client>>,
}

impl Clients {
    /// Builds a client for each provider in `needed`, reading its secrets; a
    /// missing section is an error naming it.
    pub fn for_providers(
        config: &HostConfig,
        needed: impl IntoIterator<Item = Provider>,
    ) -> Result<Self> {
        let mut clients = BTreeMap::new();
        for provider in needed {
            if clients.contains_key(&provider) {
                continue;
            }
            let section = config.section(provider).ok_or_else(|| {
                anyhow::anyhow!(
                    "`{provider}` revocations are due but there is no [{provider}] section"
                )
            })?;
            let api = kind(provider)
                .api(&section.table, &config.dir)
                .with_context(|| format!("[{provider}]"))?;
            clients.insert(provider, Arc::new(Client::new(api, section.limits)?));
        }
        Ok(Self { clients })
    }

    /// Adds the clients of `other` this one lacks.
    pub fn merge(&mut self, other: Clients) {
        for (provider, client) in other.clients {
            self.clients.entry(provider).or_insert(client);
        }
    }

    /// The client for `provider`, if it was built.
    pub fn get(&self, provider: Provider) -> Option<&Arc<Client>> {
        self.clients.get(&provider)
    }
}

/// The `error` member of an error body, `{"error": …}` (Graph and Google).
fn error_member<E: DeserializeOwned>(body: &[u8]) -> Option<E> {
    #[derive(serde::Deserialize)]
    struct Body<E> {
        error: E,
    }
    serde_json::from_slice::<Body<E>>(body)
        .ok()
        .map(|b| b.error)
}

/// Appends path segments, percent-encoding each (a subject's `/` or `%`
/// cannot change the path).
fn push_segments(url: &mut Url, segments: &[&str]) -> Result<(), String> {
    let text = url.to_string();
    url.path_segments_mut()
        .map_err(|()| format!("`{text}` cannot take a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_in_a_provider_section_is_reported_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(
            &path,
            "[office365]\ntenant_id='t'\nclient_id='c'\nclient_secret_env='S'\ngraph_ulr='x'\n",
        )
        .unwrap();
        let typo = load_config(&path).unwrap_err();
        assert!(format!("{typo:#}").contains("graph_ulr"), "{typo:#}");
        std::fs::write(&path, "[google_workspace]\nservice_account_key_file='k'\n").unwrap();
        let missing = load_config(&path).unwrap_err();
        assert!(
            format!("{missing:#}").contains("admin_subject"),
            "{missing:#}"
        );
    }
}
