//! A real, throwaway PostgreSQL server for tests: [`TempPostgres`].
//!
//! [`TempPostgres::start`] takes the newest Debian PostgreSQL in `/usr/lib/postgresql/*/bin`
//! (or the directory in `SRS_TEST_PG_BIN`), runs `initdb` in a fresh directory under
//! [`std::env::temp_dir`] (superuser `srs`, `trust` authentication, UTF-8, locale C, no
//! fsync unless [`TempPostgres::start_durable`]) and starts the server with `pg_ctl` on a free `127.0.0.1` port, its Unix socket in
//! that directory. No service manager, no fixed port, no config outside the directory. It then
//! creates the database `srs_test`; [`TempPostgres::url`] is its URL.
//!
//! The server refuses to run as root. When the test process is root (as on the CI machines),
//! the directory is chowned to the `postgres` system user (Debian's package creates it) and
//! `initdb` / `pg_ctl` run through `runuser -u postgres --`; otherwise they run directly as
//! the current user. Clients (`psql`, `createdb`, the code under test) connect over TCP as
//! `srs` and may run as anyone.
//!
//! # Cleanup
//!
//! - Dropping a [`TempPostgres`] stops the server (`pg_ctl stop -m immediate`, then SIGKILL
//!   if a postmaster is somehow still there) and removes the directory. It never panics.
//! - Every cluster also has a watchdog: a small `sh` child, in its own process group, that
//!   polls once a second whether the test process is still alive. When the test process is
//!   gone (it exited, panicked, was SIGKILLed, or never ran `Drop` because the cluster is
//!   [`TempPostgres::shared`], a `static`), the watchdog sends the postmaster SIGQUIT
//!   (PostgreSQL's immediate shutdown), waits for it to exit and removes the directory. Drop
//!   kills the watchdog, having done its work itself.
//!
//! ```no_run
//! use fake_providers::postgres::TempPostgres;
//! # fn main() -> anyhow::Result<()> {
//! let pg = TempPostgres::start()?;
//! let url = pg.url(); // postgres://srs@127.0.0.1:PORT/srs_test?sslmode=disable
//! // ... run the code under test against `url` ...
//! pg.restart()?; // same port, same data
//! // Many tests sharing one cluster per test binary, each with its own database:
//! let url = TempPostgres::shared()?.fresh_database()?;
//! # let _ = url;
//! # Ok(())
//! # }
//! ```

use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};

/// The superuser `initdb` creates; every URL connects as it (no password: `trust`).
pub const USER: &str = "srs";

/// The database [`TempPostgres::start`] creates and [`TempPostgres::url`] names.
pub const DATABASE: &str = "srs_test";

/// Environment variables that would change what `psql`, `createdb`, `initdb` or `pg_ctl`
/// do; removed from every command this module runs.
const PG_ENV: &[&str] = &[
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGSSLMODE",
    "PGTZ",
    "PGCLIENTENCODING",
];

/// The watchdog: `$1` is the test process's PID, `$2` the cluster's directory. Once `$1` is
/// gone, SIGQUIT (immediate shutdown) to the postmaster named in `postmaster.pid`, wait up to
/// 30 s for it to exit, remove the directory.
const WATCHDOG: &str = r#"
while kill -0 "$1" 2>/dev/null; do sleep 1; done
pid=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null) || pid=
if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$2"
"#;

/// How many times [`TempPostgres::start`] tries a new free port when the server fails to
/// start (another process may take the port between choosing and binding it).
const START_ATTEMPTS: usize = 3;

/// A running PostgreSQL server in its own temporary directory, stopped and removed on drop
/// (see the [module docs](self) for how cleanup works).
#[derive(Debug)]
pub struct TempPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Run `initdb` and `pg_ctl` through `runuser -u postgres` (the test process is root).
    as_postgres: bool,
    /// `fsync` on, as in production (benchmarks); tests run without.
    durable: bool,
    watchdog: Mutex<Option<Child>>,
}

impl TempPostgres {
    /// Creates a cluster in a fresh temporary directory, starts it on a free `127.0.0.1`
    /// port and creates the database [`DATABASE`]. Fails (removing what it made) when
    /// PostgreSQL is not installed, `initdb` fails, or the server does not start.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(false)
    }

    /// [`TempPostgres::start`] with `fsync` on, as a production server runs: for
    /// benchmarks that compare durable journals.
    pub fn start_durable() -> anyhow::Result<Self> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let as_postgres = effective_uid()? == 0;
        let dir = unique_dir()?;
        // From here on `pg` owns the directory: an early return drops it, which removes it.
        let mut pg = Self {
            bin,
            dir,
            port: 0,
            as_postgres,
            durable,
            watchdog: Mutex::new(None),
        };
        let dir_str = pg.dir_str()?.to_owned();
        if dir_str.contains(['\'', '"', '\\']) {
            bail!("the temporary directory {dir_str} contains a quote or backslash");
        }
        if as_postgres {
            let (uid, gid) = postgres_ids()?;
            std::os::unix::fs::chown(&pg.dir, Some(uid), Some(gid))
                .with_context(|| format!("chown postgres {dir_str}"))?;
        }
        pg.spawn_watchdog()?;

        let data = pg.data_dir();
        let mut initdb = pg.server_command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync");
        run(&mut initdb, "initdb")?;

        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            pg.port = crate::gateways::free_port()?;
            let mut start = pg.pg_ctl();
            start.args(["-w", "-t", "60", "-l"]).arg(pg.log_file());
            start.arg("-o").arg(pg.server_options()?).arg("start");
            match run(&mut start, "pg_ctl start") {
                Ok(_) => {
                    last_error = None;
                    break;
                }
                Err(error) => {
                    // Stop a half-started server before trying another port.
                    let _ = pg.pg_ctl().args(["-m", "immediate", "-w", "stop"]).output();
                    last_error = Some(error.context(pg.log_tail()));
                }
            }
        }
        if let Some(error) = last_error {
            return Err(error);
        }
        pg.create_database(DATABASE)?;
        Ok(pg)
    }

    /// One cluster per test process, started by the first call and shared by every test in
    /// the binary (give each test its own database: [`TempPostgres::fresh_database`]). It is
    /// never dropped; its watchdog stops and removes it once the process has exited. A failed
    /// start is remembered: later calls return the same error.
    pub fn shared() -> anyhow::Result<&'static TempPostgres> {
        static SHARED: OnceLock<Result<TempPostgres, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|error| format!("{error:#}")))
            .as_ref()
            .map_err(|error| anyhow!("starting the shared PostgreSQL cluster: {error}"))
    }

    /// `postgres://srs@127.0.0.1:PORT/srs_test?sslmode=disable`
    pub fn url(&self) -> String {
        self.database_url(DATABASE)
    }

    /// The URL of database `name` in this cluster (which may not exist).
    pub fn database_url(&self, name: &str) -> String {
        format!(
            "postgres://{USER}@{}:{}/{name}?sslmode=disable",
            Ipv4Addr::LOCALHOST,
            self.port
        )
    }

    /// The server's TCP port on `127.0.0.1`; the same across [`TempPostgres::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the empty database `name` (ASCII letters, digits and `_`, starting with a
    /// letter or `_`, at most 63 bytes) and returns its URL. Fails if it exists.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            bail!("invalid database name {name:?}");
        }
        let mut createdb = self.client_command("createdb");
        createdb.arg(name);
        run(&mut createdb, &format!("createdb {name}"))?;
        Ok(self.database_url(name))
    }

    /// Creates a database with a name not used before in this process (`srs_test_1`,
    /// `srs_test_2`, ...) and returns its URL: for tests sharing [`TempPostgres::shared`].
    pub fn fresh_database(&self) -> anyhow::Result<String> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("{DATABASE}_{n}"))
    }

    /// Runs `sql` with `psql` in database `database` (stopping at the first error) and
    /// returns its unaligned, tuples-only output (`select 1` gives `"1\n"`).
    pub fn psql(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let mut psql = self.client_command("psql");
        psql.args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-c",
            sql,
        ]);
        run(&mut psql, "psql")
    }

    /// Restarts the server (`pg_ctl restart -m fast`: open connections are closed) on the
    /// same port with the same data, waiting until it accepts connections. Also starts a
    /// server that [`TempPostgres::stop`] stopped.
    pub fn restart(&self) -> anyhow::Result<()> {
        let mut restart = self.pg_ctl();
        restart
            .args(["-w", "-t", "60", "-m", "fast", "-l"])
            .arg(self.log_file());
        restart.arg("-o").arg(self.server_options()?).arg("restart");
        run(&mut restart, "pg_ctl restart")
            .map(drop)
            .map_err(|error| error.context(self.log_tail()))
    }

    /// Stops the server (`pg_ctl stop -m fast`), keeping its data: to test what happens
    /// while the database is down. [`TempPostgres::restart`] starts it again.
    pub fn stop(&self) -> anyhow::Result<()> {
        let mut stop = self.pg_ctl();
        stop.args(["-w", "-t", "60", "-m", "fast", "stop"]);
        run(&mut stop, "pg_ctl stop").map(drop)
    }

    /// Whether the server is running (`pg_ctl status` succeeds).
    pub fn is_running(&self) -> bool {
        self.pg_ctl()
            .arg("status")
            .output()
            .is_ok_and(|output| output.status.success())
    }

    /// The postmaster's PID, from `postmaster.pid`, while the server runs.
    pub fn pid(&self) -> Option<u32> {
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        pid_file.lines().next()?.trim().parse().ok()
    }

    /// The cluster's directory: `data/` (the data directory), `log` (the server log), the
    /// Unix socket. Removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of the PostgreSQL programs in use (`psql`, `pg_ctl`, ...).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Turns TLS on with this certificate chain and key (PEM files), by
    /// `ALTER SYSTEM` and a configuration reload: clients may then ask for it.
    pub fn enable_tls(&self, cert: &Path, key: &Path) -> anyhow::Result<()> {
        let (cert_to, key_to) = (self.dir.join("server.crt"), self.dir.join("server.key"));
        std::fs::copy(cert, &cert_to).context("copy the server certificate")?;
        std::fs::copy(key, &key_to).context("copy the server key")?;
        std::fs::set_permissions(&key_to, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        if self.as_postgres {
            let (uid, gid) = postgres_ids()?;
            for file in [&cert_to, &key_to] {
                std::os::unix::fs::chown(file, Some(uid), Some(gid))
                    .with_context(|| format!("chown postgres {}", file.display()))?;
            }
        }
        let (cert, key) = (cert_to.display(), key_to.display());
        // One statement per call: ALTER SYSTEM cannot run in a transaction block.
        for sql in [
            format!("ALTER SYSTEM SET ssl_cert_file = '{cert}'"),
            format!("ALTER SYSTEM SET ssl_key_file = '{key}'"),
            "ALTER SYSTEM SET ssl = on".to_owned(),
        ] {
            self.psql(DATABASE, &sql)?;
        }
        self.psql(DATABASE, "SELECT pg_reload_conf();")?;
        Ok(())
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("log")
    }

    fn dir_str(&self) -> anyhow::Result<&str> {
        self.dir
            .to_str()
            .with_context(|| format!("non-UTF-8 temporary directory {}", self.dir.display()))
    }

    /// The postgres options `pg_ctl -o` passes on (a shell word list: `pg_ctl` runs the
    /// server through `sh`; [`TempPostgres::start`] rejected directories with quotes).
    fn server_options(&self) -> anyhow::Result<String> {
        Ok(format!(
            "-p {} -k '{}' -c listen_addresses={} -c fsync={} -c max_connections=200",
            self.port,
            self.dir_str()?,
            Ipv4Addr::LOCALHOST,
            if self.durable { "on" } else { "off" }
        ))
    }

    /// The last lines of the server log, for errors.
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines
            .get(lines.len().saturating_sub(20)..)
            .unwrap_or_default();
        format!(
            "server log {}:\n{}",
            self.log_file().display(),
            tail.join("\n")
        )
    }

    /// A PostgreSQL server program (`initdb`, `pg_ctl`), as `postgres` when we are root.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(path);
            runuser
        } else {
            Command::new(path)
        };
        // The test's working directory may not be readable by `postgres`.
        command.current_dir(&self.dir).stdin(Stdio::null());
        for var in PG_ENV {
            command.env_remove(var);
        }
        command
    }

    fn pg_ctl(&self) -> Command {
        let mut pg_ctl = self.server_command("pg_ctl");
        pg_ctl.arg("-D").arg(self.data_dir());
        pg_ctl
    }

    /// A client program (`psql`, `createdb`) connecting over TCP as [`USER`].
    fn client_command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(&self.dir).stdin(Stdio::null());
        for var in PG_ENV {
            command.env_remove(var);
        }
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER]);
        command
    }

    fn spawn_watchdog(&self) -> anyhow::Result<()> {
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("srs-postgres-watchdog")
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C on the test run must not kill it too.
            .process_group(0)
            .spawn()
            .context("spawning the PostgreSQL watchdog (sh)")?;
        if let Ok(mut watchdog) = self.watchdog.lock() {
            *watchdog = Some(child);
        }
        Ok(())
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            let _ = self
                .pg_ctl()
                .args(["-w", "-t", "30", "-m", "immediate", "stop"])
                .output();
            // pg_ctl failed (or timed out): make sure.
            if let Some(pid) = self.pid() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .output();
            }
        }
        let watchdog = match self.watchdog.get_mut() {
            Ok(watchdog) => watchdog.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(mut watchdog) = watchdog {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `command`; its stdout if it succeeded, else an error with its output.
fn run(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {what} ({command:?})"))?;
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    if !status.success() {
        bail!(
            "{what} failed ({status}): {command:?}\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&stderr)
        );
    }
    Ok(stdout)
}

/// `SRS_TEST_PG_BIN` if set, else the newest `/usr/lib/postgresql/<version>/bin` that has
/// `initdb`.
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SRS_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/postgresql");
    let entries = std::fs::read_dir(root).with_context(|| {
        format!(
            "PostgreSQL is not installed ({} missing; scripts/test installs Debian's postgresql)",
            root.display()
        )
    })?;
    let mut newest: Option<(Vec<u32>, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(version) = name.to_str().and_then(|name| {
            name.split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()
        }) else {
            continue;
        };
        let bin = entry.path().join("bin");
        if bin.join("initdb").is_file() && newest.as_ref().is_none_or(|(v, _)| version > *v) {
            newest = Some((version, bin));
        }
    }
    newest
        .map(|(_, bin)| bin)
        .with_context(|| format!("no {}/*/bin/initdb", root.display()))
}

/// The effective user id, from `/proc/self/status` (`Uid: real effective saved fs`).
fn effective_uid() -> anyhow::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status").context("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .context("no effective uid in /proc/self/status")
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_ids() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            if fields.next()? != "postgres" {
                return None;
            }
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((uid, gid))
        })
        .context(
            "no `postgres` user in /etc/passwd (Debian's postgresql package creates it; \
             the server refuses to run as root)",
        )
}

/// A new, empty directory `srs-postgres-PID-N-NANOS` under the temporary directory.
fn unique_dir() -> anyhow::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let temp = std::env::temp_dir();
    for _ in 0..100 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .subsec_nanos();
        let dir = temp.join(format!(
            "srs-postgres-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("could not create a unique directory in {}", temp.display())
}
