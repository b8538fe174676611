//! The shipped gateway configs (`examples/gateways/nginx.conf`, `Caddyfile`) on real nginx
//! and Caddy, in front of a fake sign-in gate and an upstream app: allow, block, the gate
//! down (fails closed), the app down, the check token.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use fake_providers::gateways::{Answer, Echo, Gateway, GatewayKind, HttpServer, get, send};
use serde_json::json;

const ALLOWED: &str = "ok@example.com";

/// What the fake gate saw of one check.
#[derive(Debug, Clone)]
struct Check {
    method: String,
    path: String,
    user: Option<String>,
    device: Option<String>,
    authorization: Option<String>,
    body_len: usize,
}

/// A fake `srs serve` check endpoint: `GET /v1/check`, 204 for [`ALLOWED`], 403 with a JSON
/// body for anyone else, 401 when `token` is set and the bearer token is not it.
struct FakeGate {
    server: HttpServer,
    checks: Arc<Mutex<Vec<Check>>>,
}

impl FakeGate {
    fn start(token: Option<&str>) -> Self {
        let checks = Arc::new(Mutex::new(Vec::new()));
        let expected = token.map(|token| format!("Bearer {token}"));
        let server = HttpServer::start({
            let checks = Arc::clone(&checks);
            move |request, body| {
                let header = |name: &str| {
                    request
                        .headers
                        .get(name)
                        .map(|value| value.to_str().unwrap().to_owned())
                };
                let check = Check {
                    method: request.method.to_string(),
                    path: request.uri.to_string(),
                    user: header("x-srs-user"),
                    device: header("x-srs-device"),
                    authorization: header("authorization"),
                    body_len: body.len(),
                };
                checks.lock().unwrap().push(check.clone());
                if check.path != "/v1/check" {
                    return Answer::empty(404);
                }
                if check.method != "GET" {
                    return Answer::empty(405);
                }
                if expected.is_some() && check.authorization != expected {
                    return Answer::json(
                        401,
                        &json!({"errors": [{"code": "unauthorized", "path": "", "message": "bad check token"}]}),
                    );
                }
                match check.user.as_deref() {
                    Some(user) if user.eq_ignore_ascii_case(ALLOWED) => Answer::empty(204),
                    user => {
                        // As srs serve: the decision as the body and in X-SRS-Decision.
                        let decision = json!({"access": "block", "device": check.device, "event_id": "evt-1",
                                "outcome": "revoke", "reasons": [{"rule": "blocking-action", "user": user}]});
                        Answer::json(403, &decision).header("x-srs-decision", decision.to_string())
                    }
                }
            }
        })
        .unwrap();
        Self { server, checks }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The gate is down: connections refused (its port stays reserved, see `HttpServer::stop`).
    fn stop(&mut self) {
        self.server.stop();
    }

    fn checks(&self) -> Vec<Check> {
        self.checks.lock().unwrap().clone()
    }
}

/// A gate, an app and the gateway in front of them.
fn setup(kind: GatewayKind, token: Option<&str>) -> (FakeGate, Echo, Gateway) {
    setup_with(kind, token, token)
}

fn setup_with(
    kind: GatewayKind,
    gate_token: Option<&str>,
    gateway_token: Option<&str>,
) -> (FakeGate, Echo, Gateway) {
    let gate = FakeGate::start(gate_token);
    let app = Echo::start().unwrap();
    let gateway = Gateway::start(kind, gate.addr(), app.addr(), gateway_token).unwrap();
    (gate, app, gateway)
}

fn allowed_user_reaches_the_app(kind: GatewayKind) {
    let (gate, app, gateway) = setup(kind, None);
    let (status, body) = get(
        &gateway.url("/some/page?x=1"),
        &[("X-SRS-User", ALLOWED), ("X-SRS-Device", "dev-1")],
    )
    .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "upstream ok"),
        "{}",
        gateway.logs()
    );
    assert_eq!(app.hits(), 1);
    let checks = gate.checks();
    assert_eq!(checks.len(), 1, "{checks:?}");
    let check = checks.first().unwrap();
    assert_eq!(
        (check.method.as_str(), check.path.as_str()),
        ("GET", "/v1/check")
    );
    assert_eq!(check.user.as_deref(), Some(ALLOWED));
    assert_eq!(check.device.as_deref(), Some("dev-1"));
    // No token configured: the placeholder line is gone, nothing is sent.
    assert_eq!(check.authorization, None, "{}", gateway.config().unwrap());

    // A POST: its body reaches the app, never the gate, and the check is still a GET.
    let (status, body) = send(
        "POST",
        &gateway.url("/form"),
        &[("X-SRS-User", ALLOWED)],
        b"field=value",
    )
    .unwrap();
    assert_eq!((status, body.as_str()), (200, "upstream ok"));
    assert_eq!(app.hits(), 2);
    assert_eq!(app.body_bytes(), 11);
    let checks = gate.checks();
    let check = checks.get(1).unwrap();
    assert_eq!(
        (check.method.as_str(), check.body_len),
        ("GET", 0),
        "{checks:?}"
    );
}

fn blocked_user_is_refused(kind: GatewayKind) {
    let (gate, app, gateway) = setup(kind, None);
    for headers in [
        &[("X-SRS-User", "blocked@example.com")][..],
        &[
            ("X-SRS-User", "blocked@example.com"),
            ("X-SRS-Device", "dev-2"),
        ][..],
        &[][..],
    ] {
        let (status, body) = get(&gateway.url("/"), headers).unwrap();
        assert_eq!(status, 403, "{headers:?}: {body}");
        // Caddy passes the gate's body through; nginx answers the X-SRS-Decision header.
        assert!(body.contains(r#""access":"block""#), "{kind}: {body}");
    }
    assert_eq!(app.hits(), 0, "a blocked request reached the app");
    assert_eq!(gate.checks().len(), 3);
}

fn gate_down_fails_closed(kind: GatewayKind) {
    let (mut gate, app, gateway) = setup(kind, None);
    // One pass first, so the gateway holds a kept-alive connection to the gate.
    let (status, _) = get(&gateway.url("/"), &[("X-SRS-User", ALLOWED)]).unwrap();
    assert_eq!(status, 200, "{}", gateway.logs());
    gate.stop();
    for _ in 0..3 {
        let (status, body) = get(&gateway.url("/"), &[("X-SRS-User", ALLOWED)]).unwrap();
        assert!(!(200..300).contains(&status), "{status} {body}");
        assert_eq!(status, 503, "{body}\n{}", gateway.logs());
        assert!(body.contains("gate-unavailable"), "{body}");
    }
    assert_eq!(app.hits(), 1, "a request passed while the gate was down");
}

/// The app down (gate up) stays the gateway's usual 502: only the gate's absence is 503.
fn app_down_is_a_bad_gateway(kind: GatewayKind) {
    let (gate, mut app, gateway) = setup(kind, None);
    app.stop();
    let (status, body) = get(&gateway.url("/"), &[("X-SRS-User", ALLOWED)]).unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(!body.contains("gate-unavailable"), "{body}");
    assert_eq!(gate.checks().len(), 1);
}

fn check_token_is_forwarded(kind: GatewayKind) {
    let token = "s3cret-Token_1";
    let (gate, app, gateway) = setup(kind, Some(token));
    // The client's own Authorization header does not replace the configured token.
    let (status, body) = get(
        &gateway.url("/"),
        &[("X-SRS-User", ALLOWED), ("Authorization", "Bearer client")],
    )
    .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "upstream ok"),
        "{}",
        gateway.logs()
    );
    let (status, _) = get(&gateway.url("/"), &[("X-SRS-User", "blocked@example.com")]).unwrap();
    assert_eq!(status, 403);
    assert_eq!(app.hits(), 1);
    let expected = format!("Bearer {token}");
    for check in gate.checks() {
        assert_eq!(check.authorization.as_deref(), Some(expected.as_str()));
    }

    // The gateway with a wrong token: the gate's 401 reaches the client, nothing passes.
    let (gate, app, gateway) = setup_with(kind, Some(token), Some("wrong"));
    let (status, body) = get(&gateway.url("/"), &[("X-SRS-User", ALLOWED)]).unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(app.hits(), 0);
    assert_eq!(
        gate.checks().first().unwrap().authorization.as_deref(),
        Some("Bearer wrong")
    );
}

#[test]
fn nginx_allowed_user_reaches_the_app() {
    allowed_user_reaches_the_app(GatewayKind::Nginx);
}

#[test]
fn nginx_blocked_user_is_refused() {
    blocked_user_is_refused(GatewayKind::Nginx);
}

#[test]
fn nginx_gate_down_fails_closed() {
    gate_down_fails_closed(GatewayKind::Nginx);
}

#[test]
fn nginx_app_down_is_a_bad_gateway() {
    app_down_is_a_bad_gateway(GatewayKind::Nginx);
}

#[test]
fn nginx_check_token_is_forwarded() {
    check_token_is_forwarded(GatewayKind::Nginx);
}

#[test]
fn caddy_allowed_user_reaches_the_app() {
    allowed_user_reaches_the_app(GatewayKind::Caddy);
}

#[test]
fn caddy_blocked_user_is_refused() {
    blocked_user_is_refused(GatewayKind::Caddy);
}

#[test]
fn caddy_gate_down_fails_closed() {
    gate_down_fails_closed(GatewayKind::Caddy);
}

#[test]
fn caddy_app_down_is_a_bad_gateway() {
    app_down_is_a_bad_gateway(GatewayKind::Caddy);
}

#[test]
fn caddy_check_token_is_forwarded() {
    check_token_is_forwarded(GatewayKind::Caddy);
}

/// Stopping a gateway stops its processes (nginx's workers too) and removes its files.
#[test]
fn dropping_a_gateway_leaves_nothing_running() {
    let app = Echo::start().unwrap();
    for kind in [GatewayKind::Nginx, GatewayKind::Caddy] {
        let gateway = Gateway::start(kind, app.addr(), app.addr(), None).unwrap();
        let pid = gateway.pid().unwrap();
        let mut processes = children_of(pid);
        if kind == GatewayKind::Nginx {
            assert!(!processes.is_empty(), "nginx without workers");
        }
        processes.push(pid);
        let dir = gateway.dir().to_owned();
        assert!(dir.join(kind.config_file()).exists());
        drop(gateway);
        assert!(!dir.exists(), "{} left behind", dir.display());
        for pid in processes {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "{kind} process {pid} still there"
            );
        }
    }
}

/// The processes whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap() {
        let name = entry.unwrap().file_name();
        let Some(child) = name.to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`; COMM may hold spaces, so parse after the last `)`.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if ppid == Some(pid) {
            children.push(child);
        }
    }
    children
}
