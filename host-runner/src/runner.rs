//! `srs run` (SPEC §8): read events as JSON Lines, decide each in the
//! sandbox, journal the decision and its revocation tasks, then call the
//! providers until each task is `done`, `failed`, or left `pending` for the
//! next run.
//!
//! Order of work, which is what makes a crash lose nothing: a batch of input
//! lines is decided and committed to the journal (events and tasks) before any
//! of its provider calls start; every attempt is committed as it ends; on
//! start, the journal's pending tasks are resumed first.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use policy_core::{Answer, Decision, Outcome, Provider};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::RetryConfig;
use crate::journal::{Attempt, AttemptResult, Journal, NewEvent, Recorded, Task, TaskId};
use crate::providers::{Client, Clients};
use crate::retry::{self, Verdict};
use crate::sandbox::Worker;

/// Lines decided and committed together: one journal transaction per batch.
const BATCH: usize = 256;
/// Tasks in flight before reading more input (backpressure for huge inputs).
const MAX_IN_FLIGHT: usize = 4096;

/// How a run behaves.
pub struct RunOptions {
    /// Journal decisions, execute nothing.
    pub dry_run: bool,
    pub retry: RetryConfig,
    /// The tasks an earlier run left pending, executed first (none in a dry run).
    pub resume: Vec<Task>,
}

/// What a run did, for the summary line and the exit code.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub revoke: u64,
    pub no_action: u64,
    pub unsupported: u64,
    pub duplicates: u64,
    pub bad_lines: u64,
    pub done: u64,
    pub failed: u64,
    pub pending: u64,
    pub resumed: u64,
}

impl Summary {
    /// True when something needs a person: a bad line, a failed or an
    /// unfinished revocation.
    pub fn needs_attention(&self) -> bool {
        self.bad_lines > 0 || self.failed > 0 || self.pending > 0
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events: {} revoke, {} no action, {} unsupported, {} duplicate; revocations: {} done, {} failed, {} pending",
            self.events,
            self.revoke,
            self.no_action,
            self.unsupported,
            self.duplicates,
            self.done,
            self.failed,
            self.pending
        )?;
        if self.resumed > 0 {
            write!(f, " ({} resumed from an earlier run)", self.resumed)?;
        }
        write!(f, "; {} bad lines", self.bad_lines)
    }
}

/// A decided event as the journal keeps it, owned so it can move to the
/// journal's thread.
struct JournalEvent {
    id: String,
    outcome: &'static str,
    enforced: bool,
    /// The module's answer, as it gave it.
    decision: String,
    revocations: Vec<(&'static str, String)>,
}

/// How a task ended in this run.
#[derive(Debug, Clone)]
enum Settled {
    Done,
    Failed(String),
    Pending(String),
}

impl std::fmt::Display for Settled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Settled::Done => f.write_str("done"),
            Settled::Failed(why) => write!(f, "failed ({why})"),
            Settled::Pending(why) => write!(f, "pending ({why})"),
        }
    }
}

/// A task being executed, and the revocation it serves.
struct TaskInfo {
    provider: Provider,
    subject: String,
}

/// One output row, printed once all of its tasks have settled, in input order.
struct Row {
    head: String,
    tasks: Vec<TaskId>,
    tail: String,
}

type SharedJournal = Arc<Mutex<Box<dyn Journal + Send>>>;

/// The run's state on the controlling thread.
struct Run<'w, 'p> {
    worker: &'w mut Worker<'p>,
    journal: SharedJournal,
    attempts: AttemptWriter,
    clients: Clients,
    options: RunOptions,
    summary: Summary,
    rows: VecDeque<Row>,
    running: HashMap<TaskId, TaskInfo>,
    settled: HashMap<TaskId, (TaskInfo, Settled)>,
    done_tx: mpsc::UnboundedSender<(TaskId, Result<Settled>)>,
    out: Box<dyn Write>,
    progress: ProgressBar,
}

/// Runs `srs run` over `input` with a worker whose policy is already set.
pub fn run(
    worker: &mut Worker<'_>,
    journal: Box<dyn Journal + Send>,
    clients: Clients,
    options: RunOptions,
    input: Box<dyn BufRead + Send>,
    out: Box<dyn Write>,
) -> Result<Summary> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    // On a terminal, a spinner with counts (on stderr, rows printed above it);
    // piped, plain lines only.
    let progress = if std::io::stderr().is_terminal() && std::io::stdout().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let journal: SharedJournal = Arc::new(Mutex::new(journal));
    let mut state = Run {
        worker,
        attempts: AttemptWriter::start(journal.clone()),
        journal,
        clients,
        options,
        summary: Summary::default(),
        rows: VecDeque::new(),
        running: HashMap::new(),
        settled: HashMap::new(),
        done_tx,
        out,
        progress,
    };
    let result = runtime.block_on(state.drive(input, done_rx));
    state.progress.finish_and_clear();
    result?;
    Ok(state.summary)
}

impl Run<'_, '_> {
    async fn drive(
        &mut self,
        input: Box<dyn BufRead + Send>,
        mut done_rx: mpsc::UnboundedReceiver<(TaskId, Result<Settled>)>,
    ) -> Result<()> {
        let pending = std::mem::take(&mut self.options.resume);
        self.resume(pending)?;
        let mut lines = read_lines(input);
        let mut input_open = true;
        loop {
            tokio::select! {
                line = lines.recv(), if input_open && self.running.len() < MAX_IN_FLIGHT => {
                    let Some(first) = line else {
                        input_open = false;
                        continue;
                    };
                    let mut batch = vec![first];
                    while batch.len() < BATCH
                        && let Ok(next) = lines.try_recv()
                    {
                        batch.push(next);
                    }
                    self.decide(batch).await?;
                }
                Some((task, settled)) = done_rx.recv(), if !self.running.is_empty() => {
                    self.settle(task, settled?)?;
                }
                else => break,
            }
            self.flush_rows()?;
            self.progress.set_message(format!(
                "{} events, {} revocations done, {} failed, {} in flight",
                self.summary.events,
                self.summary.done,
                self.summary.failed,
                self.running.len()
            ));
        }
        self.flush_rows()?;
        Ok(())
    }

    /// Starts the tasks an earlier run left pending.
    fn resume(&mut self, pending: Vec<Task>) -> Result<()> {
        for task in pending {
            let provider = parse_provider(&task.provider)?;
            self.summary.resumed += 1;
            self.rows.push_back(Row {
                head: format!("resumed   {}", task.events.join(",")),
                tasks: vec![task.id],
                tail: String::new(),
            });
            self.start(task.id, provider, task.subject)?;
        }
        Ok(())
    }

    /// Decides a batch of lines, journals them in one commit, starts their tasks.
    async fn decide(&mut self, batch: Vec<Line>) -> Result<()> {
        // (line, decision) stay here for the output; what the journal keeps
        // moves to its thread.
        let mut decided = Vec::with_capacity(batch.len());
        let mut to_journal = Vec::with_capacity(batch.len());
        for (line, bytes) in batch {
            let bytes = match bytes {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.summary.bad_lines += 1;
                    self.rows.push_back(Row {
                        head: format!("line {line:<5} unreadable, input ends here: {e}"),
                        tasks: vec![],
                        tail: String::new(),
                    });
                    continue;
                }
            };
            let raw = self.worker.evaluate_event(&bytes)?;
            let answer: Answer =
                serde_json::from_str(&raw).context("the module's answer is not a SPEC answer")?;
            match answer {
                Answer::Failure { errors } => {
                    self.summary.bad_lines += 1;
                    let errors: Vec<String> = errors
                        .iter()
                        .map(|e| format!("{} at {}: {}", e.code.as_str(), e.path, e.message))
                        .collect();
                    self.rows.push_back(Row {
                        head: format!("line {line:<5} skipped: {}", errors.join("; ")),
                        tasks: vec![],
                        tail: String::new(),
                    });
                }
                Answer::Success { decision: None, .. } => {
                    bail!("the module answered line {line} without a decision")
                }
                Answer::Success {
                    decision: Some(decision),
                    ..
                } => {
                    to_journal.push(JournalEvent {
                        id: decision.event_id.clone(),
                        outcome: outcome_id(decision.outcome),
                        enforced: decision.enforced,
                        decision: raw,
                        revocations: decision
                            .revocations
                            .iter()
                            .map(|r| (provider_id(r.provider), r.subject.clone()))
                            .collect(),
                    });
                    decided.push((line, decision));
                }
            }
        }
        let received_ms = unix_ms(SystemTime::now());
        let dry_run = self.options.dry_run;
        let journal = self.journal.clone();
        let records = blocking(move || {
            let pairs: Vec<Vec<(&str, &str)>> = to_journal
                .iter()
                .map(|r| {
                    r.revocations
                        .iter()
                        .map(|(p, s)| (*p, s.as_str()))
                        .collect()
                })
                .collect();
            let events: Vec<NewEvent<'_>> = to_journal
                .iter()
                .zip(&pairs)
                .map(|(r, pairs)| NewEvent {
                    id: &r.id,
                    received_ms,
                    outcome: r.outcome,
                    enforced: r.enforced,
                    dry_run,
                    decision: &r.decision,
                    revocations: pairs,
                })
                .collect();
            lock(&journal)?.record_events(&events).map_err(Into::into)
        })
        .await?;
        if records.len() != decided.len() {
            bail!(
                "the journal recorded {} of {} events",
                records.len(),
                decided.len()
            );
        }
        for ((line, decision), recorded) in decided.into_iter().zip(records) {
            self.account(line, &decision, recorded)?;
        }
        Ok(())
    }

    /// Counts a journaled event, queues its row, and starts its new tasks.
    fn account(&mut self, line: u64, decision: &Decision, recorded: Recorded) -> Result<()> {
        let id = &decision.event_id;
        let tasks = match recorded {
            Recorded::Duplicate => {
                self.summary.duplicates += 1;
                self.rows.push_back(Row {
                    head: format!(
                        "line {line:<5} {id}  duplicate: journaled before, nothing executed"
                    ),
                    tasks: vec![],
                    tail: String::new(),
                });
                return Ok(());
            }
            Recorded::New { tasks } => tasks,
        };
        self.summary.events += 1;
        match decision.outcome {
            Outcome::Revoke => self.summary.revoke += 1,
            Outcome::NoAction => self.summary.no_action += 1,
            Outcome::Unsupported => self.summary.unsupported += 1,
        }
        let why = reasons(decision);
        let executes = decision.enforced && !self.options.dry_run;
        let head = format!("line {line:<5} {id}  {:<9}", outcome_id(decision.outcome));
        if decision.outcome != Outcome::Revoke || !executes {
            let note = match (decision.outcome, decision.enforced) {
                (Outcome::Revoke, false) => {
                    format!("  would revoke {} (report_only)", targets(decision))
                }
                (Outcome::Revoke, true) => {
                    format!("  would revoke {} (dry run)", targets(decision))
                }
                _ => String::new(),
            };
            self.rows.push_back(Row {
                head: format!("{head}{note}"),
                tasks: vec![],
                tail: why,
            });
            return Ok(());
        }
        let mut ids = Vec::with_capacity(tasks.len());
        for task in tasks {
            ids.push(task.id);
            // A coalesced task is already running, unless it was left pending
            // earlier in this run: then it gets another go.
            if !self.running.contains_key(&task.id) {
                if let Some((_, Settled::Pending(_))) = self.settled.remove(&task.id) {
                    self.summary.pending -= 1;
                }
                self.start(task.id, parse_provider(&task.provider)?, task.subject)?;
            }
        }
        self.rows.push_back(Row {
            head,
            tasks: ids,
            tail: why,
        });
        Ok(())
    }

    /// Spawns the execution of one task.
    fn start(&mut self, id: TaskId, provider: Provider, subject: String) -> Result<()> {
        let client = self.clients.get(provider).cloned().ok_or_else(|| {
            anyhow!(
                "a `{}` revocation is due but the host config has no [{}] section",
                provider_id(provider),
                provider_id(provider)
            )
        })?;
        let attempts = self.attempts.clone();
        let retry = self.options.retry;
        let done = self.done_tx.clone();
        let task_subject = subject.clone();
        tokio::spawn(async move {
            let settled = execute(&client, &attempts, id, &task_subject, retry).await;
            let _ = done.send((id, settled));
        });
        self.running.insert(id, TaskInfo { provider, subject });
        Ok(())
    }

    fn settle(&mut self, task: TaskId, settled: Settled) -> Result<()> {
        let info = self
            .running
            .remove(&task)
            .ok_or_else(|| anyhow!("task {task} settled but was not running"))?;
        match settled {
            Settled::Done => self.summary.done += 1,
            Settled::Failed(_) => self.summary.failed += 1,
            Settled::Pending(_) => self.summary.pending += 1,
        }
        self.settled.insert(task, (info, settled));
        Ok(())
    }

    /// Prints the rows whose tasks have all settled, in input order.
    fn flush_rows(&mut self) -> Result<()> {
        while let Some(row) = self.rows.front() {
            if row.tasks.iter().any(|t| !self.settled.contains_key(t)) {
                break;
            }
            let Some(row) = self.rows.pop_front() else {
                break;
            };
            let mut text = row.head;
            let results: Vec<String> = row
                .tasks
                .iter()
                .filter_map(|t| {
                    let (info, settled) = self.settled.get(t)?;
                    Some(format!(
                        "{} {} {settled}",
                        provider_id(info.provider),
                        info.subject
                    ))
                })
                .collect();
            if !row.tasks.is_empty() {
                text.push_str("  ");
                text.push_str(&results.join(", "));
            }
            if !row.tail.is_empty() {
                text.push_str("  why: ");
                text.push_str(&row.tail);
            }
            let out = &mut self.out;
            self.progress.suspend(|| writeln!(out, "{text}"))?;
        }
        Ok(())
    }
}

/// Executes one task until it settles: retries throttling and outages with
/// `Retry-After` or backoff, fetches one new token after a 401, and leaves the
/// task pending when the run's retry deadline would pass.
async fn execute(
    client: &Client,
    attempts: &AttemptWriter,
    task: TaskId,
    subject: &str,
    retry: RetryConfig,
) -> Result<Settled> {
    let deadline = Instant::now() + Duration::from_millis(retry.deadline_ms);
    let mut refreshed = false;
    let mut refused = None;
    let mut retries = 0u32;
    loop {
        let (outcome, token) = client.revoke(subject, refused.take().as_ref()).await;
        let why = describe(&outcome);
        let (result, settled, wait) = match outcome.verdict {
            Verdict::Done => (AttemptResult::Done, Some(Settled::Done), None),
            Verdict::Failed => (
                AttemptResult::Failed,
                Some(Settled::Failed(why.clone())),
                None,
            ),
            Verdict::Refresh if refreshed => (
                AttemptResult::Failed,
                Some(Settled::Failed(why.clone())),
                None,
            ),
            Verdict::Refresh => {
                refreshed = true;
                refused = token;
                (AttemptResult::Retry, None, Some(Duration::ZERO))
            }
            Verdict::Retry { after } => {
                let wait =
                    after.unwrap_or_else(|| retry::backoff(&retry, retries, fastrand::f64()));
                retries += 1;
                if Instant::now() + wait > deadline {
                    (
                        AttemptResult::Retry,
                        Some(Settled::Pending(why.clone())),
                        None,
                    )
                } else {
                    (AttemptResult::Retry, None, Some(wait))
                }
            }
        };
        attempts
            .record(task, AttemptRecord::new(&outcome, result))
            .await?;
        if let Some(settled) = settled {
            return Ok(settled);
        }
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

/// An attempt as sent to the journal writer: owned, and still nothing secret.
struct AttemptRecord {
    at_ms: i64,
    status: Option<u16>,
    code: Option<&'static str>,
    provider_code: Option<String>,
    message: Option<String>,
    result: AttemptResult,
}

impl AttemptRecord {
    fn new(outcome: &retry::Outcome, result: AttemptResult) -> Self {
        Self {
            at_ms: unix_ms(SystemTime::now()),
            status: outcome.status,
            code: outcome.code,
            provider_code: outcome.provider_code.clone(),
            message: outcome.message.clone(),
            result,
        }
    }
}

type AttemptReply = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Group commit for attempts: one thread takes every attempt waiting and
/// journals them in one transaction, then wakes each caller. A caller goes on
/// only once its attempt is durable, and concurrent calls share one fsync.
#[derive(Clone)]
struct AttemptWriter {
    tx: std::sync::mpsc::Sender<(TaskId, AttemptRecord, AttemptReply)>,
}

impl AttemptWriter {
    /// Attempts journaled in one transaction, at most.
    const GROUP: usize = 1024;

    fn start(journal: SharedJournal) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<(TaskId, AttemptRecord, AttemptReply)>();
        std::thread::spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut group = vec![first];
                while group.len() < Self::GROUP
                    && let Ok(next) = rx.try_recv()
                {
                    group.push(next);
                }
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
                let result = lock(&journal)
                    .and_then(|mut j| j.record_attempts(&attempts).map_err(Into::into))
                    .map(drop)
                    .map_err(|e| format!("{e:#}"));
                drop(attempts);
                for (_, _, reply) in group {
                    let _ = reply.send(result.clone());
                }
            }
        });
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

/// `user-not-found: 404 Request_ResourceNotFound`, for the table and errors.
fn describe(outcome: &retry::Outcome) -> String {
    let mut parts = Vec::new();
    if let Some(code) = outcome.code {
        parts.push(code.to_owned());
    }
    if let Some(status) = outcome.status {
        parts.push(status.to_string());
    }
    if let Some(code) = &outcome.provider_code {
        parts.push(code.clone());
    } else if outcome.status.is_none()
        && let Some(message) = &outcome.message
    {
        parts.push(message.clone());
    }
    parts.join(" ")
}

/// An input line by number, or why the input could not be read past it.
type Line = (u64, Result<Vec<u8>, String>);

/// Reads input lines on a thread of their own; blank lines are skipped. A read
/// error ends the input; it is passed on, to be reported as a bad line.
fn read_lines(mut input: Box<dyn BufRead + Send>) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel(BATCH * 4);
    std::thread::spawn(move || {
        let mut number = 0u64;
        loop {
            let mut line = Vec::new();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    number += 1;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    if tx.blocking_send((number, Ok(line))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send((number + 1, Err(e.to_string())));
                    break;
                }
            }
        }
    });
    rx
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("a journal write was interrupted")?
}

fn lock<'a>(
    journal: &'a SharedJournal,
) -> Result<std::sync::MutexGuard<'a, Box<dyn Journal + Send>>> {
    journal
        .lock()
        .map_err(|_| anyhow!("the journal is unusable after an earlier failure"))
}

fn reasons(decision: &Decision) -> String {
    decision
        .reasons
        .iter()
        .map(|r| {
            let matched: Vec<String> = r
                .matched
                .iter()
                .filter_map(|m| serde_json::to_string(m).ok())
                .collect();
            if matched.is_empty() {
                r.rule.id().to_owned()
            } else {
                format!("{} {}", r.rule.id(), matched.join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn targets(decision: &Decision) -> String {
    decision
        .revocations
        .iter()
        .map(|r| format!("{} {}", provider_id(r.provider), r.subject))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn provider_id(provider: Provider) -> &'static str {
    match provider {
        Provider::Office365 => "office365",
        Provider::GoogleWorkspace => "google_workspace",
    }
}

/// A provider id as the journal stores it.
pub fn parse_provider(id: &str) -> Result<Provider> {
    match id {
        "office365" => Ok(Provider::Office365),
        "google_workspace" => Ok(Provider::GoogleWorkspace),
        other => bail!("the journal names an unknown provider `{other}`"),
    }
}

fn outcome_id(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Revoke => "revoke",
        Outcome::NoAction => "no_action",
        Outcome::Unsupported => "unsupported",
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
