//! The sign-in gate behind real gateways (SPEC §10): Debian's nginx
//! (`auth_request`) and Caddy (`forward_auth`), started from the shipped
//! configs in `examples/gateways/`, in front of an upstream app, asking the
//! real `srs serve`. Blocks and unblocks follow the pushed events, a policy
//! switch needs no gateway restart, a dead `srs serve` is a 503 (never a
//! pass), and a restart keeps blocked users blocked.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

mod support;

use std::net::SocketAddr;

use fake_providers::gateways::{Echo, Gateway, GatewayKind, get};
use serde_json::Value;
use support::{World, event, policy};

fn through(kind: GatewayKind) {
    let world = World::new("");
    let serve = world.serve();
    let gate: SocketAddr = serve.addr;
    let app = Echo::start().unwrap();
    let gateway = Gateway::start(kind, gate, app.addr(), None).unwrap();
    let url = gateway.url("/orders?id=7");
    let ask = |user: &str| get(&url, &[("X-SRS-User", user)]).unwrap();

    let (status, body) = ask("alice@example.com");
    assert_eq!((status, body.as_str()), (200, "upstream ok"), "{kind}");

    let t = |h: u32| format!("2026-11-27T{h:02}:00:00Z");
    let push = |e: String| assert_eq!(serve.push(&e, "application/json").status, 202);
    push(event("e1", "alice@example.com", "d1", &t(10), "jailbreak"));
    let hits = app.hits();
    let (status, body) = ask("alice@example.com");
    assert_eq!(status, 403, "{kind}: {body}");
    let decision: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(decision["access"], "block", "{kind}");
    assert_eq!(decision["event_id"], "e1", "{kind}");
    assert_eq!(decision["device"], "d1", "{kind}");
    assert_eq!(
        app.hits(),
        hits,
        "{kind}: a blocked sign-in reached the app"
    );

    push(event("e2", "alice@example.com", "d1", &t(11), "ok"));
    assert_eq!(ask("alice@example.com").0, 200, "{kind}");

    // A new policy in force at once: `Nag` now blocks; no gateway restart.
    push(event("n1", "bob@example.com", "d2", &t(10), "nag"));
    assert_eq!(ask("bob@example.com").0, 200, "{kind}");
    assert_eq!(serve.admin("PUT", "/v1/policy", &policy(true)).status, 200);
    push(event("n2", "bob@example.com", "d2", &t(11), "nag"));
    assert_eq!(ask("bob@example.com").0, 403, "{kind}");

    // srs serve gone: 503 for everyone, never the app.
    let hits = app.hits();
    serve.kill();
    for user in ["alice@example.com", "bob@example.com", "nobody@example.com"] {
        let (status, body) = ask(user);
        assert_eq!(status, 503, "{kind} with the gate down: {body}");
    }
    assert_eq!(app.hits(), hits, "{kind}: passed with the gate down");

    // Back on the same address: bob, blocked before, is still blocked (the
    // journal holds the verdicts, whatever the policy file says).
    let serve = world.serve_on(&gate.to_string());
    assert_eq!(ask("bob@example.com").0, 403, "{kind} after a restart");
    assert_eq!(ask("alice@example.com").0, 200, "{kind} after a restart");
    drop(serve);
    drop(gateway);
}

#[test]
fn nginx_auth_request_follows_the_gate() {
    through(GatewayKind::Nginx);
}

#[test]
fn caddy_forward_auth_follows_the_gate() {
    through(GatewayKind::Caddy);
}
