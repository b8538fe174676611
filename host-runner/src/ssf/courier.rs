//! Pushing journaled `session-revoked` SETs (RFC 8935): one delivery per
//! receiver per decision, signed when sent (the same `jti` on every try),
//! retried like a provider call (429, 5xx, timeouts; `Retry-After` honoured,
//! else backoff with jitter, until the deadline), `failed` with the
//! receiver's `err` on a 400. Every attempt is journaled before the next, so
//! a crash repeats at most the pushes in flight.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use reqwest::Url;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

use super::keys::Signer;
use super::set::session_revoked;
use crate::config::{RetryConfig, Secret};
use crate::journal::{Attempt, AttemptResult, Claim, Delivery, DeliveryId, Journal};
use crate::revocation::retry;
use crate::revocation::unix_ms;

/// Deliveries pushed at once.
const IN_FLIGHT: usize = 16;
/// The longest wait for one push.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where SETs for one receiver go.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub endpoint: Url,
    pub audience: String,
    /// The `Authorization` header value to send, if any.
    pub authorization: Option<Secret>,
    /// Whether SETs are journaled for it and sent.
    pub status: Status,
}

/// A receiver's status (SSF 1.0 §8.1.2, for streams; configured receivers
/// are always enabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// SETs are journaled and sent.
    Enabled,
    /// SETs are journaled and held until it is enabled again.
    Paused,
    /// Nothing new is journaled for it; what is held stays held.
    Disabled,
}

/// The receivers by key: a configured endpoint, or `stream:<id>`.
#[derive(Debug, Default)]
pub struct Receivers {
    by_key: RwLock<HashMap<String, Receiver>>,
}

impl Receivers {
    pub fn insert(&self, key: String, receiver: Receiver) {
        self.write().insert(key, receiver);
    }

    pub fn remove(&self, key: &str) {
        self.write().remove(key);
    }

    pub fn get(&self, key: &str) -> Option<Receiver> {
        self.read().get(key).cloned()
    }

    /// The keys of the receivers new SETs are journaled for, sorted.
    pub fn taking(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .read()
            .iter()
            .filter(|(_, r)| r.status != Status::Disabled)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Receiver>> {
        self.by_key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Receiver>> {
        self.by_key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Pushes the journal's pending deliveries.
pub struct Courier {
    journal: Arc<dyn Journal>,
    signer: Arc<Signer>,
    issuer: String,
    receivers: Arc<Receivers>,
    http: reqwest::Client,
    retry: RetryConfig,
    running: Mutex<HashSet<DeliveryId>>,
    permits: Semaphore,
    wake: Notify,
    /// This process in the journal's claims.
    owner: Arc<str>,
}

impl std::fmt::Debug for Courier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Courier")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// What one push means.
struct Outcome {
    result: AttemptResult,
    status: Option<u16>,
    code: Option<&'static str>,
    err: Option<String>,
    message: Option<String>,
    after: Option<Duration>,
}

impl Outcome {
    /// The push as journaled: the receiver's `err` and `description`, never the SET.
    fn attempt(&self, at_ms: i64) -> Attempt<'_> {
        Attempt {
            at_ms,
            http_status: self.status,
            error_code: self.code,
            provider_code: self.err.as_deref(),
            message: self.message.as_deref(),
            result: self.result,
        }
    }
}

impl Courier {
    pub fn new(
        journal: Arc<dyn Journal>,
        signer: Arc<Signer>,
        issuer: String,
        receivers: Arc<Receivers>,
        retry: RetryConfig,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("srs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| anyhow::anyhow!("cannot set up the HTTP client"))?;
        Ok(Self {
            journal,
            signer,
            issuer,
            receivers,
            http,
            retry,
            running: Mutex::default(),
            permits: Semaphore::new(IN_FLIGHT),
            wake: Notify::new(),
            owner: crate::revocation::owner(),
        })
    }

    /// The receivers, to add or remove streams.
    pub fn receivers(&self) -> &Arc<Receivers> {
        &self.receivers
    }

    /// The signer, for other SETs (stream verification).
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Our issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Looks at the journal now (new deliveries were journaled).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Deliveries being pushed now.
    pub fn in_flight(&self) -> usize {
        self.running.lock().map_or(0, |running| running.len())
    }

    /// Pushes pending deliveries as they appear; looks at least every `every`
    /// (deliveries a deadline left pending).
    pub async fn run(self: Arc<Self>, every: Duration) {
        loop {
            let journal = self.journal.clone();
            match tokio::task::spawn_blocking(move || journal.pending_deliveries()).await {
                Ok(Ok(pending)) => {
                    for delivery in pending {
                        self.clone().start(delivery);
                    }
                }
                Ok(Err(e)) => eprintln!("srs serve: cannot read SSF deliveries: {e:#}"),
                Err(e) => eprintln!("srs serve: cannot read SSF deliveries: {e}"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// Pushes one SET once (a stream's verification event); the HTTP status.
    pub async fn send_once(&self, receiver: &Receiver, set: String) -> Result<u16> {
        let mut request = self
            .http
            .post(receiver.endpoint.clone())
            .header("Content-Type", "application/secevent+jwt")
            .body(set);
        if let Some(authorization) = &receiver.authorization {
            request = request.header("Authorization", authorization.expose());
        }
        let response = request.send().await.map_err(reqwest::Error::without_url)?;
        Ok(response.status().as_u16())
    }

    fn start(self: Arc<Self>, delivery: Delivery) {
        // A paused stream's SETs wait in the journal until it is enabled.
        if self
            .receivers
            .get(&delivery.receiver)
            .is_some_and(|r| r.status != Status::Enabled)
        {
            return;
        }
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        if !running.insert(delivery.id) {
            return;
        }
        drop(running);
        tokio::spawn(async move {
            let id = delivery.id;
            if let Err(e) = self.deliver(delivery).await {
                eprintln!("srs serve: SSF delivery {id}: {e:#}");
            }
            if let Ok(mut running) = self.running.lock() {
                running.remove(&id);
            }
        });
    }

    /// Pushes one delivery until it is done, failed, or left pending at the deadline.
    async fn deliver(&self, delivery: Delivery) -> Result<()> {
        let start = Instant::now();
        let budget = Duration::from_millis(self.retry.deadline_ms);
        let mut retries = 0u32;
        loop {
            let permit = self.permits.acquire().await?;
            // Another process on a shared journal may be pushing it: the
            // claim (renewed before each try) says who does.
            if self.claim(delivery.id).await? != Claim::Claimed {
                return Ok(());
            }
            let outcome = self.push(&delivery).await;
            let (result, after) = (outcome.result, outcome.after);
            let journal = self.journal.clone();
            let (id, at_ms) = (delivery.id, unix_ms(SystemTime::now()));
            tokio::task::spawn_blocking(move || {
                journal.record_delivery_attempts(&[(id, outcome.attempt(at_ms))])
            })
            .await??;
            drop(permit);
            if result != AttemptResult::Retry {
                return Ok(());
            }
            let wait = retry::wait(&self.retry, after, retries, fastrand::f64());
            retries = retries.saturating_add(1);
            if wait > budget.saturating_sub(start.elapsed()) {
                return Ok(()); // pending: the next look after `every` tries again
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn claim(&self, id: DeliveryId) -> Result<Claim> {
        let (journal, owner) = (self.journal.clone(), self.owner.clone());
        let now = unix_ms(SystemTime::now());
        let lease = i64::try_from(self.retry.lease_ms).unwrap_or(i64::MAX);
        let until = now.saturating_add(lease);
        let claim =
            tokio::task::spawn_blocking(move || journal.claim_delivery(id, &owner, now, until));
        Ok(claim.await??)
    }

    /// One push of a freshly signed SET.
    async fn push(&self, d: &Delivery) -> Outcome {
        let failed = |code, message: String| Outcome {
            result: AttemptResult::Failed,
            status: None,
            code: Some(code),
            err: None,
            message: Some(message),
            after: None,
        };
        let Some(receiver) = self.receivers.get(&d.receiver) else {
            return failed(
                "unknown-receiver",
                "the receiver is no longer configured".into(),
            );
        };
        let iat = unix_ms(SystemTime::now()).div_euclid(1000);
        let claims = session_revoked(&self.issuer, &receiver.audience, iat, d);
        let set = match self.signer.sign(&claims) {
            Ok(set) => set,
            Err(e) => return failed("invalid-request", format!("{e:#}")),
        };
        let mut request = self
            .http
            .post(receiver.endpoint)
            .header("Content-Type", "application/secevent+jwt")
            .header("Accept", "application/json")
            .body(set);
        if let Some(authorization) = &receiver.authorization {
            request = request.header("Authorization", authorization.expose());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return Outcome {
                    result: AttemptResult::Retry,
                    status: None,
                    code: Some(if e.is_timeout() {
                        "timeout"
                    } else {
                        "connection"
                    }),
                    err: None,
                    message: Some(crate::clip(&e.without_url().to_string(), 256).to_owned()),
                    after: None,
                };
            }
        };
        let status = response.status().as_u16();
        let after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let body = response.bytes().await.unwrap_or_default();
        let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
        let text = |key: &str| {
            answer
                .get(key)
                .and_then(Value::as_str)
                .map(|s| crate::clip(s, 256).to_owned())
        };
        let (result, code) = match status {
            200..=299 => (AttemptResult::Done, None),
            429 => (AttemptResult::Retry, Some("throttled")),
            500 | 502 | 503 | 504 => (AttemptResult::Retry, Some("unavailable")),
            400 => (AttemptResult::Failed, Some("refused")),
            401 | 403 => (AttemptResult::Failed, Some("unauthorized")),
            _ => (AttemptResult::Failed, Some("rejected")),
        };
        Outcome {
            result,
            status: Some(status),
            code,
            err: text("err"),
            message: text("description"),
            after,
        }
    }
}
