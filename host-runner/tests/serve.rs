//! `srs serve` through real HTTP (SPEC §10): the real binary, loopback
//! Office 365 and Google servers, a journal on disk. Pushes are durable
//! before their 202, the gate answers from the latest decision by event time,
//! verdicts survive restarts and SIGKILL, bad input is refused with the right
//! status and code, and `/metrics` counts what was sent.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{
    ADMIN, INTAKE, Response, Serve, WAIT, World, event, http, policy, try_http, wait_until,
};

#[test]
fn pushes_decide_the_gate_by_event_time_and_revoke_once() {
    let world = World::new("");
    let serve = world.serve();
    assert_eq!(serve.check("alice@example.com", None).status, 204);

    let jailbroken = event(
        "e1",
        "alice@example.com",
        "d1",
        "2026-11-27T10:00:00Z",
        "jailbreak",
    );
    let r = serve.push(&jailbroken, "application/json");
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"results": [{"event_id": "e1", "outcome": "revoke"}]})
    );
    // Decided and journaled before the 202: the gate blocks at once.
    let blocked = serve.check("Alice@Example.com", None);
    assert_eq!(blocked.status, 403);
    let body = blocked.json();
    assert_eq!(body["access"], "block");
    assert_eq!(body["device"], "d1");
    assert_eq!(body["event_id"], "e1");
    assert_eq!(body["outcome"], "revoke");
    assert_eq!(body["reasons"][0]["rule"], "blocking-action");
    assert_eq!(
        blocked.header("x-srs-decision").map(|h| h.len() > 10),
        Some(true)
    );
    // As Envoy's ext_authz asks: the client's method, its path appended.
    let envoy = http(
        serve.addr,
        "POST",
        "/v1/check/orders/7?x=1",
        &[("X-SRS-User", "alice@example.com")],
        b"",
    );
    assert_eq!(envoy.status, 403);
    assert!(world.o365.wait_for_applied(1, WAIT));
    assert!(world.google.wait_for_applied(1, WAIT));

    // A duplicate is accepted and does nothing again.
    let r = serve.push(&jailbroken, "application/json");
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["results"][0]["duplicate"], true);

    // Compliant later: allowed. A late, older blocking event changes nothing.
    let fixed = event(
        "e2",
        "alice@example.com",
        "d1",
        "2026-11-27T11:00:00Z",
        "ok",
    );
    assert_eq!(serve.push(&fixed, "application/json").status, 202);
    assert_eq!(serve.check("alice@example.com", None).status, 204);
    let late = event(
        "e0",
        "alice@example.com",
        "d1",
        "2026-11-27T09:00:00Z",
        "jailbreak",
    );
    assert_eq!(serve.push(&late, "application/json").status, 202);
    assert_eq!(serve.check("alice@example.com", Some("d1")).status, 204);

    // A second device blocks the user, not the first device.
    let other = event(
        "e3",
        "alice@example.com",
        "d2",
        "2026-11-27T12:00:00Z",
        "jailbreak",
    );
    assert_eq!(serve.push(&other, "application/json").status, 202);
    assert_eq!(serve.check("alice@example.com", None).status, 403);
    assert_eq!(serve.check("alice@example.com", Some("d1")).status, 204);
    assert_eq!(serve.check("alice@example.com", Some("d2")).status, 403);

    // Admin views.
    let d1 = serve.admin("GET", "/v1/devices/d1", "");
    assert_eq!(d1.status, 200, "{}", d1.body);
    assert_eq!(d1.json()["event_id"], "e2");
    let u = serve.admin("GET", "/v1/users/ALICE@example.com", "");
    assert_eq!(u.json()["verdict"], "block");
    assert_eq!(u.json()["devices"].as_array().unwrap().len(), 2);
    assert_eq!(serve.admin("GET", "/v1/devices/nope", "").status, 404);

    // Every revocation executed exactly once: e1 and e3 (the same user,
    // coalesced or done once each).
    wait_until(|| {
        let s = serve.admin("GET", "/v1/status", "").json();
        s["tasks"]["pending"] == 0 && s["executing"] == 0
    });
    let status = serve.admin("GET", "/v1/status", "").json();
    assert_eq!(status["events"], 4);
    let done = status["tasks"]["done"].as_u64().unwrap();
    assert_eq!(
        world.o365.applied_total() + world.google.applied_total(),
        done
    );
    assert!(world.o365.applied("alice@example.com") >= 1);
}

#[test]
fn verdicts_survive_a_restart_and_sigterm_exits_0() {
    let world = World::new("");
    let serve = world.serve();
    let e = event(
        "e1",
        "bob@example.com",
        "d9",
        "2026-11-27T10:00:00Z",
        "jailbreak",
    );
    assert_eq!(serve.push(&e, "application/json").status, 202);
    assert_eq!(serve.check("bob@example.com", None).status, 403);
    let (code, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    let serve = world.serve();
    assert_eq!(serve.check("bob@example.com", None).status, 403);
    assert_eq!(serve.check("bob@example.com", Some("d9")).status, 403);
    // And after SIGKILL too.
    serve.kill();
    let serve = world.serve();
    assert_eq!(serve.check("bob@example.com", None).status, 403);
}

#[test]
fn a_new_policy_changes_verdicts_and_a_bad_one_changes_nothing() {
    let world = World::new("");
    let serve = world.serve();
    let nag = |id: &str, time: &str| event(id, "carol@example.com", "d3", time, "nag");
    assert_eq!(
        serve
            .push(&nag("n1", "2026-11-27T10:00:00Z"), "application/json")
            .status,
        202
    );
    assert_eq!(serve.check("carol@example.com", None).status, 204);

    // An invalid policy: 400 with its failure answer; the old one stays.
    let bad = serve.admin("PUT", "/v1/policy", r#"{"uem":"epmm","providers":[]}"#);
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["type"], "failure");
    assert_eq!(
        serve
            .push(&nag("n2", "2026-11-27T10:01:00Z"), "application/json")
            .json()["results"][0]["outcome"],
        "no_action"
    );
    assert_eq!(serve.check("carol@example.com", None).status, 204);

    // Nag becomes blocking: the next event blocks, no restart.
    let good = serve.admin("PUT", "/v1/policy", &policy(true));
    assert_eq!(good.status, 200, "{}", good.body);
    assert_eq!(good.json()["policy"]["mode"], "enforce");
    let r = serve.push(&nag("n3", "2026-11-27T10:02:00Z"), "application/json");
    assert_eq!(r.json()["results"][0]["outcome"], "revoke");
    assert_eq!(serve.check("carol@example.com", None).status, 403);
    // A token is needed to switch.
    let anonymous = http(
        serve.addr,
        "PUT",
        "/v1/policy",
        &[],
        policy(false).as_bytes(),
    );
    assert_eq!(anonymous.status, 401);
}

#[test]
fn bad_input_is_refused_with_the_right_status_and_code() {
    let world = World::new("");
    let serve = world.serve();
    let code = |r: &Response| r.json()["errors"][0]["code"].as_str().unwrap().to_owned();

    let malformed = serve.push("{not json", "application/json");
    assert_eq!(malformed.status, 400);
    assert_eq!(code(&malformed), "malformed-json");

    let typo = event("t1", "dan@example.com", "d4", "2026-11-27T10:00:00Z", "ok")
        .replace(r#""platform""#, r#""platfrom""#);
    let unknown = serve.push(&typo, "application/json");
    assert_eq!(unknown.status, 400);
    assert_eq!(code(&unknown), "unknown-field");
    assert_eq!(unknown.json()["errors"][0]["path"], "event.device.platfrom");

    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000));
    let too_large = serve.push(&huge, "application/json");
    assert_eq!(too_large.status, 413);
    assert_eq!(code(&too_large), "too-large");

    for auth in [
        None,
        Some("Bearer wrong"),
        Some(&*format!("Bearer {ADMIN}")),
    ] {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        let r = http(serve.addr, "POST", "/v1/events", &headers, b"{}");
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert!(!r.body.contains(INTAKE) && !r.body.contains("wrong"));
    }
    assert_eq!(serve.admin("GET", "/v1/status", "").status, 200);
    assert_eq!(http(serve.addr, "GET", "/v1/status", &[], b"").status, 401);

    let batch = [
        event("b1", "erin@example.com", "d5", "2026-11-27T10:00:00Z", "ok"),
        "{\"id\": 1".to_owned(),
        String::new(),
        event("b2", "erin@example.com", "d6", "2026-11-27T10:00:00Z", "ok"),
    ]
    .join("\n");
    let r = serve.push(&batch, "application/x-ndjson");
    assert_eq!(r.status, 202, "{}", r.body);
    let results = r.json()["results"].clone();
    assert_eq!(
        results[0],
        json!({"event_id": "b1", "outcome": "no_action"})
    );
    assert_eq!(results[1]["line"], 2);
    assert_eq!(results[1]["errors"][0]["code"], "malformed-json");
    assert_eq!(
        results[2],
        json!({"event_id": "b2", "outcome": "no_action"})
    );

    assert_eq!(serve.push("{}", "text/plain").status, 415);
    assert_eq!(http(serve.addr, "GET", "/v1/nothing", &[], b"").status, 404);
    let no_user = http(serve.addr, "GET", "/v1/check", &[], b"");
    assert_eq!(no_user.status, 400);
    assert_eq!(no_user.json()["errors"][0]["path"], "header X-SRS-User");

    // A thousand bad requests later, the service answers as before and its
    // memory is back near where it started.
    let before = serve.rss_kib();
    for i in 0..1000 {
        let r = match i % 4 {
            0 => serve.push("{not json", "application/json"),
            1 => serve.push(&typo, "application/json"),
            2 => serve.push(&huge, "application/json"),
            _ => serve.push(&batch, "application/x-ndjson"),
        };
        assert!(matches!(r.status, 202 | 400 | 413), "{}", r.status);
    }
    let after = serve.rss_kib();
    assert!(
        after < before + 16 * 1024,
        "memory grew from {before} KiB to {after} KiB"
    );
    assert_eq!(serve.check("erin@example.com", None).status, 204);
    let status = serve.admin("GET", "/v1/status", "").json();
    assert_eq!(status["events"], 2);
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_what_was_sent() {
    let world = World::new("");
    let serve = world.serve();
    for (i, kind) in ["jailbreak", "ok", "ok"].iter().enumerate() {
        let e = event(
            &format!("m{i}"),
            "fay@example.com",
            &format!("d{i}"),
            "2026-11-27T10:00:00Z",
            kind,
        );
        assert_eq!(serve.push(&e, "application/json").status, 202);
    }
    assert_eq!(serve.push("{", "application/json").status, 400);
    serve.check("fay@example.com", None);
    serve.check("nobody@example.com", None);
    serve.check("nobody@example.com", None);
    assert!(world.o365.wait_for_applied(1, WAIT) && world.google.wait_for_applied(1, WAIT));
    wait_until(|| {
        let m = metrics(&serve);
        m.get("srs_revocations_total{provider=\"office365\",state=\"done\"}") == Some(&1.0)
            && m.get("srs_revocations_total{provider=\"google_workspace\",state=\"done\"}")
                == Some(&1.0)
    });
    let m = metrics(&serve);
    assert_eq!(m["srs_events_total{outcome=\"revoke\"}"], 1.0);
    assert_eq!(m["srs_events_total{outcome=\"no_action\"}"], 2.0);
    assert_eq!(m["srs_events_rejected_total"], 1.0);
    assert_eq!(m["srs_gate_checks_total{verdict=\"block\"}"], 1.0);
    assert_eq!(m["srs_gate_checks_total{verdict=\"allow\"}"], 2.0);
    assert_eq!(m["srs_decision_seconds_count"], 4.0);
    assert_eq!(
        m["srs_provider_call_seconds_count{provider=\"office365\"}"],
        1.0
    );
    assert_eq!(m["srs_tasks_pending"], 0.0);
}

/// `/metrics` parsed strictly as text exposition: `# HELP`/`# TYPE` lines,
/// samples `name{labels} value`, and the closing `# EOF`.
fn metrics(serve: &Serve) -> std::collections::HashMap<String, f64> {
    let r = http(serve.addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "{}", r.body);
    let mut samples = std::collections::HashMap::new();
    for line in &lines[..lines.len() - 1] {
        if let Some(meta) = line.strip_prefix("# ") {
            let kind = meta.split(' ').next().unwrap();
            assert!(matches!(kind, "HELP" | "TYPE" | "UNIT"), "{line}");
            continue;
        }
        let (name, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad sample: {line}")),
        };
        let metric = name.split('{').next().unwrap();
        assert!(
            metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        if let Some(labels) = name.strip_prefix(metric) {
            assert!(labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')));
        }
        samples.insert(name.to_owned(), value);
    }
    samples
}

/// SIGKILL in the middle of a burst of pushes, with calls in flight: every
/// acknowledged event is executed after the restart (the UEM re-pushes what
/// was not acknowledged), and no revocation is repeated beyond the calls in
/// flight and the answers not yet journaled at the kill (4 + 64 per provider).
#[test]
fn sigkill_mid_burst_loses_nothing_acknowledged() {
    let world = World::new("");
    world.o365.set_latency(Duration::from_millis(20));
    world.google.set_latency(Duration::from_millis(20));
    let users: Vec<String> = (0..600).map(|i| format!("user{i}@example.com")).collect();
    let batches: Vec<String> = users
        .chunks(10)
        .enumerate()
        .map(|(b, chunk)| {
            chunk
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    let id = format!("k{b}-{i}");
                    event(
                        &id,
                        u,
                        &format!("dev-{id}"),
                        "2026-11-27T10:00:00Z",
                        "jailbreak",
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let serve = world.serve();
    let addr = serve.addr;
    let acknowledged = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for batch in &batches {
                let auth = format!("Bearer {INTAKE}");
                let headers = [
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/x-ndjson"),
                ];
                match try_http(addr, "POST", "/v1/events", &headers, batch.as_bytes()) {
                    Some(r) if r.status == 202 => {
                        acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    _ => break,
                }
                // A UEM's pace: the burst outlasts the kill.
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        wait_until(|| {
            acknowledged.load(std::sync::atomic::Ordering::SeqCst) >= 20
                && world.o365.applied_total() >= 15
        });
        serve.kill();
    });
    let pushed = acknowledged.into_inner();
    assert!(
        pushed < batches.len(),
        "every batch was acknowledged before the kill: not mid-burst"
    );
    let serve = world.serve();
    // The UEM pushes again everything it was not sure of; acknowledged
    // events come back as duplicates.
    for (n, batch) in batches.iter().enumerate() {
        let r = serve.push(batch, "application/x-ndjson");
        assert_eq!(r.status, 202);
        if n < pushed {
            // Acknowledged before the kill: journaled, so a duplicate now.
            let results = r.json()["results"].clone();
            for line in results.as_array().unwrap() {
                assert_eq!(line["duplicate"], true, "batch {n} was lost: {line}");
            }
        }
    }
    wait_until(|| {
        users
            .iter()
            .all(|u| world.o365.applied(u) >= 1 && world.google.applied(u) >= 1)
    });
    wait_until(|| {
        let s = serve.admin("GET", "/v1/status", "").json();
        s["tasks"]["pending"] == 0 && s["executing"] == 0
    });
    let total = world.o365.applied_total() + world.google.applied_total();
    let extra = total - 2 * users.len() as u64;
    eprintln!("{pushed} batches acknowledged before the kill; {extra} calls repeated");
    assert!(extra <= 2 * 68, "{extra} repeated calls after one kill");
}

/// Clients that open connections and never finish a request (idle, half a
/// header, half a body) hold a connection only until their timeout: with
/// every connection slot taken, a real request is still answered.
#[test]
fn slow_clients_cannot_exhaust_the_service() {
    use std::io::Write;
    let world = World::new("max_connections = 4\nheader_timeout_ms = 300\nbody_timeout_ms = 300\n");
    let serve = world.serve();
    let mut hostile = Vec::new();
    for i in 0..12 {
        let mut stream = std::net::TcpStream::connect(serve.addr).unwrap();
        let partial = match i % 3 {
            0 => String::new(),
            1 => "GET /v1/check HTTP/1.1\r\nX-SRS-Us".to_owned(),
            _ => format!(
                "POST /v1/events HTTP/1.1\r\nAuthorization: Bearer {INTAKE}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"id\""
            ),
        };
        stream.write_all(partial.as_bytes()).unwrap();
        hostile.push(stream);
    }
    let started = std::time::Instant::now();
    let r = serve.check("gina@example.com", None);
    assert_eq!(r.status, 204);
    assert!(started.elapsed() < Duration::from_secs(10));
    // The slow body was answered 408.
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut hostile[2], &mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}
