//! The admin console (`/console/`) in Debian's Chromium, driven by
//! playwright-core as the playground's test is: the real `srs serve` with the
//! loopback providers and a few dozen pushed events (grace periods,
//! revocations, one refused with a 404, compliant and non-blocking ones); the
//! browser part is `wasm-plugin/js/e2e/console.mjs`, given the service's
//! address, its tokens and the what-if answers this test computes from the
//! events it pushed. Screenshots go to `target/browser-test/`.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use support::{ADMIN, INTAKE, World, grace_policy, now_rfc3339, wait_until};

/// An event for `user`'s device in `state`: `jailbreak` (a blocking
/// violation), `nag` (only a non-blocking one) or compliant.
fn event(id: &str, user: &str, device: &str, time: &str, state: &str, kind: &str) -> String {
    let compliance = match kind {
        "jailbreak" => json!({"compliant": false, "violations": [{"policy": "jailbreak"}]}),
        "nag" => json!({"compliant": false, "violations": [{"policy": "nag"}]}),
        _ => json!({"compliant": true}),
    };
    json!({"id": id, "time": time, "device": {"id": device, "state": state, "platform": "ios"},
           "user": {"upn": user}, "compliance": compliance})
    .to_string()
}

fn users(prefix: &str, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| format!("{prefix}{i}@example.com"))
        .collect()
}

#[test]
fn the_console_in_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let js = root.join("wasm-plugin/js");
    assert!(
        js.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci` in wasm-plugin/js (scripts/test does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (scripts/test does)"
    );

    let world = World::new("");
    world.o365.unknown_user("ghost@example.com");
    // Blocking actions wait an hour; a device state revokes at once.
    std::fs::write(world.path("policy.json"), grace_policy(3_600)).unwrap();
    let serve = world.serve();

    let (now, now_ms) = now_rfc3339();
    let earlier = policy_core::format_utc(now_ms / 1000 - 60).unwrap();
    let grace = users("grace", 6);
    let quarantined = users("quarantined", 4);
    let nag = users("nag", 8);
    let compliant = users("ok", 10);
    let mut lines = Vec::new();
    let mut push = |user: &str, state: &str, kind: &str, time: &str| {
        let n = lines.len() + 1;
        lines.push(event(
            &format!("evt-{n:03}"),
            user,
            &format!("dev-{user}"),
            time,
            state,
            kind,
        ));
    };
    for user in &grace {
        push(user, "active", "jailbreak", &now);
    }
    for user in &quarantined {
        push(user, "quarantined", "compliant", &now);
    }
    push("ghost@example.com", "retired", "compliant", &now);
    for user in &nag {
        push(user, "active", "nag", &now);
    }
    for user in &compliant {
        push(user, "active", "compliant", &now);
    }
    // Alice: a grace period, then compliant again, which cancels it.
    push("alice@example.com", "active", "jailbreak", &earlier);
    push("alice@example.com", "active", "compliant", &now);
    let response = serve.push(&lines.join("\n"), "application/x-ndjson");
    assert_eq!(response.status, 202, "{}", response.body);
    let count = lines.len();

    // Settled: the revocations ran; only ghost's Office 365 one failed.
    wait_until(|| {
        let status = serve.admin("GET", "/v1/status", "").json();
        status["tasks"]["pending"] == 0 && status["tasks"]["failed"] == 1
    });
    let refused = || world.o365.revoke_requests() - world.o365.applied_total();
    assert_eq!(refused(), 1);

    // What the what-if must list, from the events above: under report_only
    // no one who was revoked (now or after a grace period) still is; with
    // `Nag` blocking, the nagged users are newly revoked (after the grace
    // period) and no one else changes.
    let revoked: BTreeSet<String> = grace
        .iter()
        .chain(&quarantined)
        .cloned()
        .chain([
            "ghost@example.com".to_owned(),
            "alice@example.com".to_owned(),
        ])
        .collect();
    let expect = json!({
        "events": count,
        "searchUser": grace[0],
        "aliceDevice": "dev-alice@example.com",
        "nagUser": nag[0],
        "ghost": "ghost@example.com",
        "reportOnly": {"newly": [], "noLonger": revoked, "grace": []},
        "nagBlocking": {"newly": nag, "noLonger": [], "grace": []},
    });
    let shots = root.join("target/browser-test");
    std::fs::create_dir_all(&shots).unwrap();
    let output = Command::new("node")
        .current_dir(&js)
        .args(["--test", "--test-reporter=spec", "e2e/console.mjs"])
        .env("SRS_URL", format!("http://{}", serve.addr))
        .env("SRS_ADMIN", ADMIN)
        .env("SRS_INTAKE", INTAKE)
        .env("SRS_EXPECT", expect.to_string())
        .env("SRS_SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // The retry reached the provider: one more refused call for ghost.
    assert_eq!(refused(), 2);
}
