//! The run journal of `srs run` (SPEC §8): every event and its revocation
//! tasks are committed before any provider call, so a crash loses nothing and
//! repeats nothing.
//!
//! - An event id already journaled executes nothing again ([`Recorded::Duplicate`]).
//! - A revocation for a (provider, subject) that already has a pending task is
//!   attached to that task ([`TaskRef::coalesced`]); a partial unique index makes
//!   "at most one pending task per (provider, subject)" a database invariant.
//! - Every provider attempt is recorded: time, HTTP status, srs's error code,
//!   the provider's error code and message. The API takes no free-form request data, so no token or
//!   secret can reach the journal through it.
//! - A `--dry-run` event is journaled without tasks and does not make its id
//!   "seen" for a real run: the real run replaces the dry-run row.
//!
//! The runner talks to the journal through the [`Journal`] trait only, so a
//! shared database can later replace [`SqliteJournal`]. All times are unix
//! milliseconds passed in by the caller; the journal reads no clock.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

/// The id of a revocation task.
pub type TaskId = i64;

/// The schema migrations, applied in order; migration `n` (1-based) brings the
/// database to `PRAGMA user_version = n`. Append only: never edit a shipped step.
const MIGRATIONS: &[&str] = &["
CREATE TABLE events (
    id          TEXT PRIMARY KEY NOT NULL,
    received_ms INTEGER NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('revoke', 'no_action', 'unsupported')),
    enforced    INTEGER NOT NULL CHECK (enforced IN (0, 1)),
    dry_run     INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    decision    TEXT NOT NULL
);
CREATE TABLE tasks (
    id                 INTEGER PRIMARY KEY,
    provider           TEXT NOT NULL,
    subject            TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    created_ms         INTEGER NOT NULL,
    updated_ms         INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status        INTEGER CHECK (last_status BETWEEN 0 AND 65535),
    last_error_code    TEXT,
    last_provider_code TEXT,
    last_message       TEXT
);
CREATE UNIQUE INDEX tasks_one_pending ON tasks (provider, subject) WHERE state = 'pending';
CREATE INDEX tasks_by_state ON tasks (state);
CREATE TABLE task_events (
    task_id  INTEGER NOT NULL REFERENCES tasks (id),
    event_id TEXT NOT NULL REFERENCES events (id),
    PRIMARY KEY (task_id, event_id)
);
CREATE TABLE attempts (
    task_id       INTEGER NOT NULL REFERENCES tasks (id),
    at_ms         INTEGER NOT NULL,
    http_status   INTEGER CHECK (http_status BETWEEN 0 AND 65535),
    error_code    TEXT,
    provider_code TEXT,
    message       TEXT,
    result        TEXT NOT NULL CHECK (result IN ('done', 'retry', 'failed'))
);
CREATE INDEX attempts_by_task ON attempts (task_id);
"];

/// The schema version this build writes: the number of [`MIGRATIONS`].
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The longest provider message kept, in bytes; longer ones are cut at a
/// character boundary.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// How long a write waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The decision outcomes an event may carry.
const OUTCOMES: [&str; 3] = ["revoke", "no_action", "unsupported"];

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The database could not be opened or configured.
    #[error("cannot open the journal {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The file did not switch to write-ahead logging.
    #[error("the journal {path} cannot use WAL mode (it reports journal_mode={mode})")]
    NotWal { path: String, mode: String },
    /// The database was migrated by a newer srs.
    #[error(
        "the journal {path} was written by a newer srs (schema version {found}, this srs knows up to {known})"
    )]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
    /// The database carries a schema version no srs writes.
    #[error("the journal {path} has an invalid schema version {found}")]
    InvalidSchema { path: String, found: i64 },
    /// An event's outcome is not one of `revoke`, `no_action`, `unsupported`.
    #[error("event {event_id} has the unknown outcome {outcome:?}")]
    InvalidOutcome { event_id: String, outcome: String },
    /// An attempt names a task the journal does not hold.
    #[error("task {0} is not in the journal")]
    UnknownTask(TaskId),
    /// An attempt names a task that is already done or failed.
    #[error("task {id} is {state}, not pending: it takes no more attempts")]
    NotPending { id: TaskId, state: TaskState },
    /// A stored value is outside what this srs writes.
    #[error("the journal holds an invalid {what}: {value:?}")]
    Corrupt { what: &'static str, value: String },
    /// A batch call answered a different number of results than it was given.
    #[error("the journal answered {got} results for {sent} records")]
    BatchMismatch { sent: usize, got: usize },
    /// Any other database failure.
    #[error("journal database error")]
    Sqlite(#[from] rusqlite::Error),
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a committed event survives a power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: faster; a power loss may drop the last commits
    /// (never corrupts). For benchmarks.
    Normal,
}

/// The state of a revocation task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Not yet executed, or to be retried.
    Pending,
    /// The provider confirmed the revocation.
    Done,
    /// The provider refused permanently; see the last attempt's error.
    Failed,
}

impl TaskState {
    /// The name stored in the journal and shown by `srs status`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, JournalError> {
        match s {
            "pending" => Ok(TaskState::Pending),
            "done" => Ok(TaskState::Done),
            "failed" => Ok(TaskState::Failed),
            other => Err(JournalError::Corrupt {
                what: "task state",
                value: other.to_owned(),
            }),
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event and the policy module's decision about it, to journal.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// The event id: the deduplication key.
    pub id: &'a str,
    /// When the runner read the event (unix ms).
    pub received_ms: i64,
    /// `revoke`, `no_action` or `unsupported`.
    pub outcome: &'a str,
    /// False for a `report_only` policy: no tasks are created.
    pub enforced: bool,
    /// A `--dry-run` run: journaled without tasks, replaced by a later real run.
    pub dry_run: bool,
    /// The module's decision JSON, kept for audit.
    pub decision: &'a str,
    /// (provider, subject) pairs; tasks are created only when `enforced && !dry_run`.
    pub revocations: &'a [(&'a str, &'a str)],
}

/// What journaling an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The id was journaled before (or, for a dry run, by any run): nothing to do.
    Duplicate,
    /// The event is new; these tasks now carry its revocations.
    New { tasks: Vec<TaskRef> },
}

/// A task an event's revocation was attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRef {
    /// The task.
    pub id: TaskId,
    /// The provider id, as given.
    pub provider: String,
    /// The user whose sessions are revoked.
    pub subject: String,
    /// True when the task was already pending (another event created it): the
    /// caller need not execute it a second time.
    pub coalesced: bool,
}

/// A pending task to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The task.
    pub id: TaskId,
    /// The provider id.
    pub provider: String,
    /// The user whose sessions are revoked.
    pub subject: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The ids of the events attached, in the order they were attached.
    pub events: Vec<String>,
}

/// The outcome of one provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The revocation succeeded: the task ends done.
    Done,
    /// A transient failure: the task stays pending.
    Retry,
    /// A permanent failure: the task ends failed with this attempt's error.
    Failed,
}

impl AttemptResult {
    fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Done => "done",
            AttemptResult::Retry => "retry",
            AttemptResult::Failed => "failed",
        }
    }

    fn state(self) -> TaskState {
        match self {
            AttemptResult::Done => TaskState::Done,
            AttemptResult::Retry => TaskState::Pending,
            AttemptResult::Failed => TaskState::Failed,
        }
    }
}

/// One provider call, as journaled. Carries no request data.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// When the call ended (unix ms).
    pub at_ms: i64,
    /// The HTTP status, if a response arrived.
    pub http_status: Option<u16>,
    /// srs's stable error code, if any (e.g. `user-not-found`, `throttled`).
    pub error_code: Option<&'a str>,
    /// The provider's own error code, if any (e.g. Graph's `error.code`).
    pub provider_code: Option<&'a str>,
    /// The provider's error message, if any (cut to [`MAX_MESSAGE_BYTES`]).
    pub message: Option<&'a str>,
    /// What the call means for the task.
    pub result: AttemptResult,
}

/// Task counts by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskCounts {
    /// Tasks still to execute.
    pub pending: u64,
    /// Tasks the provider confirmed.
    pub done: u64,
    /// Tasks the provider refused permanently.
    pub failed: u64,
}

/// A failed task and its last error, for `srs status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedTask {
    /// The task.
    pub id: TaskId,
    /// The provider id.
    pub provider: String,
    /// The user whose sessions were not revoked.
    pub subject: String,
    /// The last attempt's HTTP status.
    pub http_status: Option<u16>,
    /// The last attempt's srs error code.
    pub error_code: Option<String>,
    /// The last attempt's provider error code.
    pub provider_code: Option<String>,
    /// The last attempt's provider message.
    pub message: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// When the task failed (unix ms).
    pub updated_ms: i64,
    /// The ids of the events attached.
    pub events: Vec<String>,
}

/// What `srs status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// Events journaled by real runs.
    pub events: u64,
    /// Events journaled by dry runs only.
    pub dry_run_events: u64,
    /// Task counts by state.
    pub tasks: TaskCounts,
    /// The pending tasks, oldest first.
    pub pending: Vec<Task>,
    /// The failed tasks with their errors, oldest first.
    pub failed: Vec<FailedTask>,
}

/// The journal as the runner sees it. Implementations commit each batch call
/// atomically: all of it or nothing.
pub trait Journal {
    /// Journals events in order, with their tasks, in one commit. Returns one
    /// [`Recorded`] per event.
    fn record_events(&mut self, events: &[NewEvent<'_>]) -> Result<Vec<Recorded>, JournalError>;

    /// Journals attempts in order in one commit, returning each task's new
    /// state. Fails, recording none, if any task is unknown or not pending.
    fn record_attempts(
        &mut self,
        attempts: &[(TaskId, Attempt<'_>)],
    ) -> Result<Vec<TaskState>, JournalError>;

    /// The pending tasks, oldest first, with their events: the work left after
    /// a crash.
    fn pending_tasks(&mut self) -> Result<Vec<Task>, JournalError>;

    /// Counts and the failed tasks, for `srs status`.
    fn status(&mut self) -> Result<Status, JournalError>;

    /// Journals one event; see [`Journal::record_events`].
    fn record_event(&mut self, event: &NewEvent<'_>) -> Result<Recorded, JournalError> {
        single(self.record_events(std::slice::from_ref(event))?)
    }

    /// Journals one attempt; see [`Journal::record_attempts`].
    fn record_attempt(
        &mut self,
        task: TaskId,
        attempt: &Attempt<'_>,
    ) -> Result<TaskState, JournalError> {
        single(self.record_attempts(&[(task, *attempt)])?)
    }
}

fn single<T>(results: Vec<T>) -> Result<T, JournalError> {
    let got = results.len();
    let mut results = results.into_iter();
    match (results.next(), got) {
        (Some(result), 1) => Ok(result),
        _ => Err(JournalError::BatchMismatch { sent: 1, got }),
    }
}

/// The journal in a local SQLite file (WAL mode).
#[derive(Debug)]
pub struct SqliteJournal {
    conn: Connection,
}

impl SqliteJournal {
    /// Opens or creates the journal at `path` and migrates it to
    /// [`SCHEMA_VERSION`]. Refuses a journal from a newer srs.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, JournalError> {
        let name = path.display().to_string();
        let conn = Connection::open(path).map_err(|source| JournalError::Open {
            path: name.clone(),
            source,
        })?;
        Self::setup(conn, &name, durability, true)
    }

    /// An empty journal in memory, for tests.
    pub fn open_in_memory() -> Result<Self, JournalError> {
        let name = ":memory:";
        let conn = Connection::open_in_memory().map_err(|source| JournalError::Open {
            path: name.to_owned(),
            source,
        })?;
        Self::setup(conn, name, Durability::Full, false)
    }

    fn setup(
        mut conn: Connection,
        name: &str,
        durability: Durability,
        wal: bool,
    ) -> Result<Self, JournalError> {
        let open_err = |source| JournalError::Open {
            path: name.to_owned(),
            source,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_err)?;
        if wal && !mode.eq_ignore_ascii_case("wal") {
            return Err(JournalError::NotWal {
                path: name.to_owned(),
                mode,
            });
        }
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrate(&mut conn, name)?;
        Ok(SqliteJournal { conn })
    }

    fn write(&mut self) -> Result<Transaction<'_>, JournalError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }
}

/// Applies the migrations the database lacks, all in one transaction.
fn migrate(conn: &mut Connection, name: &str) -> Result<(), JournalError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(JournalError::NewerSchema {
            path: name.to_owned(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    let applied = usize::try_from(found).map_err(|_| JournalError::InvalidSchema {
        path: name.to_owned(),
        found,
    })?;
    if applied < MIGRATIONS.len() {
        for step in MIGRATIONS.iter().skip(applied) {
            tx.execute_batch(step)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

impl Journal for SqliteJournal {
    fn record_events(&mut self, events: &[NewEvent<'_>]) -> Result<Vec<Recorded>, JournalError> {
        let tx = self.write()?;
        let mut results = Vec::with_capacity(events.len());
        for event in events {
            results.push(insert_event(&tx, event)?);
        }
        tx.commit()?;
        Ok(results)
    }

    fn record_attempts(
        &mut self,
        attempts: &[(TaskId, Attempt<'_>)],
    ) -> Result<Vec<TaskState>, JournalError> {
        let tx = self.write()?;
        let mut states = Vec::with_capacity(attempts.len());
        for (task, attempt) in attempts {
            states.push(insert_attempt(&tx, *task, attempt)?);
        }
        tx.commit()?;
        Ok(states)
    }

    fn pending_tasks(&mut self) -> Result<Vec<Task>, JournalError> {
        let tx = self.conn.transaction()?;
        let tasks = read_pending(&tx)?;
        tx.commit()?;
        Ok(tasks)
    }

    fn status(&mut self) -> Result<Status, JournalError> {
        // One read transaction: the counts and lists agree with each other.
        let tx = self.conn.transaction()?;
        let mut status = Status {
            pending: read_pending(&tx)?,
            failed: read_failed(&tx)?,
            ..Status::default()
        };
        {
            let mut stmt =
                tx.prepare_cached("SELECT dry_run, count(*) FROM events GROUP BY dry_run")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let count = count(row.get(1)?)?;
                if row.get::<_, bool>(0)? {
                    status.dry_run_events = count;
                } else {
                    status.events = count;
                }
            }
        }
        {
            let mut stmt = tx.prepare_cached("SELECT state, count(*) FROM tasks GROUP BY state")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let count = count(row.get(1)?)?;
                match TaskState::parse(&row.get::<_, String>(0)?)? {
                    TaskState::Pending => status.tasks.pending = count,
                    TaskState::Done => status.tasks.done = count,
                    TaskState::Failed => status.tasks.failed = count,
                }
            }
        }
        tx.commit()?;
        Ok(status)
    }
}

/// A `count(*)`, which SQLite returns as a signed integer.
fn count(n: i64) -> Result<u64, JournalError> {
    u64::try_from(n).map_err(|_| JournalError::Corrupt {
        what: "count",
        value: n.to_string(),
    })
}

fn insert_event(tx: &Transaction<'_>, event: &NewEvent<'_>) -> Result<Recorded, JournalError> {
    if !OUTCOMES.contains(&event.outcome) {
        return Err(JournalError::InvalidOutcome {
            event_id: event.id.to_owned(),
            outcome: event.outcome.to_owned(),
        });
    }
    // A new id is inserted; a dry-run row is replaced by a real run; any other
    // existing row is left alone, which makes the event a duplicate.
    let changed = tx
        .prepare_cached(
            "INSERT INTO events (id, received_ms, outcome, enforced, dry_run, decision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET
                 received_ms = excluded.received_ms, outcome = excluded.outcome,
                 enforced = excluded.enforced, dry_run = excluded.dry_run,
                 decision = excluded.decision
             WHERE events.dry_run = 1 AND excluded.dry_run = 0",
        )?
        .execute(params![
            event.id,
            event.received_ms,
            event.outcome,
            event.enforced,
            event.dry_run,
            event.decision
        ])?;
    if changed == 0 {
        return Ok(Recorded::Duplicate);
    }
    let mut tasks: Vec<TaskRef> = Vec::new();
    if !event.enforced || event.dry_run {
        return Ok(Recorded::New { tasks });
    }
    for &(provider, subject) in event.revocations {
        if tasks
            .iter()
            .any(|t| t.provider == provider && t.subject == subject)
        {
            continue; // the same revocation twice in one decision
        }
        let existing: Option<TaskId> = tx
            .prepare_cached(
                "SELECT id FROM tasks WHERE provider = ?1 AND subject = ?2 AND state = 'pending'",
            )?
            .query_row(params![provider, subject], |row| row.get(0))
            .optional()?;
        let id = match existing {
            Some(id) => id,
            None => tx
                .prepare_cached(
                    "INSERT INTO tasks (provider, subject, state, created_ms, updated_ms)
                     VALUES (?1, ?2, 'pending', ?3, ?3) RETURNING id",
                )?
                .query_row(params![provider, subject, event.received_ms], |row| {
                    row.get(0)
                })?,
        };
        tx.prepare_cached("INSERT INTO task_events (task_id, event_id) VALUES (?1, ?2)")?
            .execute(params![id, event.id])?;
        tasks.push(TaskRef {
            id,
            provider: provider.to_owned(),
            subject: subject.to_owned(),
            coalesced: existing.is_some(),
        });
    }
    Ok(Recorded::New { tasks })
}

fn insert_attempt(
    tx: &Transaction<'_>,
    task: TaskId,
    attempt: &Attempt<'_>,
) -> Result<TaskState, JournalError> {
    let state: Option<String> = tx
        .prepare_cached("SELECT state FROM tasks WHERE id = ?1")?
        .query_row([task], |row| row.get(0))
        .optional()?;
    match state.as_deref().map(TaskState::parse).transpose()? {
        None => return Err(JournalError::UnknownTask(task)),
        Some(TaskState::Pending) => {}
        Some(state) => return Err(JournalError::NotPending { id: task, state }),
    }
    let message = attempt.message.map(clip);
    tx.prepare_cached(
        "INSERT INTO attempts
             (task_id, at_ms, http_status, error_code, provider_code, message, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        task,
        attempt.at_ms,
        attempt.http_status,
        attempt.error_code,
        attempt.provider_code,
        message,
        attempt.result.as_str()
    ])?;
    let new_state = attempt.result.state();
    tx.prepare_cached(
        "UPDATE tasks SET state = ?2, updated_ms = ?3, attempts = attempts + 1,
             last_status = ?4, last_error_code = ?5, last_provider_code = ?6,
             last_message = ?7
         WHERE id = ?1",
    )?
    .execute(params![
        task,
        new_state.as_str(),
        attempt.at_ms,
        attempt.http_status,
        attempt.error_code,
        attempt.provider_code,
        message
    ])?;
    Ok(new_state)
}

/// Cuts `s` to at most [`MAX_MESSAGE_BYTES`] at a character boundary.
fn clip(s: &str) -> &str {
    s.get(..s.floor_char_boundary(MAX_MESSAGE_BYTES))
        .unwrap_or(s)
}

fn task_events(tx: &Transaction<'_>, task: TaskId) -> Result<Vec<String>, JournalError> {
    let mut stmt =
        tx.prepare_cached("SELECT event_id FROM task_events WHERE task_id = ?1 ORDER BY rowid")?;
    let events = stmt
        .query_map([task], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(events)
}

fn read_pending(tx: &Transaction<'_>) -> Result<Vec<Task>, JournalError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, provider, subject, attempts FROM tasks WHERE state = 'pending' ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |row| {
            Ok(Task {
                id: row.get(0)?,
                provider: row.get(1)?,
                subject: row.get(2)?,
                attempts: row.get(3)?,
                events: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|task| {
            Ok(Task {
                events: task_events(tx, task.id)?,
                ..task
            })
        })
        .collect()
}

fn read_failed(tx: &Transaction<'_>) -> Result<Vec<FailedTask>, JournalError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, provider, subject, last_status, last_error_code, last_provider_code,
                last_message, attempts, updated_ms
         FROM tasks WHERE state = 'failed' ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |row| {
            Ok(FailedTask {
                id: row.get(0)?,
                provider: row.get(1)?,
                subject: row.get(2)?,
                http_status: row.get(3)?,
                error_code: row.get(4)?,
                provider_code: row.get(5)?,
                message: row.get(6)?,
                attempts: row.get(7)?,
                updated_ms: row.get(8)?,
                events: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|task| {
            Ok(FailedTask {
                events: task_events(tx, task.id)?,
                ..task
            })
        })
        .collect()
}
