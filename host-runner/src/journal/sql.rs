//! The journal's logic, once, over a narrow SQL interface ([`Tx`]) that each
//! backend implements: SQLite (`sqlite.rs`) and PostgreSQL (`postgres.rs`).
//! Statements are written in the SQL both understand, with `$1`-style
//! parameters; a backend adapts what it must (SQLite reads `$1` as `?1`).
//! Every [`Backend`] is a [`Journal`].

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use policy_core::{Outcome, Provider};

use super::{
    Attempt, Claim, Delivery, DeliveryId, DeviceFacts, DeviceRecord, EventQuery, EventRecord,
    FailedDelivery, FailedTask, Journal, JournalError, MAX_MESSAGE_BYTES, NewDelivery, NewEvent,
    Recorded, Retried, ScheduledTask, Status, Task, TaskCounts, TaskId, TaskRecord, TaskRef,
    TaskState,
};

/// The schema step that keeps each event as it was sent, with its device
/// and user, for the admin console (search by user or device, what-if
/// replays). In the SQL both databases understand: SQLite's version 6,
/// PostgreSQL's version 3.
pub const EVENT_BODIES: &str = "
CREATE TABLE event_bodies (
    event_id   TEXT PRIMARY KEY NOT NULL REFERENCES events (id),
    device_id  TEXT,
    user_upn   TEXT,
    user_email TEXT,
    time_ms    BIGINT,
    body       TEXT NOT NULL
);
CREATE INDEX event_bodies_by_device ON event_bodies (device_id);
CREATE INDEX event_bodies_by_upn ON event_bodies (user_upn);
CREATE INDEX event_bodies_by_email ON event_bodies (user_email);
";

/// The type of a NULL: PostgreSQL binds NULLs by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
}

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V {
    Int(i64),
    Text(String),
    Null(Kind),
}

impl V {
    fn into_json(self) -> serde_json::Value {
        match self {
            V::Int(i) => i.into(),
            V::Text(t) => t.into(),
            V::Null(_) => serde_json::Value::Null,
        }
    }
}

impl From<i64> for V {
    fn from(v: i64) -> Self {
        V::Int(v)
    }
}

impl From<bool> for V {
    fn from(v: bool) -> Self {
        V::Int(i64::from(v))
    }
}

impl From<&str> for V {
    fn from(v: &str) -> Self {
        V::Text(v.to_owned())
    }
}

impl From<Option<&str>> for V {
    fn from(v: Option<&str>) -> Self {
        v.map_or(V::Null(Kind::Text), V::from)
    }
}

impl From<Option<i64>> for V {
    fn from(v: Option<i64>) -> Self {
        v.map_or(V::Null(Kind::Int), V::Int)
    }
}

impl From<Option<u16>> for V {
    fn from(v: Option<u16>) -> Self {
        V::from(v.map(i64::from))
    }
}

/// One row, its columns in `SELECT` order.
pub type Row = Vec<V>;

/// A transaction as the journal's logic uses it.
pub trait Tx {
    /// Runs a statement; the number of rows it changed.
    fn run(&mut self, sql: &str, args: &[V]) -> Result<u64, JournalError>;
    /// Runs a query; every row.
    fn rows(&mut self, sql: &str, args: &[V]) -> Result<Vec<Row>, JournalError>;
    /// Whether a statement costs no round trip (an embedded database): then
    /// a prepared one-row statement per row beats one statement over a
    /// `VALUES` list, which the database must materialize first. By
    /// default, `false`.
    fn in_process(&self) -> bool {
        false
    }
}

/// A database the journal can live in.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Runs `f` in a read transaction (one consistent view).
    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, JournalError>,
    ) -> Result<T, JournalError>;
    /// Runs `f` in a write transaction, committed when it returns `Ok`.
    /// Writers are serialized: one writer at a time, as in SQLite.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, JournalError>,
    ) -> Result<T, JournalError>;
    /// Runs `f` in a write transaction that need not wait for the other
    /// writers: `f` only changes rows by id with conditional `UPDATE`s (a
    /// claim, an attempt), whose row locks order them. Creates nothing and
    /// moves nothing into `pending`, so no invariant `write` keeps is at
    /// stake. By default, a `write`.
    fn update<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        self.write(f)
    }

    /// What [`Journal::record_attempts`] does for `attempts`, each on a
    /// different task, in one round trip: all of them or, when a task is
    /// not pending or anything fails, nothing. `false` when it did not
    /// answer that it did: the caller then takes the general path, which
    /// tells why (a reply lost after the server committed shows there as
    /// tasks no longer pending, as a lost `COMMIT` reply would). By
    /// default, always `false`.
    fn settle_at_once(&self, attempts: &[(TaskId, Attempt<'_>)]) -> bool {
        let _ = attempts;
        false
    }

    /// Claims `ids` (sorted, each once) for `owner` in one round trip,
    /// `true` when it claimed every one; `false` when it claimed fewer or failed (a claim it took
    /// stays: the general path claims it again, and tells why for the
    /// others). By default, always `false`.
    fn claim_at_once(&self, ids: &[TaskId], owner: &str, now_ms: i64, until_ms: i64) -> bool {
        let _ = (ids, owner, now_ms, until_ms);
        false
    }
}

/// Reading columns by position, each an error if it has another type.
trait Columns {
    fn int(&self, i: usize) -> Result<i64, JournalError>;
    fn int_or_null(&self, i: usize) -> Result<Option<i64>, JournalError>;
    fn text(&self, i: usize) -> Result<String, JournalError>;
    fn text_or_null(&self, i: usize) -> Result<Option<String>, JournalError>;
}

fn corrupt(i: usize, v: Option<&V>) -> JournalError {
    JournalError::Corrupt {
        what: "column",
        value: format!("{i}: {v:?}"),
    }
}

impl Columns for [V] {
    fn int(&self, i: usize) -> Result<i64, JournalError> {
        self.int_or_null(i)?.ok_or_else(|| corrupt(i, self.get(i)))
    }
    fn int_or_null(&self, i: usize) -> Result<Option<i64>, JournalError> {
        match self.get(i) {
            Some(V::Int(v)) => Ok(Some(*v)),
            Some(V::Null(_)) => Ok(None),
            other => Err(corrupt(i, other)),
        }
    }
    fn text(&self, i: usize) -> Result<String, JournalError> {
        self.text_or_null(i)?.ok_or_else(|| corrupt(i, self.get(i)))
    }
    fn text_or_null(&self, i: usize) -> Result<Option<String>, JournalError> {
        match self.get(i) {
            Some(V::Text(v)) => Ok(Some(v.clone())),
            Some(V::Null(_)) => Ok(None),
            other => Err(corrupt(i, other)),
        }
    }
}

/// The first row of a query, if any.
fn one(tx: &mut dyn Tx, sql: &str, args: &[V]) -> Result<Option<Row>, JournalError> {
    Ok(tx.rows(sql, args)?.into_iter().next())
}

fn u32_of(n: i64) -> Result<u32, JournalError> {
    u32::try_from(n).map_err(|_| JournalError::Corrupt {
        what: "count",
        value: n.to_string(),
    })
}

fn u16_of(n: Option<i64>) -> Result<Option<u16>, JournalError> {
    n.map(|n| {
        u16::try_from(n).map_err(|_| JournalError::Corrupt {
            what: "HTTP status",
            value: n.to_string(),
        })
    })
    .transpose()
}

/// A `count(*)`, which SQL returns as a signed integer.
fn count(n: i64) -> Result<u64, JournalError> {
    u64::try_from(n).map_err(|_| JournalError::Corrupt {
        what: "count",
        value: n.to_string(),
    })
}

/// A wire name as stored (an outcome, an access), parsed back.
fn stored<T: std::str::FromStr>(what: &'static str, name: String) -> Result<T, JournalError> {
    name.parse()
        .map_err(|_| JournalError::Corrupt { what, value: name })
}

/// A provider as stored: one of the names [`Provider::as_str`] writes.
pub(super) fn stored_provider(name: String) -> Result<Provider, JournalError> {
    stored("provider", name)
}

impl<B: Backend> Journal for B {
    fn record_events(&self, events: &[NewEvent<'_>]) -> Result<Vec<Recorded>, JournalError> {
        self.write(|tx| record_in(tx, events))
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, JournalError> {
        self.read(|tx| read_events(tx, query))
    }

    fn tasks(
        &self,
        state: TaskState,
        before: Option<TaskId>,
        limit: u32,
    ) -> Result<Vec<TaskRecord>, JournalError> {
        self.read(|tx| read_tasks(tx, state, before, limit))
    }

    fn retry_failed(&self, task: TaskId, now_ms: i64) -> Result<Retried, JournalError> {
        self.write(|tx| retry_in(tx, task, now_ms))
    }

    fn record_attempts(
        &self,
        attempts: &[(TaskId, Attempt<'_>)],
    ) -> Result<Vec<TaskState>, JournalError> {
        let states = attempts.iter().map(|(_, a)| a.result.state()).collect();
        let once = attempts.len() <= ATTEMPT_CHUNK
            && attempts
                .iter()
                .map(|(task, _)| task)
                .collect::<HashSet<_>>()
                .len()
                == attempts.len();
        if !(once && self.settle_at_once(attempts)) {
            self.update(|tx| {
                settle(tx, attempts)?;
                insert_attempt_rows(tx, attempts)
            })?;
        }
        Ok(states)
    }

    fn pending_tasks(&self) -> Result<Vec<Task>, JournalError> {
        self.read(read_pending)
    }

    fn status(&self) -> Result<Status, JournalError> {
        // One read transaction: the counts and lists agree with each other.
        self.read(|tx| {
            let mut status = Status {
                pending: read_pending(tx)?,
                failed: read_failed(tx)?,
                scheduled: read_scheduled(tx)?,
                tasks: counts_of(tx, "SELECT state, count(*) FROM tasks GROUP BY state")?,
                deliveries: counts_of(tx, "SELECT state, count(*) FROM deliveries GROUP BY state")?,
                failed_deliveries: read_failed_deliveries(tx)?,
                ..Status::default()
            };
            for row in tx.rows("SELECT dry_run, count(*) FROM events GROUP BY dry_run", &[])? {
                let n = count(row.int(1)?)?;
                if row.int(0)? != 0 {
                    status.dry_run_events = n;
                } else {
                    status.events = n;
                }
            }
            Ok(status)
        })
    }

    fn task_counts(&self) -> Result<TaskCounts, JournalError> {
        self.read(|tx| counts_of(tx, "SELECT state, count(*) FROM tasks GROUP BY state"))
    }

    fn task_state(&self, task: TaskId) -> Result<Option<TaskState>, JournalError> {
        self.read(|tx| state_of(tx, "SELECT state FROM tasks WHERE id = $1", task))
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>, JournalError> {
        self.devices_since(i64::MIN)
    }

    fn devices_since(&self, seq: i64) -> Result<Vec<DeviceRecord>, JournalError> {
        self.read(|tx| {
            tx.rows(
                "SELECT d.device_id, d.user_upn, d.user_email, d.time_ms, d.seq, d.event_id,
                        e.outcome, e.enforced, d.access, e.decision, d.due_ms
                 FROM devices d JOIN events e ON e.id = d.event_id
                 WHERE d.seq > $1 ORDER BY d.device_id",
                &[seq.into()],
            )?
            .into_iter()
            .map(|row| {
                Ok(DeviceRecord {
                    device_id: row.text(0)?,
                    upn: row.text_or_null(1)?,
                    email: row.text_or_null(2)?,
                    time_ms: row.int(3)?,
                    seq: row.int(4)?,
                    event_id: row.text(5)?,
                    outcome: stored("outcome", row.text(6)?)?,
                    enforced: row.int(7)? != 0,
                    access: stored("access", row.text(8)?)?,
                    decision: row.text(9)?,
                    due_ms: row.int_or_null(10)?,
                })
            })
            .collect()
        })
    }

    fn claim_tasks(
        &self,
        tasks: &[TaskId],
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<Claim>, JournalError> {
        let mut ids = tasks.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if self.claim_at_once(&ids, owner, now_ms, until_ms) {
            return Ok(vec![Claim::Claimed; tasks.len()]);
        }
        self.update(|tx| claim_tasks_in(tx, tasks, &ids, owner, now_ms, until_ms))
    }

    fn claim_delivery(
        &self,
        delivery: DeliveryId,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Claim, JournalError> {
        self.update(|tx| claim_in(tx, "deliveries", delivery, owner, now_ms, until_ms))
    }

    fn release(&self, task: TaskId, owner: &str) -> Result<(), JournalError> {
        self.update(|tx| {
            tx.run(
                "UPDATE tasks SET claimed_by = NULL, lease_until = NULL
                 WHERE id = $1 AND claimed_by = $2",
                &[task.into(), owner.into()],
            )?;
            Ok(())
        })
    }

    fn pending_deliveries(&self) -> Result<Vec<Delivery>, JournalError> {
        self.read(|tx| {
            tx.rows(
                "SELECT id, receiver, event_id, jti, user_name, device_id, event_ms, reason, attempts
                 FROM deliveries WHERE state = 'pending' ORDER BY id",
                &[],
            )?
            .into_iter()
            .map(|row| {
                Ok(Delivery {
                    id: row.int(0)?,
                    receiver: row.text(1)?,
                    event_id: row.text(2)?,
                    jti: row.text(3)?,
                    user: row.text(4)?,
                    device_id: row.text(5)?,
                    event_ms: row.int(6)?,
                    reason: row.text(7)?,
                    attempts: u32_of(row.int(8)?)?,
                })
            })
            .collect()
        })
    }

    fn record_delivery_attempts(
        &self,
        attempts: &[(DeliveryId, Attempt<'_>)],
    ) -> Result<Vec<TaskState>, JournalError> {
        self.update(|tx| {
            let mut states = Vec::with_capacity(attempts.len());
            for (id, attempt) in attempts {
                let new_state = attempt.result.state();
                let message = attempt.message.map(|m| crate::clip(m, MAX_MESSAGE_BYTES));
                // Conditional, so it needs no lock: a delivery no longer
                // pending is left alone and reported.
                let changed = tx.run(
                    "UPDATE deliveries SET state = $2, updated_ms = $3, attempts = attempts + 1,
                         last_status = $4, last_err = $5, last_message = $6
                     WHERE id = $1 AND state = 'pending'",
                    &[
                        V::Int(*id),
                        new_state.as_str().into(),
                        attempt.at_ms.into(),
                        attempt.http_status.into(),
                        attempt.provider_code.or(attempt.error_code).into(),
                        message.into(),
                    ],
                )?;
                if changed == 0 {
                    return Err(
                        match state_of(tx, "SELECT state FROM deliveries WHERE id = $1", *id)? {
                            None => JournalError::UnknownDelivery(*id),
                            Some(state) => JournalError::DeliveryNotPending { id: *id, state },
                        },
                    );
                }
                states.push(new_state);
            }
            Ok(states)
        })
    }

    fn streams(&self) -> Result<Vec<(String, String)>, JournalError> {
        self.read(|tx| {
            tx.rows("SELECT id, config FROM streams ORDER BY id", &[])?
                .into_iter()
                .map(|row| Ok((row.text(0)?, row.text(1)?)))
                .collect()
        })
    }

    fn put_stream(&self, id: &str, config: &str, now_ms: i64) -> Result<(), JournalError> {
        self.write(|tx| {
            tx.run(
                "INSERT INTO streams (id, config, updated_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET config = excluded.config,
                     updated_ms = excluded.updated_ms",
                &[id.into(), config.into(), now_ms.into()],
            )?;
            Ok(())
        })
    }

    fn delete_stream(&self, id: &str) -> Result<bool, JournalError> {
        self.write(|tx| Ok(tx.run("DELETE FROM streams WHERE id = $1", &[id.into()])? > 0))
    }

    fn next_due(&self) -> Result<Option<i64>, JournalError> {
        self.read(|tx| {
            let row = one(
                tx,
                "SELECT min(due) FROM (
                     SELECT min(due_ms) AS due FROM tasks WHERE state = 'scheduled'
                     UNION ALL
                     SELECT min(due_ms) AS due FROM deliveries WHERE state = 'scheduled') AS soonest",
                &[],
            )?;
            row.map_or(Ok(None), |row| row.int_or_null(0))
        })
    }

    fn promote_due(&self, now_ms: i64) -> Result<Vec<TaskRef>, JournalError> {
        self.write(|tx| {
            let due = task_refs(
                tx,
                "SELECT id, provider, subject FROM tasks
                 WHERE state = 'scheduled' AND due_ms <= $1 ORDER BY due_ms, id",
                &[now_ms.into()],
            )?;
            let mut pending = Vec::new();
            for task in due {
                let task = promote(tx, task, now_ms)?;
                if !pending.contains(&task) {
                    pending.push(task);
                }
            }
            tx.run(
                "UPDATE deliveries SET state = 'pending', updated_ms = $1
                 WHERE state = 'scheduled' AND due_ms <= $1",
                &[now_ms.into()],
            )?;
            Ok(pending)
        })
    }
}

/// Ids per claiming statement, at most. A statement has room for a power of
/// two of them (the unused places repeat an id), so a handful of statement
/// texts, each prepared once, serve every group size.
const CLAIM_CHUNK: usize = 64;

/// [`Journal::claim_tasks`] of `tasks` (`ids`: them sorted, each once): one
/// `UPDATE` per [`CLAIM_CHUNK`] ids, in id order; a task it did not claim is
/// looked up to tell why.
fn claim_tasks_in(
    tx: &mut dyn Tx,
    tasks: &[TaskId],
    ids: &[TaskId],
    owner: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<Vec<Claim>, JournalError> {
    let mut claimed = HashSet::new();
    for chunk in ids.chunks(CLAIM_CHUNK) {
        let width = chunk.len().next_power_of_two();
        let sql = text("claim tasks", width, |width| {
            format!(
                "UPDATE tasks SET claimed_by = $1, lease_until = $3
                 WHERE id IN ({}) AND {PENDING_BY_ID}
                   AND (claimed_by IS NULL OR claimed_by = $1 OR lease_until IS NULL
                        OR lease_until < $2)
                 RETURNING id",
                places(4, width)
            )
        });
        let mut args: Vec<V> = vec![owner.into(), now_ms.into(), until_ms.into()];
        let last = chunk.last().copied().unwrap_or_default();
        args.extend((0..width).map(|i| V::Int(chunk.get(i).copied().unwrap_or(last))));
        for row in tx.rows(&sql, &args)? {
            claimed.insert(row.int(0)?);
        }
    }
    tasks
        .iter()
        .map(|&task| {
            if claimed.contains(&task) {
                return Ok(Claim::Claimed);
            }
            unclaimed(tx, "tasks", task)
        })
        .collect()
}

/// "The task is pending", for statements that find their tasks by id.
/// Written so no index can serve it: PostgreSQL's planner, its statistics
/// taken when few tasks were pending, would otherwise read every pending
/// task through the index on `state` and filter them by id, which in a
/// burst of thousands cost milliseconds a statement.
const PENDING_BY_ID: &str = "(state = 'pending') IS TRUE";

/// Claims row `id` of `table` (`tasks` or `deliveries`) for `owner`.
fn claim_in(
    tx: &mut dyn Tx,
    table: &str,
    id: i64,
    owner: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<Claim, JournalError> {
    let claimed = tx.run(
        &format!(
            "UPDATE {table} SET claimed_by = $2, lease_until = $4
             WHERE id = $1 AND state = 'pending'
               AND (claimed_by IS NULL OR claimed_by = $2 OR lease_until IS NULL
                    OR lease_until < $3)"
        ),
        &[id.into(), owner.into(), now_ms.into(), until_ms.into()],
    )?;
    if claimed > 0 {
        return Ok(Claim::Claimed);
    }
    unclaimed(tx, table, id)
}

/// Why row `id` of `table` was not claimed: unknown, busy (pending under
/// another owner's lease), or settled.
fn unclaimed(tx: &mut dyn Tx, table: &str, id: i64) -> Result<Claim, JournalError> {
    let state = state_of(tx, &format!("SELECT state FROM {table} WHERE id = $1"), id)?;
    Ok(match state {
        None => Claim::Unknown,
        Some(TaskState::Pending) => Claim::Busy,
        Some(state) => Claim::Settled(state),
    })
}

/// A state read by `sql` (which selects one `state` by id).
fn state_of(tx: &mut dyn Tx, sql: &str, id: i64) -> Result<Option<TaskState>, JournalError> {
    one(tx, sql, &[id.into()])?
        .map(|row| row.text(0)?.parse())
        .transpose()
}

/// Rows of (id, provider, subject) as task references.
fn task_refs(tx: &mut dyn Tx, sql: &str, args: &[V]) -> Result<Vec<TaskRef>, JournalError> {
    tx.rows(sql, args)?
        .into_iter()
        .map(|row| {
            Ok(TaskRef {
                id: row.int(0)?,
                provider: stored_provider(row.text(1)?)?,
                subject: row.text(2)?,
            })
        })
        .collect()
}

/// Makes a scheduled task pending now. When a pending task for its
/// (provider, subject) exists, the scheduled one joins it: its events are
/// attached there and its row (never attempted) is removed.
fn promote(tx: &mut dyn Tx, task: TaskRef, now_ms: i64) -> Result<TaskRef, JournalError> {
    let Some(pending) = pending_task(tx, task.provider, &task.subject)? else {
        tx.run(
            "UPDATE tasks SET state = 'pending', updated_ms = $2 WHERE id = $1",
            &[task.id.into(), now_ms.into()],
        )?;
        return Ok(task);
    };
    join(tx, task.id, pending)?;
    Ok(TaskRef {
        id: pending,
        ..task
    })
}

/// Task `task` joins `pending` (same provider and subject): its events are
/// attached there and its row, with nothing else left on it, is removed.
fn join(tx: &mut dyn Tx, task: TaskId, pending: TaskId) -> Result<(), JournalError> {
    let events = task_events(tx, task)?;
    tx.run("DELETE FROM task_events WHERE task_id = $1", &[task.into()])?;
    tx.run("DELETE FROM tasks WHERE id = $1", &[task.into()])?;
    for event in events {
        attach(tx, pending, &event)?;
    }
    Ok(())
}

/// The pending task for (provider, subject), if there is one.
fn pending_task(
    tx: &mut dyn Tx,
    provider: Provider,
    subject: &str,
) -> Result<Option<TaskId>, JournalError> {
    one(
        tx,
        "SELECT id FROM tasks WHERE provider = $1 AND subject = $2 AND state = 'pending'",
        &[provider.as_str().into(), subject.into()],
    )?
    .map(|row| row.int(0))
    .transpose()
}

/// The pending task for each (provider, subject) an event revokes now,
/// made where there is none, with the event attached: one statement for the
/// tasks, the partial unique index deciding which are new, and one for the
/// links. `wants` holds (event, provider, subject), no triple twice; a
/// new task was made when the first event wanting it arrived. Returns each
/// want's event id and task, in order.
fn pending_for<'e>(
    tx: &mut dyn Tx,
    wants: &[(&NewEvent<'e>, Provider, &str)],
) -> Result<Vec<(&'e str, TaskRef)>, JournalError> {
    // Each (provider, subject) once, where it is first wanted.
    let mut pairs: Vec<(Provider, &str, i64)> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    for &(event, provider, subject) in wants {
        if let Entry::Vacant(place) = index.entry((provider.as_str(), subject)) {
            place.insert(pairs.len());
            pairs.push((provider, subject, event.received_ms));
        }
    }
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let args: Vec<V> = pairs
        .iter()
        .flat_map(|&(provider, subject, ms)| [provider.as_str().into(), subject.into(), ms.into()])
        .collect();
    let sql = text("pending tasks", pairs.len(), |n| {
        let values: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "(${}, ${}, 'pending', ${2}, ${2})",
                    3 * i + 1,
                    3 * i + 2,
                    3 * i + 3
                )
            })
            .collect();
        format!(
            "INSERT INTO tasks (provider, subject, state, created_ms, updated_ms)
                 VALUES {}
                 ON CONFLICT (provider, subject) WHERE state = 'pending'
                     DO UPDATE SET provider = excluded.provider
                 RETURNING provider, subject, id",
            values.join(", ")
        )
    });
    let mut ids: Vec<Option<TaskId>> = vec![None; pairs.len()];
    let rows = tx.rows(&sql, &args)?;
    let got = rows.len();
    for row in rows {
        let (provider, subject) = (row.text(0)?, row.text(1)?);
        if let Some(id) = index
            .get(&(provider.as_str(), subject.as_str()))
            .and_then(|&i| ids.get_mut(i))
        {
            *id = Some(row.int(2)?);
        }
    }
    let tasks: Vec<(&'e str, TaskRef)> = wants
        .iter()
        .map(|&(event, provider, subject)| {
            let id = index
                .get(&(provider.as_str(), subject))
                .and_then(|&i| ids.get(i).copied().flatten())
                .ok_or(JournalError::BatchMismatch {
                    sent: pairs.len(),
                    got,
                })?;
            Ok((
                event.id,
                TaskRef {
                    id,
                    provider,
                    subject: subject.to_owned(),
                },
            ))
        })
        .collect::<Result<_, JournalError>>()?;
    let args: Vec<V> = tasks
        .iter()
        .flat_map(|(event, task)| [V::Int(task.id), (*event).into()])
        .collect();
    let sql = text("attach tasks", tasks.len(), |n| {
        format!(
            "INSERT INTO task_events (task_id, event_id) VALUES {} ON CONFLICT DO NOTHING",
            insert_rows(n, 2)
        )
    });
    tx.run(&sql, &args)?;
    Ok(tasks)
}

/// Whether the device has scheduled tasks or SETs (what a later decision
/// may cancel or make due).
fn has_schedule(tx: &mut dyn Tx, device: &str) -> Result<bool, JournalError> {
    Ok(!scheduled_among(tx, &[device.into()])?.is_empty())
}

/// Counts by state from `sql`, which selects (state, count).
fn counts_of(tx: &mut dyn Tx, sql: &str) -> Result<TaskCounts, JournalError> {
    let mut counts = TaskCounts::default();
    for row in tx.rows(sql, &[])? {
        let n = count(row.int(1)?)?;
        match row.text(0)?.parse()? {
            TaskState::Scheduled => counts.scheduled = n,
            TaskState::Pending => counts.pending = n,
            TaskState::Done => counts.done = n,
            TaskState::Failed => counts.failed = n,
            TaskState::Cancelled => counts.cancelled = n,
        }
    }
    Ok(counts)
}

/// Inserts `n` events ([`event_row`]): a new id is inserted; a dry-run row
/// is replaced by a real run; any other existing row is left alone, which
/// makes the event a duplicate. Returns (id, seq) of each inserted.
fn insert_events_sql(n: usize) -> Arc<str> {
    text("insert events", n, |n| {
        format!(
            "INSERT INTO events (id, received_ms, outcome, enforced, dry_run, decision)
         VALUES {}
         ON CONFLICT (id) DO UPDATE SET
             received_ms = excluded.received_ms, outcome = excluded.outcome,
             enforced = excluded.enforced, dry_run = excluded.dry_run,
             decision = excluded.decision
         WHERE events.dry_run = 1 AND excluded.dry_run = 0
         RETURNING id, rowid",
            insert_rows(n, 6)
        )
    })
}

fn event_row(e: &NewEvent<'_>) -> [V; 6] {
    [
        e.id.into(),
        e.received_ms.into(),
        e.outcome.as_str().into(),
        e.enforced.into(),
        e.dry_run.into(),
        e.decision.into(),
    ]
}

fn insert_event(tx: &mut dyn Tx, event: &NewEvent<'_>) -> Result<Recorded, JournalError> {
    let seq = one(tx, &insert_events_sql(1), &event_row(event))?;
    let Some(seq) = seq else {
        return Ok(Recorded::Duplicate);
    };
    let seq = seq.int(1)?;
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
    let moves_schedule = match (event.outcome, device) {
        (Outcome::NoAction, Some(_)) => latest,
        (Outcome::Revoke, Some(_)) => latest && event.enforced,
        _ => false,
    };
    match device {
        Some(device) if moves_schedule && has_schedule(tx, device)? => {
            if event.outcome == Outcome::NoAction {
                cancelled = cancel(tx, event, device)?;
            } else {
                tasks = make_due(tx, device, event.received_ms)?;
            }
            // A revoke announces itself: the device's waiting SETs are not sent.
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
    let mut now: Vec<(&NewEvent<'_>, Provider, &str)> = Vec::new();
    for &(provider, subject) in revocations {
        match grace {
            Some(due) => {
                let task = schedule(tx, event, device, due, provider, subject)?;
                if !scheduled.contains(&task) {
                    scheduled.push(task);
                }
            }
            None if !now.iter().any(|&(_, p, s)| (p, s) == (provider, subject)) => {
                now.push((event, provider, subject));
            }
            None => {}
        }
    }
    for (_, task) in pending_for(tx, &now)? {
        if !tasks.contains(&task) {
            tasks.push(task);
        }
    }
    Ok(Recorded::New {
        seq,
        tasks,
        scheduled,
        cancelled,
    })
}

/// Events recorded by one set of statements, at most.
const RECORD_CHUNK: usize = 256;

/// Records `events` in order: runs of events that can be recorded together
/// ([`run_len`]) a set at a time, the rest one by one ([`record_one`]).
fn record_in(tx: &mut dyn Tx, events: &[NewEvent<'_>]) -> Result<Vec<Recorded>, JournalError> {
    let mut out = Vec::with_capacity(events.len());
    let mut rest = events;
    while let Some(first) = rest.first() {
        let n = run_len(rest);
        // One event alone takes the plain path: the test of the sets
        // compares them with it (`record_event`).
        if n < 2 {
            out.push(record_one(tx, first)?);
            rest = rest.get(1..).unwrap_or_default();
            continue;
        }
        let (run, tail) = rest.split_at(n);
        record_run(tx, run, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

/// How many of the first events make a run that can be recorded as a set:
/// none a `grace` (its schedule depends on the device's clock), no id or
/// device twice. Within such a run one event's statements cannot change
/// what another's find, except the pending task they share, which the
/// set's one upsert finds for both: recording it as a set gives what
/// recording its events one by one gives.
fn run_len(events: &[NewEvent<'_>]) -> usize {
    let mut ids = HashSet::new();
    let mut devices = HashSet::new();
    events
        .iter()
        .take(RECORD_CHUNK)
        .take_while(|e| {
            e.outcome != Outcome::Grace
                && ids.insert(e.id)
                && e.device
                    .as_ref()
                    .is_none_or(|d| devices.insert(d.device_id))
        })
        .count()
}

/// One event, with its body if it is new.
fn record_one(tx: &mut dyn Tx, event: &NewEvent<'_>) -> Result<Recorded, JournalError> {
    let recorded = insert_event(tx, event)?;
    if matches!(recorded, Recorded::New { .. }) {
        keep_body(tx, event)?;
    }
    Ok(recorded)
}

/// A run ([`run_len`]) in order. An event whose device has a schedule (to
/// cancel or make due) is recorded alone; the events between are sets.
/// Those alone move only their own device's schedule, so the devices read
/// here stay right for the rest of the run.
fn record_run(
    tx: &mut dyn Tx,
    run: &[NewEvent<'_>],
    out: &mut Vec<Recorded>,
) -> Result<(), JournalError> {
    let scheduled = scheduled_devices(tx, run)?;
    let mut rest = run;
    while !rest.is_empty() {
        let alone = rest.iter().position(|e| {
            e.device
                .as_ref()
                .is_some_and(|d| scheduled.contains(d.device_id))
        });
        let (set, tail) = rest.split_at(alone.unwrap_or(rest.len()));
        if !set.is_empty() {
            out.extend(record_set(tx, set)?);
        }
        let Some((event, tail)) = tail.split_first() else {
            break;
        };
        out.push(record_one(tx, event)?);
        rest = tail;
    }
    Ok(())
}

/// Which of the run's devices have scheduled tasks or SETs.
fn scheduled_devices(
    tx: &mut dyn Tx,
    run: &[NewEvent<'_>],
) -> Result<HashSet<String>, JournalError> {
    let devices: Vec<V> = run
        .iter()
        .filter(|e| !e.dry_run)
        .filter_map(|e| e.device.as_ref().map(|d| d.device_id.into()))
        .collect();
    scheduled_among(tx, &devices)
}

/// Which of `devices` have scheduled tasks or SETs.
fn scheduled_among(tx: &mut dyn Tx, devices: &[V]) -> Result<HashSet<String>, JournalError> {
    if devices.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = text("scheduled among", devices.len(), |n| {
        let list = places(1, n);
        format!(
            "SELECT device_id FROM tasks WHERE state = 'scheduled' AND device_id IN ({list})
             UNION SELECT device_id FROM deliveries
                   WHERE state = 'scheduled' AND device_id IN ({list})"
        )
    });
    tx.rows(&sql, devices)?
        .iter()
        .map(|row| row.text(0))
        .collect()
}

/// The text of the statement `kind` for `n` rows, built by `build` once per
/// process and kept: a batched statement's text differs only by how many
/// rows it takes, and building it (up to thousands of placeholders) cost
/// more than some statements take to run. `n` is bounded by the batches'
/// sizes, so few texts are kept.
fn text(kind: &'static str, n: usize, build: impl FnOnce(usize) -> String) -> Arc<str> {
    type Texts = HashMap<(&'static str, usize), Arc<str>>;
    static TEXTS: OnceLock<Mutex<Texts>> = OnceLock::new();
    let texts = TEXTS.get_or_init(Mutex::default);
    let mut texts = texts.lock().unwrap_or_else(PoisonError::into_inner);
    texts
        .entry((kind, n))
        .or_insert_with(|| build(n).into())
        .clone()
}

/// `$first`, `$first+1`, … `n` of them, comma-separated.
fn places(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `n` rows of `width` numbered parameters (from `$1`) for an `INSERT`'s
/// `VALUES` (whose columns give the parameters their types).
fn insert_rows(n: usize, width: usize) -> String {
    (0..n)
        .map(|row| format!("({})", places(row * width + 1, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records events that share no id and no device, none a `grace`, none of
/// whose devices has a schedule, with one statement per table for the lot:
/// what [`insert_event`] and [`keep_body`] do for each, in the same order.
fn record_set(tx: &mut dyn Tx, set: &[NewEvent<'_>]) -> Result<Vec<Recorded>, JournalError> {
    // The events: new ids inserted, a dry run replaced by a real one.
    let args: Vec<V> = set.iter().flat_map(event_row).collect();
    let seqs = tx.rows(&insert_events_sql(set.len()), &args)?;
    let mut seq_of = std::collections::HashMap::new();
    for row in &seqs {
        seq_of.insert(row.text(0)?, row.int(1)?);
    }
    let new: Vec<(&NewEvent<'_>, i64)> = set
        .iter()
        .filter_map(|e| seq_of.get(e.id).map(|&seq| (e, seq)))
        .collect();
    keep_bodies(tx, &new)?;
    let real: Vec<(&NewEvent<'_>, i64)> = new.iter().copied().filter(|(e, _)| !e.dry_run).collect();
    upsert_devices(tx, &real)?;
    // The deliveries and revocations of enforced decisions (none is a late
    // `grace`: none is a `grace`).
    let enforced: Vec<&NewEvent<'_>> = real
        .iter()
        .map(|&(e, _)| e)
        .filter(|e| e.enforced)
        .collect();
    insert_deliveries(tx, &enforced)?;
    let mut wants: Vec<(&NewEvent<'_>, Provider, &str)> = Vec::new();
    for &e in &enforced {
        for &(provider, subject) in e.revocations {
            if !wants
                .iter()
                .any(|&(w, p, s)| w.id == e.id && (p, s) == (provider, subject))
            {
                wants.push((e, provider, subject));
            }
        }
    }
    let tasks = pending_for(tx, &wants)?;
    Ok(set
        .iter()
        .map(|e| match seq_of.get(e.id) {
            None => Recorded::Duplicate,
            Some(&seq) => Recorded::New {
                seq,
                tasks: tasks
                    .iter()
                    .filter(|(id, _)| *id == e.id)
                    .map(|(_, task)| task.clone())
                    .collect(),
                scheduled: Vec::new(),
                cancelled: Vec::new(),
            },
        })
        .collect())
}

/// [`keep_body`] for each new event of a set.
fn keep_bodies(tx: &mut dyn Tx, new: &[(&NewEvent<'_>, i64)]) -> Result<(), JournalError> {
    let args: Vec<V> = new
        .iter()
        .filter_map(|&(e, _)| body_row(e))
        .flatten()
        .collect();
    run_rows(tx, keep_bodies_sql, 6, &args)
}

/// Rows per multi-row statement, at most: far below either database's
/// limit on parameters (SQLite's is 32,766) whatever a set holds (its SETs
/// grow with the receivers).
const MAX_ROWS: usize = 256;

/// Runs `sql(n)` for the rows of `width` values in `args`, up to
/// [`MAX_ROWS`] a statement; nothing when there are none.
fn run_rows(
    tx: &mut dyn Tx,
    sql: fn(usize) -> Arc<str>,
    width: usize,
    args: &[V],
) -> Result<(), JournalError> {
    for rows in args.chunks(width * MAX_ROWS) {
        tx.run(&sql(rows.len() / width), rows)?;
    }
    Ok(())
}

/// [`upsert_device`] for each event of a set that has a device. Its
/// devices have no schedule, so whether the verdict moved changes nothing.
fn upsert_devices(tx: &mut dyn Tx, real: &[(&NewEvent<'_>, i64)]) -> Result<(), JournalError> {
    let args: Vec<V> = real
        .iter()
        .filter_map(|&(e, seq)| Some(device_row(e, e.device.as_ref()?, seq)))
        .flatten()
        .collect();
    run_rows(tx, upsert_devices_sql, 8, &args)
}

/// Moves the device's verdict to this event unless it has a newer one (a
/// late arrival with an older time never overturns it); returns whether it
/// did. A `grace` that follows a `grace` keeps the earlier `due`.
fn upsert_device(
    tx: &mut dyn Tx,
    event: &NewEvent<'_>,
    device: &DeviceFacts<'_>,
    seq: i64,
) -> Result<bool, JournalError> {
    let changed = tx.run(&upsert_devices_sql(1), &device_row(event, device, seq))?;
    Ok(changed > 0)
}

/// Upserts `n` devices' verdicts ([`device_row`]), each only over an older one.
fn upsert_devices_sql(n: usize) -> Arc<str> {
    text("upsert devices", n, |n| {
        format!(
            "INSERT INTO devices
             (device_id, event_id, seq, time_ms, user_upn, user_email, access, due_ms)
         VALUES {}
         ON CONFLICT (device_id) DO UPDATE SET
             event_id = excluded.event_id, seq = excluded.seq, time_ms = excluded.time_ms,
             user_upn = excluded.user_upn, user_email = excluded.user_email,
             access = excluded.access,
             due_ms = CASE WHEN excluded.due_ms IS NULL OR devices.due_ms IS NULL
                               THEN excluded.due_ms
                           WHEN devices.due_ms < excluded.due_ms THEN devices.due_ms
                           ELSE excluded.due_ms
                      END
         WHERE (excluded.time_ms, excluded.seq) > (devices.time_ms, devices.seq)",
            insert_rows(n, 8)
        )
    })
}

fn device_row(event: &NewEvent<'_>, device: &DeviceFacts<'_>, seq: i64) -> [V; 8] {
    [
        device.device_id.into(),
        event.id.into(),
        seq.into(),
        device.time_ms.into(),
        device.upn.into(),
        device.email.into(),
        device.access.as_str().into(),
        event
            .due_ms
            .filter(|_| event.outcome == Outcome::Grace)
            .into(),
    ]
}

/// Schedules one revocation of a `grace` decision: the device's scheduled
/// task for it if there is one (its `due` kept when earlier), else a new one
/// due at the device's grace clock.
fn schedule(
    tx: &mut dyn Tx,
    event: &NewEvent<'_>,
    device: Option<&str>,
    due_ms: i64,
    provider: Provider,
    subject: &str,
) -> Result<TaskRef, JournalError> {
    let existing = match device {
        Some(device) => one(
            tx,
            "SELECT id FROM tasks WHERE device_id = $1 AND provider = $2 AND subject = $3
                 AND state = 'scheduled'",
            &[device.into(), provider.as_str().into(), subject.into()],
        )?
        .map(|row| row.int(0))
        .transpose()?,
        None => None,
    };
    let id = match existing {
        Some(id) => {
            tx.run(
                "UPDATE tasks SET due_ms = $2 WHERE id = $1 AND due_ms > $2",
                &[id.into(), due_ms.into()],
            )?;
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
fn grace_clock(tx: &mut dyn Tx, device: Option<&str>, due_ms: i64) -> Result<i64, JournalError> {
    let clock = match device {
        Some(device) => one(
            tx,
            "SELECT due_ms FROM devices WHERE device_id = $1",
            &[device.into()],
        )?
        .map(|row| row.int_or_null(0))
        .transpose()?
        .flatten(),
        None => None,
    };
    Ok(clock.map_or(due_ms, |c| c.min(due_ms)))
}

/// Journals one SET to push: pending now, or for a `grace` scheduled at
/// `grace` (one per device and receiver: a later `grace` keeps the earlier
/// time and the first decision's SET).
fn insert_delivery(
    tx: &mut dyn Tx,
    event: &NewEvent<'_>,
    d: &NewDelivery<'_>,
    grace: Option<i64>,
) -> Result<(), JournalError> {
    let Some(due) = grace else {
        tx.run(&pending_deliveries_sql(1), &delivery_row(event, d))?;
        return Ok(());
    };
    let updated = tx.run(
        "UPDATE deliveries SET due_ms = $3, event_ms = $3
         WHERE device_id = $1 AND receiver = $2 AND state = 'scheduled' AND due_ms > $3",
        &[d.device_id.into(), d.receiver.into(), due.into()],
    )?;
    let waiting = one(
        tx,
        "SELECT id FROM deliveries WHERE device_id = $1 AND receiver = $2 AND state = 'scheduled'",
        &[d.device_id.into(), d.receiver.into()],
    )?;
    if updated == 0 && waiting.is_none() {
        tx.run(
            "INSERT INTO deliveries (receiver, event_id, jti, user_name, device_id, event_ms,
                                     reason, state, due_ms, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'scheduled', $6, $8, $8)
             ON CONFLICT (receiver, event_id) DO NOTHING",
            &[
                d.receiver.into(),
                event.id.into(),
                d.jti.into(),
                d.user.into(),
                d.device_id.into(),
                due.into(),
                d.reason.into(),
                event.received_ms.into(),
            ],
        )?;
    }
    Ok(())
}

/// Inserts `n` SETs to push now ([`delivery_row`]), each once per receiver and event.
fn pending_deliveries_sql(n: usize) -> Arc<str> {
    text("pending deliveries", n, |n| {
        format!(
            "INSERT INTO deliveries (receiver, event_id, jti, user_name, device_id, event_ms,
                                 reason, state, created_ms, updated_ms)
         VALUES {}
         ON CONFLICT (receiver, event_id) DO NOTHING",
            (0..n)
                .map(|i| {
                    let p = |k: usize| format!("${}", 8 * i + k);
                    format!(
                        "({}, {}, {}, {}, {}, {}, {}, 'pending', {}, {})",
                        p(1),
                        p(2),
                        p(3),
                        p(4),
                        p(5),
                        p(6),
                        p(7),
                        p(8),
                        p(8)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn delivery_row(event: &NewEvent<'_>, d: &NewDelivery<'_>) -> [V; 8] {
    [
        d.receiver.into(),
        event.id.into(),
        d.jti.into(),
        d.user.into(),
        d.device_id.into(),
        d.event_ms.into(),
        d.reason.into(),
        event.received_ms.into(),
    ]
}

/// [`insert_delivery`] for the SETs of a set's enforced events (none a `grace`).
fn insert_deliveries(tx: &mut dyn Tx, enforced: &[&NewEvent<'_>]) -> Result<(), JournalError> {
    let args: Vec<V> = enforced
        .iter()
        .flat_map(|e| e.deliveries.iter().flat_map(|d| delivery_row(e, d)))
        .collect();
    run_rows(tx, pending_deliveries_sql, 8, &args)
}

/// Cancels the device's scheduled SETs.
fn cancel_deliveries(
    tx: &mut dyn Tx,
    event: &NewEvent<'_>,
    device: &str,
) -> Result<(), JournalError> {
    tx.run(
        "UPDATE deliveries SET state = 'cancelled', updated_ms = $2
         WHERE device_id = $1 AND state = 'scheduled'",
        &[device.into(), event.received_ms.into()],
    )?;
    Ok(())
}

/// Cancels the device's scheduled tasks; returns their ids.
fn cancel(
    tx: &mut dyn Tx,
    event: &NewEvent<'_>,
    device: &str,
) -> Result<Vec<TaskId>, JournalError> {
    tx.rows(
        "UPDATE tasks SET state = 'cancelled', cancelled_by = $2, updated_ms = $3
         WHERE device_id = $1 AND state = 'scheduled' RETURNING id",
        &[device.into(), event.id.into(), event.received_ms.into()],
    )?
    .into_iter()
    .map(|row| row.int(0))
    .collect()
}

/// Makes the device's scheduled tasks pending now (a `revoke` does not wait).
fn make_due(tx: &mut dyn Tx, device: &str, now_ms: i64) -> Result<Vec<TaskRef>, JournalError> {
    let scheduled = task_refs(
        tx,
        "SELECT id, provider, subject FROM tasks
         WHERE device_id = $1 AND state = 'scheduled' ORDER BY id",
        &[device.into()],
    )?;
    scheduled
        .into_iter()
        .map(|task| promote(tx, task, now_ms))
        .collect()
}

fn new_task(
    tx: &mut dyn Tx,
    state: &str,
    due_ms: Option<i64>,
    device: Option<&str>,
    now_ms: i64,
    provider: Provider,
    subject: &str,
) -> Result<TaskId, JournalError> {
    let row = one(
        tx,
        "INSERT INTO tasks (provider, subject, state, created_ms, updated_ms, due_ms, device_id)
         VALUES ($1, $2, $3, $4, $4, $5, $6) RETURNING id",
        &[
            provider.as_str().into(),
            subject.into(),
            state.into(),
            now_ms.into(),
            due_ms.into(),
            device.into(),
        ],
    )?;
    row.ok_or(JournalError::BatchMismatch { sent: 1, got: 0 })?
        .int(0)
}

fn attach(tx: &mut dyn Tx, task: TaskId, event: &str) -> Result<(), JournalError> {
    tx.run(
        "INSERT INTO task_events (task_id, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[task.into(), event.into()],
    )?;
    Ok(())
}

/// Moves each attempt's task, pending, to its state after the attempt:
/// the attempts in rounds (a task at most once per round, its attempts in
/// the order given), each round in `UPDATE … FROM (VALUES …)`s of up to
/// [`ATTEMPT_CHUNK`] tasks in id order. Conditional, so it needs no lock:
/// a task no longer pending is left alone and reported, and nothing is.
fn settle(tx: &mut dyn Tx, attempts: &[(TaskId, Attempt<'_>)]) -> Result<(), JournalError> {
    if tx.in_process() {
        // In the order given, one by one: what the rounds below give.
        for (task, attempt) in attempts {
            let row = attempt_row(*task, attempt, attempt.result.state().as_str());
            let sql = "UPDATE tasks SET state = $2, updated_ms = $3, attempts = attempts + 1,
                     last_status = $4, last_error_code = $5,
                     last_provider_code = $6, last_message = $7
                 WHERE id = $1 AND state = 'pending'";
            if tx.run(sql, &row)? == 0 {
                return Err(not_settled(tx, *task)?);
            }
        }
        return Ok(());
    }
    let mut rest: Vec<&(TaskId, Attempt<'_>)> = attempts.iter().collect();
    while !rest.is_empty() {
        let mut seen = HashSet::new();
        let mut round = Vec::new();
        let mut later = Vec::new();
        for item in rest {
            if seen.insert(item.0) {
                round.push(item);
            } else {
                later.push(item);
            }
        }
        round.sort_by_key(|item| item.0);
        for chunk in round.chunks(ATTEMPT_CHUNK) {
            settle_chunk(tx, chunk)?;
        }
        rest = later;
    }
    Ok(())
}

fn settle_chunk(tx: &mut dyn Tx, chunk: &[&(TaskId, Attempt<'_>)]) -> Result<(), JournalError> {
    // A power of two of rows; the unused ones repeat the last (an update
    // applies one matching row per task, and they are alike).
    let width = chunk.len().next_power_of_two();
    let sql = text("settle tasks", width, |width| {
        format!(
            "UPDATE tasks SET state = v.column2, updated_ms = v.column3, attempts = attempts + 1,
                 last_status = v.column4, last_error_code = v.column5,
                 last_provider_code = v.column6, last_message = v.column7
             FROM (VALUES {}) AS v
             WHERE tasks.id = v.column1 AND tasks.id IN ({}) AND {PENDING_BY_ID}
             RETURNING tasks.id",
            value_rows(width, &ATTEMPT_TYPES),
            // The ids again, as a list the primary key serves (the join alone
            // may be planned as a scan of every task).
            (0..width)
                .map(|row| format!("CAST(${} AS BIGINT)", row * ATTEMPT_TYPES.len() + 1))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    let args: Vec<V> = (0..width)
        .filter_map(|i| chunk.get(i).or(chunk.last()))
        .flat_map(|(task, attempt)| attempt_row(*task, attempt, attempt.result.state().as_str()))
        .collect();
    let settled: HashSet<i64> = tx
        .rows(&sql, &args)?
        .iter()
        .map(|row| row.int(0))
        .collect::<Result<_, _>>()?;
    for (task, _) in chunk {
        if !settled.contains(task) {
            return Err(not_settled(tx, *task)?);
        }
    }
    Ok(())
}

/// Why an attempt did not settle `task`: it is unknown, or not pending.
fn not_settled(tx: &mut dyn Tx, task: TaskId) -> Result<JournalError, JournalError> {
    Ok(
        match state_of(tx, "SELECT state FROM tasks WHERE id = $1", task)? {
            None => JournalError::UnknownTask(task),
            Some(state) => JournalError::NotPending { id: task, state },
        },
    )
}

/// The SQL types of an attempt's row ([`attempt_row`]).
const ATTEMPT_TYPES: [&str; 7] = ["BIGINT", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT"];

/// The `attempts` columns of an attempt's row ([`attempt_row`]), in order.
const ATTEMPT_COLUMNS: [&str; 7] = [
    "task_id",
    "result",
    "at_ms",
    "http_status",
    "error_code",
    "provider_code",
    "message",
];

/// An attempt as a row: its task, `what` (the task's new state or the
/// attempt's result), its time, HTTP status, codes and message.
fn attempt_row(task: TaskId, attempt: &Attempt<'_>, what: &str) -> [V; 7] {
    [
        V::Int(task),
        what.into(),
        attempt.at_ms.into(),
        attempt.http_status.into(),
        attempt.error_code.into(),
        attempt.provider_code.into(),
        attempt
            .message
            .map(|m| crate::clip(m, MAX_MESSAGE_BYTES))
            .into(),
    ]
}

/// An attempt as a JSON object: its row ([`attempt_row`]) by column, and
/// the task's state after it.
pub(super) fn attempt_json(task: TaskId, attempt: &Attempt<'_>) -> serde_json::Value {
    let mut object: serde_json::Map<String, serde_json::Value> = ATTEMPT_COLUMNS
        .into_iter()
        .map(str::to_owned)
        .zip(attempt_row(task, attempt, attempt.result.as_str()).map(V::into_json))
        .collect();
    object.insert("state".into(), attempt.result.state().as_str().into());
    object.into()
}

/// `rows` rows of numbered parameters (from `$1`) for a `VALUES` list, each
/// cast to its column's type (a parameter's type is not inferred there).
fn value_rows(rows: usize, types: &[&str]) -> String {
    let width = types.len();
    (0..rows)
        .map(|row| {
            let places: Vec<String> = types
                .iter()
                .enumerate()
                .map(|(col, ty)| format!("CAST(${} AS {ty})", row * width + col + 1))
                .collect();
            format!("({})", places.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Attempts per `INSERT`, at most. Each statement takes a power of two of
/// them, so a handful of statement texts serve every group size.
const ATTEMPT_CHUNK: usize = 64;

/// The attempts' rows, in the order given, in a few multi-row `INSERT`s.
fn insert_attempt_rows(
    tx: &mut dyn Tx,
    attempts: &[(TaskId, Attempt<'_>)],
) -> Result<(), JournalError> {
    let mut rest = attempts;
    while !rest.is_empty() {
        let n = (1_usize << rest.len().ilog2()).min(ATTEMPT_CHUNK);
        let (chunk, tail) = rest.split_at(n);
        let sql = text("insert attempts", n, |n| {
            format!(
                "INSERT INTO attempts ({}) VALUES {}",
                ATTEMPT_COLUMNS.join(", "),
                value_rows(n, &ATTEMPT_TYPES)
            )
        });
        let args: Vec<V> = chunk
            .iter()
            .flat_map(|(task, attempt)| attempt_row(*task, attempt, attempt.result.as_str()))
            .collect();
        tx.run(&sql, &args)?;
        rest = tail;
    }
    Ok(())
}

fn task_events(tx: &mut dyn Tx, task: TaskId) -> Result<Vec<String>, JournalError> {
    tx.rows(
        "SELECT event_id FROM task_events WHERE task_id = $1 ORDER BY rowid",
        &[task.into()],
    )?
    .into_iter()
    .map(|row| row.text(0))
    .collect()
}

fn read_pending(tx: &mut dyn Tx) -> Result<Vec<Task>, JournalError> {
    let rows = tx.rows(
        "SELECT id, provider, subject, attempts FROM tasks WHERE state = 'pending' ORDER BY id",
        &[],
    )?;
    rows.into_iter()
        .map(|row| {
            let id = row.int(0)?;
            Ok(Task {
                id,
                provider: stored_provider(row.text(1)?)?,
                subject: row.text(2)?,
                attempts: u32_of(row.int(3)?)?,
                events: task_events(tx, id)?,
            })
        })
        .collect()
}

fn read_failed(tx: &mut dyn Tx) -> Result<Vec<FailedTask>, JournalError> {
    let rows = tx.rows(
        "SELECT id, provider, subject, last_status, last_error_code, last_provider_code,
                last_message, attempts, updated_ms
         FROM tasks WHERE state = 'failed' ORDER BY id",
        &[],
    )?;
    rows.into_iter()
        .map(|row| {
            let id = row.int(0)?;
            Ok(FailedTask {
                id,
                provider: stored_provider(row.text(1)?)?,
                subject: row.text(2)?,
                http_status: u16_of(row.int_or_null(3)?)?,
                error_code: row.text_or_null(4)?,
                provider_code: row.text_or_null(5)?,
                message: row.text_or_null(6)?,
                attempts: u32_of(row.int(7)?)?,
                updated_ms: row.int(8)?,
                events: task_events(tx, id)?,
            })
        })
        .collect()
}

fn read_failed_deliveries(tx: &mut dyn Tx) -> Result<Vec<FailedDelivery>, JournalError> {
    tx.rows(
        "SELECT id, receiver, event_id, last_status, last_err, last_message, attempts
         FROM deliveries WHERE state = 'failed' ORDER BY id",
        &[],
    )?
    .into_iter()
    .map(|row| {
        Ok(FailedDelivery {
            id: row.int(0)?,
            receiver: row.text(1)?,
            event_id: row.text(2)?,
            http_status: u16_of(row.int_or_null(3)?)?,
            err: row.text_or_null(4)?,
            message: row.text_or_null(5)?,
            attempts: u32_of(row.int(6)?)?,
        })
    })
    .collect()
}

fn read_scheduled(tx: &mut dyn Tx) -> Result<Vec<ScheduledTask>, JournalError> {
    let rows = tx.rows(
        "SELECT id, provider, subject, device_id, due_ms FROM tasks
         WHERE state = 'scheduled' ORDER BY due_ms, id",
        &[],
    )?;
    rows.into_iter()
        .map(|row| {
            let id = row.int(0)?;
            Ok(ScheduledTask {
                id,
                provider: stored_provider(row.text(1)?)?,
                subject: row.text(2)?,
                device_id: row.text_or_null(3)?,
                due_ms: row.int(4)?,
                events: task_events(tx, id)?,
            })
        })
        .collect()
}

/// Keeps an event as it was sent, with its device and user.
fn keep_body(tx: &mut dyn Tx, event: &NewEvent<'_>) -> Result<(), JournalError> {
    match body_row(event) {
        Some(row) => tx.run(&keep_bodies_sql(1), &row).map(drop),
        None => Ok(()),
    }
}

fn keep_bodies_sql(n: usize) -> Arc<str> {
    text("keep bodies", n, |n| {
        format!(
            "INSERT INTO event_bodies (event_id, device_id, user_upn, user_email, time_ms, body)
         VALUES {}
         ON CONFLICT (event_id) DO UPDATE SET
             device_id = excluded.device_id, user_upn = excluded.user_upn,
             user_email = excluded.user_email, time_ms = excluded.time_ms,
             body = excluded.body",
            insert_rows(n, 6)
        )
    })
}

/// The event's body with its device and user, if it has one.
fn body_row(event: &NewEvent<'_>) -> Option<[V; 6]> {
    let body = event.body?;
    let device = event.device.as_ref();
    Some([
        event.id.into(),
        device.map(|d| d.device_id).into(),
        device.and_then(|d| d.upn).into(),
        device.and_then(|d| d.email).into(),
        device.map(|d| d.time_ms).into(),
        body.into(),
    ])
}

fn read_events(tx: &mut dyn Tx, query: &EventQuery) -> Result<Vec<EventRecord>, JournalError> {
    let before = query.before.unwrap_or(i64::MAX);
    let limit = i64::from(query.limit);
    let user = query.user.as_deref().map(str::to_lowercase);
    let rows = tx.rows(
        "SELECT e.rowid, e.id, e.received_ms, e.outcome, e.enforced, e.decision,
                    b.device_id, b.user_upn, b.user_email, b.time_ms, b.body
             FROM events e LEFT JOIN event_bodies b ON b.event_id = e.id
             WHERE e.dry_run = 0 AND e.rowid < $1
               AND (CAST($2 AS TEXT) IS NULL OR b.device_id = $2)
               AND (CAST($3 AS TEXT) IS NULL OR b.user_upn = $3 OR b.user_email = $3)
             ORDER BY e.rowid DESC LIMIT $4",
        &[
            before.into(),
            query.device.as_deref().into(),
            user.as_deref().into(),
            limit.into(),
        ],
    )?;
    rows.into_iter()
        .map(|row| {
            Ok(EventRecord {
                seq: row.int(0)?,
                id: row.text(1)?,
                received_ms: row.int(2)?,
                outcome: stored("outcome", row.text(3)?)?,
                enforced: row.int(4)? != 0,
                decision: row.text(5)?,
                device_id: row.text_or_null(6)?,
                upn: row.text_or_null(7)?,
                email: row.text_or_null(8)?,
                time_ms: row.int_or_null(9)?,
                body: row.text_or_null(10)?,
            })
        })
        .collect()
}

fn read_tasks(
    tx: &mut dyn Tx,
    state: TaskState,
    before: Option<TaskId>,
    limit: u32,
) -> Result<Vec<TaskRecord>, JournalError> {
    let rows = tx.rows(
        "SELECT id, provider, subject, state, device_id, due_ms, attempts, last_status,
                last_error_code, last_provider_code, last_message, updated_ms
         FROM tasks WHERE state = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        &[
            state.as_str().into(),
            before.unwrap_or(i64::MAX).into(),
            i64::from(limit).into(),
        ],
    )?;
    rows.into_iter()
        .map(|row| {
            let id = row.int(0)?;
            Ok(TaskRecord {
                id,
                provider: stored_provider(row.text(1)?)?,
                subject: row.text(2)?,
                state: row.text(3)?.parse()?,
                device_id: row.text_or_null(4)?,
                due_ms: row.int_or_null(5)?,
                attempts: u32_of(row.int(6)?)?,
                http_status: u16_of(row.int_or_null(7)?)?,
                error_code: row.text_or_null(8)?,
                provider_code: row.text_or_null(9)?,
                message: row.text_or_null(10)?,
                updated_ms: row.int(11)?,
                events: task_events(tx, id)?,
            })
        })
        .collect()
}

/// Makes failed task `id` pending, or joins it to the pending task for its
/// (provider, subject): its events and attempts move there and its row goes.
fn retry_in(tx: &mut dyn Tx, id: TaskId, now_ms: i64) -> Result<Retried, JournalError> {
    let Some(row) = one(
        tx,
        "SELECT state, provider, subject, attempts FROM tasks WHERE id = $1",
        &[id.into()],
    )?
    else {
        return Ok(Retried::Unknown);
    };
    let state: TaskState = row.text(0)?.parse()?;
    if state != TaskState::Failed {
        return Ok(Retried::NotFailed(state));
    }
    let task = TaskRef {
        id,
        provider: stored_provider(row.text(1)?)?,
        subject: row.text(2)?,
    };
    let Some(pending) = pending_task(tx, task.provider, &task.subject)? else {
        tx.run(
            "UPDATE tasks SET state = 'pending', updated_ms = $2, claimed_by = NULL,
                 lease_until = NULL
             WHERE id = $1",
            &[id.into(), now_ms.into()],
        )?;
        return Ok(Retried::Pending {
            task,
            joined: false,
        });
    };
    tx.run(
        "UPDATE attempts SET task_id = $2 WHERE task_id = $1",
        &[id.into(), pending.into()],
    )?;
    tx.run(
        "UPDATE tasks SET attempts = attempts + $2 WHERE id = $1",
        &[pending.into(), row.int(3)?.into()],
    )?;
    join(tx, id, pending)?;
    Ok(Retried::Pending {
        task: TaskRef {
            id: pending,
            ..task
        },
        joined: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_text_is_built_once_per_kind_and_size() {
        let built = std::cell::Cell::new(0);
        let build = |n: usize| {
            built.set(built.get() + 1);
            insert_rows(n, 2)
        };
        let first = text("test rows", 3, build);
        assert_eq!(&*first, "($1, $2), ($3, $4), ($5, $6)");
        assert!(Arc::ptr_eq(&first, &text("test rows", 3, build)));
        assert_eq!(&*text("test rows", 1, build), "($1, $2)");
        assert_eq!(&*text("other rows", 1, |n| places(1, n)), "$1");
        assert_eq!(built.get(), 2);
    }

    #[test]
    fn columns_are_read_by_type() {
        let row = [
            V::Int(7),
            V::Text("x".into()),
            V::Null(Kind::Int),
            V::Null(Kind::Text),
        ];
        assert_eq!(row.int(0).unwrap(), 7);
        assert_eq!(row.text(1).unwrap(), "x");
        assert_eq!(row.int_or_null(2).unwrap(), None);
        assert_eq!(row.text_or_null(3).unwrap(), None);
        assert!(row.text(0).is_err());
        assert!(row.int(2).is_err());
        assert!(row.int(9).is_err());
    }
}
