//! The grace period in `srs serve` (SPEC §4 step 3a, §10), through the real
//! binary against loopback providers, with a grace of a few seconds: a
//! scheduled revocation is called once, after `due` and not before; a
//! compliant event before `due` cancels it; the gate allows during the grace
//! period and blocks after it; a restart keeps the schedule.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

mod support;

use std::time::{Duration, SystemTime};

use support::{Serve, WAIT, World, event, grace_policy, now_rfc3339};

const GRACE: u32 = 3;
const USER: &str = "alice@example.com";

fn world() -> World {
    let world = World::new("");
    std::fs::write(world.path("policy.json"), grace_policy(GRACE)).unwrap();
    world
}

/// Pushes a jailbroken event for `USER`'s device `d1` at the current second;
/// returns when it falls due (unix ms).
fn push_jailbreak(serve: &Serve, id: &str) -> i64 {
    let (time, ms) = now_rfc3339();
    let r = serve.push(
        &event(id, USER, "d1", &time, "jailbreak"),
        "application/json",
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["results"][0]["outcome"], "grace");
    ms + i64::from(GRACE) * 1000
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Sleeps until `ms` minus `margin_ms` (unix ms).
fn sleep_until(ms: i64, margin_ms: i64) {
    let left = ms - margin_ms - now_ms();
    if left > 0 {
        std::thread::sleep(Duration::from_millis(u64::try_from(left).unwrap()));
    }
}

fn status(serve: &Serve) -> serde_json::Value {
    serve.admin("GET", "/v1/status", "").json()
}

#[test]
fn a_scheduled_revocation_is_called_once_after_due_and_the_gate_blocks_then() {
    let world = world();
    let serve = world.serve();
    let due = push_jailbreak(&serve, "e1");
    // During grace: allowed, nothing called, the tasks scheduled.
    assert_eq!(serve.check(USER, None).status, 204);
    let s = status(&serve);
    assert_eq!(s["tasks"]["scheduled"], 2, "{s}");
    assert_eq!(s["scheduled"][0]["events"][0], "e1");
    sleep_until(due, 400);
    assert_eq!(serve.check(USER, Some("d1")).status, 204);
    assert_eq!(world.o365.applied_total() + world.google.applied_total(), 0);
    // After due: blocked, and revoked once at each provider, soon.
    sleep_until(due, 0);
    assert_eq!(serve.check(USER, None).status, 403);
    let blocked = serve.check(USER, Some("d1")).json();
    assert_eq!(blocked["outcome"], "grace");
    assert_eq!(
        blocked["due"].as_str(),
        policy_core::format_utc(due / 1000).as_deref()
    );
    assert!(world.o365.wait_for_applied(1, WAIT));
    assert!(world.google.wait_for_applied(1, WAIT));
    let late_by = now_ms() - due;
    assert!(late_by < 10_000, "called {late_by} ms after due");
    std::thread::sleep(Duration::from_millis(1_000));
    assert_eq!(world.o365.applied(USER), 1);
    assert_eq!(world.google.applied(USER), 1);
    support::wait_until(|| status(&serve)["tasks"]["done"] == 2);
    assert_eq!(status(&serve)["tasks"]["scheduled"], 0);
}

#[test]
fn a_compliant_event_before_due_cancels_the_revocation() {
    let world = world();
    let serve = world.serve();
    let due = push_jailbreak(&serve, "e1");
    let (time, _) = now_rfc3339();
    let r = serve.push(&event("e2", USER, "d1", &time, "ok"), "application/json");
    assert_eq!(r.json()["results"][0]["outcome"], "no_action");
    sleep_until(due, -1_500);
    assert_eq!(world.o365.applied_total() + world.google.applied_total(), 0);
    assert_eq!(serve.check(USER, None).status, 204);
    let s = status(&serve);
    assert_eq!(s["tasks"]["cancelled"], 2, "{s}");
    assert_eq!(s["tasks"]["scheduled"], 0, "{s}");
}

#[test]
fn a_restart_during_grace_keeps_the_schedule() {
    let world = world();
    let serve = world.serve();
    let due = push_jailbreak(&serve, "e1");
    // Killed outright: the schedule is in the journal, not in memory.
    serve.kill();
    let serve = world.serve();
    assert_eq!(serve.check(USER, None).status, 204);
    sleep_until(due, 400);
    assert_eq!(world.o365.applied_total() + world.google.applied_total(), 0);
    sleep_until(due, 0);
    assert_eq!(serve.check(USER, None).status, 403);
    assert!(world.o365.wait_for_applied(1, WAIT));
    assert!(world.google.wait_for_applied(1, WAIT));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(world.o365.applied(USER), 1);
    assert_eq!(world.google.applied(USER), 1);
}
