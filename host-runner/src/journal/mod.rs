//! The journal (SPEC §8): every event and its revocation tasks are committed
//! before any provider call, so a crash loses nothing and repeats nothing.
//!
//! - An event id already journaled executes nothing again ([`Recorded::Duplicate`]).
//! - A revocation for a (provider, subject) that already has a pending task is
//!   attached to that task: "at most one pending task per (provider, subject)"
//!   is a database invariant (a partial unique index).
//! - Every provider attempt is recorded: time, HTTP status, srs's error code,
//!   the provider's error code and message. The API takes no free-form request
//!   data, so no token or secret can reach the journal through it.
//! - A `grace` decision (SPEC §10) journals its revocations as tasks
//!   *scheduled* at `due`, per device: a later decision for the device that
//!   is its latest by event time cancels them (`no_action`), makes them due
//!   at once (`revoke`), or keeps the earlier `due` (`grace`).
//!   [`Journal::promote_due`] turns the scheduled tasks that fell due into
//!   pending ones, coalesced like any other.
//! - A `--dry-run` event is journaled without tasks and does not make its id
//!   "seen" for a real run: the real run replaces the dry-run row.
//! - Each event is kept as it was sent, with its device and user
//!   ([`EVENT_BODIES`]), for the admin console: search by user or device, and
//!   the what-if that replays history under another policy.
//!
//! Everything else talks to the journal through the [`Journal`] trait: its
//! methods take `&self`, so a backend with a connection pool (a shared server
//! database) serves concurrent callers without one global lock. Values are
//! typed ([`Provider`], [`Outcome`], [`TaskState`], [`AttemptResult`]); each
//! has one stored name, which the schema's `CHECK`s are tested against. All
//! times are unix milliseconds passed in by the caller; the journal reads no
//! clock.

mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use policy_core::{Access, Outcome, Provider};

pub use postgres::{PG_SCHEMA_VERSION, PostgresJournal, redacted};
pub use sql::EVENT_BODIES;
pub use sqlite::{SCHEMA_VERSION, SqliteJournal};

/// The id of a revocation task.
pub type TaskId = i64;

/// The id of a Shared Signals delivery (one SET to one receiver).
pub type DeliveryId = i64;

/// The longest provider message kept, in bytes; longer ones are cut at a
/// character boundary ([`crate::clip`]).
pub const MAX_MESSAGE_BYTES: usize = 1024;

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
    /// The PostgreSQL database could not be reached or configured.
    #[error("cannot open the journal {url}: {why}")]
    OpenPostgres { url: String, why: String },
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
    /// An attempt names a task the journal does not hold.
    #[error("task {0} is not in the journal")]
    UnknownTask(TaskId),
    /// An attempt names a delivery the journal does not hold.
    #[error("delivery {0} is not in the journal")]
    UnknownDelivery(DeliveryId),
    /// An attempt names a delivery that is not pending.
    #[error("delivery {id} is {state}, not pending: it takes no more attempts")]
    DeliveryNotPending { id: DeliveryId, state: TaskState },
    /// An attempt names a task that is already done or failed.
    #[error("task {id} is {state}, not pending: it takes no more attempts")]
    NotPending { id: TaskId, state: TaskState },
    /// A stored value is outside what this srs writes.
    #[error("the journal holds an invalid {what}: {value:?}")]
    Corrupt { what: &'static str, value: String },
    /// A batch call answered a different number of results than it was given.
    #[error("the journal answered {got} results for {sent} records")]
    BatchMismatch { sent: usize, got: usize },
    /// The connection is unusable after a thread panicked holding it.
    #[error("the journal is unusable after an earlier failure")]
    Poisoned,
    /// Any other database failure.
    #[error("journal database error")]
    Sqlite(#[from] rusqlite::Error),
    /// Any other PostgreSQL failure.
    #[error("journal database error")]
    Postgres(#[from] ::postgres::Error),
}

/// Opens the journal `--state` names: a `postgres://` (or `postgresql://`)
/// URL, else a SQLite file path.
pub fn open(
    state: &std::path::Path,
    durability: Durability,
) -> Result<Arc<dyn Journal>, JournalError> {
    match state.to_str() {
        Some(url) if is_url(state) => Ok(Arc::new(PostgresJournal::open(url)?)),
        _ => Ok(Arc::new(SqliteJournal::open(state, durability)?)),
    }
}

/// Whether `--state` is a PostgreSQL URL rather than a SQLite path.
pub fn is_url(state: &std::path::Path) -> bool {
    state
        .to_str()
        .is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// `--state` as messages may show it (a URL without its password).
pub fn display(state: &std::path::Path) -> String {
    redacted(&state.display().to_string())
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

/// `as_str`, `FromStr` and `ALL` for a stored enum, from one list of names.
macro_rules! stored_names {
    ($kind:literal, $ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: [Self; [$($name),+].len()] = [$(Self::$variant),+];

            /// The name stored in the journal and shown by `srs status`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = JournalError;

            fn from_str(s: &str) -> Result<Self, JournalError> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    other => Err(JournalError::Corrupt {
                        what: $kind,
                        value: other.to_owned(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// The state of a revocation task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Waits for the end of a grace period; becomes pending when due.
    Scheduled,
    /// Not yet executed, or to be retried.
    Pending,
    /// The provider confirmed the revocation.
    Done,
    /// The provider refused permanently; see the last attempt's error.
    Failed,
    /// A scheduled task the device's remediation made unnecessary.
    Cancelled,
}

stored_names!("task state", TaskState {
    Scheduled => "scheduled",
    Pending => "pending",
    Done => "done",
    Failed => "failed",
    Cancelled => "cancelled",
});

/// What claiming a task for execution found (SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This owner holds it until the lease ends.
    Claimed,
    /// Another owner's lease has not ended.
    Busy,
    /// It is no longer pending.
    Settled(TaskState),
    /// The journal does not hold it.
    Unknown,
}

/// What one provider call means for its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The revocation succeeded: the task ends done.
    Done,
    /// A transient failure: the task stays pending.
    Retry,
    /// A permanent failure: the task ends failed with this attempt's error.
    Failed,
}

stored_names!("attempt result", AttemptResult {
    Done => "done",
    Retry => "retry",
    Failed => "failed",
});

impl AttemptResult {
    /// The task's state after an attempt with this result.
    pub fn state(self) -> TaskState {
        match self {
            AttemptResult::Done => TaskState::Done,
            AttemptResult::Retry => TaskState::Pending,
            AttemptResult::Failed => TaskState::Failed,
        }
    }
}

/// An event and the policy module's decision about it, to journal.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// The event id: the deduplication key.
    pub id: &'a str,
    /// When the runner read the event (unix ms).
    pub received_ms: i64,
    /// The decision's outcome.
    pub outcome: Outcome,
    /// False for a `report_only` policy: no tasks are created.
    pub enforced: bool,
    /// A `--dry-run` run: journaled without tasks, replaced by a later real run.
    pub dry_run: bool,
    /// The module's decision JSON, kept for audit.
    pub decision: &'a str,
    /// (provider, subject) pairs; tasks are created only when `enforced && !dry_run`.
    /// For outcome `grace`, the scheduled revocations.
    pub revocations: &'a [(Provider, &'a str)],
    /// For outcome `grace`: `scheduled.due` (unix ms); the tasks are
    /// scheduled instead of pending.
    pub due_ms: Option<i64>,
    /// The device and user the event is about, for the sign-in gate; `None`
    /// leaves the gate's view unchanged.
    pub device: Option<DeviceFacts<'a>>,
    /// `session-revoked` SETs to push (SPEC §11), created only when
    /// `enforced && !dry_run`: pending for a `revoke`, scheduled with the
    /// revocations for a `grace`.
    pub deliveries: &'a [NewDelivery<'a>],
    /// The event as it was sent, kept (with the device and user of
    /// `device`) for the admin console: searching by user or device, and
    /// replaying history under another policy.
    pub body: Option<&'a str>,
}

/// A `session-revoked` SET to push to one receiver. The SET is signed when
/// it is sent; the journal keeps what it says, never a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDelivery<'a> {
    /// The receiver: a configured endpoint, or `stream:<id>`.
    pub receiver: &'a str,
    /// The SET's `jti`: unique, kept across retries.
    pub jti: &'a str,
    /// The user (email, else upn).
    pub user: &'a str,
    /// The device id.
    pub device_id: &'a str,
    /// When the sessions are revoked (unix ms): the event's time, or for a
    /// `grace` decision its `due`.
    pub event_ms: i64,
    /// `reason_admin`, in English.
    pub reason: &'a str,
}

/// A delivery to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub receiver: String,
    /// The event that decided: the SET's `txn`.
    pub event_id: String,
    pub jti: String,
    pub user: String,
    pub device_id: String,
    pub event_ms: i64,
    pub reason: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// A delivery the receiver refused, with its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDelivery {
    pub id: DeliveryId,
    pub receiver: String,
    pub event_id: String,
    pub http_status: Option<u16>,
    /// The receiver's `err` code (RFC 8935), if it gave one.
    pub err: Option<String>,
    /// Its `description`, cut to [`MAX_MESSAGE_BYTES`].
    pub message: Option<String>,
    pub attempts: u32,
}

/// What the sign-in gate keeps of an event (SPEC §10): whose device, when,
/// and the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFacts<'a> {
    /// `event.device.id`.
    pub device_id: &'a str,
    /// `event.user.upn`, lowercased.
    pub upn: Option<&'a str>,
    /// `event.user.email`, lowercased.
    pub email: Option<&'a str>,
    /// `event.time` (unix ms), or when the event arrived if it has none.
    pub time_ms: i64,
    /// The decision's `access`.
    pub access: Access,
}

/// A device's latest decision by event time (arrival order breaking ties):
/// what the gate answers for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// `event.device.id`.
    pub device_id: String,
    /// The user's upn, lowercased.
    pub upn: Option<String>,
    /// The user's email, lowercased.
    pub email: Option<String>,
    /// The event's time (unix ms).
    pub time_ms: i64,
    /// Arrival order in the journal: breaks ties between equal times.
    pub seq: i64,
    /// The event that decided.
    pub event_id: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// False under a `report_only` policy.
    pub enforced: bool,
    /// The decision's `access`.
    pub access: Access,
    /// While its decisions are `grace`: when its grace period ends (unix ms),
    /// the earliest `due` since the first of them.
    pub due_ms: Option<i64>,
    /// The module's decision JSON.
    pub decision: String,
}

/// What journaling an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The id was journaled before (or, for a dry run, by any run): nothing to do.
    Duplicate,
    /// The event is new. `seq` is its arrival order.
    New {
        seq: i64,
        /// Pending tasks to execute now: those carrying its revocations (a
        /// task that was already pending keeps its id), and the device's
        /// scheduled tasks a `revoke` made due.
        tasks: Vec<TaskRef>,
        /// The tasks scheduled for its grace period.
        scheduled: Vec<TaskRef>,
        /// The device's scheduled tasks it cancelled.
        cancelled: Vec<TaskId>,
    },
}

/// A task an event's revocation was attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRef {
    /// The task.
    pub id: TaskId,
    /// Where the sessions are revoked.
    pub provider: Provider,
    /// The user whose sessions are revoked.
    pub subject: String,
}

/// A pending task to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The task.
    pub id: TaskId,
    /// Where the sessions are revoked.
    pub provider: Provider,
    /// The user whose sessions are revoked.
    pub subject: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The ids of the events attached, in the order they were attached.
    pub events: Vec<String>,
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
    /// Tasks waiting for a grace period to end.
    pub scheduled: u64,
    /// Tasks still to execute.
    pub pending: u64,
    /// Tasks the provider confirmed.
    pub done: u64,
    /// Tasks the provider refused permanently.
    pub failed: u64,
    /// Scheduled tasks a remediated device cancelled.
    pub cancelled: u64,
}

/// A task waiting for a grace period to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledTask {
    /// The task.
    pub id: TaskId,
    /// Where the sessions will be revoked.
    pub provider: Provider,
    /// The user whose sessions will be revoked.
    pub subject: String,
    /// The device whose grace period it ends, if the event named one.
    pub device_id: Option<String>,
    /// When it falls due (unix ms).
    pub due_ms: i64,
    /// The ids of the events attached.
    pub events: Vec<String>,
}

/// A failed task and its last error, for `srs status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedTask {
    /// The task.
    pub id: TaskId,
    /// Where the sessions were to be revoked.
    pub provider: Provider,
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
    /// The scheduled tasks, soonest due first.
    pub scheduled: Vec<ScheduledTask>,
    /// Shared Signals deliveries by state.
    pub deliveries: TaskCounts,
    /// The deliveries receivers refused.
    pub failed_deliveries: Vec<FailedDelivery>,
}

/// Which journaled events to list, newest first (dry runs left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events journaled before this arrival order (the paging cursor).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
    /// Only events of this user (upn or email, any case).
    pub user: Option<String>,
    /// Only events of this device.
    pub device: Option<String>,
}

/// A journaled event and the decision about it, for the admin console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Arrival order.
    pub seq: i64,
    /// The event id.
    pub id: String,
    /// When srs received it (unix ms).
    pub received_ms: i64,
    /// The decision's outcome.
    pub outcome: Outcome,
    /// False under a `report_only` policy.
    pub enforced: bool,
    /// The module's answer, as it gave it.
    pub decision: String,
    /// `event.device.id`, if kept.
    pub device_id: Option<String>,
    /// The user's upn, lowercased, if kept.
    pub upn: Option<String>,
    /// The user's email, lowercased, if kept.
    pub email: Option<String>,
    /// The event's time (unix ms), or its arrival if it had none; if kept.
    pub time_ms: Option<i64>,
    /// The event as it was sent, if kept.
    pub body: Option<String>,
}

/// A revocation task in any state, for the admin console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    pub id: TaskId,
    pub provider: Provider,
    pub subject: String,
    pub state: TaskState,
    /// The device whose grace period it ends, if scheduled for one.
    pub device_id: Option<String>,
    /// When a scheduled task falls due (unix ms).
    pub due_ms: Option<i64>,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last attempt's HTTP status, srs error code, provider code and message.
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub provider_code: Option<String>,
    pub message: Option<String>,
    /// When its state last changed (unix ms).
    pub updated_ms: i64,
    /// The ids of the events attached.
    pub events: Vec<String>,
}

/// What retrying a failed task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// The journal does not hold the task.
    Unknown,
    /// The task is not failed: nothing changed.
    NotFailed(TaskState),
    /// The revocation is pending again: the task itself, or (`joined`) the
    /// pending task for the same (provider, subject), which took over its
    /// events and attempts.
    Pending { task: TaskRef, joined: bool },
}

/// The journal as the rest of srs sees it. Implementations commit each batch
/// call atomically (all of it or nothing) and may be called from several
/// threads at once.
pub trait Journal: Send + Sync + std::fmt::Debug {
    /// Journals events in order, with their tasks, in one commit. Returns one
    /// [`Recorded`] per event.
    fn record_events(&self, events: &[NewEvent<'_>]) -> Result<Vec<Recorded>, JournalError>;

    /// Journals attempts in order in one commit, returning each task's new
    /// state. Fails, recording none, if any task is unknown or not pending.
    fn record_attempts(
        &self,
        attempts: &[(TaskId, Attempt<'_>)],
    ) -> Result<Vec<TaskState>, JournalError>;

    /// The pending tasks, oldest first, with their events: the work left after
    /// a crash.
    fn pending_tasks(&self) -> Result<Vec<Task>, JournalError>;

    /// Counts and the failed tasks, for `srs status`.
    fn status(&self) -> Result<Status, JournalError>;

    /// Task counts by state (cheaper than [`Journal::status`]).
    fn task_counts(&self) -> Result<TaskCounts, JournalError>;

    /// A task's state, if the journal holds it.
    fn task_state(&self, task: TaskId) -> Result<Option<TaskState>, JournalError>;

    /// Each device's latest decision (dry runs left out): the gate's verdicts.
    fn devices(&self) -> Result<Vec<DeviceRecord>, JournalError>;

    /// When the soonest scheduled task falls due (unix ms), if any.
    fn next_due(&self) -> Result<Option<i64>, JournalError>;

    /// Makes every scheduled task due at or before `now_ms` pending, in one
    /// commit: one that meets a pending task for the same (provider,
    /// subject) joins it (its events attached there). Returns the pending
    /// tasks to execute, each once.
    fn promote_due(&self, now_ms: i64) -> Result<Vec<TaskRef>, JournalError>;

    /// The deliveries to push, oldest first.
    fn pending_deliveries(&self) -> Result<Vec<Delivery>, JournalError>;

    /// Journals delivery attempts in one commit, returning each delivery's
    /// new state; refused, recording none, if any is unknown or not pending.
    fn record_delivery_attempts(
        &self,
        attempts: &[(DeliveryId, Attempt<'_>)],
    ) -> Result<Vec<TaskState>, JournalError>;

    /// The SSF streams receivers registered: (id, configuration JSON).
    fn streams(&self) -> Result<Vec<(String, String)>, JournalError>;

    /// Creates or replaces a stream's configuration.
    fn put_stream(&self, id: &str, config: &str, now_ms: i64) -> Result<(), JournalError>;

    /// Deletes a stream; false if there was none.
    fn delete_stream(&self, id: &str) -> Result<bool, JournalError>;

    /// Claims pending tasks for `owner` until `until_ms`, or renews the
    /// claims it holds; another owner's claim is taken over once its lease
    /// ended before `now_ms`. One answer per task, in order, from one
    /// transaction.
    fn claim_tasks(
        &self,
        tasks: &[TaskId],
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<Claim>, JournalError>;

    /// Claims one task; see [`Journal::claim_tasks`].
    fn claim(
        &self,
        task: TaskId,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, JournalError> {
        single(self.claim_tasks(&[task], owner, now_ms, until_ms)?)
    }

    /// [`Journal::claim`] for a Shared Signals delivery.
    fn claim_delivery(
        &self,
        delivery: DeliveryId,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, JournalError>;

    /// Gives up `owner`'s claim on a task (left pending at its deadline), so
    /// any process may take it at once.
    fn release(&self, task: TaskId, owner: &str) -> Result<(), JournalError>;

    /// The devices whose latest decision has an arrival order after `seq`:
    /// how a process's gate learns what other processes journaled.
    fn devices_since(&self, seq: i64) -> Result<Vec<DeviceRecord>, JournalError>;

    /// Journaled events and their decisions, newest first; see [`EventQuery`].
    fn events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, JournalError>;

    /// Tasks in `state`, newest first, with ids below `before` if given.
    fn tasks(
        &self,
        state: TaskState,
        before: Option<TaskId>,
        limit: u32,
    ) -> Result<Vec<TaskRecord>, JournalError>;

    /// Makes a failed task pending again, in one commit. When a pending task
    /// for the same (provider, subject) exists it joins that one (at most
    /// one pending task per revocation), as a due scheduled task does.
    fn retry_failed(&self, task: TaskId, now_ms: i64) -> Result<Retried, JournalError>;

    /// Journals one event; see [`Journal::record_events`].
    fn record_event(&self, event: &NewEvent<'_>) -> Result<Recorded, JournalError> {
        single(self.record_events(std::slice::from_ref(event))?)
    }

    /// Journals one attempt; see [`Journal::record_attempts`].
    fn record_attempt(
        &self,
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
