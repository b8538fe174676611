//! The executor both front doors share (`srs run`, `srs serve`): starts a
//! task's execution unless it is already running, and reports every end.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use policy_core::Provider;
use tokio::sync::mpsc;

use super::execute::{AttemptWriter, TaskEnd, execute};
use crate::config::RetryConfig;
use crate::journal::{Journal, TaskId, TaskState};
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
        Self {
            attempts: AttemptWriter::start(journal.clone()),
            journal,
            clients,
            retry,
            running: Arc::default(),
            observe: Arc::new(|_, _| ()),
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
        let journal = self.journal.clone();
        spawn_reported(task, provider, done, async move {
            let state = tokio::task::spawn_blocking(move || journal.task_state(task)).await?;
            match state? {
                Some(TaskState::Pending) => {}
                Some(state) => {
                    let why = format!("already {state} before this execution started");
                    return Ok(TaskEnd { state, why });
                }
                None => return Err(anyhow!("task {task} is not in the journal")),
            }
            let call = |took| observe(provider, took);
            let end = execute(&client, &attempts, task, &subject, retry, call).await;
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
