#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests; the behaviour tests are plain functions run once per backend"
)]
//! The journal (SPEC §8, §12): every behaviour test runs on a real SQLite
//! file and on a real PostgreSQL (a throwaway cluster per test binary, a
//! fresh database per test); the migration tests are SQLite's.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use host_runner::journal::{
    Attempt, AttemptResult, Claim, DeviceFacts, Durability, EventQuery, Journal, JournalError,
    NewDelivery, NewEvent, PostgresJournal, Recorded, Retried, SCHEMA_VERSION, SqliteJournal,
    TaskCounts, TaskId, TaskRef, TaskState,
};
use policy_core::{Access, Outcome, Provider};

const O365: Provider = Provider::Office365;
const GOOGLE: Provider = Provider::GoogleWorkspace;
const ALICE: &[(Provider, &str)] = &[(O365, "alice@example.com"), (GOOGLE, "alice@example.com")];
const ALICE_O365: &[(Provider, &str)] = &[(O365, "alice@example.com")];

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    (dir, path)
}

fn open(path: &Path) -> SqliteJournal {
    SqliteJournal::open(path, Durability::Full).unwrap()
}

fn event<'a>(id: &'a str, revocations: &'a [(Provider, &'a str)]) -> NewEvent<'a> {
    NewEvent {
        id,
        received_ms: 1_000,
        outcome: Outcome::Revoke,
        enforced: true,
        dry_run: false,
        decision: r#"{"outcome":"revoke"}"#,
        revocations,
        due_ms: None,
        device: None,
        deliveries: &[],
        body: None,
    }
}

fn dry(e: NewEvent<'_>) -> NewEvent<'_> {
    NewEvent { dry_run: true, ..e }
}

fn new_tasks(recorded: Recorded) -> Vec<TaskRef> {
    match recorded {
        Recorded::New { tasks, .. } => tasks,
        Recorded::Duplicate => panic!("expected a new event, got a duplicate"),
    }
}

fn attempt(result: AttemptResult) -> Attempt<'static> {
    Attempt {
        at_ms: 2_000,
        http_status: Some(503),
        error_code: Some("unavailable"),
        provider_code: Some("ServiceUnavailable"),
        message: Some("try later"),
        result,
    }
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

fn user_version(path: &Path) -> i64 {
    raw(path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn migrations_create_the_schema_and_set_user_version() {
    let (_dir, path) = temp();
    drop(open(&path));
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 6);
    let conn = raw(&path);
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.sort();
    assert_eq!(
        tables,
        [
            "attempts",
            "deliveries",
            "devices",
            "event_bodies",
            "events",
            "streams",
            "task_events",
            "tasks"
        ]
    );
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Coalescing is a database invariant: one pending task per (provider, subject).
    let insert = "INSERT INTO tasks (provider, subject, state, created_ms, updated_ms)
                  VALUES ('office365', 'bob@example.com', ?1, 0, 0)";
    conn.execute(insert, ["done"]).unwrap();
    conn.execute(insert, ["pending"]).unwrap();
    assert!(conn.execute(insert, ["pending"]).is_err());
    assert!(conn.execute(insert, ["paused"]).is_err());
    // A scheduled task has a due time; a cancelled one, the event that cancelled it.
    assert!(conn.execute(insert, ["scheduled"]).is_err());
    assert!(conn.execute(insert, ["cancelled"]).is_err());
}

#[test]
fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let (_dir, path) = temp();
    let j = open(&path);
    new_tasks(j.record_event(&event("e1", ALICE)).unwrap());
    drop(j);
    // A rerun of migration 1 would fail on CREATE TABLE.
    let j = SqliteJournal::open(&path, Durability::Normal).unwrap();
    assert_eq!(
        j.record_event(&event("e1", ALICE)).unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(j.status().unwrap().events, 1);
    assert_eq!(j.pending_tasks().unwrap().len(), 2);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
}

/// A journal as srs wrote it at schema version 2, with a little data.
const JOURNAL_V2: &str = include_str!("fixtures/journal-v2.sql");

#[test]
fn a_version_1_journal_is_migrated_in_place() {
    let (_dir, path) = temp();
    // What `srs run` before the gate left: no devices table, version 1.
    raw(&path)
        .execute_batch(&format!(
            "{JOURNAL_V2}; DROP TABLE devices; PRAGMA user_version = 1;"
        ))
        .unwrap();
    let j = open(&path);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(j.pending_tasks().unwrap().len(), 1);
    assert!(j.devices().unwrap().is_empty());
}

#[test]
fn a_version_2_journal_is_migrated_in_place_keeping_every_row() {
    let (_dir, path) = temp();
    raw(&path).execute_batch(JOURNAL_V2).unwrap();
    let j = open(&path);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let status = j.status().unwrap();
    assert_eq!((status.events, status.dry_run_events), (2, 1));
    assert_eq!(
        status.tasks,
        TaskCounts {
            pending: 1,
            failed: 1,
            ..TaskCounts::default()
        }
    );
    assert_eq!(status.pending[0].events, ["e1"]);
    assert_eq!(status.failed[0].provider_code.as_deref(), Some("notFound"));
    // Arrival order (rowid) survives the rebuild of `events`: the device's seq
    // still names its event's place.
    let conn = raw(&path);
    let rowid: i64 = conn
        .query_row("SELECT rowid FROM events WHERE id = 'e2'", [], |r| r.get(0))
        .unwrap();
    let devices = j.devices().unwrap();
    assert_eq!(
        (devices[0].event_id.as_str(), devices[0].seq),
        ("e2", rowid)
    );
    assert_eq!(devices[0].due_ms, None);
    let attempts: i64 = conn
        .query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(attempts, 2);
    // Foreign keys hold on the rebuilt tables, and new events journal as before.
    assert!(
        j.record_event(&event("e9", &[(O365, "x@example.com")]))
            .is_ok()
    );
    let broken: Option<String> = conn
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .ok();
    assert_eq!(broken, None);
}

#[test]
fn a_newer_schema_is_refused() {
    let (_dir, path) = temp();
    drop(open(&path));
    raw(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = SqliteJournal::open(&path, Durability::Full).unwrap_err();
    assert!(
        matches!(err, JournalError::NewerSchema { found, known, .. }
            if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.starts_with("the journal "), "{message}");
    assert!(
        message.ends_with(&format!(
            "was written by a newer srs (schema version {}, this srs knows up to {SCHEMA_VERSION})",
            SCHEMA_VERSION + 1
        )),
        "{message}"
    );
    // Refusing left the file alone.
    assert_eq!(user_version(&path), SCHEMA_VERSION + 1);
}

fn a_duplicate_event_id_creates_nothing(store: &dyn Store) {
    let j = store.open();
    let tasks = new_tasks(j.record_event(&event("e1", ALICE)).unwrap());
    assert_eq!(tasks.len(), 2);
    assert_ne!(tasks[0].id, tasks[1].id);
    assert_eq!(tasks[0].provider, O365);
    assert_eq!(tasks[1].provider, GOOGLE);
    assert_eq!(
        j.record_event(&event("e1", ALICE)).unwrap(),
        Recorded::Duplicate
    );
    let status = j.status().unwrap();
    assert_eq!(status.events, 1);
    assert_eq!(status.tasks.pending, 2);
    for task in j.pending_tasks().unwrap() {
        assert_eq!(task.events, ["e1"]);
    }
}

fn a_real_run_replaces_a_dry_run_row(store: &dyn Store) {
    let j = store.open();
    let dry_tasks = new_tasks(j.record_event(&dry(event("e1", ALICE))).unwrap());
    assert!(dry_tasks.is_empty());
    assert!(j.pending_tasks().unwrap().is_empty());
    let status = j.status().unwrap();
    assert_eq!((status.events, status.dry_run_events), (0, 1));
    // A second dry run sees the id as journaled.
    assert_eq!(
        j.record_event(&dry(event("e1", ALICE))).unwrap(),
        Recorded::Duplicate
    );

    let tasks = new_tasks(j.record_event(&event("e1", ALICE)).unwrap());
    assert_eq!(tasks.len(), 2);
    let status = j.status().unwrap();
    assert_eq!((status.events, status.dry_run_events), (1, 0));
    assert_eq!(status.tasks.pending, 2);
    assert_eq!(
        j.record_event(&event("e1", ALICE)).unwrap(),
        Recorded::Duplicate
    );
}

fn a_dry_run_after_a_real_run_is_a_duplicate(store: &dyn Store) {
    let j = store.open();
    new_tasks(j.record_event(&event("e1", ALICE)).unwrap());
    assert_eq!(
        j.record_event(&dry(event("e1", ALICE))).unwrap(),
        Recorded::Duplicate
    );
    let status = j.status().unwrap();
    assert_eq!((status.events, status.dry_run_events), (1, 0));
}

fn pending_tasks_coalesce_until_done(store: &dyn Store) {
    let j = store.open();
    let first = new_tasks(j.record_event(&event("e1", ALICE_O365)).unwrap());
    let second = new_tasks(j.record_event(&event("e2", ALICE)).unwrap());
    assert_eq!(first.len(), 1);
    assert_eq!(second.len(), 2);
    // Coalesced: the pending task's id again; new: another id.
    assert_eq!(second[0].id, first[0].id);
    assert_ne!(second[1].id, first[0].id);

    let pending = j.pending_tasks().unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].id, first[0].id);
    assert_eq!(pending[0].events, ["e1", "e2"]);
    assert_eq!(pending[1].events, ["e2"]);

    // Once done, the next event needs a new task.
    let done = Attempt {
        http_status: Some(204),
        error_code: None,
        provider_code: None,
        message: None,
        ..attempt(AttemptResult::Done)
    };
    assert_eq!(
        j.record_attempt(first[0].id, &done).unwrap(),
        TaskState::Done
    );
    let third = new_tasks(j.record_event(&event("e3", ALICE_O365)).unwrap());
    assert_eq!(third.len(), 1);
    assert_ne!(third[0].id, first[0].id);
    assert_ne!(third[0].id, second[1].id);
    let pending = j.pending_tasks().unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[1].id, third[0].id);
    assert_eq!(pending[1].events, ["e3"]);
}

fn the_same_revocation_twice_in_one_decision_is_one_task(store: &dyn Store) {
    let j = store.open();
    let twice = [ALICE_O365[0], ALICE_O365[0]];
    let tasks = new_tasks(j.record_event(&event("e1", &twice)).unwrap());
    assert_eq!(tasks.len(), 1);
    assert_eq!(j.pending_tasks().unwrap()[0].events, ["e1"]);
}

fn retry_keeps_the_task_pending_and_counts_attempts(store: &dyn Store) {
    let j = store.open();
    let id = new_tasks(j.record_event(&event("e1", ALICE_O365)).unwrap())[0].id;
    for _ in 0..3 {
        assert_eq!(
            j.record_attempt(id, &attempt(AttemptResult::Retry))
                .unwrap(),
            TaskState::Pending
        );
    }
    let pending = j.pending_tasks().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 3);
    let rows = store.number(&format!(
        "SELECT count(*) FROM attempts WHERE task_id = {id}"
    ));
    assert_eq!(rows, 3);

    // 70 attempts in one call: each task's retry, then its end, in order.
    let users: Vec<String> = (0..35).map(|i| format!("u{i}@example.com")).collect();
    let batch: Vec<_> = users
        .iter()
        .enumerate()
        .flat_map(|(i, u)| {
            let revocation = [(O365, u.as_str())];
            let task = new_tasks(
                j.record_event(&event(&format!("b{i}"), &revocation))
                    .unwrap(),
            )[0]
            .id;
            [
                (task, attempt(AttemptResult::Retry)),
                (task, attempt(AttemptResult::Done)),
            ]
        })
        .collect();
    let states = j.record_attempts(&batch).unwrap();
    assert_eq!(states.len(), 70);
    assert!(
        states
            .chunks(2)
            .all(|s| s == [TaskState::Pending, TaskState::Done])
    );
    assert_eq!(store.number("SELECT count(*) FROM attempts"), 73);
    assert_eq!(j.task_counts().unwrap().done, 35);
    assert_eq!(
        store.number("SELECT count(*) FROM tasks WHERE state = 'done' AND attempts = 2"),
        35
    );
}

fn a_failed_attempt_ends_the_task_and_shows_in_status(store: &dyn Store) {
    let j = store.open();
    let id = new_tasks(j.record_event(&event("e1", ALICE_O365)).unwrap())[0].id;
    j.record_attempt(id, &attempt(AttemptResult::Retry))
        .unwrap();
    new_tasks(j.record_event(&event("e2", ALICE_O365)).unwrap());
    let failed = Attempt {
        at_ms: 3_000,
        http_status: Some(404),
        error_code: Some("user-not-found"),
        provider_code: Some("Request_ResourceNotFound"),
        message: Some("user not found"),
        result: AttemptResult::Failed,
    };
    assert_eq!(j.record_attempt(id, &failed).unwrap(), TaskState::Failed);

    let status = j.status().unwrap();
    assert_eq!(
        status.tasks,
        TaskCounts {
            failed: 1,
            ..TaskCounts::default()
        }
    );
    assert_eq!(status.failed.len(), 1);
    let f = &status.failed[0];
    assert_eq!(f.id, id);
    assert_eq!((f.provider, f.subject.as_str()), ALICE_O365[0]);
    assert_eq!(f.http_status, Some(404));
    assert_eq!(f.error_code.as_deref(), Some("user-not-found"));
    assert_eq!(f.provider_code.as_deref(), Some("Request_ResourceNotFound"));
    assert_eq!(f.message.as_deref(), Some("user not found"));
    assert_eq!(f.attempts, 2);
    assert_eq!(f.updated_ms, 3_000);
    assert_eq!(f.events, ["e1", "e2"]);
    assert!(j.pending_tasks().unwrap().is_empty());
}

fn a_done_attempt_ends_the_task(store: &dyn Store) {
    let j = store.open();
    let id = new_tasks(j.record_event(&event("e1", ALICE_O365)).unwrap())[0].id;
    let done = Attempt {
        at_ms: 2_500,
        http_status: Some(200),
        error_code: None,
        provider_code: None,
        message: None,
        result: AttemptResult::Done,
    };
    assert_eq!(j.record_attempt(id, &done).unwrap(), TaskState::Done);
    let status = j.status().unwrap();
    assert_eq!(status.tasks.done, 1);
    assert_eq!(status.tasks.pending, 0);
    assert!(status.failed.is_empty());
}

fn attempts_on_finished_or_unknown_tasks_are_refused(store: &dyn Store) {
    let j = store.open();
    let tasks = new_tasks(j.record_event(&event("e1", ALICE)).unwrap());
    let (a, b) = (tasks[0].id, tasks[1].id);
    j.record_attempt(a, &attempt(AttemptResult::Done)).unwrap();
    j.record_attempt(b, &attempt(AttemptResult::Failed))
        .unwrap();
    for (id, state) in [(a, TaskState::Done), (b, TaskState::Failed)] {
        let err = j
            .record_attempt(id, &attempt(AttemptResult::Retry))
            .unwrap_err();
        assert!(
            matches!(err, JournalError::NotPending { id: i, state: s } if i == id && s == state),
            "{err:?}"
        );
    }
    let err = j
        .record_attempt(999, &attempt(AttemptResult::Retry))
        .unwrap_err();
    assert!(matches!(err, JournalError::UnknownTask(999)), "{err:?}");

    // A batch with one bad attempt records none of them.
    let c = new_tasks(j.record_event(&event("e2", ALICE_O365)).unwrap())[0].id;
    let batch = [
        (c, attempt(AttemptResult::Retry)),
        (a, attempt(AttemptResult::Retry)),
    ];
    assert!(j.record_attempts(&batch).is_err());
    assert_eq!(j.pending_tasks().unwrap()[0].attempts, 0);
    assert_eq!(store.number("SELECT count(*) FROM attempts"), 2);
}

fn pending_tasks_survive_a_crash(store: &dyn Store) {
    let j = store.open();
    let first = new_tasks(j.record_event(&event("e1", ALICE)).unwrap());
    new_tasks(j.record_event(&event("e2", ALICE_O365)).unwrap());
    j.record_attempt(first[1].id, &attempt(AttemptResult::Retry))
        .unwrap();
    // The run dies before any task finishes.
    drop(j);

    let j = store.open();
    let pending = j.pending_tasks().unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].id, first[0].id);
    assert_eq!(pending[0].provider, O365);
    assert_eq!(pending[0].subject, "alice@example.com");
    assert_eq!(pending[0].events, ["e1", "e2"]);
    assert_eq!(pending[0].attempts, 0);
    assert_eq!(pending[1].id, first[1].id);
    assert_eq!(pending[1].events, ["e1"]);
    assert_eq!(pending[1].attempts, 1);
}

fn report_only_and_no_action_events_create_no_tasks(store: &dyn Store) {
    let j = store.open();
    let report_only = NewEvent {
        enforced: false,
        ..event("e1", ALICE)
    };
    assert!(new_tasks(j.record_event(&report_only).unwrap()).is_empty());
    let no_action = NewEvent {
        outcome: Outcome::NoAction,
        decision: r#"{"outcome":"no_action"}"#,
        ..event("e2", &[])
    };
    assert!(new_tasks(j.record_event(&no_action).unwrap()).is_empty());
    let status = j.status().unwrap();
    assert_eq!(status.events, 2);
    assert_eq!(status.tasks, TaskCounts::default());
    // Both are seen: a repeat is a duplicate.
    assert_eq!(j.record_event(&report_only).unwrap(), Recorded::Duplicate);
    // The decision is kept for audit.
    assert_eq!(
        store.number(r#"SELECT count(*) FROM events WHERE id = 'e2' AND decision = '{"outcome":"no_action"}'"#),
        1
    );
}

fn an_unknown_outcome_is_refused(store: &dyn Store) {
    // The API is typed, so only the database can hold another outcome: its
    // CHECK refuses one, and a row written around it reads as corrupt.
    let j = store.open();
    let refused = store.execute(
        "INSERT INTO events (id, received_ms, outcome, enforced, dry_run, decision)
         VALUES ('e1', 0, 'revoke_all', 1, 0, '{}')",
    );
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(j.status().unwrap().events, 0);
    store
        .execute(
            "INSERT INTO tasks (provider, subject, state, created_ms, updated_ms)
             VALUES ('okta', 'bob@example.com', 'pending', 0, 0)",
        )
        .unwrap();
    let err = j.pending_tasks().unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::Corrupt {
                what: "provider",
                ..
            }
        ),
        "{err:?}"
    );
}

fn a_batch_of_a_thousand_events_is_one_call(store: &dyn Store) {
    let j = store.open();
    let ids: Vec<String> = (0..1_000).map(|i| format!("e{i}")).collect();
    let subjects: Vec<String> = (0..100).map(|i| format!("user{i}@example.com")).collect();
    let revocations: Vec<[(Provider, &str); 1]> = (0..1_000)
        .map(|i| [(O365, subjects[i % 100].as_str())])
        .collect();
    let mut events: Vec<NewEvent<'_>> = ids
        .iter()
        .zip(&revocations)
        .map(|(id, r)| event(id, r))
        .collect();
    // An id repeated within the batch is a duplicate of its first occurrence.
    events.push(event("e0", ALICE));
    let recorded = j.record_events(&events).unwrap();
    assert_eq!(recorded.len(), 1_001);
    assert_eq!(recorded[1_000], Recorded::Duplicate);
    let (mut fresh, mut coalesced) = (0, 0);
    let mut seen = HashSet::new();
    for r in recorded.into_iter().take(1_000) {
        let tasks = new_tasks(r);
        assert_eq!(tasks.len(), 1);
        if seen.insert(tasks[0].id) {
            fresh += 1;
        } else {
            coalesced += 1;
        }
    }
    assert_eq!((fresh, coalesced), (100, 900));

    let pending = j.pending_tasks().unwrap();
    assert_eq!(pending.len(), 100);
    assert!(pending.iter().all(|t| t.events.len() == 10));
    assert_eq!(pending[7].events[..2], ["e7", "e107"]);

    let attempts: Vec<_> = pending
        .iter()
        .map(|t| (t.id, attempt(AttemptResult::Done)))
        .collect();
    let states = j.record_attempts(&attempts).unwrap();
    assert!(states.iter().all(|s| *s == TaskState::Done));
    let status = j.status().unwrap();
    assert_eq!(status.events, 1_000);
    assert_eq!(status.tasks.done, 100);
    assert_eq!(status.tasks.pending, 0);
}

fn status_counts_tasks_by_state(store: &dyn Store) {
    let j = store.open();
    let subjects = [
        [(O365, "a@example.com")],
        [(O365, "b@example.com")],
        [(O365, "c@example.com")],
        [(GOOGLE, "d@example.com")],
    ];
    let ids = ["e1", "e2", "e3", "e4"];
    let events: Vec<_> = ids
        .iter()
        .zip(&subjects)
        .map(|(id, r)| event(id, r))
        .collect();
    let mut ids = Vec::new();
    for r in j.record_events(&events).unwrap() {
        ids.push(new_tasks(r)[0].id);
    }
    j.record_event(&dry(event("e5", ALICE))).unwrap();
    j.record_attempts(&[
        (ids[0], attempt(AttemptResult::Done)),
        (ids[1], attempt(AttemptResult::Failed)),
        (ids[2], attempt(AttemptResult::Retry)),
    ])
    .unwrap();
    let status = j.status().unwrap();
    assert_eq!(status.events, 4);
    assert_eq!(status.dry_run_events, 1);
    assert_eq!(
        status.tasks,
        TaskCounts {
            pending: 2,
            done: 1,
            failed: 1,
            ..TaskCounts::default()
        }
    );
    assert_eq!(status.failed.len(), 1);
    assert_eq!(status.failed[0].subject, "b@example.com");
    assert_eq!(status.failed[0].error_code.as_deref(), Some("unavailable"));
    assert_eq!(
        status.failed[0].provider_code.as_deref(),
        Some("ServiceUnavailable")
    );
    let pending: Vec<_> = status.pending.iter().map(|t| t.id).collect();
    assert_eq!(pending, [ids[2], ids[3]]);
}

fn long_messages_are_clipped_and_in_memory_works(store: &dyn Store) {
    let j = store.open();
    let id = new_tasks(j.record_event(&event("e1", ALICE_O365)).unwrap())[0].id;
    let long = "é".repeat(2_000);
    let failed = Attempt {
        message: Some(&long),
        ..attempt(AttemptResult::Failed)
    };
    j.record_attempt(id, &failed).unwrap();
    let status = j.status().unwrap();
    let message = status.failed[0].message.as_deref().unwrap();
    assert!(message.len() <= host_runner::journal::MAX_MESSAGE_BYTES);
    assert!(message.len() >= host_runner::journal::MAX_MESSAGE_BYTES - 1);
    assert!(long.starts_with(message));
}

fn on_device<'a>(e: NewEvent<'a>, device: &'a str, time_ms: i64, access: Access) -> NewEvent<'a> {
    NewEvent {
        device: Some(DeviceFacts {
            device_id: device,
            upn: Some("alice@example.com"),
            email: None,
            time_ms,
            access,
        }),
        ..e
    }
}

/// A `grace` decision for device `device` at `time_ms`, due at `due_ms`.
fn grace<'a>(
    id: &'a str,
    device: &'a str,
    time_ms: i64,
    due_ms: i64,
    revocations: &'a [(Provider, &'a str)],
) -> NewEvent<'a> {
    NewEvent {
        outcome: Outcome::Grace,
        due_ms: Some(due_ms),
        ..on_device(event(id, revocations), device, time_ms, Access::Allow)
    }
}

fn compliant<'a>(id: &'a str, device: &'a str, time_ms: i64) -> NewEvent<'a> {
    NewEvent {
        outcome: Outcome::NoAction,
        ..on_device(event(id, &[]), device, time_ms, Access::Allow)
    }
}

fn recorded_parts(recorded: Recorded) -> (Vec<TaskRef>, Vec<TaskRef>, usize) {
    match recorded {
        Recorded::New {
            tasks,
            scheduled,
            cancelled,
            ..
        } => (tasks, scheduled, cancelled.len()),
        Recorded::Duplicate => panic!("expected a new event, got a duplicate"),
    }
}

fn a_grace_decision_schedules_its_revocations_until_due(store: &dyn Store) {
    let j = store.open();
    let (now, scheduled, _) = recorded_parts(
        j.record_event(&grace("g1", "d1", 100, 5_000, ALICE))
            .unwrap(),
    );
    assert!(now.is_empty());
    assert_eq!(scheduled.len(), 2);
    assert!(j.pending_tasks().unwrap().is_empty());
    assert_eq!(j.next_due().unwrap(), Some(5_000));
    let status = j.status().unwrap();
    assert_eq!(status.tasks.scheduled, 2);
    assert_eq!(status.scheduled[0].due_ms, 5_000);
    assert_eq!(status.scheduled[0].device_id.as_deref(), Some("d1"));
    assert_eq!(status.scheduled[0].events, ["g1"]);
    assert_eq!(j.devices().unwrap()[0].due_ms, Some(5_000));
    // Not before due; at due, pending and returned once each.
    assert!(j.promote_due(4_999).unwrap().is_empty());
    let due = j.promote_due(5_000).unwrap();
    assert_eq!(due, scheduled);
    assert!(j.promote_due(9_000).unwrap().is_empty());
    assert_eq!(j.next_due().unwrap(), None);
    assert_eq!(j.pending_tasks().unwrap().len(), 2);
    // An attempt on a scheduled task is refused: it waits for its due.
    let (_, later, _) = recorded_parts(
        j.record_event(&grace("g2", "d2", 100, 8_000, ALICE_O365))
            .unwrap(),
    );
    assert!(matches!(
        j.record_attempt(later[0].id, &attempt(AttemptResult::Done)),
        Err(JournalError::NotPending {
            state: TaskState::Scheduled,
            ..
        })
    ));
}

fn a_later_compliant_event_cancels_the_schedule_and_a_late_older_one_does_not(store: &dyn Store) {
    let j = store.open();
    let (_, scheduled, _) = recorded_parts(
        j.record_event(&grace("g1", "d1", 100, 5_000, ALICE))
            .unwrap(),
    );
    // Happened before the grace decision: changes nothing.
    let (_, _, cancelled) = recorded_parts(j.record_event(&compliant("c0", "d1", 50)).unwrap());
    assert_eq!(cancelled, 0);
    // Another device of the same user: its own business.
    let (_, _, cancelled) = recorded_parts(j.record_event(&compliant("c9", "d9", 200)).unwrap());
    assert_eq!(cancelled, 0);
    let (_, _, cancelled) = recorded_parts(j.record_event(&compliant("c1", "d1", 200)).unwrap());
    assert_eq!(cancelled, 2);
    assert!(j.promote_due(10_000).unwrap().is_empty());
    let status = j.status().unwrap();
    assert_eq!((status.tasks.scheduled, status.tasks.cancelled), (0, 2));
    assert_eq!(j.devices().unwrap()[0].due_ms, None);
    let conn_state = |id| j.task_state(id).unwrap();
    assert_eq!(conn_state(scheduled[0].id), Some(TaskState::Cancelled));
}

fn a_later_grace_keeps_the_earlier_due_and_a_late_grace_schedules_nothing(store: &dyn Store) {
    let j = store.open();
    let (_, first, _) = recorded_parts(
        j.record_event(&grace("g1", "d1", 100, 5_000, ALICE))
            .unwrap(),
    );
    let (_, second, _) = recorded_parts(
        j.record_event(&grace("g2", "d1", 200, 6_000, ALICE))
            .unwrap(),
    );
    assert_eq!(first, second);
    assert_eq!(j.next_due().unwrap(), Some(5_000));
    assert_eq!(j.devices().unwrap()[0].due_ms, Some(5_000));
    assert_eq!(j.status().unwrap().scheduled[0].events, ["g1", "g2"]);
    // Older than the device's latest decision: journaled, schedules nothing.
    let (_, late, _) = recorded_parts(
        j.record_event(&grace("g0", "d1", 50, 1_000, ALICE))
            .unwrap(),
    );
    assert!(late.is_empty());
    assert_eq!(j.next_due().unwrap(), Some(5_000));
    // After a compliant event the clock starts again.
    j.record_event(&compliant("c1", "d1", 300)).unwrap();
    let (_, third, _) = recorded_parts(
        j.record_event(&grace("g3", "d1", 400, 9_000, ALICE))
            .unwrap(),
    );
    assert_ne!(third, first);
    assert_eq!(j.next_due().unwrap(), Some(9_000));
}

fn a_later_revoke_makes_the_schedule_due_at_once_joining_pending_tasks(store: &dyn Store) {
    let j = store.open();
    // A pending Office 365 task for alice exists already (another device).
    let pending = new_tasks(j.record_event(&event("r0", ALICE_O365)).unwrap());
    let (_, scheduled, _) = recorded_parts(
        j.record_event(&grace("g1", "d1", 100, 5_000, ALICE))
            .unwrap(),
    );
    let revoke = on_device(event("r1", ALICE), "d1", 200, Access::Block);
    let (now, _, _) = recorded_parts(j.record_event(&revoke).unwrap());
    // The Office 365 revocation joined the pending task; Google's became pending.
    let ids: HashSet<i64> = now.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 2, "{now:?}");
    assert!(ids.contains(&pending[0].id));
    assert!(ids.contains(&scheduled[1].id));
    assert_eq!(j.next_due().unwrap(), None);
    let status = j.status().unwrap();
    assert_eq!((status.tasks.scheduled, status.tasks.pending), (0, 2));
    let o365 = status
        .pending
        .iter()
        .find(|t| t.id == pending[0].id)
        .unwrap();
    assert_eq!(o365.events, ["r0", "g1", "r1"]);
}

fn due_tasks_join_a_pending_task_for_the_same_revocation(store: &dyn Store) {
    let j = store.open();
    recorded_parts(
        j.record_event(&grace("g1", "d1", 100, 5_000, ALICE_O365))
            .unwrap(),
    );
    recorded_parts(
        j.record_event(&grace("g2", "d2", 100, 6_000, ALICE_O365))
            .unwrap(),
    );
    let pending = new_tasks(j.record_event(&event("r0", ALICE_O365)).unwrap());
    let due = j.promote_due(7_000).unwrap();
    assert_eq!(due, pending);
    let tasks = j.pending_tasks().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].events, ["r0", "g1", "g2"]);
}

fn report_only_and_dry_run_grace_decisions_schedule_nothing(store: &dyn Store) {
    let j = store.open();
    let report_only = NewEvent {
        enforced: false,
        ..grace("g1", "d1", 100, 5_000, ALICE)
    };
    assert!(
        recorded_parts(j.record_event(&report_only).unwrap())
            .1
            .is_empty()
    );
    assert!(
        recorded_parts(
            j.record_event(&dry(grace("g2", "d2", 100, 5_000, ALICE)))
                .unwrap()
        )
        .1
        .is_empty()
    );
    assert_eq!(j.next_due().unwrap(), None);
}

fn the_schedule_survives_reopening(store: &dyn Store) {
    {
        let j = store.open();
        j.record_event(&grace("g1", "d1", 100, 5_000, ALICE))
            .unwrap();
    }
    let j = store.open();
    assert_eq!(j.next_due().unwrap(), Some(5_000));
    assert_eq!(j.promote_due(5_000).unwrap().len(), 2);
}

fn a_device_keeps_its_latest_decision_by_event_time_across_reopening(store: &dyn Store) {
    {
        let j = store.open();
        j.record_event(&on_device(event("e1", ALICE), "d1", 200, Access::Block))
            .unwrap();
        // Arrives later, happened earlier: does not overturn e1.
        let late = NewEvent {
            outcome: Outcome::NoAction,
            ..on_device(event("e0", &[]), "d1", 100, Access::Allow)
        };
        j.record_event(&late).unwrap();
        // A dry run never moves the gate.
        j.record_event(&dry(on_device(event("e3", &[]), "d1", 900, Access::Allow)))
            .unwrap();
        j.record_event(&on_device(event("e4", &[]), "d2", 50, Access::Allow))
            .unwrap();
    }
    let devices = store.open().devices().unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0].device_id, "d1");
    assert_eq!(devices[0].event_id, "e1");
    assert_eq!(devices[0].access, Access::Block);
    assert_eq!(devices[0].outcome, Outcome::Revoke);
    assert_eq!(devices[0].upn.as_deref(), Some("alice@example.com"));
    assert_eq!(devices[1].event_id, "e4");
    // Same time, later arrival: the later one wins.
    let j = store.open();
    let same_time = NewEvent {
        outcome: Outcome::NoAction,
        ..on_device(event("e5", &[]), "d1", 200, Access::Allow)
    };
    j.record_event(&same_time).unwrap();
    let devices = j.devices().unwrap();
    assert_eq!(devices[0].event_id, "e5");
    assert_eq!(devices[0].access, Access::Allow);
}

fn announce<'a>(receiver: &'a str, jti: &'a str, device: &'a str) -> NewDelivery<'a> {
    NewDelivery {
        receiver,
        jti,
        user: "alice@example.com",
        device_id: device,
        event_ms: 100,
        reason: "why",
    }
}

fn deliveries_are_journaled_with_their_event_once_per_receiver_and_take_attempts(
    store: &dyn Store,
) {
    let j = store.open();
    let sets = [announce("rp-a", "j1", "d1"), announce("rp-b", "j2", "d1")];
    let revoke = NewEvent {
        deliveries: &sets,
        ..on_device(event("r1", ALICE), "d1", 100, Access::Block)
    };
    j.record_event(&revoke).unwrap();
    // A duplicate event journals nothing again; report_only journals no SET.
    j.record_event(&revoke).unwrap();
    let quiet_sets = [announce("rp-a", "j3", "d2")];
    let quiet = NewEvent {
        enforced: false,
        deliveries: &quiet_sets,
        ..on_device(event("r2", ALICE), "d2", 100, Access::Block)
    };
    j.record_event(&quiet).unwrap();
    let pending = j.pending_deliveries().unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(
        (pending[0].receiver.as_str(), pending[0].event_id.as_str()),
        ("rp-a", "r1")
    );
    let refused = Attempt {
        http_status: Some(400),
        error_code: Some("refused"),
        provider_code: Some("invalid_audience"),
        message: Some("not us"),
        ..attempt(AttemptResult::Failed)
    };
    let states = j
        .record_delivery_attempts(&[
            (pending[0].id, attempt(AttemptResult::Retry)),
            (pending[1].id, refused),
        ])
        .unwrap();
    assert_eq!(states, [TaskState::Pending, TaskState::Failed]);
    let status = j.status().unwrap();
    assert_eq!(
        (status.deliveries.pending, status.deliveries.failed),
        (1, 1)
    );
    assert_eq!(
        status.failed_deliveries[0].err.as_deref(),
        Some("invalid_audience")
    );
    assert!(matches!(
        j.record_delivery_attempts(&[(pending[1].id, attempt(AttemptResult::Done))]),
        Err(JournalError::DeliveryNotPending { .. })
    ));
}

fn a_grace_decisions_sets_wait_with_its_revocations(store: &dyn Store) {
    let j = store.open();
    let first = [announce("rp", "j1", "d1")];
    let second = [announce("rp", "j2", "d1")];
    j.record_event(&NewEvent {
        deliveries: &first,
        ..grace("g1", "d1", 100, 5_000, ALICE)
    })
    .unwrap();
    // A later grace keeps the first SET, due at the earlier time.
    j.record_event(&NewEvent {
        deliveries: &second,
        ..grace("g2", "d1", 200, 9_000, ALICE)
    })
    .unwrap();
    let other = [announce("rp", "j3", "d2")];
    j.record_event(&NewEvent {
        deliveries: &other,
        ..grace("g3", "d2", 100, 5_000, ALICE)
    })
    .unwrap();
    assert!(j.pending_deliveries().unwrap().is_empty());
    // d2 is fixed: its SET is cancelled with its revocations.
    j.record_event(&compliant("c2", "d2", 300)).unwrap();
    j.promote_due(5_000).unwrap();
    let due = j.pending_deliveries().unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].jti.as_str(), due[0].event_ms), ("j1", 5_000));
    assert_eq!(j.status().unwrap().deliveries.cancelled, 1);
}

fn streams_are_kept_replaced_and_deleted(store: &dyn Store) {
    {
        let j = store.open();
        j.put_stream("s1", r#"{"v":1}"#, 1).unwrap();
        j.put_stream("s1", r#"{"v":2}"#, 2).unwrap();
        j.put_stream("s2", r#"{"v":3}"#, 3).unwrap();
    }
    let j = store.open();
    assert_eq!(
        j.streams().unwrap(),
        [
            ("s1".to_owned(), r#"{"v":2}"#.to_owned()),
            ("s2".to_owned(), r#"{"v":3}"#.to_owned())
        ]
    );
    assert!(j.delete_stream("s1").unwrap());
    assert!(!j.delete_stream("s1").unwrap());
    assert_eq!(j.streams().unwrap().len(), 1);
}

fn failed(status: u16) -> Attempt<'static> {
    Attempt {
        http_status: Some(status),
        error_code: Some("user-not-found"),
        provider_code: Some("Request_ResourceNotFound"),
        message: Some("Resource 'ghost' does not exist"),
        ..attempt(AttemptResult::Failed)
    }
}

fn failed_tasks_are_listed_and_a_retry_makes_them_pending(store: &dyn Store) {
    let j = store.open();
    let task = new_tasks(j.record_event(&event("e1", ALICE_O365)).unwrap())[0].clone();
    assert_eq!(j.tasks(TaskState::Failed, None, 10).unwrap(), vec![]);
    assert_eq!(
        j.record_attempt(task.id, &failed(404)).unwrap(),
        TaskState::Failed
    );
    let listed = j.tasks(TaskState::Failed, None, 10).unwrap();
    assert_eq!(listed.len(), 1);
    let t = &listed[0];
    assert_eq!(
        (t.id, t.provider, t.subject.as_str()),
        (task.id, O365, "alice@example.com")
    );
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(t.http_status, Some(404));
    assert_eq!(t.error_code.as_deref(), Some("user-not-found"));
    assert_eq!(t.provider_code.as_deref(), Some("Request_ResourceNotFound"));
    assert_eq!(
        t.message.as_deref(),
        Some("Resource 'ghost' does not exist")
    );
    assert_eq!((t.attempts, t.updated_ms), (1, 2_000));
    assert_eq!(t.events, vec!["e1".to_owned()]);

    assert_eq!(
        j.retry_failed(task.id, 3_000).unwrap(),
        Retried::Pending {
            task: task.clone(),
            joined: false
        }
    );
    assert_eq!(j.task_state(task.id).unwrap(), Some(TaskState::Pending));
    assert_eq!(j.tasks(TaskState::Failed, None, 10).unwrap(), vec![]);
    let pending = j.tasks(TaskState::Pending, None, 10).unwrap();
    assert_eq!((pending[0].id, pending[0].updated_ms), (task.id, 3_000));
    assert_eq!(j.pending_tasks().unwrap()[0].events, vec!["e1".to_owned()]);
    // Only a failed task is retried; an unknown one is said to be unknown.
    assert_eq!(
        j.retry_failed(task.id, 4_000).unwrap(),
        Retried::NotFailed(TaskState::Pending)
    );
    assert_eq!(
        j.retry_failed(task.id + 100, 4_000).unwrap(),
        Retried::Unknown
    );
    // It takes attempts again, and a second pending task for it cannot appear.
    assert_eq!(
        j.record_attempt(task.id, &attempt(AttemptResult::Done))
            .unwrap(),
        TaskState::Done
    );
    assert_eq!(j.tasks(TaskState::Done, None, 10).unwrap()[0].attempts, 2);
}

fn a_retried_task_joins_the_pending_task_for_the_same_revocation(store: &dyn Store) {
    let j = store.open();
    let first = new_tasks(j.record_event(&event("e1", ALICE_O365)).unwrap())[0].clone();
    j.record_attempt(first.id, &failed(404)).unwrap();
    // A later event asks again: a new pending task, since the first is failed.
    let second = new_tasks(j.record_event(&event("e2", ALICE_O365)).unwrap())[0].clone();
    assert_ne!(first.id, second.id);
    assert_eq!(
        j.retry_failed(first.id, 3_000).unwrap(),
        Retried::Pending {
            task: second.clone(),
            joined: true
        }
    );
    assert_eq!(j.task_state(first.id).unwrap(), None);
    let pending = j.pending_tasks().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, second.id);
    assert_eq!(pending[0].events, vec!["e2".to_owned(), "e1".to_owned()]);
    // The failed attempt is kept, under the task that now carries the revocation.
    assert_eq!(pending[0].attempts, 1);
    let counts = j.task_counts().unwrap();
    assert_eq!((counts.pending, counts.failed), (1, 0));
}

fn tasks_are_listed_by_state_newest_first_in_pages(store: &dyn Store) {
    let j = store.open();
    let mut ids = Vec::new();
    for (i, user) in ["a@example.com", "b@example.com", "c@example.com"]
        .iter()
        .enumerate()
    {
        let id = format!("e{i}");
        let revocation = [(O365, *user)];
        ids.push(new_tasks(j.record_event(&event(&id, &revocation)).unwrap())[0].id);
    }
    j.record_event(&grace("g1", "d1", 100, 5_000, ALICE_O365))
        .unwrap();
    let page: Vec<_> = j.tasks(TaskState::Pending, None, 2).unwrap();
    assert_eq!(
        page.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    let next = j.tasks(TaskState::Pending, Some(ids[1]), 2).unwrap();
    assert_eq!(next.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[0]]);
    let scheduled = j.tasks(TaskState::Scheduled, None, 10).unwrap();
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].due_ms, Some(5_000));
    assert_eq!(scheduled[0].device_id.as_deref(), Some("d1"));
    assert_eq!(scheduled[0].events, vec!["g1".to_owned()]);
}

/// An event of `upn`'s device `device` with its body.
fn with_body<'a>(e: NewEvent<'a>, device: &'a str, upn: &'a str, body: &'a str) -> NewEvent<'a> {
    NewEvent {
        device: Some(DeviceFacts {
            device_id: device,
            upn: Some(upn),
            email: Some("shared@example.com"),
            time_ms: 100,
            access: Access::Block,
        }),
        body: Some(body),
        ..e
    }
}

fn events_are_listed_newest_first_and_found_by_user_or_device(store: &dyn Store) {
    let j = store.open();
    j.record_event(&with_body(
        event("e1", ALICE),
        "d1",
        "alice@example.com",
        r#"{"id":"e1"}"#,
    ))
    .unwrap();
    j.record_event(&with_body(
        event("e2", &[]),
        "d2",
        "bob@example.com",
        r#"{"id":"e2"}"#,
    ))
    .unwrap();
    j.record_event(&with_body(
        event("e3", &[]),
        "d1",
        "alice@example.com",
        r#"{"id":"e3"}"#,
    ))
    .unwrap();
    j.record_event(&dry(with_body(
        event("dry", &[]),
        "d1",
        "alice@example.com",
        "{}",
    )))
    .unwrap();
    j.record_event(&event("bare", &[])).unwrap();
    let query = |user: Option<&str>, device: Option<&str>, before, limit| EventQuery {
        before,
        limit,
        user: user.map(str::to_owned),
        device: device.map(str::to_owned),
    };
    let ids = |q: EventQuery| -> Vec<String> {
        j.events(&q).unwrap().into_iter().map(|e| e.id).collect()
    };
    assert_eq!(ids(query(None, None, None, 10)), ["bare", "e3", "e2", "e1"]);
    assert_eq!(
        ids(query(Some("ALICE@example.com"), None, None, 10)),
        ["e3", "e1"]
    );
    assert_eq!(
        ids(query(Some("shared@example.com"), None, None, 10)),
        ["e3", "e2", "e1"]
    );
    assert_eq!(ids(query(None, Some("d2"), None, 10)), ["e2"]);
    assert_eq!(
        ids(query(Some("bob@example.com"), Some("d1"), None, 10)),
        Vec::<String>::new()
    );
    // Paging: a cursor and a limit.
    let first = j.events(&query(None, None, None, 2)).unwrap();
    assert_eq!(first.len(), 2);
    let rest = ids(query(None, None, Some(first[1].seq), 10));
    assert_eq!(rest, ["e2", "e1"]);
    let e1 = j
        .events(&query(None, Some("d1"), None, 10))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(e1.body.as_deref(), Some(r#"{"id":"e1"}"#));
    assert_eq!(e1.upn.as_deref(), Some("alice@example.com"));
    assert_eq!(e1.email.as_deref(), Some("shared@example.com"));
    assert_eq!(
        (e1.time_ms, e1.outcome, e1.enforced),
        (Some(100), Outcome::Revoke, true)
    );
    assert_eq!(e1.decision, r#"{"outcome":"revoke"}"#);
    // A duplicate id keeps the first body.
    j.record_event(&with_body(event("e1", &[]), "d9", "x@example.com", "{}"))
        .unwrap();
    assert_eq!(ids(query(None, Some("d9"), None, 10)), Vec::<String>::new());
}

fn claims_are_exclusive_until_the_lease_ends(store: &dyn Store) {
    let j = store.open();
    let tasks = new_tasks(j.record_event(&event("e1", ALICE)).unwrap());
    let (a, b) = (tasks[0].id, tasks[1].id);
    // Answers in the order asked, whatever the ids' order.
    assert_eq!(
        j.claim_tasks(&[b, 999, a], "p1", 1_000, 11_000).unwrap(),
        [Claim::Claimed, Claim::Unknown, Claim::Claimed]
    );
    // Another process waits for the lease; the holder renews it.
    assert_eq!(j.claim(a, "p2", 5_000, 15_000).unwrap(), Claim::Busy);
    assert_eq!(j.claim(a, "p1", 5_000, 15_000).unwrap(), Claim::Claimed);
    assert_eq!(j.claim(a, "p2", 12_000, 22_000).unwrap(), Claim::Busy);
    // A lease that ended is taken over: its holder may have died.
    assert_eq!(j.claim(a, "p2", 15_001, 25_000).unwrap(), Claim::Claimed);
    assert_eq!(j.claim(a, "p1", 16_000, 26_000).unwrap(), Claim::Busy);
    // A released task is free at once.
    j.release(b, "p2").unwrap(); // not p2's: nothing changes
    assert_eq!(j.claim(b, "p2", 2_000, 12_000).unwrap(), Claim::Busy);
    j.release(b, "p1").unwrap();
    assert_eq!(j.claim(b, "p2", 2_000, 12_000).unwrap(), Claim::Claimed);
    // A settled task is not claimed; its state is told.
    j.record_attempt(a, &attempt(AttemptResult::Done)).unwrap();
    assert_eq!(
        j.claim(a, "p2", 30_000, 40_000).unwrap(),
        Claim::Settled(TaskState::Done)
    );
    // A large group, newest first, with a repeat and the busy and settled ones.
    let users: Vec<String> = (0..100).map(|i| format!("u{i}@example.com")).collect();
    let mut ids: Vec<i64> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let revocation = [(O365, u.as_str())];
            new_tasks(
                j.record_event(&event(&format!("big{i}"), &revocation))
                    .unwrap(),
            )[0]
            .id
        })
        .collect();
    ids.reverse();
    ids.extend([ids[5], b, a]);
    assert_eq!(j.claim(b, "p2", 45_000, 55_000).unwrap(), Claim::Claimed);
    let claims = j.claim_tasks(&ids, "p3", 50_000, 60_000).unwrap();
    assert_eq!(claims.len(), 103);
    assert!(
        claims[..101].iter().all(|c| *c == Claim::Claimed),
        "{claims:?}"
    );
    assert_eq!(
        claims[101..],
        [Claim::Busy, Claim::Settled(TaskState::Done)]
    );
}

/// A set whose events push many SETs each stays within each database's
/// limit on a statement's parameters (SQLite's is 32,766): 64 events with
/// 300 receivers each are 19,200 SETs, 153,600 values.
fn a_set_with_many_sets_to_push_fits_the_databases_limits(store: &dyn Store) {
    let j = store.open();
    let ids: Vec<String> = (0..64).map(|i| format!("e{i}")).collect();
    let devices: Vec<String> = (0..64).map(|i| format!("d{i}")).collect();
    let receivers: Vec<String> = (0..300).map(|k| format!("rx-{k}")).collect();
    let jtis: Vec<Vec<String>> = (0..64)
        .map(|i| (0..300).map(|k| format!("jti-{i}-{k}")).collect())
        .collect();
    let deliveries: Vec<Vec<NewDelivery<'_>>> = (0..64)
        .map(|i| {
            (0..300)
                .map(|k| announce(&receivers[k], &jtis[i][k], &devices[i]))
                .collect()
        })
        .collect();
    let events: Vec<NewEvent<'_>> = (0..64)
        .map(|i| NewEvent {
            deliveries: &deliveries[i],
            ..on_device(event(&ids[i], ALICE_O365), &devices[i], 100, Access::Block)
        })
        .collect();
    let recorded = j.record_events(&events).unwrap();
    assert!(recorded.iter().all(|r| matches!(r, Recorded::New { .. })));
    assert_eq!(j.pending_deliveries().unwrap().len(), 64 * 300);
}

/// What a journal holds, task and delivery ids left out (PostgreSQL's
/// sequences skip numbers on conflicts, differently for one statement per
/// event and one per set).
fn contents(j: &dyn Journal) -> Vec<String> {
    let mut out = Vec::new();
    for state in [
        TaskState::Scheduled,
        TaskState::Pending,
        TaskState::Done,
        TaskState::Failed,
        TaskState::Cancelled,
    ] {
        let mut tasks = j.tasks(state, None, 10_000).unwrap();
        tasks.sort_by_key(|t| t.id);
        out.extend(tasks.into_iter().map(|t| {
            format!(
                "task {:?} {} {:?} {:?} {:?} {} {:?}",
                t.provider, t.subject, t.state, t.device_id, t.due_ms, t.updated_ms, t.events
            )
        }));
    }
    out.extend(j.devices().unwrap().iter().map(|d| format!("{d:?}")));
    let all = EventQuery {
        before: None,
        limit: 10_000,
        user: None,
        device: None,
    };
    out.extend(j.events(&all).unwrap().iter().map(|e| format!("{e:?}")));
    out.extend(j.pending_deliveries().unwrap().into_iter().map(|d| {
        format!(
            "delivery {} {} {} {} {} {} {}",
            d.receiver, d.event_id, d.jti, d.user, d.device_id, d.event_ms, d.reason
        )
    }));
    out.push(format!("next due {:?}", j.next_due().unwrap()));
    out
}

/// A recorded event with its tasks by revocation, not by id.
fn comparable(r: Recorded) -> String {
    match r {
        Recorded::Duplicate => "duplicate".into(),
        Recorded::New {
            seq,
            tasks,
            scheduled,
            cancelled,
        } => {
            let by_name = |ts: Vec<TaskRef>| -> Vec<String> {
                ts.iter()
                    .map(|t| format!("{:?} {}", t.provider, t.subject))
                    .collect()
            };
            format!(
                "new {seq} {:?} {:?} {}",
                by_name(tasks),
                by_name(scheduled),
                cancelled.len()
            )
        }
    }
}

/// Events recorded in batches (whose runs of unrelated events are
/// recorded as sets) leave what recording them one by one leaves: 600
/// events drawn from few ids, devices and users, of every outcome, late
/// and on time, dry runs, report-only, with SETs and bodies.
fn a_batch_records_what_one_by_one_records(store: &dyn Store, other: &dyn Store) {
    let (one_by_one, batched) = (store.open(), other.open());
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let ids: Vec<String> = (0..400).map(|i| format!("e{i}")).collect();
    let devices: Vec<String> = (0..16).map(|i| format!("d{i}")).collect();
    let users: Vec<String> = (0..12).map(|i| format!("u{i}@example.com")).collect();
    let revocations: Vec<Vec<(Provider, &str)>> = users
        .iter()
        .flat_map(|u| {
            [
                vec![(O365, u.as_str())],
                vec![(O365, u.as_str()), (GOOGLE, u.as_str())],
                vec![(GOOGLE, u.as_str()), (GOOGLE, u.as_str())],
            ]
        })
        .collect();
    let jtis: Vec<String> = (0..600).map(|i| format!("jti-{i}")).collect();
    let deliveries: Vec<[NewDelivery<'_>; 1]> = (0..600)
        .map(|i| [announce("rx", &jtis[i], &devices[i % devices.len()])])
        .collect();
    let events: Vec<NewEvent<'_>> = (0..600)
        .map(|i| {
            let device = &devices[next(16) as usize];
            let time = i64::try_from(next(5_000)).unwrap();
            let mut e = on_device(
                event(&ids[next(400) as usize], &revocations[next(36) as usize]),
                device,
                time,
                Access::Block,
            );
            e.received_ms = 10_000 + i64::try_from(i).unwrap();
            match next(20) {
                0..=11 => {}
                12..=16 => {
                    e.outcome = Outcome::NoAction;
                    e.revocations = &[];
                    e.device = e.device.map(|d| DeviceFacts {
                        access: Access::Allow,
                        ..d
                    });
                }
                _ => {
                    e.outcome = Outcome::Grace;
                    e.due_ms = Some(time + 1_000 + i64::try_from(next(3_000)).unwrap());
                }
            }
            if next(10) == 0 {
                e.dry_run = true;
            }
            if next(10) == 0 {
                e.enforced = false;
            }
            if next(4) == 0 {
                e.deliveries = &deliveries[i];
            }
            if next(2) == 0 {
                e.body = Some(r#"{"id":"x"}"#);
            }
            if next(10) == 0 {
                e.device = None;
            }
            e
        })
        .collect();
    let mut expected = Vec::new();
    for e in &events {
        expected.push(comparable(one_by_one.record_event(e).unwrap()));
    }
    let mut got = Vec::new();
    let mut rest = &events[..];
    while !rest.is_empty() {
        let n = (1 + next(150) as usize).min(rest.len());
        let (batch, tail) = rest.split_at(n);
        got.extend(
            batched
                .record_events(batch)
                .unwrap()
                .into_iter()
                .map(comparable),
        );
        rest = tail;
    }
    for (i, (want, got)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(want, got, "event {i}: {:?}", events[i].id);
    }
    let (want, got) = (contents(&*one_by_one), contents(&*batched));
    assert_eq!(want.len(), got.len());
    for (want, got) in want.iter().zip(&got) {
        assert_eq!(want, got);
    }
    // The sets did record several events at once.
    assert!(want.iter().filter(|l| l.starts_with("task")).count() > 20);
}

/// Where a journal lives: each behaviour test runs on both backends.
trait Store {
    /// Opens (or reopens) the journal.
    fn open(&self) -> Box<dyn Journal>;
    /// Runs a statement on the database directly, around the journal.
    fn execute(&self, sql: &str) -> Result<(), String>;
    /// The one number `sql` selects, read directly.
    fn number(&self, sql: &str) -> i64;
}

/// A SQLite file in a temp dir.
struct SqliteStore {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteStore {
    fn new() -> Self {
        let (_dir, path) = temp();
        Self { _dir, path }
    }
}

impl Store for SqliteStore {
    fn open(&self) -> Box<dyn Journal> {
        Box::new(open(&self.path))
    }

    fn execute(&self, sql: &str) -> Result<(), String> {
        raw(&self.path)
            .execute(sql, [])
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn number(&self, sql: &str) -> i64 {
        raw(&self.path).query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

/// A fresh database in this test binary's throwaway PostgreSQL cluster.
struct PostgresStore {
    cluster: &'static fake_providers::postgres::TempPostgres,
    url: String,
}

impl PostgresStore {
    fn new() -> Self {
        let cluster = fake_providers::postgres::TempPostgres::shared().unwrap();
        let url = cluster.fresh_database().unwrap();
        Self { cluster, url }
    }

    fn database(&self) -> &str {
        let path = self.url.rsplit('/').next().unwrap();
        path.split('?').next().unwrap()
    }
}

impl Store for PostgresStore {
    fn open(&self) -> Box<dyn Journal> {
        Box::new(PostgresJournal::open(&self.url).unwrap())
    }

    fn execute(&self, sql: &str) -> Result<(), String> {
        self.cluster
            .psql(self.database(), sql)
            .map(drop)
            .map_err(|e| format!("{e:#}"))
    }

    fn number(&self, sql: &str) -> i64 {
        let out = self.cluster.psql(self.database(), sql).unwrap();
        out.trim().parse().unwrap()
    }
}

/// PostgreSQL claims a group of tasks with one call of `srs_claim`, and
/// settles a group of attempts, each on its own task, with one call of
/// `srs_settle` (one round trip each); the other tests show they do what
/// the general path does, this one that they are the path taken.
#[test]
fn postgres_claims_and_settles_a_group_with_one_call_each() {
    let store = PostgresStore::new();
    store
        .execute(&format!(
            "ALTER DATABASE {} SET track_functions = 'pl'",
            store.database()
        ))
        .unwrap();
    let j = store.open();
    let tasks = new_tasks(j.record_event(&event("e1", ALICE)).unwrap());
    let ids: Vec<TaskId> = tasks.iter().map(|t| t.id).collect();
    assert_eq!(
        j.claim_tasks(&ids, "me", 1_000, 2_000).unwrap(),
        [Claim::Claimed, Claim::Claimed]
    );
    let group: Vec<_> = ids
        .iter()
        .map(|&id| (id, attempt(AttemptResult::Done)))
        .collect();
    j.record_attempts(&group).unwrap();
    assert_eq!(j.task_counts().unwrap().done, 2);
    // A backend's counts reach the statistics when it ends.
    drop(j);
    let calls = |function: &str| {
        store.number(&format!(
            "SELECT COALESCE(sum(calls), 0) FROM pg_stat_user_functions
             WHERE funcname = '{function}'"
        ))
    };
    let start = std::time::Instant::now();
    while calls("srs_settle") == 0 && start.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!((calls("srs_claim"), calls("srs_settle")), (1, 1));
}

/// One `#[test]` per backend for each behaviour test.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&super::SqliteStore::new()); })*
            #[test]
            fn a_batch_records_what_one_by_one_records() {
                super::a_batch_records_what_one_by_one_records(
                    &super::SqliteStore::new(),
                    &super::SqliteStore::new(),
                );
            }
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(&super::PostgresStore::new()); })*
            #[test]
            fn a_batch_records_what_one_by_one_records() {
                super::a_batch_records_what_one_by_one_records(
                    &super::PostgresStore::new(),
                    &super::PostgresStore::new(),
                );
            }
        }
    };
}

on_both_backends!(
    a_duplicate_event_id_creates_nothing,
    a_real_run_replaces_a_dry_run_row,
    a_dry_run_after_a_real_run_is_a_duplicate,
    pending_tasks_coalesce_until_done,
    the_same_revocation_twice_in_one_decision_is_one_task,
    a_failed_attempt_ends_the_task_and_shows_in_status,
    a_done_attempt_ends_the_task,
    pending_tasks_survive_a_crash,
    a_batch_of_a_thousand_events_is_one_call,
    status_counts_tasks_by_state,
    long_messages_are_clipped_and_in_memory_works,
    a_grace_decision_schedules_its_revocations_until_due,
    a_later_compliant_event_cancels_the_schedule_and_a_late_older_one_does_not,
    a_later_grace_keeps_the_earlier_due_and_a_late_grace_schedules_nothing,
    a_later_revoke_makes_the_schedule_due_at_once_joining_pending_tasks,
    due_tasks_join_a_pending_task_for_the_same_revocation,
    report_only_and_dry_run_grace_decisions_schedule_nothing,
    the_schedule_survives_reopening,
    a_device_keeps_its_latest_decision_by_event_time_across_reopening,
    deliveries_are_journaled_with_their_event_once_per_receiver_and_take_attempts,
    a_grace_decisions_sets_wait_with_its_revocations,
    streams_are_kept_replaced_and_deleted,
    failed_tasks_are_listed_and_a_retry_makes_them_pending,
    a_retried_task_joins_the_pending_task_for_the_same_revocation,
    tasks_are_listed_by_state_newest_first_in_pages,
    retry_keeps_the_task_pending_and_counts_attempts,
    attempts_on_finished_or_unknown_tasks_are_refused,
    report_only_and_no_action_events_create_no_tasks,
    an_unknown_outcome_is_refused,
    a_set_with_many_sets_to_push_fits_the_databases_limits,
    claims_are_exclusive_until_the_lease_ends,
    events_are_listed_newest_first_and_found_by_user_or_device,
);
