//! Executing one revocation task until it settles, every attempt journaled
//! before the next one starts; and the group commit that journals them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow};
use tokio::time::Instant;

use super::retry::{self, CallReport, Verdict};
use crate::config::RetryConfig;
use crate::journal::{Attempt, AttemptResult, Journal, TaskId, TaskState};
use crate::providers::Client;

/// How a task ended in this run: its state, and why when it is not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnd {
    pub state: TaskState,
    pub why: String,
}

impl TaskEnd {
    pub fn pending(why: impl Into<String>) -> Self {
        Self {
            state: TaskState::Pending,
            why: why.into(),
        }
    }
}

impl std::fmt::Display for TaskEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.state {
            TaskState::Done => f.write_str("done"),
            state => write!(f, "{state} ({})", self.why),
        }
    }
}

/// Executes one task until it settles: retries throttling and outages with
/// `Retry-After` or backoff, fetches one new token after a 401, and leaves the
/// task pending at once when the next try would start past the deadline.
/// `observe` is told how long each provider call took.
pub async fn execute(
    client: &Client,
    attempts: &AttemptWriter,
    task: TaskId,
    subject: &str,
    retry: RetryConfig,
    observe: impl Fn(Duration) + Send + Sync,
) -> Result<TaskEnd> {
    let start = Instant::now();
    let budget = Duration::from_millis(retry.deadline_ms);
    let mut refreshed = false;
    let mut refused = None;
    let mut retries = 0u32;
    loop {
        // Held for the call, until its answer holds a place among those
        // waiting for the journal (`Client::unrecorded`).
        let permit = client
            .permit()
            .await
            .ok_or_else(|| anyhow!("the client of task {task} is shutting down"))?;
        let called = Instant::now();
        let (exchange, token) = client.revoke(subject, refused.take().as_ref()).await;
        observe(called.elapsed());
        let report = retry::classify(exchange, SystemTime::now());
        let why = report.describe();
        let (result, end, wait) = match report.verdict {
            Verdict::Done => (AttemptResult::Done, Some(TaskState::Done), None),
            Verdict::Failed => (AttemptResult::Failed, Some(TaskState::Failed), None),
            Verdict::Refresh if refreshed => (AttemptResult::Failed, Some(TaskState::Failed), None),
            Verdict::Refresh => {
                refreshed = true;
                refused = token;
                (AttemptResult::Retry, None, Some(Duration::ZERO))
            }
            Verdict::Retry { after } => {
                let wait = retry::wait(&retry, after, retries, fastrand::f64());
                retries = retries.saturating_add(1);
                let left = budget.saturating_sub(start.elapsed());
                if wait > left {
                    (AttemptResult::Retry, Some(TaskState::Pending), None)
                } else {
                    (AttemptResult::Retry, None, Some(wait))
                }
            }
        };
        // The next call starts while this attempt waits for its group
        // commit; this task goes on only once it is committed.
        let unrecorded = client
            .unrecorded()
            .await
            .ok_or_else(|| anyhow!("the client of task {task} is shutting down"))?;
        drop(permit);
        attempts
            .record(task, AttemptRecord::new(&report, result))
            .await?;
        drop(unrecorded);
        if let Some(state) = end {
            let why = if state == TaskState::Done {
                String::new()
            } else {
                why
            };
            return Ok(TaskEnd { state, why });
        }
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

/// An attempt as sent to the journal writer: owned, and still nothing secret.
#[derive(Debug)]
pub struct AttemptRecord {
    at_ms: i64,
    status: Option<u16>,
    code: Option<&'static str>,
    provider_code: Option<String>,
    message: Option<String>,
    result: AttemptResult,
}

impl AttemptRecord {
    fn new(report: &CallReport, result: AttemptResult) -> Self {
        Self {
            at_ms: unix_ms(SystemTime::now()),
            status: report.status,
            code: report.code,
            provider_code: report.provider_code.clone(),
            message: report.message.clone(),
            result,
        }
    }
}

type AttemptReply = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Group commit for attempts: one thread takes every attempt waiting and
/// journals them in one transaction, then wakes each caller. A caller goes on
/// only once its attempt is durable, and concurrent calls share one fsync.
#[derive(Debug, Clone)]
pub struct AttemptWriter {
    tx: std::sync::mpsc::Sender<(TaskId, AttemptRecord, AttemptReply)>,
}

impl AttemptWriter {
    /// Attempts journaled in one transaction, at most.
    const GROUP: usize = 1024;

    pub fn start(journal: Arc<dyn Journal>) -> Self {
        let tx = group_commit(
            Self::GROUP,
            move |group: Vec<(TaskId, AttemptRecord, AttemptReply)>| {
                let attempts: Vec<(TaskId, Attempt<'_>)> = group
                    .iter()
                    .map(|(task, a, _)| {
                        let attempt = Attempt {
                            at_ms: a.at_ms,
                            http_status: a.status,
                            error_code: a.code,
                            provider_code: a.provider_code.as_deref(),
                            message: a.message.as_deref(),
                            result: a.result,
                        };
                        (*task, attempt)
                    })
                    .collect();
                let result = journal
                    .record_attempts(&attempts)
                    .map(drop)
                    .map_err(|e| format!("{:#}", anyhow::Error::new(e)));
                drop(attempts);
                for (_, _, reply) in group {
                    let _ = reply.send(result.clone());
                }
            },
        );
        Self { tx }
    }

    async fn record(&self, task: TaskId, attempt: AttemptRecord) -> Result<()> {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.tx
            .send((task, attempt, reply))
            .map_err(|_| anyhow!("the journal writer stopped"))?;
        done.await
            .map_err(|_| anyhow!("the journal writer stopped"))?
            .map_err(|e| anyhow!("cannot journal an attempt: {e}"))
    }
}

/// Group commit: a thread takes every request waiting (at most `max`) and
/// hands them to `commit` together, then waits for more. Returns where to
/// send requests; the thread ends when every sender is dropped.
pub fn group_commit<T: Send + 'static>(
    max: usize,
    mut commit: impl FnMut(Vec<T>) + Send + 'static,
) -> std::sync::mpsc::Sender<T> {
    let (tx, rx) = std::sync::mpsc::channel::<T>();
    std::thread::spawn(move || {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < max
                && let Ok(next) = rx.try_recv()
            {
                group.push(next);
            }
            commit(group);
        }
    });
    tx
}

/// Unix milliseconds as an RFC 3339 UTC time (seconds), for people.
pub fn rfc3339(ms: i64) -> String {
    policy_core::format_utc(ms.div_euclid(1000)).unwrap_or_else(|| format!("{ms} ms"))
}

/// Milliseconds since the Unix epoch, saturating.
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
