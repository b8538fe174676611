//! `fake_providers::postgres::TempPostgres`: a real server that `psql` reaches on its port
//! and URL, survives a restart on the same port with its data, makes databases, stops and
//! starts, and leaves nothing behind: not on drop, and not after the process exits for the
//! never-dropped shared cluster (checked by running this binary again as a child).

#![expect(clippy::unwrap_used, reason = "tests")]

use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fake_providers::postgres::TempPostgres;

/// `psql -h 127.0.0.1 -p PORT -U srs -d DATABASE -c SQL`, as a user would type it; the
/// trimmed output, or `None` if psql failed.
fn psql(pg: &TempPostgres, database: &str, sql: &str) -> Option<String> {
    let output = Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p"])
        .arg(pg.port().to_string())
        .args(["-U", "srs", "-d", database, "-c", sql])
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

/// `psql URL -c SQL`: the URL works as given.
fn psql_url(pg: &TempPostgres, url: &str, sql: &str) -> Option<String> {
    let output = Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-A", "-t", url, "-c", sql])
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

/// Whether process `pid` is alive (exists and is not a zombie waiting for init to reap it).
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X']))
    })
}

/// Whether process `pid` is gone, waiting up to 10 s (a postmaster may still be exiting
/// after `pg_ctl` returned).
fn process_gone(pid: u32) -> bool {
    wait_until(Duration::from_secs(10), || !process_alive(pid))
}

fn accepts_connections(port: u16) -> bool {
    TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(500),
    )
    .is_ok()
}

fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    condition()
}

#[test]
fn start_connect_restart_create_database_stop_and_drop() {
    let pg = TempPostgres::start().unwrap();
    let port = pg.port();
    assert!(pg.is_running());
    assert_eq!(psql(&pg, "srs_test", "select 1").as_deref(), Some("1"));
    assert_eq!(
        pg.url(),
        format!("postgres://srs@127.0.0.1:{port}/srs_test?sslmode=disable")
    );
    assert_eq!(
        psql_url(&pg, &pg.url(), "select current_database()").as_deref(),
        Some("srs_test")
    );
    assert_eq!(
        pg.psql("srs_test", "show server_encoding").unwrap().trim(),
        "UTF8"
    );
    pg.psql(
        "srs_test",
        "create table kept (n int); insert into kept values (42)",
    )
    .unwrap();

    // Restart: a new postmaster, the same port, the data kept.
    let first_pid = pg.pid().unwrap();
    pg.restart().unwrap();
    assert_eq!(pg.port(), port);
    let second_pid = pg.pid().unwrap();
    assert_ne!(first_pid, second_pid);
    assert!(
        process_gone(first_pid),
        "old postmaster {first_pid} still running"
    );
    assert_eq!(psql(&pg, "srs_test", "select 1").as_deref(), Some("1"));
    assert_eq!(
        psql(&pg, "srs_test", "select n from kept").as_deref(),
        Some("42")
    );

    // Another database in the same cluster, reached by the URL returned.
    let other = pg.create_database("other_db").unwrap();
    assert_eq!(other, pg.database_url("other_db"));
    assert_eq!(
        psql_url(&pg, &other, "select current_database()").as_deref(),
        Some("other_db")
    );
    assert!(pg.create_database("other_db").is_err(), "exists already");
    assert!(pg.create_database("bad; drop").is_err(), "invalid name");
    let fresh = pg.fresh_database().unwrap();
    assert_ne!(fresh, other);
    assert_eq!(psql_url(&pg, &fresh, "select 1").as_deref(), Some("1"));

    // Stop: down (pg_ctl status, psql, the port), data kept; restart brings it back.
    pg.stop().unwrap();
    assert!(!pg.is_running());
    assert_eq!(pg.pid(), None);
    assert!(
        process_gone(second_pid),
        "postmaster {second_pid} still running"
    );
    assert_eq!(psql(&pg, "srs_test", "select 1"), None);
    assert!(!accepts_connections(port));
    pg.restart().unwrap();
    assert!(pg.is_running());
    assert_eq!(
        psql(&pg, "srs_test", "select n from kept").as_deref(),
        Some("42")
    );

    // Drop: the server process is gone, the port closed, the directory removed.
    let pid = pg.pid().unwrap();
    let dir = pg.dir().to_owned();
    assert!(dir.join("data").is_dir());
    drop(pg);
    assert!(process_gone(pid), "postmaster {pid} still running");
    assert!(!accepts_connections(port));
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn two_clusters_run_side_by_side() {
    let a = TempPostgres::start().unwrap();
    let b = TempPostgres::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    a.psql("srs_test", "create table only_in_a (n int)")
        .unwrap();
    assert!(b.psql("srs_test", "select * from only_in_a").is_err());
}

/// Set in the child process `shared_cluster_is_removed_after_the_process_exits` starts.
const CHILD_ENV: &str = "FAKE_PROVIDERS_POSTGRES_SHARED_CHILD";

/// In the child process only: starts the shared cluster, uses it, reports its PID,
/// directory and port on stdout, and exits without anything dropping it.
#[test]
fn shared_cluster_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let pg = TempPostgres::shared().unwrap();
    let again = TempPostgres::shared().unwrap();
    assert!(std::ptr::eq(pg, again));
    let url = pg.fresh_database().unwrap();
    assert_eq!(psql_url(pg, &url, "select 1").as_deref(), Some("1"));
    println!(
        "SHARED pid={} port={} dir={}",
        pg.pid().unwrap(),
        pg.port(),
        pg.dir().display()
    );
}

#[test]
fn shared_cluster_is_removed_after_the_process_exits() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "shared_cluster_child", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("SHARED "))
        .unwrap();
    let mut fields = line.splitn(3, ' ');
    let pid: u32 = fields
        .next()
        .and_then(|f| f.strip_prefix("pid="))
        .unwrap()
        .parse()
        .unwrap();
    let port: u16 = fields
        .next()
        .and_then(|f| f.strip_prefix("port="))
        .unwrap()
        .parse()
        .unwrap();
    let dir = fields.next().and_then(|f| f.strip_prefix("dir=")).unwrap();

    // The child has exited; its watchdog polls once a second.
    assert!(
        wait_until(Duration::from_secs(20), || !process_alive(pid)),
        "postmaster {pid} of the exited process still running"
    );
    assert!(!accepts_connections(port));
    assert!(
        wait_until(Duration::from_secs(10), || !Path::new(dir).exists()),
        "{dir} not removed"
    );
}
