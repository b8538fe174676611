//! `srs run` (SPEC §8): read events as JSON Lines, decide each in the
//! sandbox, journal the decision and its revocation tasks, then call the
//! providers until each task is `done`, `failed`, or left `pending` for the
//! next run.
//!
//! Order of work, which is what makes a crash lose nothing: a batch of input
//! lines is decided and committed to the journal (events and tasks) before any
//! of its provider calls start; every attempt is committed as it ends; on
//! start, the journal's pending tasks are resumed first.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use indicatif::{ProgressBar, ProgressStyle};
use policy_core::{Decision, Outcome, Provider};
use tokio::sync::mpsc;

use super::execute::{TaskEnd, unix_ms};
use super::executor::{Ended, Executor};
use super::intake;
use crate::config::RetryConfig;
use crate::journal::{Journal, Recorded, Task, TaskId, TaskState};
use crate::providers::Clients;
use crate::sandbox::Worker;

/// Lines decided and committed together: one journal transaction per batch.
const BATCH: usize = 256;
/// Tasks in flight before reading more input (backpressure for huge inputs).
const MAX_IN_FLIGHT: usize = 4096;
/// How long a printed row may wait in the output's buffer, at most.
const ROWS_LAG: Duration = Duration::from_millis(50);

/// How a run behaves.
#[derive(Debug)]
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
    pub grace: u64,
    pub no_action: u64,
    pub unsupported: u64,
    pub duplicates: u64,
    pub bad_lines: u64,
    pub done: u64,
    pub failed: u64,
    pub pending: u64,
    pub resumed: u64,
    /// Tasks this run scheduled for a grace period that are not yet due.
    pub scheduled: u64,
    /// Scheduled tasks this run's events cancelled.
    pub cancelled: u64,
}

impl Summary {
    /// True when something needs a person: a bad line, a failed or an
    /// unfinished revocation. A revocation scheduled for later is neither.
    pub fn needs_attention(&self) -> bool {
        self.bad_lines > 0 || self.failed > 0 || self.pending > 0
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events: {} revoke, {} grace, {} no action, {} unsupported, {} duplicate; revocations: {} done, {} failed, {} pending, {} scheduled, {} cancelled",
            self.events,
            self.revoke,
            self.grace,
            self.no_action,
            self.unsupported,
            self.duplicates,
            self.done,
            self.failed,
            self.pending,
            self.scheduled,
            self.cancelled
        )?;
        if self.resumed > 0 {
            write!(f, " ({} resumed from an earlier run)", self.resumed)?;
        }
        write!(f, "; {} bad lines", self.bad_lines)
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

/// The run's state on the controlling thread.
struct Run<'w, 'p> {
    worker: &'w mut Worker<'p>,
    journal: Arc<dyn Journal>,
    executor: Executor,
    options: RunOptions,
    summary: Summary,
    rows: VecDeque<Row>,
    running: HashMap<TaskId, TaskInfo>,
    settled: HashMap<TaskId, (TaskInfo, TaskEnd)>,
    /// Tasks this run scheduled that have not fallen due.
    scheduled: HashSet<TaskId>,
    done_tx: mpsc::UnboundedSender<Ended>,
    out: Box<dyn Write>,
    progress: ProgressBar,
}

/// Runs `srs run` over `input` with a worker whose policy is already set.
pub fn run(
    worker: &mut Worker<'_>,
    journal: Arc<dyn Journal>,
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
    let mut state = Run {
        worker,
        executor: Executor::new(journal.clone(), clients, options.retry),
        journal,
        options,
        summary: Summary::default(),
        rows: VecDeque::new(),
        running: HashMap::new(),
        settled: HashMap::new(),
        scheduled: HashSet::new(),
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
        mut done_rx: mpsc::UnboundedReceiver<Ended>,
    ) -> Result<()> {
        let pending = std::mem::take(&mut self.options.resume);
        self.resume(pending)?;
        self.start_due().await?;
        let mut lines = read_lines(input);
        let mut input_open = true;
        // Rows are buffered, and written out at most `ROWS_LAG` after the
        // first one waiting: one write for many rows, not one per row.
        let mut rows_due: Option<tokio::time::Instant> = None;
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
                    self.start_due().await?;
                }
                Some(ended) = done_rx.recv(), if !self.running.is_empty() => {
                    self.settle(ended.task, ended.end?)?;
                    while let Ok(ended) = done_rx.try_recv() {
                        self.settle(ended.task, ended.end?)?;
                    }
                }
                // Once nothing more can come, the loop ends and flushes at once.
                () = tokio::time::sleep_until(rows_due.unwrap_or_else(tokio::time::Instant::now)),
                    if rows_due.is_some() && (input_open || !self.running.is_empty()) =>
                {
                    rows_due = None;
                    self.out.flush()?;
                }
                else => break,
            }
            if self.flush_rows()? && rows_due.is_none() {
                rows_due = Some(tokio::time::Instant::now() + ROWS_LAG);
            }
            if !self.progress.is_hidden() {
                self.progress.set_message(format!(
                    "{} events, {} revocations done, {} failed, {} in flight",
                    self.summary.events,
                    self.summary.done,
                    self.summary.failed,
                    self.running.len()
                ));
            }
        }
        self.flush_rows()?;
        self.out.flush()?;
        self.summary.scheduled = self.scheduled.len() as u64;
        Ok(())
    }

    /// Starts the tasks an earlier run left pending.
    fn resume(&mut self, pending: Vec<Task>) -> Result<()> {
        for task in pending {
            self.summary.resumed += 1;
            self.rows.push_back(Row {
                head: format!("resumed   {}", task.events.join(",")),
                tasks: vec![task.id],
                tail: String::new(),
            });
            self.start(task.id, task.provider, task.subject)?;
        }
        Ok(())
    }

    /// Starts the scheduled tasks whose grace period has ended (none in a dry run).
    async fn start_due(&mut self) -> Result<()> {
        if self.options.dry_run {
            return Ok(());
        }
        let journal = self.journal.clone();
        let now = unix_ms(SystemTime::now());
        let due = blocking(move || Ok(journal.promote_due(now)?)).await?;
        for task in due {
            self.scheduled.remove(&task.id);
            if self.running.contains_key(&task.id) {
                continue;
            }
            self.rows.push_back(Row {
                head: format!("due       task {}", task.id),
                tasks: vec![task.id],
                tail: String::new(),
            });
            self.restart(task.id, task.provider, task.subject)?;
        }
        Ok(())
    }

    /// Decides a batch of lines, journals them in one commit, starts their tasks.
    async fn decide(&mut self, batch: Vec<Line>) -> Result<()> {
        let mut lines = Vec::with_capacity(batch.len());
        let mut decided = Vec::with_capacity(batch.len());
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
            match intake::decide(self.worker, &bytes).with_context(|| format!("line {line}"))? {
                Err(errors) => {
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
                Ok(event) => {
                    lines.push(line);
                    decided.push(event);
                }
            }
        }
        let received_ms = unix_ms(SystemTime::now());
        let dry_run = self.options.dry_run;
        let journal = self.journal.clone();
        let (decided, records) = blocking(move || {
            let records = intake::record(journal.as_ref(), &decided, received_ms, dry_run)?;
            Ok((decided, records))
        })
        .await?;
        let decided = lines
            .into_iter()
            .zip(decided.into_iter().map(|d| d.decision));
        for ((line, decision), recorded) in decided.zip(records) {
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
            Recorded::New {
                tasks,
                scheduled,
                cancelled,
                ..
            } => {
                self.summary.cancelled += cancelled.len() as u64;
                for task in cancelled {
                    self.scheduled.remove(&task);
                }
                self.scheduled.extend(scheduled.iter().map(|t| t.id));
                tasks
            }
        };
        self.summary.events += 1;
        match decision.outcome {
            Outcome::Revoke => self.summary.revoke += 1,
            Outcome::Grace => self.summary.grace += 1,
            Outcome::NoAction => self.summary.no_action += 1,
            Outcome::Unsupported => self.summary.unsupported += 1,
        }
        let why = reasons(decision);
        let executes = decision.enforced && !self.options.dry_run;
        let head = format!("line {line:<5} {id}  {:<9}", decision.outcome.as_str());
        if tasks.is_empty() {
            let why_not = match (decision.enforced, self.options.dry_run) {
                (false, _) => " (report_only)",
                (true, true) => " (dry run)",
                (true, false) => "",
            };
            let note = match (&decision.scheduled, decision.outcome) {
                (Some(s), _) if executes => {
                    format!("  scheduled for {}: {}", s.due, targets(&s.revocations))
                }
                (Some(s), _) => format!(
                    "  would schedule for {}: {}{why_not}",
                    s.due,
                    targets(&s.revocations)
                ),
                (None, Outcome::Revoke) => {
                    format!("  would revoke {}{why_not}", targets(&decision.revocations))
                }
                (None, _) => String::new(),
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
            self.scheduled.remove(&task.id);
            if !self.running.contains_key(&task.id) {
                self.restart(task.id, task.provider, task.subject)?;
            }
        }
        self.rows.push_back(Row {
            head,
            tasks: ids,
            tail: why,
        });
        Ok(())
    }

    /// Starts a task that is not running: a coalesced task left pending
    /// earlier in this run gets another go.
    fn restart(&mut self, id: TaskId, provider: Provider, subject: String) -> Result<()> {
        if let Some((_, end)) = self.settled.remove(&id)
            && end.state == TaskState::Pending
        {
            self.summary.pending -= 1;
        }
        self.start(id, provider, subject)
    }

    /// Spawns the execution of one task.
    fn start(&mut self, id: TaskId, provider: Provider, subject: String) -> Result<()> {
        self.executor
            .start(id, provider, subject.clone(), self.done_tx.clone())?;
        self.running.insert(id, TaskInfo { provider, subject });
        Ok(())
    }

    fn settle(&mut self, task: TaskId, end: TaskEnd) -> Result<()> {
        let info = self
            .running
            .remove(&task)
            .ok_or_else(|| anyhow!("task {task} settled but was not running"))?;
        match end.state {
            TaskState::Done => self.summary.done += 1,
            TaskState::Failed => self.summary.failed += 1,
            // An execution ends done, failed or pending; the journal refuses
            // attempts on a task in any other state, which ends as it is.
            TaskState::Pending | TaskState::Scheduled | TaskState::Cancelled => {
                self.summary.pending += 1;
            }
        }
        self.settled.insert(task, (info, end));
        Ok(())
    }

    /// Prints the rows whose tasks have all settled, in input order, to the
    /// buffered output; returns whether it printed any.
    fn flush_rows(&mut self) -> Result<bool> {
        let mut printed = false;
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
                    let (info, end) = self.settled.get(t)?;
                    Some(format!("{} {} {end}", info.provider, info.subject))
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
            if self.progress.is_hidden() {
                writeln!(out, "{text}")?;
            } else {
                self.progress
                    .suspend(|| writeln!(out, "{text}").and_then(|()| out.flush()))?;
            }
            printed = true;
        }
        Ok(printed)
    }
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
                r.rule.as_str().to_owned()
            } else {
                format!("{} {}", r.rule.as_str(), matched.join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn targets(revocations: &[policy_core::Revocation]) -> String {
    revocations
        .iter()
        .map(|r| format!("{} {}", r.provider, r.subject))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::executor::spawn_reported;
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_task_that_panics_is_reported_pending() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        runtime().block_on(async {
            spawn_reported(7, Provider::Office365, tx, async { panic!("a bug") });
            let ended = rx.recv().await.unwrap();
            assert_eq!((ended.task, ended.provider), (7, Provider::Office365));
            let end = ended.end.unwrap();
            assert_eq!(end.state, TaskState::Pending);
            assert!(end.why.starts_with("internal error"), "{}", end.why);
        });
    }

    #[test]
    fn a_dropped_task_is_reported_pending() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let rt = runtime();
        rt.block_on(async {
            spawn_reported(8, Provider::GoogleWorkspace, tx, std::future::pending());
        });
        // Shutting the runtime down drops the never-ending future.
        drop(rt);
        let ended = rx.try_recv().unwrap();
        assert_eq!(
            (ended.task, ended.end.unwrap().state),
            (8, TaskState::Pending)
        );
    }

    #[test]
    fn a_settled_task_is_reported_once() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        runtime().block_on(async {
            spawn_reported(9, Provider::Office365, tx, async {
                Ok(TaskEnd {
                    state: TaskState::Done,
                    why: String::new(),
                })
            });
            let ended = rx.recv().await.unwrap();
            assert_eq!(ended.end.unwrap().state, TaskState::Done);
            assert!(rx.recv().await.is_none());
        });
    }
}
