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
    /// `srs serve` (SPEC §10).
    pub serve: ServeConfig,
    /// Shared Signals (SPEC §11), if configured.
    pub ssf: Option<SsfConfig>,
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
    /// How long a process's claim on a task lasts unless renewed (SPEC §12):
    /// after a crash, other processes take its tasks over this much later.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            deadline_ms: default_deadline_ms(),
            lease_ms: default_lease_ms(),
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
fn default_lease_ms() -> u64 {
    10_000
}

/// `[serve]`: the service and its gate (SPEC §10). Tokens are named by the
/// environment variables holding them, never written here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Where to listen (overridden by `--listen`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The bearer token for `POST /v1/events` (UEM pushes).
    pub intake_token_env: Option<String>,
    /// The bearer token for the admin API (`/v1/policy`, `/v1/status`, …).
    pub admin_token_env: Option<String>,
    /// The bearer token gateways send to `GET /v1/check`; without it the check
    /// is open (keep it on loopback).
    pub check_token_env: Option<String>,
    /// The header naming the user at `/v1/check`.
    #[serde(default = "default_user_header")]
    pub user_header: String,
    /// The header naming the device at `/v1/check`.
    #[serde(default = "default_device_header")]
    pub device_header: String,
    /// A user or device never seen: `allow` (default) or `block`.
    #[serde(default)]
    pub unknown: Unknown,
    /// The largest request body, in bytes (413 beyond).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Connections served at once; more wait to be accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
    /// How long a client may take to send a request's headers, and how long
    /// a kept-alive connection may sit idle (ms).
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// How long a client may take to send a request's body (ms); 408 beyond.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// On SIGTERM, how long calls in flight may take to finish (ms).
    #[serde(default = "default_drain_ms")]
    pub drain_ms: u64,
    /// How often pending tasks are retried (ms).
    #[serde(default = "default_resume_ms")]
    pub resume_ms: u64,
    /// Sandbox workers deciding events (default: the number of cores).
    pub workers: Option<u64>,
    /// How often the gate reads decisions other processes journaled (ms).
    #[serde(default = "default_gate_refresh_ms")]
    pub gate_refresh_ms: u64,
}

/// `[ssf]`: Shared Signals (SPEC §11). The signing key is read from its file
/// when `srs serve` starts, and tokens from the variables named here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsfConfig {
    /// Our `iss`, and the audience transmitters must send to.
    pub issuer: String,
    /// The RSA private key signing our SETs (PKCS#8 PEM, 2048 bits or more).
    pub signing_key_file: PathBuf,
    /// The `kid` of that key in `/jwks.json`.
    pub key_id: String,
    /// The bearer token for the stream-management endpoints; without it they
    /// are off.
    pub stream_token_env: Option<String>,
    /// How far a received SET's `iat` may be in the future, in seconds.
    #[serde(default = "default_clock_skew_s")]
    pub max_clock_skew_s: u64,
    /// Where `session-revoked` SETs are pushed.
    #[serde(default)]
    pub receivers: Vec<SsfReceiver>,
    /// Whose SETs `/v1/ssf/push` accepts.
    #[serde(default)]
    pub transmitters: Vec<SsfTransmitter>,
}

/// `[[ssf.receivers]]`: an RFC 8935 push endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsfReceiver {
    pub endpoint: String,
    pub audience: String,
    /// The variable holding the `Authorization` header value to send, if any.
    pub authorization_env: Option<String>,
}

/// `[[ssf.transmitters]]`: a transmitter whose SETs are accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsfTransmitter {
    pub issuer: String,
    /// Its public keys (a JWKS), by `kid`.
    pub jwks_file: PathBuf,
    /// The action a `not-compliant` `device-compliance-change` carries.
    #[serde(default = "default_noncompliant_action")]
    pub noncompliant_action: String,
}

fn default_clock_skew_s() -> u64 {
    300
}
fn default_noncompliant_action() -> String {
    "Block".into()
}

fn check_ssf(s: &SsfConfig) -> Result<()> {
    within(
        "ssf",
        "max_clock_skew_s",
        s.max_clock_skew_s,
        bounds::CLOCK_SKEW_S,
    )?;
    if s.issuer.is_empty() || s.key_id.is_empty() {
        bail!("ssf: `issuer` and `key_id` cannot be empty");
    }
    for (i, r) in s.receivers.iter().enumerate() {
        base_url(&format!("ssf.receivers[{i}].endpoint"), &r.endpoint)?;
        if r.audience.is_empty() {
            bail!("ssf.receivers[{i}].audience cannot be empty");
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in s.transmitters.iter().enumerate() {
        if !seen.insert(&t.issuer) {
            bail!(
                "ssf.transmitters[{i}]: issuer `{}` is listed twice",
                t.issuer
            );
        }
    }
    Ok(())
}

/// What the gate answers for a user or device it has never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// No known non-compliance: pass.
    #[default]
    Allow,
    /// Fail closed until the UEM has reported the device.
    Block,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            intake_token_env: None,
            admin_token_env: None,
            check_token_env: None,
            user_header: default_user_header(),
            device_header: default_device_header(),
            unknown: Unknown::default(),
            max_body_bytes: default_max_body_bytes(),
            max_connections: default_max_connections(),
            header_timeout_ms: default_header_timeout_ms(),
            body_timeout_ms: default_body_timeout_ms(),
            drain_ms: default_drain_ms(),
            resume_ms: default_resume_ms(),
            workers: None,
            gate_refresh_ms: default_gate_refresh_ms(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_user_header() -> String {
    "X-SRS-User".into()
}
fn default_device_header() -> String {
    "X-SRS-Device".into()
}
fn default_max_body_bytes() -> u64 {
    8 << 20
}
fn default_max_connections() -> u64 {
    1024
}
fn default_header_timeout_ms() -> u64 {
    10_000
}
fn default_body_timeout_ms() -> u64 {
    30_000
}
fn default_drain_ms() -> u64 {
    10_000
}
fn default_resume_ms() -> u64 {
    30_000
}
fn default_gate_refresh_ms() -> u64 {
    1_000
}

fn check_serve(s: &ServeConfig) -> Result<()> {
    within(
        "serve",
        "max_body_bytes",
        s.max_body_bytes,
        bounds::MAX_BODY_BYTES,
    )?;
    within(
        "serve",
        "max_connections",
        s.max_connections,
        bounds::MAX_CONNECTIONS,
    )?;
    within(
        "serve",
        "header_timeout_ms",
        s.header_timeout_ms,
        bounds::TIMEOUT_MS,
    )?;
    within(
        "serve",
        "body_timeout_ms",
        s.body_timeout_ms,
        bounds::TIMEOUT_MS,
    )?;
    within("serve", "drain_ms", s.drain_ms, bounds::DEADLINE_MS)?;
    within("serve", "resume_ms", s.resume_ms, bounds::RESUME_MS)?;
    within(
        "serve",
        "gate_refresh_ms",
        s.gate_refresh_ms,
        bounds::RESUME_MS,
    )?;
    if let Some(workers) = s.workers {
        within("serve", "workers", workers, bounds::WORKERS)?;
    }
    for (key, name) in [
        ("user_header", &s.user_header),
        ("device_header", &s.device_header),
    ] {
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            bail!("serve.{key}: `{name}` is not a header name");
        }
    }
    Ok(())
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
    /// `deadline_ms`, `serve.drain_ms`: 0 (never wait) to 7 days.
    pub const DEADLINE_MS: RangeInclusive<u64> = 0..=604_800_000;
    /// `serve.max_body_bytes`: 1 KiB to 256 MiB.
    pub const MAX_BODY_BYTES: RangeInclusive<u64> = 1024..=(256 << 20);
    /// `serve.max_connections`: 1 to 65,536.
    pub const MAX_CONNECTIONS: RangeInclusive<u64> = 1..=65_536;
    /// `serve.resume_ms`: 10 ms to 1 day.
    pub const RESUME_MS: RangeInclusive<u64> = 10..=86_400_000;
    /// `serve.workers`: 1 to 256 sandbox instances.
    pub const WORKERS: RangeInclusive<u64> = 1..=256;
    /// `retry.lease_ms`: 300 ms to 1 hour.
    pub const LEASE_MS: RangeInclusive<u64> = 300..=3_600_000;
    /// `ssf.max_clock_skew_s`: 0 to 1 hour.
    pub const CLOCK_SKEW_S: RangeInclusive<u64> = 0..=3600;
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
    #[serde(default)]
    serve: ServeConfig,
    ssf: Option<SsfConfig>,
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
        check_serve(&raw.serve)?;
        if let Some(ssf) = &raw.ssf {
            check_ssf(ssf)?;
        }
        let mut sections = BTreeMap::new();
        for (name, mut table) in raw.sections {
            let provider: Provider = name.parse().map_err(|_| {
                anyhow::anyhow!(
                    "unknown section [{name}]; expected [retry], [serve], [ssf] or a provider: {}",
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
            serve: raw.serve,
            ssf: raw.ssf,
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
    within("retry", "lease_ms", r.lease_ms, bounds::LEASE_MS)?;
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
    fn ssf_is_read_and_checked() {
        let base =
            "[ssf]\nissuer = 'https://srs.example'\nsigning_key_file = 'k.pem'\nkey_id = 'k1'\n";
        let c = parse(&format!(
            "{base}[[ssf.receivers]]\nendpoint = 'https://rp.example/push'\naudience = 'https://rp.example'\n\
             [[ssf.transmitters]]\nissuer = 'https://idp.example'\njwks_file = 'idp.json'\n"
        ))
        .unwrap();
        let ssf = c.ssf.unwrap();
        assert_eq!(ssf.max_clock_skew_s, 300);
        assert_eq!(ssf.transmitters[0].noncompliant_action, "Block");
        for (extra, want) in [
            ("colour = 1\n", "unknown field `colour`"),
            ("max_clock_skew_s = 3601\n", "max_clock_skew_s"),
            (
                "[[ssf.receivers]]\nendpoint = 'http://rp.example/push'\naudience = 'a'\n",
                "must be https",
            ),
            (
                "[[ssf.transmitters]]\nissuer = 'i'\njwks_file = 'a'\n[[ssf.transmitters]]\nissuer = 'i'\njwks_file = 'b'\n",
                "listed twice",
            ),
        ] {
            let err = format!("{:#}", parse(&format!("{base}{extra}")).unwrap_err());
            assert!(err.contains(want), "{extra}: {err}");
        }
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
    }
}
