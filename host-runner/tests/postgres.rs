//! `--state postgres://…` (SPEC §12) through the real binary, on a throwaway
//! PostgreSQL cluster: `srs run`, `srs status` and `srs serve` journal there
//! as they do in SQLite, and a URL's password never reaches the output.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use std::process::Command;

use fake_providers::postgres::TempPostgres;
use support::{World, event};

fn srs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_srs"))
}

#[test]
fn srs_run_status_and_serve_share_a_postgres_journal() {
    let cluster = TempPostgres::start().unwrap();
    let url = cluster.create_database("srs_cli").unwrap();
    let world = World::new("");
    let lines = [
        event(
            "e1",
            "alice@example.com",
            "d1",
            "2026-11-27T10:00:00Z",
            "jailbreak",
        ),
        event("e2", "bob@example.com", "d2", "2026-11-27T10:00:00Z", "ok"),
    ];
    std::fs::write(world.path("events.jsonl"), lines.join("\n")).unwrap();
    let run = |extra: &[&str]| {
        srs()
            .args(["run", "--policy"])
            .arg(world.path("policy.json"))
            .arg("--config")
            .arg(world.path("host.toml"))
            .args(["--state", &url])
            .args(extra)
            .arg(world.path("events.jsonl"))
            .env(support::SECRET_ENV, world.secret())
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 events: 1 revoke"), "{stdout}");
    assert_eq!(world.o365.applied("alice@example.com"), 1);
    // Seen ids execute nothing again.
    let again = run(&[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("2 duplicate"));
    assert_eq!(world.o365.applied("alice@example.com"), 1);
    let status = srs().args(["status", "--state", &url]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("2 events (0 from dry runs); revocations: 2 done"),
        "{text}"
    );

    // srs serve on the same journal: the gate is what srs run decided.
    let serve = world.serve_with_state(&url);
    assert_eq!(serve.check("alice@example.com", None).status, 403);
    assert_eq!(serve.check("bob@example.com", None).status, 204);
    let r = serve.push(
        &event(
            "e3",
            "bob@example.com",
            "d2",
            "2026-11-27T11:00:00Z",
            "jailbreak",
        ),
        "application/json",
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(serve.check("bob@example.com", None).status, 403);
    assert!(world.o365.wait_for_applied(2, support::WAIT));
    drop(serve);
    let serve = world.serve_with_state(&url);
    assert_eq!(serve.check("bob@example.com", None).status, 403);
}

#[test]
fn a_password_in_the_url_is_not_shown() {
    let out = srs()
        .args([
            "status",
            "--state",
            "postgres://srs:hunter2@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("postgres://srs@127.0.0.1:1/nowhere"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

/// A CA and a certificate for 127.0.0.1 it signed, made with openssl in `dir`:
/// (ca.pem, server.pem, server.key).
fn certificates(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let sh = |script: &str| {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
    };
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=srs-test-ca",
    );
    sh(
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
    );
    sh(
        "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && openssl x509 -req -in server.csr \
        -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext",
    );
    ["ca.pem", "server.pem", "server.key"].map(|f| dir.join(f))
}

#[test]
fn tls_follows_sslmode_and_the_server_certificate_is_verified() {
    let cluster = TempPostgres::start().unwrap();
    let url = cluster.create_database("srs_tls").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let [ca, cert, key] = certificates(dir.path());
    let status = |url: &str| {
        let out = srs().args(["status", "--state", url]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Before the server speaks TLS, sslmode=require cannot connect.
    let require = url.replace("sslmode=disable", "sslmode=require");
    let with_root = format!("{require}&sslrootcert={}", ca.display());
    let (code, err) = status(&with_root);
    assert_eq!(code, Some(1), "{err}");
    cluster.enable_tls(&cert, &key).unwrap();
    // The server's certificate, verified against our CA: connected.
    let (code, err) = status(&with_root);
    assert_eq!(code, Some(0), "{err}");
    // The same server checked against the public roots: refused.
    let (code, err) = status(&require);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("TLS handshake"), "{err}");
    // prefer uses TLS when offered, and works.
    let prefer = url.replace("sslmode=disable", "sslmode=prefer");
    assert_eq!(
        status(&format!("{prefer}&sslrootcert={}", ca.display())).0,
        Some(0)
    );
}

#[test]
fn a_postgres_journal_from_a_newer_srs_is_refused() {
    let cluster = TempPostgres::start().unwrap();
    let url = cluster.create_database("srs_newer").unwrap();
    let status = || srs().args(["status", "--state", &url]).output().unwrap();
    assert_eq!(status().status.code(), Some(0));
    cluster
        .psql("srs_newer", "UPDATE srs_schema SET version = 99")
        .unwrap();
    let out = status();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("was written by a newer srs (schema version 99"),
        "{err}"
    );
}

/// The pool hands out connections without testing them first; one the
/// server closed (here by a restart) fails its `BEGIN`, before anything
/// happened, and the journal goes on with a new one: no call fails.
#[test]
fn connections_a_restart_closed_are_replaced_without_an_error() {
    use host_runner::journal::{Durability, open};

    let cluster = TempPostgres::start().unwrap();
    let url = cluster.create_database("srs_restart").unwrap();
    let journal = open(std::path::Path::new(&url), Durability::Full).unwrap();
    // Several connections in the pool, all idle.
    std::thread::scope(|s| {
        for i in 0..4 {
            let journal = &journal;
            s.spawn(move || {
                journal.put_stream(&format!("s{i}"), "{}", 1).unwrap();
                journal.status().unwrap();
            });
        }
    });
    cluster.restart().unwrap();
    for i in 0..8 {
        journal.put_stream(&format!("after{i}"), "{}", 2).unwrap();
        assert!(journal.streams().unwrap().len() >= 5);
    }
    assert_eq!(journal.streams().unwrap().len(), 12);
}
