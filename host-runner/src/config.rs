//! The host config (`HOST.toml`, SPEC §8): one section per provider, named by
//! its wire name (`[office365]`, `[google_workspace]`), and `[retry]`.
//!
//! Every provider section takes the call limits read here (`timeout_ms`,
//! `max_concurrency`, `requests_per_second`); the rest of it belongs to the
//! provider's own file in `providers/`, which reads it with unknown fields
//! refused (`providers::load_config` loads and checks both). Every number is
//! bounded when the file is loaded (the bounds are in `docs/semantics.md`),
//! so nothing later can overflow on them.
//!
//! Secrets never live in the file: the Office 365 client secret is read from
//! the environment variable the file names, the Google key from its own key
//! file. Both are held in [`Secret`], whose `Debug` prints nothing of them.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use policy_core::Provider;
use reqwest::Url;
use serde::Deserialize;

/// The whole `HOST.toml`. A provider section may be left out when no policy needs it.
#[derive(Debug)]
pub struct HostConfig {
    sections: BTreeMap<Provider, Section>,
    /// Backoff and deadline for retried calls.
    pub retry: RetryConfig,
    /// The config file's directory: relative paths in it are read from here.
    pub dir: PathBuf,
}

/// One provider's section: the call limits, and the rest for the provider.
#[derive(Debug, Clone)]
pub struct Section {
    /// How this provider's calls are bounded.
    pub limits: CallLimits,
    /// The provider's own keys, for the provider to read.
    pub table: toml::Table,
}

/// `[retry]`: backoff for throttling and outages (SPEC §8).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// The first backoff when a provider gives no `Retry-After`; doubled per
    /// retry. Also the shortest wait after any `Retry-After`, so a provider
    /// that says "now" every time cannot make srs spin.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// The largest backoff. A `Retry-After` is honoured as given: when it
    /// would end past the deadline, the task stays pending at once.
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

fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    32_000
}
fn default_deadline_ms() -> u64 {
    120_000
}

/// Bounds on the numbers in `HOST.toml` (documented in `docs/semantics.md`).
pub mod bounds {
    use std::ops::RangeInclusive;

    /// `timeout_ms`: 1 ms to 5 minutes.
    pub const TIMEOUT_MS: RangeInclusive<u64> = 1..=300_000;
    /// `max_concurrency`: 1 to 256 calls at once per provider.
    pub const MAX_CONCURRENCY: RangeInclusive<u64> = 1..=256;
    /// `requests_per_second`: one call per 100 s to 10,000 a second.
    pub const REQUESTS_PER_SECOND: RangeInclusive<f64> = 0.01..=10_000.0;
    /// `initial_backoff_ms` and `max_backoff_ms`: 1 ms to 1 hour.
    pub const BACKOFF_MS: RangeInclusive<u64> = 1..=3_600_000;
    /// `deadline_ms`: 0 (never wait for a retry) to 7 days.
    pub const DEADLINE_MS: RangeInclusive<u64> = 0..=604_800_000;
}

/// How one provider's calls are bounded.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Per request, connecting included.
    pub timeout: Duration,
    /// Calls in flight at once.
    pub max_concurrency: usize,
    /// An optional pace.
    pub requests_per_second: Option<f64>,
}

/// The limit keys of a provider section, with their defaults.
#[derive(Deserialize)]
struct RawLimits {
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_concurrency")]
    max_concurrency: u64,
    requests_per_second: Option<f64>,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_concurrency() -> u64 {
    8
}

const LIMIT_KEYS: [&str; 3] = ["timeout_ms", "max_concurrency", "requests_per_second"];

/// `HOST.toml` as TOML reads it: `[retry]` and the provider sections by name.
#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    retry: RetryConfig,
    #[serde(flatten)]
    sections: BTreeMap<String, toml::Table>,
}

impl HostConfig {
    /// Reads and checks `HOST.toml`. Errors name the file and the field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read host config {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::parse(&text, dir)
            .with_context(|| format!("host config {} is invalid", path.display()))
    }

    /// Parses and checks a config whose relative paths are read from `dir`.
    pub fn parse(text: &str, dir: PathBuf) -> Result<Self> {
        let raw: RawConfig = toml::from_str(text)?;
        check_retry(&raw.retry)?;
        let mut sections = BTreeMap::new();
        for (name, mut table) in raw.sections {
            let provider: Provider = name.parse().map_err(|_| {
                anyhow::anyhow!(
                    "unknown section [{name}]; expected [retry] or a provider: {}",
                    Provider::ALL.map(|p| format!("[{p}]")).join(", ")
                )
            })?;
            let mut limits = toml::Table::new();
            for key in LIMIT_KEYS {
                if let Some(value) = table.remove(key) {
                    limits.insert(key.to_owned(), value);
                }
            }
            let limits = call_limits(&name, limits)?;
            sections.insert(provider, Section { limits, table });
        }
        Ok(Self {
            sections,
            retry: raw.retry,
            dir,
        })
    }

    /// A provider's section, if the file has one.
    pub fn section(&self, provider: Provider) -> Option<&Section> {
        self.sections.get(&provider)
    }

    /// Every provider section, by provider.
    pub fn sections(&self) -> impl Iterator<Item = (Provider, &Section)> {
        self.sections.iter().map(|(p, s)| (*p, s))
    }
}

fn call_limits(section: &str, table: toml::Table) -> Result<CallLimits> {
    let raw: RawLimits = table.try_into().with_context(|| format!("[{section}]"))?;
    within(section, "timeout_ms", raw.timeout_ms, bounds::TIMEOUT_MS)?;
    within(
        section,
        "max_concurrency",
        raw.max_concurrency,
        bounds::MAX_CONCURRENCY,
    )?;
    if let Some(rps) = raw.requests_per_second
        && !bounds::REQUESTS_PER_SECOND.contains(&rps)
    {
        bail!(
            "{section}.requests_per_second must be between {} and {}",
            bounds::REQUESTS_PER_SECOND.start(),
            bounds::REQUESTS_PER_SECOND.end()
        );
    }
    Ok(CallLimits {
        timeout: Duration::from_millis(raw.timeout_ms),
        max_concurrency: usize::try_from(raw.max_concurrency)?,
        requests_per_second: raw.requests_per_second,
    })
}

fn check_retry(r: &RetryConfig) -> Result<()> {
    within(
        "retry",
        "initial_backoff_ms",
        r.initial_backoff_ms,
        bounds::BACKOFF_MS,
    )?;
    within(
        "retry",
        "max_backoff_ms",
        r.max_backoff_ms,
        bounds::BACKOFF_MS,
    )?;
    within("retry", "deadline_ms", r.deadline_ms, bounds::DEADLINE_MS)?;
    if r.max_backoff_ms < r.initial_backoff_ms {
        bail!("retry: need 0 < initial_backoff_ms <= max_backoff_ms");
    }
    Ok(())
}

fn within(section: &str, key: &str, value: u64, range: RangeInclusive<u64>) -> Result<()> {
    if !range.contains(&value) {
        bail!(
            "{section}.{key} is {value}; it must be between {} and {}",
            range.start(),
            range.end()
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HostConfig> {
        HostConfig::parse(text, PathBuf::from("."))
    }

    #[test]
    fn defaults_and_unknown_fields() {
        let c =
            parse("[office365]\ntenant_id='t'\nclient_id='c'\nclient_secret_env='S'\n").unwrap();
        let o = c.section(Provider::Office365).unwrap();
        assert_eq!(o.limits.max_concurrency, 8);
        assert_eq!(o.limits.timeout, Duration::from_millis(10_000));
        assert!(c.section(Provider::GoogleWorkspace).is_none());
        let section = parse("[okta]\nx=1\n");
        assert!(format!("{:#}", section.unwrap_err()).contains("unknown section [okta]"));
    }

    #[test]
    fn numbers_are_bounded_at_load() {
        let o365 = "[office365]\ntenant_id='t'\nclient_id='c'\nclient_secret_env='S'\n";
        for (extra, key) in [
            ("timeout_ms = 0", "timeout_ms"),
            ("timeout_ms = 300001", "timeout_ms"),
            ("max_concurrency = 0", "max_concurrency"),
            ("max_concurrency = 100000", "max_concurrency"),
            ("requests_per_second = 0.0", "requests_per_second"),
            ("requests_per_second = nan", "requests_per_second"),
            ("requests_per_second = 1e300", "requests_per_second"),
        ] {
            let err = parse(&format!("{o365}{extra}\n")).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{extra}: {err:#}");
        }
        for retry in [
            "initial_backoff_ms = 0",
            "max_backoff_ms = 3600001",
            "deadline_ms = 18446744073709551615",
            "initial_backoff_ms = 100\nmax_backoff_ms = 50",
        ] {
            assert!(parse(&format!("[retry]\n{retry}\n")).is_err(), "{retry}");
        }
        assert!(parse("[retry]\ndeadline_ms = 0\n").is_ok());
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
