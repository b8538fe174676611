//! Real gateways in front of a sign-in gate, for tests of the shipped configs in
//! `examples/gateways/`:
//!
//! - [`Gateway`]: nginx or Caddy as a child process, running the shipped config with its
//!   defaults (listen 8000, gate `127.0.0.1:8080`, app `127.0.0.1:3000`, the bearer
//!   placeholder) replaced, everything (config, pid, logs, temp files, Caddy's HOME) in a
//!   temp dir of its own. Dropping it stops the child and removes the dir.
//! - [`HttpServer`]: a loopback HTTP/1.1 server answering with a closure (a fake gate).
//! - [`Echo`]: the upstream app, `200 upstream ok` to anything, counting requests.
//! - [`get`], [`send`]: a tiny blocking HTTP/1.1 client.
//!
//! ```no_run
//! use fake_providers::gateways::{Echo, Gateway, GatewayKind, get};
//! # fn main() -> anyhow::Result<()> {
//! let app = Echo::start()?;
//! # let gate = app.addr();
//! let nginx = Gateway::start(GatewayKind::Nginx, gate, app.addr(), None)?;
//! let (status, body) = get(&nginx.url("/"), &[("X-SRS-User", "ok@example.com")])?;
//! # Ok(())
//! # }
//! ```

use std::convert::Infallible;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

/// How long [`Gateway::start`] waits for the gateway's port.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a stopping gateway gets after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request body an [`HttpServer`] reads.
const MAX_BODY: usize = 1024 * 1024;

/// The shipped gateway configs: `examples/gateways/` at the workspace root.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gateways")
}

/// A port on `127.0.0.1` that was free a moment ago (bound to port 0, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

// ------------------------------------------------------------------------------ servers

/// What an [`HttpServer`] handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    /// No body.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            content_type: None,
            body: String::new(),
            headers: Vec::new(),
        }
    }

    /// A `text/plain` body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: Some("text/plain"),
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// An `application/json` body.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: Some("application/json"),
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// With this header too.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Some(content_type) = self.content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response
                    .headers_mut()
                    .insert(header::HeaderName::from_static(name), value);
            }
        }
        response
    }
}

type Handler = dyn Fn(&Parts, &[u8]) -> Answer + Send + Sync;

/// A loopback HTTP/1.1 server on `127.0.0.1` (random port) on its own thread, answering each
/// request (head and whole body) with `handler`.
///
/// [`stop`](Self::stop) is a stopped service: every connection closed, new ones refused,
/// while the port stays reserved (bound, not listening) so that no other server started in
/// the meantime can take it over and answer in its place. Dropping it stops it and releases
/// the port.
pub struct HttpServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// After `stop`: a socket bound to `addr` that never listens.
    tombstone: Option<TcpSocket>,
}

impl HttpServer {
    /// Binds `127.0.0.1:0` and serves `handler`.
    pub fn start(
        handler: impl Fn(&Parts, &[u8]) -> Answer + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the server runtime")?;
        let listener = {
            let _context = runtime.enter();
            // SO_REUSEPORT only so that `stop` can bind its tombstone before closing this.
            let socket = TcpSocket::new_v4()?;
            socket.set_reuseport(true)?;
            socket
                .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .context("binding 127.0.0.1:0")?;
            socket.listen(1024)?
        };
        let addr = listener.local_addr()?;
        let handler: Arc<Handler> = Arc::new(handler);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("http-server-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(accept_loop(listener, handler, shutdown_rx));
                // Drops the connection tasks: their sockets close.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .context("spawning the server thread")?;
        Ok(Self {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
            tombstone: None,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: closes the listener and every connection; from now on connections
    /// to [`addr`](Self::addr) are refused, and the port stays reserved until drop.
    pub fn stop(&mut self) {
        if self.tombstone.is_none() {
            // Bound while the listener still holds the port, so it is never free.
            self.tombstone = TcpSocket::new_v4()
                .and_then(|socket| {
                    socket.set_reuseport(true)?;
                    socket.bind(self.addr)?;
                    Ok(socket)
                })
                .ok();
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

async fn accept_loop(
    listener: TcpListener,
    handler: Arc<Handler>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = Arc::clone(&handler);
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<Incoming>| {
                            let handler = Arc::clone(&handler);
                            async move { Ok::<_, Infallible>(answer(&*handler, request).await) }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
        }
    }
}

async fn answer(handler: &Handler, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => handler(&parts, &body.to_bytes()).into_response(),
        Err(_) => Answer::text(400, "unreadable or too large body").into_response(),
    }
}

/// The upstream app behind a gateway: answers `200 upstream ok` to anything, counting.
#[derive(Debug)]
pub struct Echo {
    server: HttpServer,
    hits: Arc<AtomicU64>,
    body_bytes: Arc<AtomicU64>,
}

impl Echo {
    /// Starts it on `127.0.0.1` (random port).
    pub fn start() -> anyhow::Result<Self> {
        let hits = Arc::new(AtomicU64::new(0));
        let body_bytes = Arc::new(AtomicU64::new(0));
        let server = HttpServer::start({
            let hits = Arc::clone(&hits);
            let body_bytes = Arc::clone(&body_bytes);
            move |_, body| {
                hits.fetch_add(1, Ordering::SeqCst);
                body_bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
                Answer::text(200, "upstream ok")
            }
        })?;
        Ok(Self {
            server,
            hits,
            body_bytes,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Requests answered so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops it (see [`HttpServer::stop`]): the app is down, its port reserved until drop.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Request body bytes received so far, over all requests.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes.load(Ordering::SeqCst)
    }
}

// ------------------------------------------------------------------------------ gateways

/// Which gateway, with its shipped config in `examples/gateways/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayKind {
    /// nginx with `auth_request` (`nginx.conf`).
    Nginx,
    /// Caddy with `forward_auth` (`Caddyfile`).
    Caddy,
}

impl GatewayKind {
    /// The shipped config's file name.
    pub fn config_file(self) -> &'static str {
        match self {
            Self::Nginx => "nginx.conf",
            Self::Caddy => "Caddyfile",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Caddy => "caddy",
        }
    }

    fn program(self) -> &'static str {
        match self {
            // Not always on a non-root PATH.
            Self::Nginx if Path::new("/usr/sbin/nginx").exists() => "/usr/sbin/nginx",
            Self::Nginx => "nginx",
            Self::Caddy => "caddy",
        }
    }
}

impl std::fmt::Display for GatewayKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A running nginx or Caddy on `127.0.0.1` with the shipped config, in front of `gate`
/// (`srs serve` or a fake) and `upstream` (the app). Dropping it stops the child (SIGTERM,
/// then SIGKILL), reaps it and removes its temp dir.
pub struct Gateway {
    kind: GatewayKind,
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl Gateway {
    /// Renders the shipped config for `kind` (listen port: a free one; gate and upstream
    /// addresses; the bearer placeholder replaced by `check_token`, or its line removed) into
    /// a new temp dir and starts the gateway there, waiting (bounded) until its port accepts
    /// connections. The error says why it did not start, with the gateway's own logs.
    pub fn start(
        kind: GatewayKind,
        gate: SocketAddr,
        upstream: SocketAddr,
        check_token: Option<&str>,
    ) -> anyhow::Result<Self> {
        if let Some(token) = check_token {
            let valid = !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
            if !valid {
                bail!("check token {token:?}: only [A-Za-z0-9-._~+/=] fit into the configs");
            }
        }
        let shipped_path = examples_dir().join(kind.config_file());
        let shipped = fs::read_to_string(&shipped_path)
            .with_context(|| format!("reading {}", shipped_path.display()))?;
        // The free port can be taken by someone else before the gateway binds it: retry.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(kind, &shipped, gate, upstream, check_token) {
                Err(error) if attempt < 3 && format!("{error:#}").contains("in use") => {}
                result => return result,
            }
        }
    }

    fn start_once(
        kind: GatewayKind,
        shipped: &str,
        gate: SocketAddr,
        upstream: SocketAddr,
        check_token: Option<&str>,
    ) -> anyhow::Result<Self> {
        let dir = TempDir::new(kind.name())?;
        let port = free_port()?;
        let config = render(kind, shipped, port, gate, upstream, check_token)?;
        let config_path = dir.path().join(kind.config_file());
        fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let output = File::create(dir.path().join("stderr.log"))?;

        let mut command = Command::new(kind.program());
        match kind {
            GatewayKind::Nginx => {
                // `-e stderr`: nothing goes to the compiled-in /var/log/nginx before the
                // config's own error_log (relative, so under the prefix) takes over.
                command
                    .arg("-p")
                    .arg(dir.path())
                    .arg("-c")
                    .arg(&config_path)
                    .args(["-e", "stderr", "-g", "daemon off;"]);
            }
            GatewayKind::Caddy => {
                command
                    .args(["run", "--config"])
                    .arg(&config_path)
                    .args(["--adapter", "caddyfile"])
                    .env("HOME", dir.path())
                    .env("XDG_DATA_HOME", dir.path().join("data"))
                    .env("XDG_CONFIG_HOME", dir.path().join("config"));
            }
        }
        command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(output.try_clone()?))
            .stderr(Stdio::from(output));
        let child = command
            .spawn()
            .with_context(|| format!("starting {} (is {kind} installed?)", kind.program()))?;
        let mut gateway = Self {
            kind,
            port,
            child: Some(child),
            dir,
        };
        gateway.wait_ready()?;
        Ok(gateway)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        let mut accepted = false;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited during startup ({status}); its logs:\n{}",
                    self.kind,
                    self.logs()
                );
            }
            // Accepting, and still alive a moment later (not someone else on the port).
            if accepted {
                return Ok(());
            }
            accepted = TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok();
            if !accepted && Instant::now() >= deadline {
                bail!(
                    "{} did not accept connections on {addr} within {START_TIMEOUT:?}; its logs:\n{}",
                    self.kind,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(if accepted { 100 } else { 50 }));
        }
    }

    /// The gateway's main process id (nginx: the master), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Which gateway this is.
    pub fn kind(&self) -> GatewayKind {
        self.kind
    }

    /// The port it listens on (`127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Its temp dir: config, pid, logs, temp files (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The rendered config, as the gateway runs it.
    pub fn config(&self) -> anyhow::Result<String> {
        let path = self.dir.path().join(self.kind.config_file());
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// The gateway's output so far (stderr, and nginx's error log), for failure messages.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        for name in ["stderr.log", "error.log"] {
            if let Ok(text) = fs::read_to_string(self.dir.path().join(name)) {
                let tail: String = {
                    let chars: Vec<char> = text.chars().collect();
                    let skip = chars.len().saturating_sub(8000);
                    chars.into_iter().skip(skip).collect()
                };
                let _ = writeln!(logs, "--- {name}\n{tail}");
            }
        }
        logs
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("kind", &self.kind)
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// SIGTERM (nginx's master then stops its workers; SIGKILL would orphan them), wait, then
/// SIGKILL; always reaped.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let terminated = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if terminated {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The shipped config with its defaults replaced. Every default must be found, so a change
/// to a shipped config cannot silently leave the test running something else.
fn render(
    kind: GatewayKind,
    shipped: &str,
    port: u16,
    gate: SocketAddr,
    upstream: SocketAddr,
    check_token: Option<&str>,
) -> anyhow::Result<String> {
    let (listen, listen_with) = match kind {
        GatewayKind::Nginx => ("listen 8000;", format!("listen 127.0.0.1:{port};")),
        GatewayKind::Caddy => (
            "http://:8000 {",
            format!("http://:{port} {{\n\tbind 127.0.0.1"),
        ),
    };
    let mut config = replace_all(shipped, listen, &listen_with)?;
    config = replace_all(&config, "127.0.0.1:8080", &gate.to_string())?;
    config = replace_all(&config, "127.0.0.1:3000", &upstream.to_string())?;

    const PLACEHOLDER: &str = "Bearer CHANGE-ME";
    let mut found = false;
    let mut lines = String::with_capacity(config.len());
    for line in config.lines() {
        if line.contains(PLACEHOLDER) && !line.trim_start().starts_with('#') {
            found = true;
            match check_token {
                Some(token) => lines.push_str(&line.replace("CHANGE-ME", token)),
                None => continue,
            }
        } else {
            lines.push_str(line);
        }
        lines.push('\n');
    }
    if !found {
        bail!("the shipped {kind} config has no {PLACEHOLDER:?} line");
    }
    config = lines;

    if kind == GatewayKind::Nginx && running_as_root() {
        // As root, nginx runs its workers as `user`: an unprivileged one.
        let group = if fs::read_to_string("/etc/group")
            .is_ok_and(|groups| groups.lines().any(|line| line.starts_with("nogroup:")))
        {
            "nogroup"
        } else {
            "nobody"
        };
        config = format!("user nobody {group};\n{config}");
    }
    Ok(config)
}

fn replace_all(text: &str, from: &str, to: &str) -> anyhow::Result<String> {
    if !text.contains(from) {
        bail!("the shipped config has no {from:?}");
    }
    Ok(text.replace(from, to))
}

fn running_as_root() -> bool {
    // /proc/self belongs to the effective user.
    fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> anyhow::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "srs-gateway-{label}-{}-{}-{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..),
        ));
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        // nginx's unprivileged workers must reach their temp dirs inside.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------------------------------ client

/// `GET url` with these extra headers on a fresh connection (`Connection: close`): the
/// status and the body (lossy UTF-8).
pub fn get(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
    send("GET", url, headers, b"")
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`, `Content-Length` sent
/// unless a GET without a body): the status and the body (lossy UTF-8; chunked decoded).
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("{url}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if !body.is_empty() || method != "GET" {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to {method} {url}"))?;
    parse_response(&raw).with_context(|| {
        format!(
            "the answer to {method} {url}: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let end = find(raw, b"\r\n\r\n").context("no end of the head")?;
    let head = String::from_utf8_lossy(raw.get(..end).unwrap_or_default());
    let rest = raw.get(end + 4..).unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .context("no status")?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("bad Content-Length")?);
            }
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else {
        match length {
            Some(length) => rest.get(..length).context("short body")?.to_vec(),
            None => rest.to_vec(),
        }
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").context("no chunk size")?;
        let line = std::str::from_utf8(data.get(..line_end).unwrap_or_default())?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).context("bad chunk size")?;
        data = data.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(data.get(..size).context("short chunk")?);
        data = data.get(size + 2..).context("short chunk")?;
    }
}
