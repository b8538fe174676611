//! The journal in a local SQLite file (WAL mode): the embedded default.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params_from_iter};

use super::sql::{Backend, Kind, Row, Tx, V};
use super::{Durability, JournalError};

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
    user_name     TEXT NOT NULL,
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
    // Version 5: a task is executed by the process that claims it, under a lease.
    "
ALTER TABLE tasks ADD COLUMN claimed_by TEXT;
ALTER TABLE tasks ADD COLUMN lease_until INTEGER;
CREATE INDEX devices_by_seq ON devices (seq);
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE deliveries ADD COLUMN lease_until INTEGER;
",
    // Version 6: each event as it was sent, for the admin console.
    super::sql::EVENT_BODIES,
];

/// The schema version this build writes: the number of [`MIGRATIONS`].
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a write waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection. The journal's statements with a
/// power of two of rows come in several sizes each; rusqlite's default (16)
/// is fewer than the journal uses, so statements were parsed again and again.
const STATEMENTS: usize = 256;

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
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
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

impl Backend for SqliteJournal {
    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let out = f(&mut SqliteTx(&tx))?;
        tx.commit()?;
        Ok(out)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&mut SqliteTx(&tx))?;
        tx.commit()?;
        Ok(out)
    }
}

/// A SQLite transaction behind the journal's [`Tx`].
struct SqliteTx<'a>(&'a Transaction<'a>);

/// `$1`-style parameters as SQLite's `?1`.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

/// The arguments as SQLite values, borrowed: a text is bound without a copy.
fn bind(args: &[V]) -> impl Iterator<Item = ToSqlOutput<'_>> + '_ {
    args.iter().map(|v| {
        ToSqlOutput::Borrowed(match v {
            V::Int(i) => ValueRef::Integer(*i),
            V::Text(t) => ValueRef::Text(t.as_bytes()),
            V::Null(_) => ValueRef::Null,
        })
    })
}

impl Tx for SqliteTx<'_> {
    fn run(&mut self, sql: &str, args: &[V]) -> Result<u64, JournalError> {
        let n = self
            .0
            .prepare_cached(&sqlite_sql(sql))?
            .execute(params_from_iter(bind(args)))?;
        Ok(n as u64)
    }

    fn rows(&mut self, sql: &str, args: &[V]) -> Result<Vec<Row>, JournalError> {
        let mut stmt = self.0.prepare_cached(&sqlite_sql(sql))?;
        let width = stmt.column_count();
        let rows = stmt
            .query_map(params_from_iter(bind(args)), |row| {
                (0..width)
                    .map(|i| {
                        Ok(match row.get_ref(i)? {
                            ValueRef::Integer(n) => V::Int(n),
                            ValueRef::Text(t) => V::Text(String::from_utf8_lossy(t).into_owned()),
                            ValueRef::Null => V::Null(Kind::Int),
                            ValueRef::Real(_) | ValueRef::Blob(_) => {
                                return Err(rusqlite::Error::InvalidColumnType(
                                    i,
                                    "column".into(),
                                    row.get_ref(i)?.data_type(),
                                ));
                            }
                        })
                    })
                    .collect()
            })?
            .collect::<Result<Vec<Row>, _>>()?;
        Ok(rows)
    }

    fn in_process(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use policy_core::{Access, Outcome, Provider};

    use super::*;
    use crate::journal::sql::stored_provider;
    use crate::journal::{AttemptResult, JournalError, TaskState};

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
