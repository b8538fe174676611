//! The journal in a local SQLite file (WAL mode): the embedded default.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use policy_core::{Access, Outcome, Provider};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::{
    Attempt, Delivery, DeliveryId, DeviceFacts, DeviceRecord, Durability, FailedDelivery,
    FailedTask, Journal, JournalError, MAX_MESSAGE_BYTES, NewDelivery, NewEvent, Recorded,
    ScheduledTask, Status, Task, TaskCounts, TaskId, TaskRef, TaskState,
};

/// The schema migrations, applied in order; migration `n` (1-based) brings the
/// database to `PRAGMA user_version = n`. Append only: never edit a shipped step.
const MIGRATIONS: &[&str] = &[
    "
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
",
    "
CREATE TABLE devices (
    device_id  TEXT PRIMARY KEY NOT NULL,
    event_id   TEXT NOT NULL REFERENCES events (id),
    seq        INTEGER NOT NULL,
    time_ms    INTEGER NOT NULL,
    user_upn   TEXT,
    user_email TEXT,
    access     TEXT NOT NULL CHECK (access IN ('allow', 'block'))
);
CREATE INDEX devices_by_upn ON devices (user_upn);
CREATE INDEX devices_by_email ON devices (user_email);
",
    // Version 3, the grace period: outcome `grace`; tasks `scheduled` (due at
    // `due_ms`, for `device_id`) and `cancelled` (by the event `cancelled_by`);
    // each device's grace clock. SQLite cannot change a CHECK in place, so
    // `events` and `tasks` are rebuilt (rowids kept: `devices.seq` is one).
    "
CREATE TABLE events_v3 (
    id          TEXT PRIMARY KEY NOT NULL,
    received_ms INTEGER NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('revoke', 'grace', 'no_action', 'unsupported')),
    enforced    INTEGER NOT NULL CHECK (enforced IN (0, 1)),
    dry_run     INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    decision    TEXT NOT NULL
);
INSERT INTO events_v3 (rowid, id, received_ms, outcome, enforced, dry_run, decision)
    SELECT rowid, id, received_ms, outcome, enforced, dry_run, decision FROM events;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE TABLE tasks_v3 (
    id                 INTEGER PRIMARY KEY,
    provider           TEXT NOT NULL,
    subject            TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('scheduled', 'pending', 'done', 'failed', 'cancelled')),
    created_ms         INTEGER NOT NULL,
    updated_ms         INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status        INTEGER CHECK (last_status BETWEEN 0 AND 65535),
    last_error_code    TEXT,
    last_provider_code TEXT,
    last_message       TEXT,
    due_ms             INTEGER,
    device_id          TEXT,
    cancelled_by       TEXT REFERENCES events (id),
    CHECK (state <> 'scheduled' OR due_ms IS NOT NULL),
    CHECK ((state = 'cancelled') = (cancelled_by IS NOT NULL))
);
INSERT INTO tasks_v3 (id, provider, subject, state, created_ms, updated_ms, attempts,
                      last_status, last_error_code, last_provider_code, last_message)
    SELECT id, provider, subject, state, created_ms, updated_ms, attempts,
           last_status, last_error_code, last_provider_code, last_message FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_v3 RENAME TO tasks;
CREATE UNIQUE INDEX tasks_one_pending ON tasks (provider, subject) WHERE state = 'pending';
CREATE UNIQUE INDEX tasks_one_scheduled ON tasks (device_id, provider, subject)
    WHERE state = 'scheduled';
CREATE INDEX tasks_by_state ON tasks (state);
CREATE INDEX tasks_by_due ON tasks (due_ms) WHERE state = 'scheduled';
CREATE INDEX tasks_by_device ON tasks (device_id) WHERE state = 'scheduled';
ALTER TABLE devices ADD COLUMN due_ms INTEGER;
",
    // Version 4, Shared Signals: one `session-revoked` SET per receiver per
    // decision, in the task states (a `grace` decision's SETs wait with its
    // revocations, one per device and receiver).
    "
CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY,
    receiver      TEXT NOT NULL,
    event_id      TEXT NOT NULL REFERENCES events (id),
    jti           TEXT NOT NULL UNIQUE,
    user          TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    event_ms      INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('scheduled', 'pending', 'done', 'failed', 'cancelled')),
    due_ms        INTEGER,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status   INTEGER CHECK (last_status BETWEEN 0 AND 65535),
    last_err      TEXT,
    last_message  TEXT,
    UNIQUE (receiver, event_id),
    CHECK (state <> 'scheduled' OR due_ms IS NOT NULL)
);
CREATE UNIQUE INDEX deliveries_one_scheduled ON deliveries (device_id, receiver)
    WHERE state = 'scheduled';
CREATE INDEX deliveries_by_state ON deliveries (state);
CREATE TABLE streams (
    id         TEXT PRIMARY KEY NOT NULL,
    config     TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
",
];

/// The schema version this build writes: the number of [`MIGRATIONS`].
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a write waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The journal in a local SQLite file (WAL mode). One connection, used by
/// one caller at a time: SQLite has one writer anyway.
#[derive(Debug)]
pub struct SqliteJournal {
    conn: Mutex<Connection>,
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
        // Off while migrating: a step that rebuilds a table drops the old one,
        // which foreign keys would refuse; `migrate` checks them before commit.
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(open_err)?;
        migrate(&mut conn, name)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        Ok(SqliteJournal {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, JournalError> {
        self.conn.lock().map_err(|_| JournalError::Poisoned)
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
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(JournalError::Corrupt {
                what: "foreign key after migration, in table",
                value: table,
            });
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

impl Journal for SqliteJournal {
    fn record_events(&self, events: &[NewEvent<'_>]) -> Result<Vec<Recorded>, JournalError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(events.len());
        for event in events {
            results.push(insert_event(&tx, event)?);
        }
        tx.commit()?;
        Ok(results)
    }

    fn record_attempts(
        &self,
        attempts: &[(TaskId, Attempt<'_>)],
    ) -> Result<Vec<TaskState>, JournalError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut states = Vec::with_capacity(attempts.len());
        for (task, attempt) in attempts {
            states.push(insert_attempt(&tx, *task, attempt)?);
        }
        tx.commit()?;
        Ok(states)
    }

    fn pending_tasks(&self) -> Result<Vec<Task>, JournalError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let tasks = read_pending(&tx)?;
        tx.commit()?;
        Ok(tasks)
    }

    fn status(&self) -> Result<Status, JournalError> {
        // One read transaction: the counts and lists agree with each other.
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let mut status = Status {
            pending: read_pending(&tx)?,
            failed: read_failed(&tx)?,
            scheduled: read_scheduled(&tx)?,
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
        status.tasks = read_counts(&tx)?;
        status.deliveries =
            counts_of(&tx, "SELECT state, count(*) FROM deliveries GROUP BY state")?;
        status.failed_deliveries = read_failed_deliveries(&tx)?;
        tx.commit()?;
        Ok(status)
    }

    fn task_counts(&self) -> Result<TaskCounts, JournalError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let counts = read_counts(&tx)?;
        tx.commit()?;
        Ok(counts)
    }

    fn task_state(&self, task: TaskId) -> Result<Option<TaskState>, JournalError> {
        let conn = self.conn()?;
        let state: Option<String> = conn
            .prepare_cached("SELECT state FROM tasks WHERE id = ?1")?
            .query_row([task], |row| row.get(0))
            .optional()?;
        state.as_deref().map(str::parse).transpose()
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>, JournalError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let devices = {
            let mut stmt = tx.prepare_cached(
                "SELECT d.device_id, d.user_upn, d.user_email, d.time_ms, d.seq, d.event_id,
                        e.outcome, e.enforced, d.access, e.decision, d.due_ms
                 FROM devices d JOIN events e ON e.id = d.event_id ORDER BY d.device_id",
            )?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((
                        DeviceRecord {
                            device_id: row.get(0)?,
                            upn: row.get(1)?,
                            email: row.get(2)?,
                            time_ms: row.get(3)?,
                            seq: row.get(4)?,
                            event_id: row.get(5)?,
                            outcome: policy_core::Outcome::NoAction,
                            enforced: row.get(7)?,
                            access: Access::Allow,
                            due_ms: row.get(10)?,
                            decision: row.get(9)?,
                        },
                        row.get::<_, String>(6)?,
                        row.get::<_, String>(8)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(device, outcome, access)| {
                    Ok(DeviceRecord {
                        outcome: stored("outcome", outcome)?,
                        access: stored("access", access)?,
                        ..device
                    })
                })
                .collect::<Result<Vec<_>, JournalError>>()?
        };
        tx.commit()?;
        Ok(devices)
    }

    fn pending_deliveries(&self) -> Result<Vec<Delivery>, JournalError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, receiver, event_id, jti, user, device_id, event_ms, reason, attempts
             FROM deliveries WHERE state = 'pending' ORDER BY id",
        )?;
        let deliveries = stmt
            .query_map([], |row| {
                Ok(Delivery {
                    id: row.get(0)?,
                    receiver: row.get(1)?,
                    event_id: row.get(2)?,
                    jti: row.get(3)?,
                    user: row.get(4)?,
                    device_id: row.get(5)?,
                    event_ms: row.get(6)?,
                    reason: row.get(7)?,
                    attempts: row.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(deliveries)
    }

    fn record_delivery_attempts(
        &self,
        attempts: &[(DeliveryId, Attempt<'_>)],
    ) -> Result<Vec<TaskState>, JournalError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut states = Vec::with_capacity(attempts.len());
        for (id, attempt) in attempts {
            let state: Option<String> = tx
                .prepare_cached("SELECT state FROM deliveries WHERE id = ?1")?
                .query_row([id], |row| row.get(0))
                .optional()?;
            match state.as_deref().map(str::parse).transpose()? {
                None => return Err(JournalError::UnknownDelivery(*id)),
                Some(TaskState::Pending) => {}
                Some(state) => return Err(JournalError::DeliveryNotPending { id: *id, state }),
            }
            let new_state = attempt.result.state();
            let message = attempt.message.map(|m| crate::clip(m, MAX_MESSAGE_BYTES));
            tx.prepare_cached(
                "UPDATE deliveries SET state = ?2, updated_ms = ?3, attempts = attempts + 1,
                     last_status = ?4, last_err = ?5, last_message = ?6
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                new_state.as_str(),
                attempt.at_ms,
                attempt.http_status,
                attempt.provider_code.or(attempt.error_code),
                message
            ])?;
            states.push(new_state);
        }
        tx.commit()?;
        Ok(states)
    }

    fn streams(&self) -> Result<Vec<(String, String)>, JournalError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT id, config FROM streams ORDER BY id")?;
        let streams = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(streams)
    }

    fn put_stream(&self, id: &str, config: &str, now_ms: i64) -> Result<(), JournalError> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO streams (id, config, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET config = excluded.config,
                     updated_ms = excluded.updated_ms",
            )?
            .execute(params![id, config, now_ms])?;
        Ok(())
    }

    fn delete_stream(&self, id: &str) -> Result<bool, JournalError> {
        let n = self
            .conn()?
            .prepare_cached("DELETE FROM streams WHERE id = ?1")?
            .execute([id])?;
        Ok(n > 0)
    }

    fn next_due(&self) -> Result<Option<i64>, JournalError> {
        let conn = self.conn()?;
        let due = conn
            .prepare_cached(
                "SELECT min(due) FROM (
                     SELECT min(due_ms) AS due FROM tasks WHERE state = 'scheduled'
                     UNION ALL
                     SELECT min(due_ms) FROM deliveries WHERE state = 'scheduled')",
            )?
            .query_row([], |row| row.get(0))?;
        Ok(due)
    }

    fn promote_due(&self, now_ms: i64) -> Result<Vec<TaskRef>, JournalError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let due: Vec<TaskRef> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, provider, subject FROM tasks
                 WHERE state = 'scheduled' AND due_ms <= ?1 ORDER BY due_ms, id",
            )?;
            let rows = stmt
                .query_map([now_ms], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<Result<Vec<(TaskId, String, String)>, _>>()?;
            rows.into_iter()
                .map(|(id, provider, subject)| {
                    Ok(TaskRef {
                        id,
                        provider: stored_provider(provider)?,
                        subject,
                    })
                })
                .collect::<Result<_, JournalError>>()?
        };
        let mut pending = Vec::new();
        for task in due {
            let task = promote(&tx, task, now_ms)?;
            if !pending.contains(&task) {
                pending.push(task);
            }
        }
        tx.prepare_cached(
            "UPDATE deliveries SET state = 'pending', updated_ms = ?1
             WHERE state = 'scheduled' AND due_ms <= ?1",
        )?
        .execute([now_ms])?;
        tx.commit()?;
        Ok(pending)
    }
}

/// Makes a scheduled task pending now. When a pending task for its
/// (provider, subject) exists, the scheduled one joins it: its events are
/// attached there and its row (never attempted) is removed.
fn promote(tx: &Transaction<'_>, task: TaskRef, now_ms: i64) -> Result<TaskRef, JournalError> {
    let Some(pending) = pending_task(tx, task.provider, &task.subject)? else {
        tx.prepare_cached("UPDATE tasks SET state = 'pending', updated_ms = ?2 WHERE id = ?1")?
            .execute(params![task.id, now_ms])?;
        return Ok(task);
    };
    tx.prepare_cached(
        "INSERT OR IGNORE INTO task_events (task_id, event_id)
         SELECT ?2, event_id FROM task_events WHERE task_id = ?1 ORDER BY rowid",
    )?
    .execute(params![task.id, pending])?;
    tx.prepare_cached("DELETE FROM task_events WHERE task_id = ?1")?
        .execute([task.id])?;
    tx.prepare_cached("DELETE FROM tasks WHERE id = ?1")?
        .execute([task.id])?;
    Ok(TaskRef {
        id: pending,
        ..task
    })
}

/// The pending task for (provider, subject), if there is one.
fn pending_task(
    tx: &Transaction<'_>,
    provider: Provider,
    subject: &str,
) -> Result<Option<TaskId>, JournalError> {
    let id = tx
        .prepare_cached(
            "SELECT id FROM tasks WHERE provider = ?1 AND subject = ?2 AND state = 'pending'",
        )?
        .query_row(params![provider.as_str(), subject], |row| row.get(0))
        .optional()?;
    Ok(id)
}

fn read_counts(tx: &Transaction<'_>) -> Result<TaskCounts, JournalError> {
    counts_of(tx, "SELECT state, count(*) FROM tasks GROUP BY state")
}

/// Counts by state from `query`, which selects (state, count).
fn counts_of(tx: &Transaction<'_>, query: &str) -> Result<TaskCounts, JournalError> {
    let mut counts = TaskCounts::default();
    let mut stmt = tx.prepare_cached(query)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let count = count(row.get(1)?)?;
        match row.get::<_, String>(0)?.parse()? {
            TaskState::Scheduled => counts.scheduled = count,
            TaskState::Pending => counts.pending = count,
            TaskState::Done => counts.done = count,
            TaskState::Failed => counts.failed = count,
            TaskState::Cancelled => counts.cancelled = count,
        }
    }
    Ok(counts)
}

/// A wire name as stored (an outcome, an access), parsed back.
fn stored<T: std::str::FromStr>(what: &'static str, name: String) -> Result<T, JournalError> {
    name.parse()
        .map_err(|_| JournalError::Corrupt { what, value: name })
}

/// A `count(*)`, which SQLite returns as a signed integer.
fn count(n: i64) -> Result<u64, JournalError> {
    u64::try_from(n).map_err(|_| JournalError::Corrupt {
        what: "count",
        value: n.to_string(),
    })
}

fn insert_event(tx: &Transaction<'_>, event: &NewEvent<'_>) -> Result<Recorded, JournalError> {
    // A new id is inserted; a dry-run row is replaced by a real run; any other
    // existing row is left alone, which makes the event a duplicate.
    let seq: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO events (id, received_ms, outcome, enforced, dry_run, decision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET
                 received_ms = excluded.received_ms, outcome = excluded.outcome,
                 enforced = excluded.enforced, dry_run = excluded.dry_run,
                 decision = excluded.decision
             WHERE events.dry_run = 1 AND excluded.dry_run = 0
             RETURNING rowid",
        )?
        .query_row(
            params![
                event.id,
                event.received_ms,
                event.outcome.as_str(),
                event.enforced,
                event.dry_run,
                event.decision
            ],
            |row| row.get(0),
        )
        .optional()?;
    let Some(seq) = seq else {
        return Ok(Recorded::Duplicate);
    };
    let (mut tasks, mut scheduled, mut cancelled) = (Vec::new(), Vec::new(), Vec::new());
    if event.dry_run {
        return Ok(Recorded::New {
            seq,
            tasks,
            scheduled,
            cancelled,
        });
    }
    // The device's latest decision by event time governs its schedule.
    let device = event.device.as_ref().map(|d| d.device_id);
    let latest = match &event.device {
        Some(facts) => upsert_device(tx, event, facts, seq)?,
        None => false,
    };
    // A `grace` waits until the device's grace clock: the earliest `due`
    // since its decisions became `grace`.
    let grace = match (event.outcome, event.due_ms) {
        (Outcome::Grace, Some(due)) => Some(grace_clock(tx, device, due)?),
        _ => None,
    };
    match (event.outcome, device) {
        (Outcome::NoAction, Some(device)) if latest => {
            cancelled = cancel(tx, event, device)?;
            cancel_deliveries(tx, event, device)?;
        }
        (Outcome::Revoke, Some(device)) if latest && event.enforced => {
            tasks = make_due(tx, device, event.received_ms)?;
            // The revoke announces itself: the device's waiting SETs are not sent.
            cancel_deliveries(tx, event, device)?;
        }
        _ => {}
    }
    // A late `grace` schedules nothing: the device's newer decision governs.
    let late_grace = grace.is_some() && device.is_some() && !latest;
    let (revocations, deliveries) = if event.enforced && !late_grace {
        (event.revocations, event.deliveries)
    } else {
        (&[][..], &[][..])
    };
    for delivery in deliveries {
        insert_delivery(tx, event, delivery, grace)?;
    }
    for &(provider, subject) in revocations {
        let task = match grace {
            Some(due) => schedule(tx, event, device, due, provider, subject)?,
            None => {
                let id = match pending_task(tx, provider, subject)? {
                    Some(id) => id,
                    None => new_task(
                        tx,
                        "pending",
                        None,
                        None,
                        event.received_ms,
                        provider,
                        subject,
                    )?,
                };
                attach(tx, id, event.id)?;
                TaskRef {
                    id,
                    provider,
                    subject: subject.to_owned(),
                }
            }
        };
        let list = if grace.is_some() {
            &mut scheduled
        } else {
            &mut tasks
        };
        if !list.contains(&task) {
            list.push(task);
        }
    }
    Ok(Recorded::New {
        seq,
        tasks,
        scheduled,
        cancelled,
    })
}

/// Moves the device's verdict to this event unless it has a newer one (a
/// late arrival with an older time never overturns it); returns whether it
/// did. A `grace` that follows a `grace` keeps the earlier `due`.
fn upsert_device(
    tx: &Transaction<'_>,
    event: &NewEvent<'_>,
    device: &DeviceFacts<'_>,
    seq: i64,
) -> Result<bool, JournalError> {
    let changed = tx
        .prepare_cached(
            "INSERT INTO devices
                 (device_id, event_id, seq, time_ms, user_upn, user_email, access, due_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (device_id) DO UPDATE SET
                 event_id = excluded.event_id, seq = excluded.seq, time_ms = excluded.time_ms,
                 user_upn = excluded.user_upn, user_email = excluded.user_email,
                 access = excluded.access,
                 due_ms = CASE WHEN excluded.due_ms IS NULL THEN NULL
                               ELSE min(excluded.due_ms, coalesce(devices.due_ms, excluded.due_ms))
                          END
             WHERE (excluded.time_ms, excluded.seq) > (devices.time_ms, devices.seq)",
        )?
        .execute(params![
            device.device_id,
            event.id,
            seq,
            device.time_ms,
            device.upn,
            device.email,
            device.access.as_str(),
            event.due_ms.filter(|_| event.outcome == Outcome::Grace),
        ])?;
    Ok(changed > 0)
}

/// Schedules one revocation of a `grace` decision: the device's scheduled
/// task for it if there is one (its `due` kept when earlier), else a new one
/// due at the device's grace clock.
fn schedule(
    tx: &Transaction<'_>,
    event: &NewEvent<'_>,
    device: Option<&str>,
    due_ms: i64,
    provider: Provider,
    subject: &str,
) -> Result<TaskRef, JournalError> {
    let existing: Option<TaskId> = match device {
        Some(device) => tx
            .prepare_cached(
                "SELECT id FROM tasks WHERE device_id = ?1 AND provider = ?2 AND subject = ?3
                     AND state = 'scheduled'",
            )?
            .query_row(params![device, provider.as_str(), subject], |row| {
                row.get(0)
            })
            .optional()?,
        None => None,
    };
    let id = match existing {
        Some(id) => {
            tx.prepare_cached("UPDATE tasks SET due_ms = min(due_ms, ?2) WHERE id = ?1")?
                .execute(params![id, due_ms])?;
            id
        }
        None => new_task(
            tx,
            "scheduled",
            Some(due_ms),
            device,
            event.received_ms,
            provider,
            subject,
        )?,
    };
    attach(tx, id, event.id)?;
    Ok(TaskRef {
        id,
        provider,
        subject: subject.to_owned(),
    })
}

/// The device's grace clock after a `grace` decision due at `due_ms` (the
/// devices row, already moved, keeps the earliest).
fn grace_clock(
    tx: &Transaction<'_>,
    device: Option<&str>,
    due_ms: i64,
) -> Result<i64, JournalError> {
    let clock: Option<i64> = match device {
        Some(device) => tx
            .prepare_cached("SELECT due_ms FROM devices WHERE device_id = ?1")?
            .query_row([device], |row| row.get(0))
            .optional()?
            .flatten(),
        None => None,
    };
    Ok(clock.map_or(due_ms, |c| c.min(due_ms)))
}

/// Journals one SET to push: pending now, or for a `grace` scheduled at
/// `grace` (one per device and receiver: a later `grace` keeps the earlier
/// time and the first decision's SET).
fn insert_delivery(
    tx: &Transaction<'_>,
    event: &NewEvent<'_>,
    d: &NewDelivery<'_>,
    grace: Option<i64>,
) -> Result<(), JournalError> {
    let Some(due) = grace else {
        tx.prepare_cached(
            "INSERT INTO deliveries (receiver, event_id, jti, user, device_id, event_ms, reason,
                                     state, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8)
             ON CONFLICT (receiver, event_id) DO NOTHING",
        )?
        .execute(params![
            d.receiver,
            event.id,
            d.jti,
            d.user,
            d.device_id,
            d.event_ms,
            d.reason,
            event.received_ms
        ])?;
        return Ok(());
    };
    let updated = tx
        .prepare_cached(
            "UPDATE deliveries SET due_ms = min(due_ms, ?3), event_ms = min(event_ms, ?3)
             WHERE device_id = ?1 AND receiver = ?2 AND state = 'scheduled'",
        )?
        .execute(params![d.device_id, d.receiver, due])?;
    if updated == 0 {
        tx.prepare_cached(
            "INSERT INTO deliveries (receiver, event_id, jti, user, device_id, event_ms, reason,
                                     state, due_ms, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'scheduled', ?6, ?8, ?8)
             ON CONFLICT (receiver, event_id) DO NOTHING",
        )?
        .execute(params![
            d.receiver,
            event.id,
            d.jti,
            d.user,
            d.device_id,
            due,
            d.reason,
            event.received_ms
        ])?;
    }
    Ok(())
}

/// Cancels the device's scheduled SETs.
fn cancel_deliveries(
    tx: &Transaction<'_>,
    event: &NewEvent<'_>,
    device: &str,
) -> Result<(), JournalError> {
    tx.prepare_cached(
        "UPDATE deliveries SET state = 'cancelled', updated_ms = ?2
         WHERE device_id = ?1 AND state = 'scheduled'",
    )?
    .execute(params![device, event.received_ms])?;
    Ok(())
}

/// Cancels the device's scheduled tasks; returns their ids.
fn cancel(
    tx: &Transaction<'_>,
    event: &NewEvent<'_>,
    device: &str,
) -> Result<Vec<TaskId>, JournalError> {
    let ids = tx
        .prepare_cached(
            "UPDATE tasks SET state = 'cancelled', cancelled_by = ?2, updated_ms = ?3
             WHERE device_id = ?1 AND state = 'scheduled' RETURNING id",
        )?
        .query_map(params![device, event.id, event.received_ms], |row| {
            row.get(0)
        })?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

/// Makes the device's scheduled tasks pending now (a `revoke` does not wait).
fn make_due(tx: &Transaction<'_>, device: &str, now_ms: i64) -> Result<Vec<TaskRef>, JournalError> {
    let rows = tx
        .prepare_cached(
            "SELECT id, provider, subject FROM tasks
             WHERE device_id = ?1 AND state = 'scheduled' ORDER BY id",
        )?
        .query_map([device], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<Vec<(TaskId, String, String)>, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, provider, subject) in rows {
        let task = TaskRef {
            id,
            provider: stored_provider(provider)?,
            subject,
        };
        out.push(promote(tx, task, now_ms)?);
    }
    Ok(out)
}

fn new_task(
    tx: &Transaction<'_>,
    state: &str,
    due_ms: Option<i64>,
    device: Option<&str>,
    now_ms: i64,
    provider: Provider,
    subject: &str,
) -> Result<TaskId, JournalError> {
    let id = tx
        .prepare_cached(
            "INSERT INTO tasks (provider, subject, state, created_ms, updated_ms, due_ms, device_id)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6) RETURNING id",
        )?
        .query_row(
            params![provider.as_str(), subject, state, now_ms, due_ms, device],
            |row| row.get(0),
        )?;
    Ok(id)
}

fn attach(tx: &Transaction<'_>, task: TaskId, event: &str) -> Result<(), JournalError> {
    tx.prepare_cached("INSERT OR IGNORE INTO task_events (task_id, event_id) VALUES (?1, ?2)")?
        .execute(params![task, event])?;
    Ok(())
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
    match state.as_deref().map(str::parse).transpose()? {
        None => return Err(JournalError::UnknownTask(task)),
        Some(TaskState::Pending) => {}
        Some(state) => return Err(JournalError::NotPending { id: task, state }),
    }
    let message = attempt.message.map(|m| crate::clip(m, MAX_MESSAGE_BYTES));
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
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<Vec<(TaskId, String, String, u32)>, _>>()?;
    rows.into_iter()
        .map(|(id, provider, subject, attempts)| {
            Ok(Task {
                id,
                provider: stored_provider(provider)?,
                subject,
                attempts,
                events: task_events(tx, id)?,
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
            let provider: String = row.get(1)?;
            let task = FailedTask {
                id: row.get(0)?,
                provider: Provider::Office365,
                subject: row.get(2)?,
                http_status: row.get(3)?,
                error_code: row.get(4)?,
                provider_code: row.get(5)?,
                message: row.get(6)?,
                attempts: row.get(7)?,
                updated_ms: row.get(8)?,
                events: Vec::new(),
            };
            Ok((task, provider))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(task, provider)| {
            Ok(FailedTask {
                provider: stored_provider(provider)?,
                events: task_events(tx, task.id)?,
                ..task
            })
        })
        .collect()
}

fn read_failed_deliveries(tx: &Transaction<'_>) -> Result<Vec<FailedDelivery>, JournalError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, receiver, event_id, last_status, last_err, last_message, attempts
         FROM deliveries WHERE state = 'failed' ORDER BY id",
    )?;
    let failed = stmt
        .query_map([], |row| {
            Ok(FailedDelivery {
                id: row.get(0)?,
                receiver: row.get(1)?,
                event_id: row.get(2)?,
                http_status: row.get(3)?,
                err: row.get(4)?,
                message: row.get(5)?,
                attempts: row.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(failed)
}

fn read_scheduled(tx: &Transaction<'_>) -> Result<Vec<ScheduledTask>, JournalError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, provider, subject, device_id, due_ms FROM tasks
         WHERE state = 'scheduled' ORDER BY due_ms, id",
    )?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })?
        .collect::<Result<Vec<(TaskId, String, String, Option<String>, i64)>, _>>()?;
    rows.into_iter()
        .map(|(id, provider, subject, device_id, due_ms)| {
            Ok(ScheduledTask {
                id,
                provider: stored_provider(provider)?,
                subject,
                device_id,
                due_ms,
                events: task_events(tx, id)?,
            })
        })
        .collect()
}

/// A provider as stored: one of the names [`Provider::as_str`] writes.
fn stored_provider(name: String) -> Result<Provider, JournalError> {
    name.parse().map_err(|_| JournalError::Corrupt {
        what: "provider",
        value: name,
    })
}

#[cfg(test)]
mod tests {
    use policy_core::{Access, Outcome};

    use super::*;
    use crate::journal::AttemptResult;

    /// The names the last `CHECK (column IN (…))` of the schema allows
    /// (a later migration that rebuilds a table replaces the earlier one).
    fn check_list(column: &str) -> Vec<String> {
        let schema = MIGRATIONS.concat();
        let marker = format!("CHECK ({column} IN (");
        let start = schema.rfind(&marker).map(|i| i + marker.len());
        let list = start
            .and_then(|i| schema.get(i..))
            .and_then(|rest| rest.split_once("))"))
            .map(|(list, _)| list)
            .unwrap_or_else(|| panic!("no CHECK on {column}"));
        list.split(',')
            .map(|name| name.trim().trim_matches('\'').to_owned())
            .collect()
    }

    fn names<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<String> {
        all.iter().map(|v| as_str(*v).to_owned()).collect()
    }

    #[test]
    fn the_schema_checks_the_same_names_the_code_writes() {
        assert_eq!(check_list("outcome"), names(&Outcome::ALL, Outcome::as_str));
        assert_eq!(check_list("access"), names(&Access::ALL, Access::as_str));
        assert_eq!(
            check_list("state"),
            names(&TaskState::ALL, TaskState::as_str)
        );
        assert_eq!(
            check_list("result"),
            names(&AttemptResult::ALL, AttemptResult::as_str)
        );
    }

    #[test]
    fn stored_names_round_trip() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>().ok(), Some(state));
        }
        for result in AttemptResult::ALL {
            assert_eq!(result.as_str().parse::<AttemptResult>().ok(), Some(result));
        }
        for provider in Provider::ALL {
            assert_eq!(
                stored_provider(provider.as_str().to_owned()).ok(),
                Some(provider)
            );
        }
        assert!(matches!(
            "paused".parse::<TaskState>(),
            Err(JournalError::Corrupt {
                what: "task state",
                ..
            })
        ));
        assert!(stored_provider("okta".into()).is_err());
    }
}
