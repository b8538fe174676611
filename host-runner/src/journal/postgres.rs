//! The journal in PostgreSQL (SPEC §12): one database shared by every `srs`
//! process. Writers take one transaction-scoped advisory lock, so the
//! journal's invariants (coalescing, idempotency by event id, a device's
//! latest decision) hold across processes exactly as with SQLite's single
//! writer; reads run in read-only repeatable-read transactions. Changes to
//! rows a process has claimed (a claim, an attempt, a release) need no such
//! lock: each is one conditional `UPDATE`, and PostgreSQL's row locks order
//! them (see [`Backend::update`]).
//!
//! Each pooled connection keeps its prepared statements, so a statement costs
//! one round trip to the server, not two; a transaction's `BEGIN` carries
//! its settings (the write lock, no table scans) in the same round trip, and
//! the pool does not test a connection before handing it out (a `BEGIN` on
//! a closed one fails harmlessly and another is taken).

use std::collections::HashMap;
use std::str::FromStr;

use postgres::types::{ToSql, Type};
use postgres::{Client, Config, Statement};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::sql::{Backend, Kind, Row, Tx, V, attempt_json};
use super::{Attempt, JournalError, TaskId};

/// The schema migrations, applied in order; migration `n` (1-based) brings
/// the database to version `n` in `srs_schema`. Append only.
const MIGRATIONS: &[&str] = &["
CREATE TABLE events (
    id          TEXT PRIMARY KEY NOT NULL,
    rowid       BIGSERIAL UNIQUE NOT NULL,
    received_ms BIGINT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('revoke', 'grace', 'no_action', 'unsupported')),
    enforced    BIGINT NOT NULL CHECK (enforced IN (0, 1)),
    dry_run     BIGINT NOT NULL CHECK (dry_run IN (0, 1)),
    decision    TEXT NOT NULL
);
CREATE TABLE tasks (
    id                 BIGSERIAL PRIMARY KEY,
    provider           TEXT NOT NULL,
    subject            TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('scheduled', 'pending', 'done', 'failed', 'cancelled')),
    created_ms         BIGINT NOT NULL,
    updated_ms         BIGINT NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status        BIGINT CHECK (last_status BETWEEN 0 AND 65535),
    last_error_code    TEXT,
    last_provider_code TEXT,
    last_message       TEXT,
    due_ms             BIGINT,
    device_id          TEXT,
    cancelled_by       TEXT REFERENCES events (id),
    CHECK (state <> 'scheduled' OR due_ms IS NOT NULL),
    CHECK ((state = 'cancelled') = (cancelled_by IS NOT NULL))
);
CREATE UNIQUE INDEX tasks_one_pending ON tasks (provider, subject) WHERE state = 'pending';
CREATE UNIQUE INDEX tasks_one_scheduled ON tasks (device_id, provider, subject)
    WHERE state = 'scheduled';
CREATE INDEX tasks_by_state ON tasks (state);
CREATE INDEX tasks_by_due ON tasks (due_ms) WHERE state = 'scheduled';
CREATE INDEX tasks_by_device ON tasks (device_id) WHERE state = 'scheduled';
CREATE TABLE task_events (
    rowid    BIGSERIAL NOT NULL,
    task_id  BIGINT NOT NULL REFERENCES tasks (id),
    event_id TEXT NOT NULL REFERENCES events (id),
    PRIMARY KEY (task_id, event_id)
);
CREATE TABLE attempts (
    task_id       BIGINT NOT NULL REFERENCES tasks (id),
    at_ms         BIGINT NOT NULL,
    http_status   BIGINT CHECK (http_status BETWEEN 0 AND 65535),
    error_code    TEXT,
    provider_code TEXT,
    message       TEXT,
    result        TEXT NOT NULL CHECK (result IN ('done', 'retry', 'failed'))
);
CREATE INDEX attempts_by_task ON attempts (task_id);
CREATE TABLE devices (
    device_id  TEXT PRIMARY KEY NOT NULL,
    event_id   TEXT NOT NULL REFERENCES events (id),
    seq        BIGINT NOT NULL,
    time_ms    BIGINT NOT NULL,
    user_upn   TEXT,
    user_email TEXT,
    access     TEXT NOT NULL CHECK (access IN ('allow', 'block')),
    due_ms     BIGINT
);
CREATE INDEX devices_by_upn ON devices (user_upn);
CREATE INDEX devices_by_email ON devices (user_email);
CREATE TABLE deliveries (
    id            BIGSERIAL PRIMARY KEY,
    receiver      TEXT NOT NULL,
    event_id      TEXT NOT NULL REFERENCES events (id),
    jti           TEXT NOT NULL UNIQUE,
    user_name     TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    event_ms      BIGINT NOT NULL,
    reason        TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('scheduled', 'pending', 'done', 'failed', 'cancelled')),
    due_ms        BIGINT,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status   BIGINT CHECK (last_status BETWEEN 0 AND 65535),
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
    updated_ms BIGINT NOT NULL
);
", "
ALTER TABLE tasks ADD COLUMN claimed_by TEXT;
ALTER TABLE tasks ADD COLUMN lease_until BIGINT;
CREATE INDEX devices_by_seq ON devices (seq);
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE deliveries ADD COLUMN lease_until BIGINT;
", super::sql::EVENT_BODIES, "
-- A task row is updated in place when it is claimed, renewed and settled:
-- room on its page lets a claim or renewal (no indexed column changes) be a
-- HOT update, with no new index entries.
ALTER TABLE tasks SET (fillfactor = 70);
-- Tasks by state are read through the partial indexes or the primary key;
-- this index only cost every state change an entry.
DROP INDEX tasks_by_state;
", "
-- An executor's group of attempts, each on a different task, in one round
-- trip (no BEGIN, no COMMIT: the statement is its transaction): every task
-- pending is settled and its attempt kept, or an error changes nothing.
-- `batch` is a JSON array of objects (`attempt_json` in journal/sql.rs).
-- Rows are found by id only, never by a scan (see `BY_ID`).
CREATE FUNCTION srs_settle(batch TEXT) RETURNS BIGINT
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    settled BIGINT;
    ids BIGINT[];
BEGIN
    -- The ids as a list the primary key serves: joined alone, the tasks
    -- would be read whole (by an index, scans being off).
    ids := ARRAY(SELECT (e ->> 'task_id')::BIGINT FROM jsonb_array_elements(batch::jsonb) e);
    UPDATE tasks SET state = a.state, updated_ms = a.at_ms, attempts = tasks.attempts + 1,
        last_status = a.http_status, last_error_code = a.error_code,
        last_provider_code = a.provider_code, last_message = a.message
    FROM jsonb_to_recordset(batch::jsonb) AS a(task_id BIGINT, state TEXT, at_ms BIGINT,
        http_status BIGINT, error_code TEXT, provider_code TEXT, message TEXT)
    WHERE tasks.id = a.task_id AND tasks.id = ANY (ids) AND (tasks.state = 'pending') IS TRUE;
    GET DIAGNOSTICS settled = ROW_COUNT;
    IF settled <> jsonb_array_length(batch::jsonb) THEN
        RAISE EXCEPTION 'srs_settle: % of % tasks were pending',
            settled, jsonb_array_length(batch::jsonb);
    END IF;
    INSERT INTO attempts (task_id, result, at_ms, http_status, error_code, provider_code, message)
    SELECT a.task_id, a.result, a.at_ms, a.http_status, a.error_code, a.provider_code, a.message
    FROM ROWS FROM (jsonb_to_recordset(batch::jsonb) AS (task_id BIGINT, result TEXT,
        at_ms BIGINT, http_status BIGINT, error_code TEXT, provider_code TEXT, message TEXT))
        WITH ORDINALITY AS a(task_id, result, at_ms, http_status, error_code, provider_code,
            message, n)
    ORDER BY a.n;
    RETURN settled;
END $$;
-- An executor's claims (and renewals), in one round trip: how many of the
-- tasks `ids` (a BIGINT[] literal, each once) it claimed for `owner`.
CREATE FUNCTION srs_claim(ids TEXT, owner TEXT, now_ms BIGINT, until_ms BIGINT)
RETURNS BIGINT LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    claimed BIGINT;
BEGIN
    UPDATE tasks SET claimed_by = owner, lease_until = until_ms
    WHERE id = ANY (ids::BIGINT[]) AND (state = 'pending') IS TRUE
      AND (claimed_by IS NULL OR claimed_by = owner OR lease_until IS NULL
           OR lease_until < now_ms);
    GET DIAGNOSTICS claimed = ROW_COUNT;
    RETURN claimed;
END $$;
"];

/// The schema version this build writes.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock every writer holds for its transaction.
const WRITE_LOCK: i64 = 0x0053_5253_5f4a_4e4c; // "SRS_JNL"

/// Connections kept per process.
const POOL_SIZE: u32 = 8;

/// Statements kept prepared per connection, at most.
const MAX_PREPARED: usize = 256;

/// One pooled connection and the statements prepared on it, by their text.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// Opens [`Conn`]s for the pool.
struct Manager {
    config: Config,
    tls: MakeRustlsConnect,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.config.connect(self.tls.clone())?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(drop)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

type Pool = r2d2::Pool<Manager>;

/// The journal in a PostgreSQL database.
pub struct PostgresJournal {
    pool: Pool,
    /// The URL without its password, for messages.
    name: String,
}

impl std::fmt::Debug for PostgresJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresJournal")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The URL as messages may show it: no password.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let (head, tail) = url.split_at(at);
            let userinfo = head.get(scheme + 3..).unwrap_or("");
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{tail}", url.get(..scheme + 3).unwrap_or(""))
        }
        _ => url.to_owned(),
    }
}

impl PostgresJournal {
    /// Connects to `url` (`postgres://…`) and migrates the schema to
    /// [`PG_SCHEMA_VERSION`]; refuses a database migrated by a newer srs.
    /// TLS follows the URL's `sslmode` (`disable`, `prefer`, `require`); the
    /// server's certificate is always verified, against the PEM file
    /// `sslrootcert=` names, else the public web roots.
    pub fn open(url: &str) -> Result<Self, JournalError> {
        let name = redacted(url);
        let open = |why: String| JournalError::OpenPostgres {
            url: name.clone(),
            why,
        };
        let (url, root) = split_root_cert(url);
        let config = Config::from_str(&url).map_err(|e| open(e.to_string()))?;
        let tls = tls(root.as_deref()).map_err(open)?;
        let manager = Manager { config, tls };
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            // Opened as needed: most processes use a few.
            .min_idle(Some(1))
            // `begin` finds a closed connection without a round trip more.
            .test_on_check_out(false)
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(manager)
            .map_err(|e| open(e.to_string()))?;
        let journal = Self { pool, name };
        journal.migrate()?;
        Ok(journal)
    }

    fn client(&self) -> Result<r2d2::PooledConnection<Manager>, JournalError> {
        self.pool.get().map_err(|e| JournalError::OpenPostgres {
            url: self.name.clone(),
            why: e.to_string(),
        })
    }

    fn migrate(&self) -> Result<(), JournalError> {
        let mut conn = self.client()?;
        let mut tx = conn.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS srs_schema (version BIGINT NOT NULL)")?;
        let found: i64 = tx
            .query_opt("SELECT version FROM srs_schema", &[])?
            .map_or(0, |row| row.get(0));
        if found > PG_SCHEMA_VERSION {
            return Err(JournalError::NewerSchema {
                path: self.name.clone(),
                found,
                known: PG_SCHEMA_VERSION,
            });
        }
        let applied = usize::try_from(found).map_err(|_| JournalError::InvalidSchema {
            path: self.name.clone(),
            found,
        })?;
        if applied < MIGRATIONS.len() {
            for step in MIGRATIONS.iter().skip(applied) {
                tx.batch_execute(step)?;
            }
            tx.execute("DELETE FROM srs_schema", &[])?;
            tx.execute(
                "INSERT INTO srs_schema (version) VALUES ($1)",
                &[&PG_SCHEMA_VERSION],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// `url` without its `sslrootcert=` parameter (which the client library does
/// not read), and that parameter's value.
fn split_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslrootcert=") {
            Some(path) => {
                root = Some(path.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, root)
}

/// The TLS client: rustls, trusting the certificates in `root` (a PEM file)
/// or else the public web roots.
fn tls(root: Option<&str>) -> Result<MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    match root {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

impl Backend for PostgresJournal {
    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        self.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", f)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        // Holding the journal's write lock (a constant: still one round trip).
        self.transaction(
            &format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"),
            f,
        )
    }

    fn update<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        self.transaction(BY_ID, f)
    }

    /// One call of `srs_settle` (schema 5), outside any transaction.
    fn settle_at_once(&self, attempts: &[(TaskId, Attempt<'_>)]) -> bool {
        let batch = serde_json::Value::Array(
            attempts
                .iter()
                .map(|(task, attempt)| attempt_json(*task, attempt))
                .collect(),
        )
        .to_string();
        self.call("SELECT srs_settle($1)", &[&batch]).is_ok()
    }

    /// One call of `srs_claim` (schema 5), outside any transaction.
    fn claim_at_once(&self, ids: &[TaskId], owner: &str, now_ms: i64, until_ms: i64) -> bool {
        let list = format!(
            "{{{}}}",
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        );
        let claimed = self
            .call(
                "SELECT srs_claim($1, $2, $3, $4)",
                &[&list, &owner, &now_ms, &until_ms],
            )
            .and_then(|row| Ok(row.try_get::<_, i64>(0)?));
        matches!(claimed, Ok(n) if usize::try_from(n).is_ok_and(|n| n == ids.len()))
    }
}

/// An [`Backend::update`]'s transaction. Its statements find every row by
/// id, so they never scan a table: the planner, estimating a young table
/// from its size alone (autovacuum has not analyzed it yet), would choose a
/// scan of every task for a list of 64 ids, whose cost grows with the
/// journal (measured in `BENCHMARKS.md`).
const BY_ID: &str = "BEGIN; SET LOCAL enable_seqscan = off";

impl PostgresJournal {
    /// Runs `f` in the transaction `begin` opens (one round trip, with its
    /// settings), committed when `f` returns `Ok`, else rolled back.
    fn transaction<T>(
        &self,
        begin: &str,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut conn = self.begin(begin)?;
        let Conn { client, statements } = &mut *conn;
        let open = Open { client };
        let out = f(&mut PgTx {
            client: open.client,
            statements,
        })?;
        open.commit()?;
        Ok(out)
    }

    /// The one row of `sql`, a statement that is its own transaction (no
    /// `BEGIN`, no `COMMIT`: one round trip), prepared once per connection.
    fn call(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<postgres::Row, JournalError> {
        let mut conn = self.client()?;
        let Conn { client, statements } = &mut *conn;
        let statement = prepared(client, statements, sql)?;
        Ok(client.query_one(&statement, params)?)
    }

    /// A pooled connection in a transaction `begin` opened. The pool does
    /// not test a connection before handing it out (a round trip each
    /// time): a connection the server closed (a restart) fails its `BEGIN`,
    /// before anything happened, and is dropped for the next one.
    fn begin(&self, begin: &str) -> Result<r2d2::PooledConnection<Manager>, JournalError> {
        let mut tries = 0;
        loop {
            let mut conn = self.client()?;
            match conn.client.batch_execute(begin) {
                Ok(()) => return Ok(conn),
                // Closed: the pool discards it when it comes back.
                Err(_) if conn.client.is_closed() && tries < POOL_SIZE => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// An open transaction; rolled back when dropped uncommitted (an error in
/// the middle), so the connection goes back to the pool clean.
struct Open<'a> {
    client: &'a mut Client,
}

impl Open<'_> {
    fn commit(self) -> Result<(), JournalError> {
        let mut this = std::mem::ManuallyDrop::new(self);
        Ok(this.client.batch_execute("COMMIT")?)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        // If this fails the connection is broken: the pool discards it.
        let _ = self.client.batch_execute("ROLLBACK");
    }
}

/// A PostgreSQL transaction behind the journal's [`Tx`], and its
/// connection's prepared statements.
struct PgTx<'a> {
    client: &'a mut Client,
    statements: &'a mut HashMap<String, Statement>,
}

impl PgTx<'_> {
    fn prepared(&mut self, sql: &str) -> Result<Statement, JournalError> {
        prepared(self.client, self.statements, sql)
    }
}

/// `sql` prepared on this connection, once.
fn prepared(
    client: &mut Client,
    statements: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement, JournalError> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql)?;
    // Set-wise statements vary with their row counts: keep a bounded few.
    if statements.len() < MAX_PREPARED {
        statements.insert(sql.to_owned(), statement.clone());
    }
    Ok(statement)
}

/// The values as PostgreSQL parameters, NULLs typed.
fn params(args: &[V]) -> Vec<Box<dyn ToSql + Sync>> {
    args.iter()
        .map(|v| -> Box<dyn ToSql + Sync> {
            match v {
                V::Int(i) => Box::new(*i),
                V::Text(t) => Box::new(t.clone()),
                V::Null(Kind::Int) => Box::new(None::<i64>),
                V::Null(Kind::Text) => Box::new(None::<String>),
            }
        })
        .collect()
}

impl Tx for PgTx<'_> {
    fn run(&mut self, sql: &str, args: &[V]) -> Result<u64, JournalError> {
        let owned = params(args);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(AsRef::as_ref).collect();
        let statement = self.prepared(sql)?;
        Ok(self.client.execute(&statement, &refs)?)
    }

    fn rows(&mut self, sql: &str, args: &[V]) -> Result<Vec<Row>, JournalError> {
        let owned = params(args);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(AsRef::as_ref).collect();
        let statement = self.prepared(sql)?;
        self.client
            .query(&statement, &refs)?
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        let ty = row.columns().get(i).map(|c| c.type_().clone());
                        Ok(match ty {
                            Some(Type::INT8) => row
                                .try_get::<_, Option<i64>>(i)?
                                .map_or(V::Null(Kind::Int), V::Int),
                            Some(Type::INT4) => row
                                .try_get::<_, Option<i32>>(i)?
                                .map_or(V::Null(Kind::Int), |n| V::Int(i64::from(n))),
                            Some(Type::TEXT | Type::VARCHAR) => row
                                .try_get::<_, Option<String>>(i)?
                                .map_or(V::Null(Kind::Text), V::Text),
                            other => {
                                return Err(JournalError::Corrupt {
                                    what: "column type",
                                    value: format!("{other:?}"),
                                });
                            }
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{redacted, split_root_cert};

    #[test]
    fn sslrootcert_is_taken_out_of_the_url() {
        assert_eq!(
            split_root_cert("postgres://h/db?sslmode=require&sslrootcert=/ca.pem&x=1"),
            (
                "postgres://h/db?sslmode=require&x=1".to_owned(),
                Some("/ca.pem".to_owned())
            )
        );
        assert_eq!(
            split_root_cert("postgres://h/db?sslrootcert=/ca.pem"),
            ("postgres://h/db".to_owned(), Some("/ca.pem".to_owned()))
        );
        assert_eq!(
            split_root_cert("postgres://h/db"),
            ("postgres://h/db".to_owned(), None)
        );
    }

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(
            redacted("postgres://srs:hunter2@db.example:5432/srs?sslmode=disable"),
            "postgres://srs@db.example:5432/srs?sslmode=disable"
        );
        assert_eq!(
            redacted("postgres://db.example/srs"),
            "postgres://db.example/srs"
        );
    }
}
