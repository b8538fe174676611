//! `srs run` through the real binary against loopback Office 365 and Google
//! servers: faults end with every revocation done exactly once at the provider
//! (the servers count) or failed with the right code; SIGKILL mid-run loses
//! nothing; no secret reaches the output or the journal.

#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use fake_providers::{
    FakeGoogle, FakeOffice365, Fault, GoogleOptions, Office365Options, RetryAfter,
    TEST_PRIVATE_KEY_PEM,
};

const SECRET_ENV: &str = "SRS_TEST_O365_SECRET";
const WAIT: Duration = Duration::from_secs(30);

/// Both fake providers, a policy, a host config and a journal path in a temp dir.
struct World {
    o365: FakeOffice365,
    google: FakeGoogle,
    dir: tempfile::TempDir,
    secret: String,
}

impl World {
    fn new() -> Self {
        Self::with(Office365Options::default(), "")
    }

    /// `extra` is appended to the host config (e.g. a `[retry]` override).
    fn with(o365_options: Office365Options, extra: &str) -> Self {
        let secret = o365_options.client_secret.clone();
        let o365 = FakeOffice365::start(o365_options).unwrap();
        let google = FakeGoogle::start(GoogleOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sa.json"), google.key_file_json()).unwrap();
        std::fs::write(dir.path().join("policy.json"), policy("enforce")).unwrap();
        let retry = if extra.contains("[retry]") {
            ""
        } else {
            "[retry]\ninitial_backoff_ms = 20\nmax_backoff_ms = 200\ndeadline_ms = 20000\nlease_ms = 1000\n"
        };
        let config = fake_providers::host_toml(
            &o365,
            &google,
            SECRET_ENV,
            "timeout_ms = 500\nmax_concurrency = 4\n",
            &format!("{retry}{extra}"),
        );
        std::fs::write(dir.path().join("host.toml"), config).unwrap();
        Self {
            o365,
            google,
            dir,
            secret,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, events: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_srs"));
        cmd.arg("run")
            .arg("--policy")
            .arg(self.path("policy.json"))
            .arg("--config")
            .arg(self.path("host.toml"))
            .arg("--state")
            .arg(self.path("state.db"))
            .arg(events)
            .env(SECRET_ENV, &self.secret)
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `srs run` on `events`, its output discarded; killed if the
    /// test ends first, so a failed assertion leaves nothing running.
    fn spawn(&self, events: &Path) -> Spawned {
        Spawned(self.command(events).stdout(Stdio::null()).spawn().unwrap())
    }

    /// Runs `srs run` on these lines to completion.
    fn run(&self, lines: &[String]) -> Output {
        let events = self.write_events(lines);
        self.command(&events).output().unwrap()
    }

    fn write_events(&self, lines: &[String]) -> PathBuf {
        let path = self.path("events.jsonl");
        let mut file = std::fs::File::create(&path).unwrap();
        for line in lines {
            writeln!(file, "{line}").unwrap();
        }
        path
    }

    fn status(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_srs"))
            .arg("status")
            .arg("--state")
            .arg(self.path("state.db"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    }

    /// Every user was revoked exactly once at both providers.
    #[track_caller]
    fn assert_each_revoked_once(&self, users: &[String]) {
        for user in users {
            assert_eq!(self.o365.applied(user), 1, "office365 {user}");
            assert_eq!(self.google.applied(user), 1, "google_workspace {user}");
        }
        assert_eq!(self.o365.applied_total(), users.len() as u64);
        assert_eq!(self.google.applied_total(), users.len() as u64);
    }
}

/// An `srs run` a test started: killed and reaped when dropped.
struct Spawned(std::process::Child);

impl Spawned {
    /// SIGKILL, as a crash would.
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    fn wait(mut self) -> std::process::ExitStatus {
        self.0.wait().unwrap()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Already ended after `kill` or `wait`: nothing to do.
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn policy(mode: &str) -> String {
    format!(
        r#"{{"uem":"epmm","deployment":"access","providers":["office365","google_workspace"],"mode":"{mode}",
            "compliance_policies":[{{"id":"jailbreak","actions":["Send Alert","Block"]}}]}}"#
    )
}

/// A jailbroken device of `user`: a revoke decision.
fn event(id: &str, user: &str) -> String {
    format!(
        r#"{{"id":"{id}","time":"2026-11-27T10:15:00Z","device":{{"id":"dev-{id}","state":"active","platform":"ios"}},"user":{{"upn":"{user}"}},"compliance":{{"compliant":false,"violations":[{{"policy":"jailbreak"}}]}}}}"#
    )
}

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i}@example.com")).collect()
}

fn events_for(users: &[String]) -> Vec<String> {
    users
        .iter()
        .enumerate()
        .map(|(i, u)| event(&format!("evt-{i}"), u))
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn last_line(out: &Output) -> String {
    text(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn revokes_each_user_once_with_one_token_per_provider() {
    let world = World::new();
    let users = users(40);
    let out = world.run(&events_for(&users));
    assert_exit(&out, 0);
    world.assert_each_revoked_once(&users);
    // The token is cached and shared by concurrent calls.
    assert_eq!(world.o365.token_requests(), 1);
    assert_eq!(world.google.token_requests(), 1);
    assert!(
        last_line(&out).contains("40 events: 40 revoke")
            && last_line(&out).contains("80 done, 0 failed, 0 pending"),
        "{}",
        last_line(&out)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .contains("office365 user7@example.com done, google_workspace user7@example.com done"),
        "{stdout}"
    );
    assert!(
        world
            .status()
            .contains("40 events (0 from dry runs); revocations: 80 done, 0 failed, 0 pending")
    );
}

/// Each transient fault, on both providers, still ends with every revocation
/// done exactly once.
#[test]
fn transient_faults_end_done_exactly_once() {
    let soon = SystemTime::now() + Duration::from_secs(1);
    let faults = [
        Fault::TooManyRequests {
            retry_after: Some(RetryAfter::Seconds(1)),
        },
        Fault::TooManyRequests {
            retry_after: Some(RetryAfter::Date(soon)),
        },
        Fault::TooManyRequests { retry_after: None },
        Fault::Unavailable { retry_after: None },
        Fault::Unavailable { retry_after: None },
        Fault::Unavailable { retry_after: None },
        Fault::Unavailable {
            retry_after: Some(RetryAfter::Seconds(0)),
        },
        Fault::Status(502),
        Fault::Status(504),
        Fault::Status(500),
        Fault::ExpiredToken,
        Fault::QuotaExceeded {
            reason: "userRateLimitExceeded",
        },
        Fault::QuotaExceeded {
            reason: "quotaExceeded",
        },
        Fault::QuotaExceeded {
            reason: "rateLimitExceeded",
        },
        Fault::Slow(Duration::from_millis(900)),
        Fault::Reset,
        Fault::Reset,
    ];
    let world = World::new();
    world.o365.push_faults(faults.clone());
    world.google.push_faults(faults.clone());
    world
        .o365
        .push_token_faults([Fault::Unavailable { retry_after: None }, Fault::Reset]);
    world
        .google
        .push_token_faults([Fault::Status(503), Fault::Slow(Duration::from_millis(900))]);
    let users = users(30);
    let out = world.run(&events_for(&users));
    assert_exit(&out, 0);
    world.assert_each_revoked_once(&users);
    assert_eq!(world.o365.pending_faults(), 0);
    assert_eq!(world.google.pending_faults(), 0);
    // ExpiredToken made each client fetch one new token (plus the faulted fetches).
    assert_eq!(world.o365.tokens_issued(), 2);
    assert_eq!(world.google.tokens_issued(), 2);
    assert!(
        last_line(&out).contains("60 done, 0 failed, 0 pending"),
        "{}",
        last_line(&out)
    );
}

#[test]
fn permanent_errors_fail_with_the_right_code() {
    let world = World::new();
    world.o365.unknown_user("ghost@example.com");
    world.google.forbid_user("ghost@example.com");
    let lines = vec![
        event("evt-ok", "alice@example.com"),
        event("evt-ghost", "ghost@example.com"),
    ];
    let out = world.run(&lines);
    assert_exit(&out, 2);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "office365 ghost@example.com failed (user-not-found 404 Request_ResourceNotFound)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "google_workspace ghost@example.com failed (permission-denied 403 forbidden)"
        ),
        "{stdout}"
    );
    assert_eq!(world.o365.applied("alice@example.com"), 1);
    assert_eq!(world.o365.applied("ghost@example.com"), 0);
    // Permanent: one attempt each, no retry.
    assert_eq!(world.o365.revoke_requests(), 2);
    let status = world.status();
    assert!(status.contains("2 done, 2 failed, 0 pending"), "{status}");
    assert!(
        status.contains(
            "failed   office365 ghost@example.com  user-not-found 404 Request_ResourceNotFound"
        ),
        "{status}"
    );
}

#[test]
fn rows_are_printed_while_the_run_goes_on() {
    // Events from stdin, left open: the run cannot end, so a row reaches
    // stdout only if the buffered output is flushed on its own.
    let world = World::new();
    let mut child = Spawned(
        world
            .command(Path::new("-"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    writeln!(stdin, "{}", event("evt-1", "alice@example.com")).unwrap();
    stdin.flush().unwrap();
    let row = rx
        .recv_timeout(WAIT)
        .expect("no row while the input is open");
    assert!(row.contains("evt-1") && row.contains("revoke"), "{row}");
    assert!(child.0.try_wait().unwrap().is_none(), "srs run ended early");
    drop(stdin);
    assert!(child.wait().success());
}

#[test]
fn a_redirect_is_not_followed() {
    let world = World::new();
    // Each points back at the same endpoint: a client following it would
    // send the call (and its token) again, and the revocation would apply.
    world.o365.push_faults([Fault::Redirect { status: 307 }]);
    world.google.push_faults([Fault::Redirect { status: 308 }]);
    let out = world.run(&[event("evt-1", "alice@example.com")]);
    assert_exit(&out, 2);
    let stdout = text(&out.stdout);
    for (provider, status) in [("office365", 307), ("google_workspace", 308)] {
        assert!(
            stdout.contains(&format!(
                "{provider} alice@example.com failed (rejected {status}"
            )),
            "{stdout}"
        );
    }
    assert_eq!(world.o365.revoke_requests(), 1);
    assert_eq!(world.google.revoke_requests(), 1);
    assert_eq!(world.o365.applied_total() + world.google.applied_total(), 0);
}

#[test]
fn a_second_401_fails_as_unauthorized() {
    let world = World::new();
    world
        .o365
        .push_faults([Fault::ExpiredToken, Fault::ExpiredToken]);
    let out = world.run(&[event("evt-1", "alice@example.com")]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stdout).contains(
            "office365 alice@example.com failed (unauthorized 401 InvalidAuthenticationToken)"
        ),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(world.google.applied("alice@example.com"), 1);
}

#[test]
fn a_wrong_client_secret_fails_without_showing_it() {
    let world = World::new();
    let mut wrong = world.command(&world.write_events(&[event("evt-1", "alice@example.com")]));
    wrong.env(SECRET_ENV, "not-the-secret-xyz");
    let out = wrong.output().unwrap();
    assert_exit(&out, 2);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("failed (auth-failed 401 invalid_client)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("not-the-secret-xyz") && !text(&out.stderr).contains("not-the-secret-xyz")
    );
    assert!(world.status().contains("auth-failed 401 invalid_client"));
}

#[test]
fn a_retry_after_past_the_deadline_stays_pending_and_resumes() {
    let world = World::with(
        Office365Options::default(),
        "[retry]\ninitial_backoff_ms = 20\nmax_backoff_ms = 200\ndeadline_ms = 1000\n",
    );
    world.o365.push_faults([Fault::TooManyRequests {
        retry_after: Some(RetryAfter::Seconds(60)),
    }]);
    let out = world.run(&[event("evt-1", "alice@example.com")]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stdout)
            .contains("office365 alice@example.com pending (throttled 429 TooManyRequests)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(world.o365.applied("alice@example.com"), 0);
    assert!(
        world
            .status()
            .contains("pending  office365 alice@example.com  (1 attempts; events evt-1)")
    );
    // The next run, with no new input, resumes it.
    let out = world.run(&[]);
    assert_exit(&out, 0);
    assert!(
        last_line(&out).contains(
            "1 done, 0 failed, 0 pending, 0 scheduled, 0 cancelled (1 resumed from an earlier run)"
        ),
        "{}",
        last_line(&out)
    );
    assert_eq!(world.o365.applied("alice@example.com"), 1);
    assert_eq!(world.google.applied("alice@example.com"), 1);
}

#[test]
fn duplicates_and_coalescing_execute_nothing_twice() {
    let world = World::new();
    // Slow providers keep the first tasks pending while the second event
    // arrives (both: a fast one could finish evt-1's task before evt-2 is
    // read, and evt-2 would then rightly revoke again).
    world.o365.set_latency(Duration::from_millis(200));
    world.google.set_latency(Duration::from_millis(200));
    let lines = vec![
        event("evt-1", "alice@example.com"),
        event("evt-2", "alice@example.com"),
        event("evt-1", "alice@example.com"),
    ];
    let out = world.run(&lines);
    assert_exit(&out, 0);
    assert!(
        last_line(&out)
            .contains("2 events: 2 revoke, 0 grace, 0 no action, 0 unsupported, 1 duplicate"),
        "{}",
        last_line(&out)
    );
    assert_eq!(world.o365.applied("alice@example.com"), 1);
    assert_eq!(world.google.applied("alice@example.com"), 1);
    // Seen ids execute nothing in a later run either.
    let out = world.run(&lines);
    assert_exit(&out, 0);
    assert!(
        last_line(&out)
            .contains("0 events: 0 revoke, 0 grace, 0 no action, 0 unsupported, 3 duplicate")
    );
    assert_eq!(world.o365.revoke_requests(), 1);
}

#[test]
fn dry_run_and_report_only_call_nothing() {
    let world = World::new();
    let lines = vec![event("evt-1", "alice@example.com")];
    let events = world.write_events(&lines);
    let out = world.command(&events).arg("--dry-run").output().unwrap();
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains(
        "would revoke office365 alice@example.com, google_workspace alice@example.com (dry run)"
    ));
    assert_eq!(
        world.o365.revoke_requests() + world.o365.token_requests(),
        0
    );
    // A real run after the dry run still executes the event.
    let out = world.run(&lines);
    assert_exit(&out, 0);
    assert_eq!(world.o365.applied("alice@example.com"), 1);

    let report = World::new();
    std::fs::write(report.path("policy.json"), policy("report_only")).unwrap();
    let out = report
        .command(&report.write_events(&lines))
        .env_remove(SECRET_ENV)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains("(report_only)"));
    assert_eq!(
        report.o365.revoke_requests() + report.google.token_requests(),
        0
    );
}

#[test]
fn bad_lines_are_reported_and_skipped() {
    let world = World::new();
    let lines = vec![
        event("evt-1", "alice@example.com"),
        "{not json".to_owned(),
        String::new(),
        r#"{"id":"evt-3","time":"2026-11-27T10:15:00Z","device":{"id":"d","state":"melted"},"user":{"upn":"b@example.com"}}"#.to_owned(),
        event("evt-4", "bob@example.com"),
    ];
    let out = world.run(&lines);
    assert_exit(&out, 2);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("line 2     skipped: malformed-json at event"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 4     skipped: invalid-value at event.device.state"),
        "{stdout}"
    );
    assert!(
        last_line(&out).contains("2 events") && last_line(&out).ends_with("2 bad lines"),
        "{}",
        last_line(&out)
    );
    assert_eq!(world.o365.applied("bob@example.com"), 1);
    // Input that cannot be read (a directory) is a bad line too, not a silent end.
    let out = world.command(world.dir.path()).output().unwrap();
    assert_exit(&out, 2);
    assert!(
        text(&out.stdout).contains("line 1     unreadable, input ends here"),
        "{}",
        text(&out.stdout)
    );
}

/// Kills `srs run` with SIGKILL while calls are in flight, at several points,
/// restarts it, and checks that every revocation happened and none was made
/// more often than the calls in flight at the kills can explain.
#[test]
fn sigkill_mid_run_loses_nothing() {
    let users = users(120);
    let lines = events_for(&users);
    // (Office 365 revocations applied before its server stalls, kills): the
    // kill comes once a call is stuck at the stalled server, so events are
    // journaled and calls are in flight at both providers.
    for (stall_at, kills) in [(0u64, 1u32), (37, 1), (119, 1), (10, 3)] {
        let world = World::new();
        let events = world.write_events(&lines);
        for kill in 0..kills {
            let after = stall_at + u64::from(kill) * 25;
            world.o365.stall_after(after);
            let seen = world.o365.revoke_requests();
            let child = world.spawn(&events);
            assert!(
                world.o365.wait_for_applied(after, WAIT),
                "stall {after}: never got there"
            );
            wait_until(|| world.o365.revoke_requests() > seen.max(after));
            std::thread::sleep(Duration::from_millis(100));
            child.kill();
            world.o365.release();
        }
        check_after_restart(
            &world,
            &events,
            &users,
            &format!("stall at {stall_at}, {kills} kill(s)"),
            kills,
        );
    }
    // Kills at arbitrary moments while calls complete (20 ms each), which can
    // land between a provider's 2xx and the journal commit of `done`.
    let world = World::new();
    world.o365.set_latency(Duration::from_millis(20));
    world.google.set_latency(Duration::from_millis(20));
    let events = world.write_events(&lines);
    let kills = 3;
    for _ in 0..kills {
        let before = world.o365.applied_total();
        let child = world.spawn(&events);
        wait_until(|| world.o365.applied_total() > before + 5);
        std::thread::sleep(Duration::from_millis(u64::from(fastrand_ms())));
        child.kill();
    }
    check_after_restart(&world, &events, &users, "kills while calls complete", kills);
}

/// Restarts `srs run` to the end and checks nothing was lost or repeated
/// beyond the calls in flight at the kills.
#[track_caller]
fn check_after_restart(world: &World, events: &Path, users: &[String], label: &str, kills: u32) {
    let out = world.command(events).output().unwrap();
    assert_exit(&out, 0);
    for user in users {
        assert!(
            world.o365.applied(user) >= 1,
            "office365 {user} lost ({label})"
        );
        assert!(
            world.google.applied(user) >= 1,
            "google {user} lost ({label})"
        );
    }
    // A call answered 2xx but killed before its `done` was committed is
    // made again on resume: at most the calls in flight and the answers
    // waiting for the journal (4 + 16 × 4 per provider) per kill.
    let total = world.o365.applied_total() + world.google.applied_total();
    let extra = total - 2 * users.len() as u64;
    eprintln!(
        "{label}: {total} calls applied for {} revocations ({extra} repeated)",
        2 * users.len()
    );
    assert!(
        extra <= u64::from(kills) * 2 * (4 + 64),
        "{extra} repeated calls after {kills} kills"
    );
    let status = world.status();
    let expected = format!(
        "{} events (0 from dry runs); revocations: {} done, 0 failed, 0 pending",
        users.len(),
        2 * users.len()
    );
    assert!(status.contains(&expected), "{label}: {status}");
}

/// A pseudo-random 0..200 ms, different per call.
fn fastrand_ms() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos % 200
}

/// While the journal cannot commit, the calls stop: answers wait for their
/// attempt's commit holding places (16 × `max_concurrency`, 64, per
/// provider), and a call starts only when a place is free. Tasks already
/// claimed are there to call (each batch of events is claimed as it
/// starts), so without the bound the calls would go on.
#[test]
fn calls_stop_while_the_journal_cannot_commit() {
    let world = World::new();
    world.o365.set_latency(Duration::from_millis(2));
    world.google.set_latency(Duration::from_millis(2));
    let users = users(2000);
    let events = world.write_events(&events_for(&users));
    let child = world.spawn(&events);
    wait_until(|| world.o365.applied_total() > 50 && world.google.applied_total() > 50);
    // Another connection holds the write lock: srs's commits wait for it.
    let mut lock = rusqlite::Connection::open(world.path("state.db")).unwrap();
    lock.busy_timeout(WAIT).unwrap();
    let tx = lock
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let before = (world.o365.applied_total(), world.google.applied_total());
    std::thread::sleep(Duration::from_millis(1500));
    let after = (world.o365.applied_total(), world.google.applied_total());
    tx.rollback().unwrap();
    drop(lock);
    // At most the free places among the answers waiting (64) and the calls
    // in flight (4), per provider; without the bound, about all 2000.
    assert!(
        after.0 - before.0 <= 68,
        "office365: {before:?} -> {after:?}"
    );
    assert!(after.1 - before.1 <= 68, "google: {before:?} -> {after:?}");
    assert!(child.wait().success());
    world.assert_each_revoked_once(&users);
}

#[track_caller]
fn wait_until(condition: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !condition() {
        assert!(start.elapsed() < WAIT, "timed out waiting");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn no_secret_reaches_output_or_journal() {
    let world = World::new();
    world
        .o365
        .push_faults([Fault::ExpiredToken, Fault::Status(400), Fault::Reset]);
    world
        .google
        .push_faults([Fault::ExpiredToken, Fault::Status(400)]);
    let users = users(10);
    let out = world.run(&events_for(&users));
    let status = world.status();
    let mut haystack = [out.stdout.clone(), out.stderr.clone(), status.into_bytes()].concat();
    for name in ["state.db", "state.db-wal", "state.db-shm"] {
        if let Ok(bytes) = std::fs::read(world.path(name)) {
            haystack.extend(bytes);
        }
    }
    let haystack = text(&haystack);
    assert!(
        haystack.contains("user3@example.com"),
        "the search must see the journal"
    );
    assert!(!haystack.contains(&world.secret), "client secret leaked");
    // Any line of the key's base64 body, and the PEM header itself.
    for line in TEST_PRIVATE_KEY_PEM.lines().filter(|l| l.len() > 20) {
        assert!(!haystack.contains(line), "private key leaked: {line}");
    }
    assert!(!haystack.contains("PRIVATE KEY"));
    // Nor any token the servers issued (they are random per server: look for the bearer form).
    assert!(!haystack.contains("Bearer "));
}

#[test]
fn config_policy_and_credential_errors_exit_1_before_any_call() {
    let world = World::new();
    let events = world.write_events(&[event("evt-1", "alice@example.com")]);
    let run = |setup: &dyn Fn(&World)| {
        setup(&world);
        world.command(&events).output().unwrap()
    };
    // An unset secret variable.
    let out = world
        .command(&events)
        .env_remove(SECRET_ENV)
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("`SRS_TEST_O365_SECRET` is not set"),
        "{}",
        text(&out.stderr)
    );
    // A typo in the host config.
    let config = std::fs::read_to_string(world.path("host.toml")).unwrap();
    let out = run(&|w| {
        std::fs::write(
            w.path("host.toml"),
            config.replace("timeout_ms", "timeout_msec"),
        )
        .unwrap()
    });
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("timeout_msec"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(world.path("host.toml"), &config).unwrap();
    // An invalid policy: its failure answer, exit 1.
    let out = run(&|w| std::fs::write(w.path("policy.json"), r#"{"uem":"epmm"}"#).unwrap());
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout).contains(r#""code":"missing-field","path":"policy.deployment""#),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        world.o365.token_requests() + world.google.token_requests(),
        0
    );
}

/// Runs `srs run` on these lines, failing the test (not hanging it) if the run
/// has not ended within a minute.
fn run_bounded(world: &World, lines: &[String]) -> Output {
    let events = world.write_events(lines);
    let mut child = world
        .command(&events)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let limit = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > limit {
            child.kill().unwrap();
            panic!("srs run did not end within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
    out
}

#[track_caller]
fn assert_line(out: &Output, line: &str) {
    assert!(text(&out.stdout).contains(line), "{}", text(&out.stdout));
}

#[test]
fn a_huge_retry_after_leaves_the_task_pending_at_once() {
    let world = World::new();
    world.o365.push_faults([Fault::TooManyRequests {
        retry_after: Some(RetryAfter::Raw("18446744073709551615")),
    }]);
    let out = run_bounded(&world, &[event("evt-1", "alice@example.com")]);
    assert_exit(&out, 2);
    assert_line(
        &out,
        "office365 alice@example.com pending (throttled 429 TooManyRequests)",
    );
    assert_eq!(world.o365.revoke_requests(), 1);
    assert_eq!(world.o365.applied("alice@example.com"), 0);
    assert_eq!(world.google.applied("alice@example.com"), 1);
}

#[test]
fn a_negative_or_past_retry_after_is_retried_after_a_backoff() {
    let world = World::new();
    let past = SystemTime::now() - Duration::from_secs(3600);
    world.o365.push_faults([
        Fault::TooManyRequests {
            retry_after: Some(RetryAfter::Raw("-1")),
        },
        Fault::Unavailable {
            retry_after: Some(RetryAfter::Date(past)),
        },
    ]);
    let out = run_bounded(&world, &[event("evt-1", "alice@example.com")]);
    assert_exit(&out, 0);
    assert_eq!(world.o365.revoke_requests(), 3);
    world.assert_each_revoked_once(&["alice@example.com".to_owned()]);
}

#[test]
fn a_token_lifetime_of_u64_max_is_clamped_and_the_token_used() {
    let world = World::new();
    world.o365.push_token_faults([Fault::ExpiresIn(u64::MAX)]);
    world.google.push_token_faults([Fault::ExpiresIn(u64::MAX)]);
    let users = users(20);
    let out = run_bounded(&world, &events_for(&users));
    assert_exit(&out, 0);
    world.assert_each_revoked_once(&users);
    assert_eq!(world.o365.token_requests(), 1);
    assert_eq!(world.google.token_requests(), 1);
}

#[test]
fn a_token_answer_without_a_token_or_in_html_fails_that_provider() {
    for (body, content_type, why) in [
        (
            r#"{"token_type":"Bearer","expires_in":3599}"#,
            "application/json",
            "the token endpoint's answer has no access_token",
        ),
        (
            "<html><body>Sign in to continue</body></html>",
            "text/html",
            "the token endpoint's answer is not a JSON token answer",
        ),
    ] {
        let world = World::new();
        world.o365.push_token_faults([Fault::Body {
            status: 200,
            content_type,
            body,
        }]);
        // A proxy's HTML error page with a 502 is an outage: retried.
        world.google.push_token_faults([Fault::Body {
            status: 502,
            content_type: "text/html",
            body: "<html><body>Bad Gateway</body></html>",
        }]);
        let out = run_bounded(&world, &[event("evt-1", "alice@example.com")]);
        assert_exit(&out, 2);
        assert_line(
            &out,
            &format!("office365 alice@example.com failed (auth-failed 200 {why})"),
        );
        assert_eq!(world.o365.revoke_requests(), 0);
        assert_eq!(world.google.applied("alice@example.com"), 1);
        assert_eq!(world.google.token_requests(), 2);
        assert!(!text(&out.stdout).contains(&world.secret));
        assert!(world.status().contains("auth-failed 200"));
    }
}

/// An event of `user`'s device `device` at `time`, jailbroken or compliant.
fn event_at(id: &str, user: &str, device: &str, time: &str, jailbroken: bool) -> String {
    let compliance = if jailbroken {
        r#"{"compliant":false,"violations":[{"policy":"jailbreak"}]}"#
    } else {
        r#"{"compliant":true}"#
    };
    format!(
        r#"{{"id":"{id}","time":"{time}","device":{{"id":"{device}","state":"active"}},"user":{{"upn":"{user}"}},"compliance":{compliance}}}"#
    )
}

#[test]
fn grace_schedules_revocations_executes_those_due_and_cancels_on_compliance() {
    let world = World::new();
    let grace = policy("enforce").replacen('{', r#"{"grace_seconds":3600,"#, 1);
    std::fs::write(world.path("policy.json"), grace).unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = policy_core::format_utc(i64::try_from(now).unwrap()).unwrap();
    let lines = [
        // Its hour of grace ended long ago: revoked in this run.
        event_at("e1", "a@example.com", "da", "2026-01-01T00:00:00Z", true),
        // Its hour has just begun: scheduled, not revoked.
        event_at("e2", "b@example.com", "db", &now, true),
        // Scheduled, then compliant again: cancelled.
        event_at("e3", "c@example.com", "dc", &now, true),
        event_at("e4", "c@example.com", "dc", &now, false),
    ];
    let out = world.run(&lines.map(String::from));
    // Only scheduled work left: nothing needs a person.
    assert_exit(&out, 0);
    let summary = last_line(&out);
    assert!(
        summary.contains("4 events: 0 revoke, 3 grace, 1 no action")
            && summary.contains("2 done, 0 failed, 0 pending, 2 scheduled, 2 cancelled"),
        "{summary}"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("e2  grace      scheduled for "), "{stdout}");
    assert_eq!(world.o365.applied("a@example.com"), 1);
    assert_eq!(world.google.applied("a@example.com"), 1);
    assert_eq!(world.o365.applied_total() + world.google.applied_total(), 2);
    let status = world.status();
    assert!(
        status.contains("revocations: 2 done, 0 failed, 0 pending, 2 scheduled, 2 cancelled"),
        "{status}"
    );
    assert!(
        status.contains("scheduled office365 b@example.com  due "),
        "{status}"
    );
    // A second run with nothing new leaves the schedule alone.
    let out = world.run(&[]);
    assert_exit(&out, 0);
    assert_eq!(world.o365.applied_total() + world.google.applied_total(), 2);
}
