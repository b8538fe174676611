//! Several `srs serve` processes on one PostgreSQL journal (SPEC §12),
//! against the loopback providers: every revocation executed once whichever
//! process took the push, a SIGKILLed process's tasks finished by the others
//! after its lease, the same gate verdict from every process, one decision
//! for an event id pushed to two processes at once, and a grace period
//! started through one process executed by another.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use fake_providers::postgres::TempPostgres;
use support::{Serve, WAIT, World, event, now_rfc3339, wait_until};

fn cluster_world(policy: Option<String>) -> (TempPostgres, String, World) {
    let cluster = TempPostgres::start().unwrap();
    let url = cluster.create_database("srs_several").unwrap();
    let world = World::new("gate_refresh_ms = 100\n");
    if let Some(policy) = policy {
        std::fs::write(world.path("policy.json"), policy).unwrap();
    }
    (cluster, url, world)
}

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i}@example.com")).collect()
}

#[test]
fn three_processes_revoke_each_user_once_and_agree_at_the_gate() {
    let (_cluster, url, world) = cluster_world(None);
    let serves: Vec<Serve> = (0..3).map(|_| world.serve_with_state(&url)).collect();
    // A slow Office 365 keeps calls in flight when one process is killed.
    world.o365.set_latency(Duration::from_millis(300));
    let users = users(60);
    for (i, user) in users.iter().enumerate() {
        let line = event(
            &format!("e{i}"),
            user,
            &format!("d{i}"),
            "2026-11-27T10:00:00Z",
            "jailbreak",
        );
        let r = serves[i % 3].push(&line, "application/json");
        assert_eq!(r.status, 202, "{}", r.body);
    }
    // Killed in the middle of the burst: its claims lapse, the others finish.
    let mut serves = serves.into_iter();
    let killed = serves.next().unwrap();
    killed.kill();
    let serves: Vec<Serve> = serves.collect();
    wait_until(|| world.o365.applied_total() >= 60 && world.google.applied_total() >= 60);
    wait_until(|| {
        let s = serves[0].admin("GET", "/v1/status", "").json();
        s["tasks"]["pending"] == 0 && s["tasks"]["done"] == 120
    });
    // Every revocation executed; repeated at most for the calls the killed
    // process had in flight or answered but not journaled: `max_concurrency`
    // (4) and 16 × `max_concurrency` (64) per provider.
    for user in &users {
        assert!(world.google.applied(user) >= 1, "google {user}");
        assert!(world.o365.applied(user) >= 1, "office365 {user}");
    }
    for (provider, total) in [
        ("office365", world.o365.applied_total()),
        ("google_workspace", world.google.applied_total()),
    ] {
        assert!(total - 60 <= 68, "{provider}: {} repeats", total - 60);
    }
    // Every process, and one started later, gives the same verdicts.
    let late = world.serve_with_state(&url);
    let fixed = event("f0", &users[0], "d0", "2026-11-27T11:00:00Z", "ok");
    assert_eq!(serves[1].push(&fixed, "application/json").status, 202);
    for serve in serves.iter().chain([&late]) {
        wait_until(|| serve.check(&users[0], None).status == 204);
        for user in &users[1..5] {
            assert_eq!(serve.check(user, None).status, 403, "{user}");
        }
    }
}

#[test]
fn one_event_pushed_to_two_processes_at_once_is_decided_once() {
    let (_cluster, url, world) = cluster_world(None);
    let a = world.serve_with_state(&url);
    let b = world.serve_with_state(&url);
    let line = event(
        "same",
        "ann@example.com",
        "d1",
        "2026-11-27T10:00:00Z",
        "jailbreak",
    );
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.push(&line, "application/json"));
        let tb = s.spawn(|| b.push(&line, "application/json"));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let duplicates: BTreeSet<bool> = [&ra, &rb]
        .iter()
        .map(|r| r.json()["results"][0]["duplicate"] == true)
        .collect();
    assert_eq!(
        duplicates,
        BTreeSet::from([false, true]),
        "{} {}",
        ra.body,
        rb.body
    );
    assert!(world.o365.wait_for_applied(1, WAIT));
    assert!(world.google.wait_for_applied(1, WAIT));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(world.o365.applied("ann@example.com"), 1);
    assert_eq!(world.google.applied("ann@example.com"), 1);
}

#[test]
fn a_grace_period_started_through_one_process_is_executed_by_another() {
    let (_cluster, url, world) = cluster_world(Some(support::grace_policy(2)));
    let a = world.serve_with_state(&url);
    let b = world.serve_with_state(&url);
    let (now, _) = now_rfc3339();
    let r = a.push(
        &event("g1", "bea@example.com", "d1", &now, "jailbreak"),
        "application/json",
    );
    assert_eq!(r.json()["results"][0]["outcome"], "grace");
    a.kill();
    assert!(world.o365.wait_for_applied(1, WAIT));
    assert!(world.google.wait_for_applied(1, WAIT));
    wait_until(|| b.check("bea@example.com", None).status == 403);
}

#[test]
fn a_postgres_restart_loses_nothing_acknowledged() {
    let cluster = TempPostgres::start().unwrap();
    let url = cluster.create_database("srs_restart").unwrap();
    let world = World::new("");
    let serve = world.serve_with_state(&url);
    let first = event(
        "r1",
        "cy@example.com",
        "d1",
        "2026-11-27T10:00:00Z",
        "jailbreak",
    );
    assert_eq!(serve.push(&first, "application/json").status, 202);
    cluster.restart().unwrap();
    // The pool drops the broken connections and makes new ones.
    let second = event(
        "r2",
        "dee@example.com",
        "d2",
        "2026-11-27T10:00:00Z",
        "jailbreak",
    );
    let mut accepted = false;
    for _ in 0..50 {
        let r = serve.push(&second, "application/json");
        if r.status == 202 {
            accepted = true;
            break;
        }
        // Refused while the server came back: nothing was acknowledged.
        assert_eq!(r.status, 500, "{}", r.body);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(accepted);
    assert!(world.o365.wait_for_applied(2, WAIT));
    let status = serve.admin("GET", "/v1/status", "").json();
    assert_eq!(status["events"], 2, "{status}");
    drop(serve);
    let again = world.serve_with_state(&url);
    assert_eq!(again.check("cy@example.com", None).status, 403);
    assert_eq!(again.check("dee@example.com", None).status, 403);
}
