//! What the `srs serve` tests share: fake providers and a config in a temp
//! dir, the real `srs serve` as a child process, a small HTTP/1.1 client.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support; each test file uses part of it"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_providers::{FakeGoogle, FakeOffice365, GoogleOptions, Office365Options};
use serde_json::Value;

pub const SECRET_ENV: &str = "SRS_TEST_O365_SECRET";
pub const INTAKE: &str = "intake-token-for-tests";
pub const ADMIN: &str = "admin-token-for-tests";
pub const STREAM: &str = "stream-token-for-tests";
pub const WAIT: Duration = Duration::from_secs(30);

/// Fake providers, a policy, a host config and a journal in a temp dir.
pub struct World {
    pub o365: FakeOffice365,
    pub google: FakeGoogle,
    dir: tempfile::TempDir,
    secret: String,
}

impl World {
    pub fn new(serve_extra: &str) -> Self {
        let options = Office365Options::default();
        let secret = options.client_secret.clone();
        let o365 = FakeOffice365::start(options).unwrap();
        let google = FakeGoogle::start(GoogleOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sa.json"), google.key_file_json()).unwrap();
        std::fs::write(dir.path().join("policy.json"), policy(false)).unwrap();
        let extra = format!(
            "[retry]\ninitial_backoff_ms = 20\nmax_backoff_ms = 200\ndeadline_ms = 20000\nlease_ms = 1000\n\
             [serve]\nintake_token_env = \"SRS_TEST_INTAKE\"\nadmin_token_env = \"SRS_TEST_ADMIN\"\n\
             max_body_bytes = 65536\nresume_ms = 200\n{serve_extra}"
        );
        let config = fake_providers::host_toml(
            &o365,
            &google,
            SECRET_ENV,
            "timeout_ms = 2000\nmax_concurrency = 4\n",
            &extra,
        );
        std::fs::write(dir.path().join("host.toml"), config).unwrap();
        Self {
            o365,
            google,
            dir,
            secret,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `srs serve` on a free port and waits until it listens.
    pub fn serve(&self) -> Serve {
        self.serve_on("127.0.0.1:0")
    }

    /// The Office 365 client secret the config names.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Starts `srs serve` on a free port with the journal at `state`.
    pub fn serve_with_state(&self, state: &str) -> Serve {
        self.start("127.0.0.1:0", state)
    }

    /// Starts `srs serve` on `listen` and waits until it listens.
    pub fn serve_on(&self, listen: &str) -> Serve {
        self.start(listen, &self.path("state.db").display().to_string())
    }

    fn start(&self, listen: &str, state: &str) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_srs"))
            .arg("serve")
            .arg("--policy")
            .arg(self.path("policy.json"))
            .arg("--config")
            .arg(self.path("host.toml"))
            .arg("--state")
            .arg(state)
            .arg("--listen")
            .arg(listen)
            .env(SECRET_ENV, &self.secret)
            .env("SRS_TEST_INTAKE", INTAKE)
            .env("SRS_TEST_ADMIN", ADMIN)
            .env("SRS_TEST_STREAM", STREAM)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Some(url) = line.trim().strip_prefix("srs serve: listening on http://") else {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("srs serve did not start: {line}{err}");
        };
        let addr = url.parse().unwrap();
        Serve { child, addr }
    }
}

/// A running `srs serve`; killed (SIGKILL) when dropped.
pub struct Serve {
    child: Child,
    pub addr: SocketAddr,
}

impl Serve {
    /// SIGTERM, then the exit status and stderr.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut err).unwrap();
        }
        (status.code(), err)
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn push(&self, body: &str, content_type: &str) -> Response {
        http(
            self.addr,
            "POST",
            "/v1/events",
            &[
                ("Authorization", &format!("Bearer {INTAKE}")),
                ("Content-Type", content_type),
            ],
            body.as_bytes(),
        )
    }

    pub fn check(&self, user: &str, device: Option<&str>) -> Response {
        let mut headers = vec![("X-SRS-User", user)];
        if let Some(device) = device {
            headers.push(("X-SRS-Device", device));
        }
        http(self.addr, "GET", "/v1/check", &headers, b"")
    }

    pub fn admin(&self, method: &str, path: &str, body: &str) -> Response {
        http(
            self.addr,
            method,
            path,
            &[
                ("Authorization", &format!("Bearer {ADMIN}")),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response: status, headers (lowercased names), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on its own connection.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_http(addr, method, path, headers, body).unwrap()
}

/// [`http`], or `None` when the connection fails or closes unanswered.
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Response> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    // A refused body may be answered before it is all sent.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// The test policy; the custom action `Nag` blocks when `nag_blocks`.
pub fn policy(nag_blocks: bool) -> String {
    let class = if nag_blocks {
        "blocking"
    } else {
        "non_blocking"
    };
    format!(
        r#"{{"uem":"epmm","deployment":"access","providers":["office365","google_workspace"],
            "actions":{{"Nag":"{class}"}},
            "compliance_policies":[{{"id":"jailbreak","actions":["Send Alert","Block"]}},{{"id":"nag","actions":["Nag"]}}]}}"#
    )
}

/// An event of `user`'s device `device` at `time`: jailbroken, nagged, or compliant.
pub fn event(id: &str, user: &str, device: &str, time: &str, kind: &str) -> String {
    let compliance = match kind {
        "jailbreak" => r#"{"compliant":false,"violations":[{"policy":"jailbreak"}]}"#,
        "nag" => r#"{"compliant":false,"violations":[{"policy":"nag"}]}"#,
        _ => r#"{"compliant":true}"#,
    };
    format!(
        r#"{{"id":"{id}","time":"{time}","device":{{"id":"{device}","state":"active","platform":"ios"}},"user":{{"upn":"{user}"}},"compliance":{compliance}}}"#
    )
}

#[track_caller]
pub fn wait_until(condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < WAIT, "timed out waiting");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// [`policy`] with a grace period of `seconds`.
pub fn grace_policy(seconds: u32) -> String {
    let policy = policy(false);
    let open = policy.trim_end().trim_end_matches('}');
    format!("{open},\"grace_seconds\":{seconds}}}")
}

/// The current time as an RFC 3339 UTC string (whole seconds), and as unix ms.
pub fn now_rfc3339() -> (String, i64) {
    let ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let seconds = ms.div_euclid(1000);
    (policy_core::format_utc(seconds).unwrap(), seconds * 1000)
}
