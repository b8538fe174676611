//! Shared Signals in `srs serve` (SPEC §11) against an independent peer:
//! `tests/ssf-peer/ssf_peer.py`, on PyJWT and cryptography, verifies the SETs
//! we push (fetching our `/jwks.json`) and signs the ones we receive.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{STREAM, Serve, World, event, http, wait_until};

const ISSUER: &str = "https://srs.example.com";
const IDP: &str = "https://idp.example.com";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ssf-peer/ssf_peer.py")
}

fn python() -> Command {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(peer_script());
    cmd
}

/// The peer's RFC 8935 receiver, killed when dropped.
struct Peer {
    child: Child,
    addr: SocketAddr,
}

impl Peer {
    /// A receiver whose audience is its own origin (as a stream names it).
    fn start(jwks_url: &str, respond: Option<&str>) -> Self {
        let mut cmd = python();
        cmd.args(["receiver", "--jwks-url", jwks_url, "--issuer", ISSUER])
            .args(["--audience", "self"]);
        if let Some(respond) = respond {
            cmd.args(["--respond", respond]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("ssf-peer: listening on http://")
            .unwrap_or_else(|| panic!("the peer did not start: {line}"));
        Self {
            addr: url.parse().unwrap(),
            child,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/push", self.addr)
    }

    fn audience(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every push so far: `{status, header, claims, problems, authorization}`.
    fn received(&self) -> Vec<Value> {
        let r = http(self.addr, "GET", "/received", &[], b"");
        assert_eq!(r.status, 200);
        r.json().as_array().unwrap().clone()
    }

    /// The accepted SETs' claims.
    fn accepted(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r["status"] == 202)
            .map(|r| r["claims"].clone())
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A world with `[ssf]` and `extra` (receivers, transmitters).
fn world(extra: &str) -> World {
    let world = World::new(&format!(
        "\n[ssf]\nissuer = \"{ISSUER}\"\nsigning_key_file = \"ssf-key.pem\"\nkey_id = \"srs-test-1\"\n\
         stream_token_env = \"SRS_TEST_STREAM\"\n{extra}"
    ));
    std::fs::write(
        world.path("ssf-key.pem"),
        fake_providers::TEST_PRIVATE_KEY_PEM,
    )
    .unwrap();
    world
}

fn receiver_toml(peer: &Peer) -> String {
    format!(
        "[[ssf.receivers]]\nendpoint = \"{}\"\naudience = \"{}\"\n",
        peer.endpoint(),
        peer.audience()
    )
}

fn port() -> u16 {
    fake_providers::gateways::free_port().unwrap()
}

fn jwks_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/jwks.json")
}

fn serve(world: &World, port: u16) -> Serve {
    world.serve_on(&format!("127.0.0.1:{port}"))
}

fn jailbreak(id: &str, user: &str, device: &str) -> String {
    event(id, user, device, "2026-11-27T10:00:00Z", "jailbreak")
}

#[test]
fn a_revocation_is_announced_once_to_each_receiver_with_every_claim() {
    let port = port();
    let a = Peer::start(&jwks_url(port), None);
    let b = Peer::start(&jwks_url(port), None);
    let world = world(&format!("{}{}", receiver_toml(&a), receiver_toml(&b)));
    let serve = serve(&world, port);
    let r = serve.push(
        &jailbreak("e1", "alice@example.com", "dev-1"),
        "application/json",
    );
    assert_eq!(r.status, 202, "{}", r.body);
    // A compliant event and a report-only-looking nag are not revocations.
    serve.push(
        &event(
            "e2",
            "bob@example.com",
            "dev-2",
            "2026-11-27T10:00:00Z",
            "ok",
        ),
        "application/json",
    );
    wait_until(|| a.accepted().len() == 1 && b.accepted().len() == 1);
    std::thread::sleep(Duration::from_millis(500));
    for peer in [&a, &b] {
        let received = peer.received();
        assert_eq!(received.len(), 1, "{received:?}");
        assert_eq!(received[0]["problems"], json!([]));
        assert_eq!(received[0]["header"]["typ"], "secevent+jwt");
        assert_eq!(received[0]["header"]["kid"], "srs-test-1");
        let claims = &received[0]["claims"];
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["aud"], peer.audience());
        assert_eq!(claims["txn"], "e1");
        assert_eq!(
            claims["sub_id"],
            json!({"format": "complex",
                   "user": {"format": "email", "email": "alice@example.com"},
                   "device": {"format": "opaque", "id": "dev-1"}})
        );
        let event = &claims["events"][SESSION_REVOKED];
        assert_eq!(event["initiating_entity"], "policy");
        assert_eq!(event["event_timestamp"], 1_795_773_600);
        assert!(
            event["reason_admin"]["en"]
                .as_str()
                .unwrap()
                .contains("dev-1")
        );
    }
    assert_ne!(
        a.accepted()[0]["jti"],
        b.accepted()[0]["jti"],
        "one SET per receiver"
    );
    let status = serve.admin("GET", "/v1/status", "").json();
    assert_eq!(status["deliveries"]["done"], 2, "{status}");
}

#[test]
fn a_receiver_answering_503_twice_gets_the_set_once_and_a_400_fails_the_delivery() {
    let port = port();
    let flaky = Peer::start(&jwks_url(port), Some("503,503"));
    let refusing = Peer::start(&jwks_url(port), Some("400:invalid_audience"));
    let world = world(&format!(
        "{}{}",
        receiver_toml(&flaky),
        receiver_toml(&refusing)
    ));
    let serve = serve(&world, port);
    serve.push(
        &jailbreak("e1", "alice@example.com", "dev-1"),
        "application/json",
    );
    wait_until(|| flaky.accepted().len() == 1);
    let statuses: Vec<Value> = flaky
        .received()
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(503), json!(503), json!(202)]);
    // The same jti on every try.
    let jtis: Vec<Value> = flaky
        .received()
        .iter()
        .map(|r| r["claims"]["jti"].clone())
        .collect();
    assert!(jtis.windows(2).all(|w| w[0] == w[1]), "{jtis:?}");
    wait_until(|| serve.admin("GET", "/v1/status", "").json()["deliveries"]["failed"] == 1);
    let status = serve.admin("GET", "/v1/status", "").json();
    let failed = &status["failed_deliveries"][0];
    assert_eq!(failed["err"], "invalid_audience");
    assert_eq!(failed["http_status"], 400);
    assert_eq!(refusing.received().len(), 1, "a 400 is not retried");
    drop(serve);
    let out = Command::new(env!("CARGO_BIN_EXE_srs"))
        .args(["status", "--state"])
        .arg(world.path("state.db"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("400 invalid_audience"), "{text}");
}

#[test]
fn deliveries_survive_sigkill_in_a_burst() {
    let port = port();
    let peer = Peer::start(&jwks_url(port), None);
    let world = world(&receiver_toml(&peer));
    let serve = serve(&world, port);
    let lines: Vec<String> = (0..30)
        .map(|i| {
            jailbreak(
                &format!("e{i}"),
                &format!("u{i}@example.com"),
                &format!("d{i}"),
            )
        })
        .collect();
    let r = serve.push(&lines.join("\n"), "application/x-ndjson");
    assert_eq!(r.status, 202);
    serve.kill();
    let serve = self::serve(&world, port);
    wait_until(|| {
        let txns: std::collections::BTreeSet<String> = peer
            .accepted()
            .iter()
            .map(|c| c["txn"].as_str().unwrap().to_owned())
            .collect();
        txns.len() == 30
    });
    wait_until(|| serve.admin("GET", "/v1/status", "").json()["deliveries"]["done"] == 30);
}

/// A transmitter key pair from the peer: (PEM path, JWKS path).
fn transmitter_keys(world: &World, name: &str, kid: &str) -> (PathBuf, PathBuf) {
    let (pem, jwks) = (
        world.path(&format!("{name}.pem")),
        world.path(&format!("{name}.json")),
    );
    let ok = python()
        .args(["keygen", "--kid", kid, "--key"])
        .arg(&pem)
        .arg("--jwks")
        .arg(&jwks)
        .status()
        .unwrap();
    assert!(ok.success());
    (pem, jwks)
}

/// A SET minted by the peer; `extra` adds or overrides arguments.
fn mint(pem: &Path, kid: &str, jti: &str, status: &str, extra: &[&str]) -> String {
    let mut args: BTreeMap<&str, String> = BTreeMap::new();
    for (k, v) in [
        ("--kid", kid),
        ("--iss", IDP),
        ("--aud", ISSUER),
        ("--jti", jti),
        ("--user", "carol@example.com"),
        ("--device", "dev-c"),
        ("--status", status),
    ] {
        args.insert(k, v.to_owned());
    }
    let mut flags = Vec::new();
    for pair in extra.chunks(2) {
        match pair {
            [k, v] => {
                args.insert(k, (*v).to_owned());
            }
            [flag] => flags.push(*flag),
            _ => {}
        }
    }
    let mut cmd = python();
    cmd.arg("set").arg("--key").arg(pem);
    for (k, v) in &args {
        cmd.arg(k).arg(v);
    }
    cmd.args(flags);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn push_set(serve: &Serve, set: &str) -> support::Response {
    http(
        serve.addr,
        "POST",
        "/v1/ssf/push",
        &[("Content-Type", "application/secevent+jwt")],
        set.as_bytes(),
    )
}

#[test]
fn a_compliance_change_from_a_transmitter_revokes_once_and_bad_sets_are_refused() {
    let port = port();
    let world = world("");
    let (pem, jwks) = transmitter_keys(&world, "idp", "idp-1");
    let (other_pem, _) = transmitter_keys(&world, "other", "idp-1");
    let config = std::fs::read_to_string(world.path("host.toml")).unwrap();
    std::fs::write(
        world.path("host.toml"),
        format!(
            "{config}\n[[ssf.transmitters]]\nissuer = \"{IDP}\"\njwks_file = \"{}\"\n",
            jwks.display()
        ),
    )
    .unwrap();
    let serve = serve(&world, port);
    let refusals = [
        (
            mint(&other_pem, "idp-1", "j-sig", "not-compliant", &[]),
            "invalid_key",
        ),
        (
            mint(&pem, "idp-9", "j-kid", "not-compliant", &[]),
            "invalid_key",
        ),
        (
            mint(
                &pem,
                "idp-1",
                "j-aud",
                "not-compliant",
                &["--aud", "https://elsewhere"],
            ),
            "invalid_audience",
        ),
        (
            mint(
                &pem,
                "idp-1",
                "j-iss",
                "not-compliant",
                &["--iss", "https://evil.example"],
            ),
            "invalid_issuer",
        ),
        (
            mint(
                &pem,
                "idp-1",
                "j-iat",
                "not-compliant",
                &["--iat-offset", "86400"],
            ),
            "invalid_request",
        ),
        (
            mint(&pem, "idp-1", "j-none", "not-compliant", &["--alg", "none"]),
            "invalid_key",
        ),
        (
            mint(&pem, "idp-1", "j-hs", "not-compliant", &["--alg", "HS256"]),
            "invalid_key",
        ),
        (
            mint(&pem, "idp-1", "j-typ", "not-compliant", &["--typ", "JWT"]),
            "invalid_request",
        ),
        (
            mint(
                &pem,
                "idp-1",
                "j-sub",
                "not-compliant",
                &["--subject-format", "email"],
            ),
            "invalid_request",
        ),
        ("not.a-jwt".to_owned(), "invalid_request"),
    ];
    for (set, err) in &refusals {
        let r = push_set(&serve, set);
        assert_eq!(r.status, 400, "{err}: {}", r.body);
        assert_eq!(r.json()["err"], *err, "{}", r.body);
    }
    let status = serve.admin("GET", "/v1/status", "").json();
    assert_eq!(status["events"], 0, "nothing decided: {status}");

    let good = mint(&pem, "idp-1", "j-good", "not-compliant", &[]);
    assert_eq!(push_set(&serve, &good).status, 202);
    assert!(world.o365.wait_for_applied(1, support::WAIT));
    assert!(world.google.wait_for_applied(1, support::WAIT));
    let device = serve.admin("GET", "/v1/devices/dev-c", "").json();
    assert_eq!(device["event_id"], "caep:j-good");
    assert_eq!(device["outcome"], "revoke");
    assert_eq!(serve.check("carol@example.com", None).status, 403);
    // The same jti again: accepted, nothing repeated.
    assert_eq!(push_set(&serve, &good).status, 202);
    // Other event types are accepted and ignored.
    let other = mint(
        &pem,
        "idp-1",
        "j-other",
        "compliant",
        &[
            "--event-type",
            "https://schemas.openid.net/secevent/caep/event-type/credential-change",
        ],
    );
    assert_eq!(push_set(&serve, &other).status, 202);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(world.o365.applied("carol@example.com"), 1);
    assert_eq!(world.google.applied("carol@example.com"), 1);
    let status = serve.admin("GET", "/v1/status", "").json();
    assert_eq!(status["events"], 1, "{status}");
    // Compliant again: the gate lets carol in.
    let fixed = mint(&pem, "idp-1", "j-fixed", "compliant", &[]);
    assert_eq!(push_set(&serve, &fixed).status, 202);
    assert_eq!(serve.check("carol@example.com", None).status, 204);
}

fn stream_call(
    serve: &Serve,
    method: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> support::Response {
    http(
        serve.addr,
        method,
        path,
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

#[test]
fn a_receiver_registers_a_stream_verifies_it_and_gets_sets_across_a_restart() {
    let port = port();
    let peer = Peer::start(&jwks_url(port), None);
    let world = world("");
    let serve = serve(&world, port);
    let config = http(
        serve.addr,
        "GET",
        "/.well-known/ssf-configuration",
        &[],
        b"",
    )
    .json();
    assert_eq!(config["issuer"], ISSUER);
    assert_eq!(config["jwks_uri"], format!("{ISSUER}/jwks.json"));
    assert_eq!(
        config["delivery_methods_supported"],
        json!(["urn:ietf:rfc:8935"])
    );
    assert_eq!(
        config["configuration_endpoint"],
        format!("{ISSUER}/ssf/stream")
    );

    let request = json!({
        "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": peer.endpoint()},
        "events_requested": [SESSION_REVOKED, "https://schemas.openid.net/secevent/caep/event-type/credential-change"],
        "description": "peer",
    });
    assert_eq!(
        stream_call(&serve, "POST", "/ssf/stream", "wrong", &request).status,
        401
    );
    let created = stream_call(&serve, "POST", "/ssf/stream", STREAM, &request);
    assert_eq!(created.status, 201, "{}", created.body);
    let stream = created.json();
    let id = stream["stream_id"].as_str().unwrap().to_owned();
    assert_eq!(stream["events_delivered"], json!([SESSION_REVOKED]));
    assert_eq!(stream["aud"], peer.audience());

    let verify = json!({"stream_id": id, "state": "s-42"});
    assert_eq!(
        stream_call(&serve, "POST", "/ssf/verify", STREAM, &verify).status,
        204
    );
    wait_until(|| !peer.accepted().is_empty());
    let v = &peer.accepted()[0];
    assert_eq!(v["events"][VERIFICATION]["state"], "s-42");
    assert_eq!(v["sub_id"], json!({"format": "opaque", "id": id}));

    let patch = json!({"stream_id": id, "description": "renamed"});
    let updated = stream_call(&serve, "PATCH", "/ssf/stream", STREAM, &patch).json();
    assert_eq!(updated["description"], "renamed");
    assert_eq!(updated["events_delivered"], json!([SESSION_REVOKED]));

    // Journaled: a restart keeps the stream, and it gets the next revocation.
    drop(serve);
    let serve = self::serve(&world, port);
    let read = stream_call(
        &serve,
        "GET",
        &format!("/ssf/stream?stream_id={id}"),
        STREAM,
        &json!({}),
    );
    assert_eq!(read.json()["description"], "renamed");
    serve.push(
        &jailbreak("e1", "dan@example.com", "dev-d"),
        "application/json",
    );
    wait_until(|| peer.accepted().len() == 2);
    assert_eq!(peer.accepted()[1]["txn"], "e1");

    // Paused: held in the journal; enabled: sent.
    let paused = json!({"stream_id": id, "status": "paused"});
    assert_eq!(
        stream_call(&serve, "POST", "/ssf/status", STREAM, &paused).status,
        200
    );
    serve.push(
        &jailbreak("e2", "erin@example.com", "dev-e"),
        "application/json",
    );
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(peer.accepted().len(), 2);
    let status = stream_call(
        &serve,
        "GET",
        &format!("/ssf/status?stream_id={id}"),
        STREAM,
        &json!({}),
    );
    assert_eq!(status.json()["status"], "paused");
    let enabled = json!({"stream_id": id, "status": "enabled"});
    assert_eq!(
        stream_call(&serve, "POST", "/ssf/status", STREAM, &enabled).status,
        200
    );
    wait_until(|| peer.accepted().len() == 3);

    // Deleted: gone, and nothing more is sent.
    let del = stream_call(
        &serve,
        "DELETE",
        &format!("/ssf/stream?stream_id={id}"),
        STREAM,
        &json!({}),
    );
    assert_eq!(del.status, 204);
    let gone = stream_call(
        &serve,
        "GET",
        &format!("/ssf/stream?stream_id={id}"),
        STREAM,
        &json!({}),
    );
    assert_eq!(gone.status, 404);
    serve.push(
        &jailbreak("e3", "fay@example.com", "dev-f"),
        "application/json",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(peer.accepted().len(), 3);
}

#[test]
fn report_only_announces_nothing_and_a_grace_period_announces_at_due_unless_cancelled() {
    let port = port();
    let peer = Peer::start(&jwks_url(port), None);
    let world = world(&receiver_toml(&peer));
    let quiet = support::policy(false).replacen('{', r#"{"mode":"report_only","#, 1);
    std::fs::write(world.path("policy.json"), quiet).unwrap();
    let serve = serve(&world, port);
    serve.push(
        &jailbreak("e0", "gus@example.com", "dev-g"),
        "application/json",
    );
    std::thread::sleep(Duration::from_millis(700));
    assert!(peer.received().is_empty(), "report_only: no SET");
    drop(serve);

    std::fs::write(world.path("policy.json"), support::grace_policy(2)).unwrap();
    let serve = self::serve(&world, port);
    let (now, now_ms) = support::now_rfc3339();
    for (id, device) in [("g1", "dev-1"), ("g2", "dev-2")] {
        let r = serve.push(
            &event(id, "hal@example.com", device, &now, "jailbreak"),
            "application/json",
        );
        assert_eq!(r.json()["results"][0]["outcome"], "grace");
    }
    // dev-2 is fixed before due: its SET is never sent.
    serve.push(
        &event("c2", "hal@example.com", "dev-2", &now, "ok"),
        "application/json",
    );
    assert!(peer.received().is_empty(), "nothing before due");
    wait_until(|| peer.accepted().len() == 1);
    std::thread::sleep(Duration::from_millis(1_000));
    let sets = peer.accepted();
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0]["txn"], "g1");
    assert_eq!(sets[0]["sub_id"]["device"]["id"], "dev-1");
    assert_eq!(
        sets[0]["events"][SESSION_REVOKED]["event_timestamp"],
        now_ms / 1000 + 2
    );
    let status = serve.admin("GET", "/v1/status", "").json();
    assert_eq!(status["deliveries"]["cancelled"], 1, "{status}");
}
