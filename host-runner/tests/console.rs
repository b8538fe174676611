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
use support::{ADMIN, INTAKE, World, grace_policy, http, now_rfc3339, wait_until};

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

/// The console's files: served without a token, with their types and a CSP
/// that allows this origin only; the admin endpoints it reads: behind the
/// admin token, and every bad query refused with what is wrong.
#[test]
fn the_console_files_and_endpoints_check_what_they_are_given() {
    let world = World::new("");
    world.o365.unknown_user("ghost@example.com");
    let serve = world.serve();
    let get = |path: &str| http(serve.addr, "GET", path, &[], b"");

    let page = get("/console/");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert!(
        page.body
            .contains(r#"<script type="module" src="console.js">"#)
    );
    assert_eq!(get("/console").status, 303);
    assert_eq!(
        get("/console/console.js").header("content-type"),
        Some("text/javascript")
    );
    assert_eq!(get("/console/shared/render.js").status, 200);
    let wasm = get("/console/pkg/srs_policy_bg.wasm");
    assert_eq!(
        (wasm.status, wasm.header("content-type")),
        (200, Some("application/wasm")),
        "{}",
        wasm.body
    );
    let missing = get("/console/nothing.js");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["errors"][0]["code"], "not-found");
    assert_eq!(get("/console/../Cargo.toml").status, 404);

    for path in [
        "/v1/events",
        "/v1/tasks?state=failed",
        "/v1/policy",
        "/v1/blocked",
    ] {
        assert_eq!(get(path).status, 401, "{path}");
    }
    assert_eq!(
        http(serve.addr, "POST", "/v1/tasks/1/retry", &[], b"").status,
        401
    );

    let refused = |method: &str, path: &str, status: u16, code: &str, path_in_error: &str| {
        let response = serve.admin(method, path, "");
        assert_eq!(response.status, status, "{path}: {}", response.body);
        let error = &response.json()["errors"][0];
        assert_eq!(
            (error["code"].as_str(), error["path"].as_str()),
            (Some(code), Some(path_in_error)),
            "{path}"
        );
    };
    refused(
        "GET",
        "/v1/events?limit=0",
        400,
        "invalid-value",
        "query.limit",
    );
    refused(
        "GET",
        "/v1/events?limit=10001",
        400,
        "invalid-value",
        "query.limit",
    );
    refused(
        "GET",
        "/v1/events?colour=red",
        400,
        "invalid-value",
        "query",
    );
    refused(
        "GET",
        "/v1/events?before=soon",
        400,
        "invalid-value",
        "query",
    );
    refused("GET", "/v1/tasks", 400, "invalid-value", "query.state");
    refused(
        "GET",
        "/v1/tasks?state=paused",
        400,
        "invalid-value",
        "query.state",
    );
    refused("POST", "/v1/tasks/x/retry", 400, "invalid-value", "id");
    refused("POST", "/v1/tasks/99/retry", 404, "not-found", "id");

    // A revocation that fails, one that is done: only the failed one is retried.
    let (now, _) = now_rfc3339();
    let lines = [
        event(
            "e1",
            "ghost@example.com",
            "d1",
            &now,
            "retired",
            "compliant",
        ),
        event("e2", "bob@example.com", "d2", &now, "retired", "compliant"),
    ];
    assert_eq!(
        serve.push(&lines.join("\n"), "application/x-ndjson").status,
        202
    );
    wait_until(|| serve.admin("GET", "/v1/status", "").json()["tasks"]["pending"] == 0);
    let failed = serve.admin("GET", "/v1/tasks?state=failed", "").json();
    assert_eq!(failed["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(failed["next"], serde_json::Value::Null);
    let task = &failed["tasks"][0];
    assert_eq!(
        (task["subject"].as_str(), task["http_status"].as_u64()),
        (Some("ghost@example.com"), Some(404))
    );
    assert_eq!(task["events"], json!(["e1"]));
    let done = serve
        .admin("GET", "/v1/tasks?state=done&limit=1", "")
        .json();
    let done_id = done["tasks"][0]["id"].as_i64().unwrap();
    assert_eq!(done["next"], json!(done_id));
    refused(
        "POST",
        &format!("/v1/tasks/{done_id}/retry"),
        409,
        "invalid-value",
        "id",
    );
    let id = task["id"].as_i64().unwrap();
    let retried = serve.admin("POST", &format!("/v1/tasks/{id}/retry"), "");
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.json()["joined"], false);
    // Executed at once: the provider is called again and refuses again.
    wait_until(|| world.o365.revoke_requests() - world.o365.applied_total() == 2);
    wait_until(|| {
        let failed = serve.admin("GET", "/v1/tasks?state=failed", "").json();
        failed["tasks"][0]["attempts"] == 2
    });

    let events = serve.admin("GET", "/v1/events?device=d1", "").json();
    assert_eq!(events["events"][0]["event"]["device"]["state"], "retired");
    assert_eq!(
        events["events"][0]["answer"]["decision"]["outcome"],
        "revoke"
    );
    let policy = serve.admin("GET", "/v1/policy", "").json();
    assert_eq!(policy["generation"], 1);
    assert_eq!(policy["policy"]["uem"], "epmm");
    assert_eq!(policy["summary"]["mode"], "enforce");
    let blocked = serve.admin("GET", "/v1/blocked", "").json();
    assert_eq!(
        blocked["users"],
        json!(["bob@example.com", "ghost@example.com"])
    );
    assert_eq!(blocked["devices_known"], 2);
}
