//! The executor both front doors share (`srs run`, `srs serve`): starts a
//! task's execution unless it is already running, and reports every end.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow};
use policy_core::Provider;
use tokio::sync::mpsc;

use super::execute::{AttemptWriter, TaskEnd, execute, group_commit, unix_ms};
use crate::config::RetryConfig;
use crate::journal::{Claim, Journal, TaskId, TaskState};
use crate::providers::Clients;

/// A task's end as it reaches whoever started it.
#[derive(Debug)]
pub struct Ended {
    pub task: TaskId,
    pub provider: Provider,
    /// `Err` only when the task's attempts could not be journaled.
    pub end: Result<TaskEnd>,
}

/// Executes tasks on the current tokio runtime, at most one execution of a
/// task at a time.
#[derive(Clone)]
pub struct Executor {
    journal: Arc<dyn Journal>,
    clients: Clients,
    attempts: AttemptWriter,
    retry: RetryConfig,
    running: Arc<Mutex<HashSet<TaskId>>>,
    observe: Arc<ProviderObserver>,
    /// This process in the journal's claims.
    owner: Arc<str>,
    claims: Claimer,
}

/// Told how long each provider call took, and to which provider (metrics).
pub type ProviderObserver = dyn Fn(Provider, Duration) + Send + Sync;

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("clients", &self.clients)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Executor {
    pub fn new(journal: Arc<dyn Journal>, clients: Clients, retry: RetryConfig) -> Self {
        let owner = owner();
        let lease_ms = i64::try_from(retry.lease_ms).unwrap_or(i64::MAX);
        Self {
            attempts: AttemptWriter::start(journal.clone()),
            claims: Claimer::start(journal.clone(), owner.clone(), lease_ms),
            journal,
            clients,
            retry,
            running: Arc::default(),
            observe: Arc::new(|_, _| ()),
            owner,
        }
    }

    /// Tells `observe` how long each provider call took.
    pub fn observing(mut self, observe: Arc<ProviderObserver>) -> Self {
        self.observe = observe;
        self
    }

    /// The provider clients.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// Starts executing a task and sends its end to `done` exactly once.
    /// Returns false, starting nothing, when the task is already running.
    /// A task that is no longer pending when its execution starts (it settled
    /// after the caller read it as pending) ends at once in its state,
    /// calling no provider.
    pub fn start(
        &self,
        task: TaskId,
        provider: Provider,
        subject: String,
        done: mpsc::UnboundedSender<Ended>,
    ) -> Result<bool> {
        let client = self.clients.get(provider).cloned().ok_or_else(|| {
            anyhow!(
                "a `{provider}` revocation is due but the host config has no [{provider}] section"
            )
        })?;
        let guard = {
            let mut running = self.running.lock().map_err(|_| anyhow!("poisoned"))?;
            if !running.insert(task) {
                return Ok(false);
            }
            Running {
                set: self.running.clone(),
                task,
            }
        };
        let attempts = self.attempts.clone();
        let retry = self.retry;
        let observe = self.observe.clone();
        let lease = Lease {
            journal: self.journal.clone(),
            claims: self.claims.clone(),
            owner: self.owner.clone(),
            task,
            ms: i64::try_from(retry.lease_ms).unwrap_or(i64::MAX),
        };
        spawn_reported(task, provider, done, async move {
            // Claimed for this process, or ended in the state it already has.
            match lease
                .acquire(Duration::from_millis(retry.deadline_ms))
                .await?
            {
                Claim::Claimed => {}
                Claim::Busy => {
                    let why = "another process is executing it (its lease has not ended)";
                    return Ok(TaskEnd::pending(why));
                }
                Claim::Settled(state) => {
                    let why = format!("already {state} before this execution started");
                    return Ok(TaskEnd { state, why });
                }
                Claim::Unknown => return Err(anyhow!("task {task} is not in the journal")),
            }
            let call = |took| observe(provider, took);
            let end = tokio::select! {
                end = execute(&client, &attempts, task, &subject, retry, call) => end,
                never = lease.keep() => match never {},
            };
            if matches!(&end, Ok(e) if e.state == TaskState::Pending) {
                lease.release().await;
            }
            drop(guard);
            end
        });
        Ok(true)
    }

    /// How many tasks are executing.
    pub fn running(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or_default()
    }

    /// Waits until no task is executing, at most `timeout`; returns how many
    /// still are.
    pub async fn drain(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.running()
    }
}

/// This process's claim on one task (SPEC §12): taken before the first call,
/// renewed while calls go on, given up when the task is left pending.
struct Lease {
    journal: Arc<dyn Journal>,
    claims: Claimer,
    owner: Arc<str>,
    task: TaskId,
    ms: i64,
}

impl Lease {
    async fn claim(&self) -> Result<Claim> {
        self.claims.claim(self.task).await
    }

    /// Claims the task, waiting up to `patience` while another process's
    /// lease runs (it may have died holding it).
    async fn acquire(&self, patience: Duration) -> Result<Claim> {
        let start = tokio::time::Instant::now();
        loop {
            let claim = self.claim().await?;
            if claim != Claim::Busy || start.elapsed() >= patience {
                return Ok(claim);
            }
            tokio::time::sleep(self.step()).await;
        }
    }

    /// Renews the claim for as long as it is polled; never ends.
    async fn keep(&self) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(self.step()).await;
            if let Err(e) = self.claim().await {
                eprintln!("srs: cannot renew the lease of task {}: {e:#}", self.task);
            }
        }
    }

    async fn release(&self) {
        let (journal, owner, task) = (self.journal.clone(), self.owner.clone(), self.task);
        let released = tokio::task::spawn_blocking(move || journal.release(task, &owner)).await;
        if !matches!(released, Ok(Ok(()))) {
            eprintln!("srs: cannot release task {task}; its lease ends by itself");
        }
    }

    /// A third of the lease: renewed twice before it could end.
    fn step(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.ms / 3).unwrap_or(1).max(1))
    }
}

type ClaimReply = tokio::sync::oneshot::Sender<Result<Claim, String>>;

/// Group commit for claims and renewals: the claims waiting share one
/// transaction (a burst of started tasks costs one commit, not one each).
#[derive(Clone)]
struct Claimer {
    tx: std::sync::mpsc::Sender<(TaskId, ClaimReply)>,
}

impl Claimer {
    /// Claims taken in one transaction, at most.
    const GROUP: usize = 1024;

    fn start(journal: Arc<dyn Journal>, owner: Arc<str>, lease_ms: i64) -> Self {
        let tx = group_commit(Self::GROUP, move |group: Vec<(TaskId, ClaimReply)>| {
            let tasks: Vec<TaskId> = group.iter().map(|(task, _)| *task).collect();
            let now = unix_ms(SystemTime::now());
            let claims = journal
                .claim_tasks(&tasks, &owner, now, now.saturating_add(lease_ms))
                .map_err(|e| format!("{:#}", anyhow::Error::new(e)));
            match claims {
                Ok(claims) if claims.len() == group.len() => {
                    for ((_, reply), claim) in group.into_iter().zip(claims) {
                        let _ = reply.send(Ok(claim));
                    }
                }
                other => {
                    let why = other.err().unwrap_or_else(|| "one answer per claim".into());
                    for (_, reply) in group {
                        let _ = reply.send(Err(why.clone()));
                    }
                }
            }
        });
        Self { tx }
    }

    async fn claim(&self, task: TaskId) -> Result<Claim> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send((task, reply))
            .map_err(|_| anyhow!("the journal's claimer stopped"))?;
        answer
            .await
            .map_err(|_| anyhow!("the journal's claimer stopped"))?
            .map_err(|e| anyhow!("cannot claim task {task}: {e}"))
    }
}

/// Who this process is in the journal's claims: host, pid, and a random part.
pub fn owner() -> Arc<str> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..)).into()
}

/// Marks a task running until dropped (its end, a panic, a dropped future).
struct Running {
    set: Arc<Mutex<HashSet<TaskId>>>,
    task: TaskId,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.task);
        }
    }
}

/// Spawns a task's execution and sends its end exactly once: what `work`
/// returned, or, if it panicked or its future was dropped first, `pending`
/// with why. So whoever started it always hears from every task.
pub(super) fn spawn_reported(
    task: TaskId,
    provider: Provider,
    done: mpsc::UnboundedSender<Ended>,
    work: impl Future<Output = Result<TaskEnd>> + Send + 'static,
) {
    let reporter = Reporter {
        task,
        provider,
        done: Some(done),
    };
    tokio::spawn(async move {
        let end = work.await;
        reporter.send(end);
    });
}

/// Reports a task's end; dropped unsent (a panic unwinding, a dropped
/// future), it reports the task `pending`.
struct Reporter {
    task: TaskId,
    provider: Provider,
    done: Option<mpsc::UnboundedSender<Ended>>,
}

impl Reporter {
    fn send(mut self, end: Result<TaskEnd>) {
        self.report(end);
    }

    fn report(&mut self, end: Result<TaskEnd>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(Ended {
                task: self.task,
                provider: self.provider,
                end,
            });
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        let why = "internal error: the task stopped before it settled; the next run retries it";
        self.report(Ok(TaskEnd::pending(why)));
    }
}
