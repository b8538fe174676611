//! End to end: `srs run` on N events (default 10,000; two revocations each)
//! against the loopback provider servers, compared in the same run with a bare
//! HTTP loop making the same calls to the same servers (the ceiling), and
//! `srs run` again with faults injected.
//!
//! Run: `cargo build --release -p host-runner && cargo run --release -p srs-bench --bin e2e [N]`
//! (`SRS_BIN` picks another `srs` binary.)

#![expect(clippy::indexing_slicing, reason = "benchmark harness")]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use srs_bench::median;

use fake_providers::{
    FakeGoogle, FakeOffice365, Fault, GoogleOptions, Office365Options, RetryAfter,
};

/// Concurrent calls per provider, for `srs run` and the bare loop alike.
const CONCURRENCY: usize = 16;
const SECRET_ENV: &str = "SRS_BENCH_O365_SECRET";
const ROUNDS: usize = 3;

fn main() -> anyhow::Result<()> {
    let n = srs_bench::count_arg(10_000)?;
    let srs = srs_bench::srs_bin()?;
    let users: Vec<String> = (0..n).map(|i| format!("user{i}@example.com")).collect();

    println!(
        "end to end: {n} events, {} revocations, {CONCURRENCY} concurrent calls per provider",
        2 * n
    );
    // Three rounds, alternating, so a busy moment on the machine hits every
    // kind of run alike; the table shows medians.
    let (mut bare, mut clean, mut faulty) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        bare.push(bare_loop(&users)?);
        clean.push(srs_run(&srs, &users, false)?);
        faulty.push(srs_run(&srs, &users, true)?);
    }
    let bare = median(bare);
    println!("| run (median of {ROUNDS}) | seconds | events/s | revocations/s | vs bare loop |");
    println!("|---|---:|---:|---:|---:|");
    for (name, secs) in [
        ("bare HTTP loop (ceiling)", bare),
        ("srs run, journal on", median(clean)),
        ("srs run, journal on, 1 call in 20 faulted", median(faulty)),
    ] {
        println!(
            "| {name} | {secs:.2} | {:.0} | {:.0} | {:.0}% |",
            n as f64 / secs,
            2.0 * n as f64 / secs,
            100.0 * bare / secs
        );
    }
    Ok(())
}

struct Servers {
    o365: FakeOffice365,
    google: FakeGoogle,
}

fn servers() -> anyhow::Result<Servers> {
    Ok(Servers {
        o365: FakeOffice365::start(Office365Options::default())?,
        google: FakeGoogle::start(GoogleOptions::default())?,
    })
}

/// `srs run` on fresh servers and a fresh journal; returns seconds.
fn srs_run(srs: &Path, users: &[String], faults: bool) -> anyhow::Result<f64> {
    let s = servers()?;
    if faults {
        // Per provider, about 1 call in 20 meets a fault.
        let script: Vec<Fault> = (0..users.len() / 20)
            .map(|i| match i % 4 {
                0 => Fault::TooManyRequests {
                    retry_after: Some(RetryAfter::Seconds(0)),
                },
                1 => Fault::Unavailable { retry_after: None },
                2 => Fault::Reset,
                _ => Fault::Status(502),
            })
            .collect();
        s.o365.push_faults(script.clone());
        s.google.push_faults(script);
    }
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("sa.json"), s.google.key_file_json())?;
    std::fs::write(
        dir.path().join("policy.json"),
        r#"{"uem":"epmm","deployment":"access","providers":["office365","google_workspace"],
            "compliance_policies":[{"id":"jailbreak","actions":["Block"]}]}"#,
    )?;
    let o = s.o365.options();
    std::fs::write(
        dir.path().join("host.toml"),
        fake_providers::host_toml(
            &s.o365,
            &s.google,
            SECRET_ENV,
            &format!("max_concurrency = {CONCURRENCY}\n"),
            "[retry]\ninitial_backoff_ms = 10\nmax_backoff_ms = 100\n",
        ),
    )?;
    let events = dir.path().join("events.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&events)?);
    for (i, user) in users.iter().enumerate() {
        writeln!(
            file,
            r#"{{"id":"evt-{i}","time":"2026-11-27T10:15:00Z","device":{{"id":"dev-{i}","state":"active"}},"user":{{"upn":"{user}"}},"compliance":{{"compliant":false,"violations":[{{"policy":"jailbreak"}}]}}}}"#
        )?;
    }
    file.flush()?;
    drop(file);
    let start = Instant::now();
    let out = Command::new(srs)
        .arg("run")
        .arg("--policy")
        .arg(dir.path().join("policy.json"))
        .arg("--config")
        .arg(dir.path().join("host.toml"))
        .arg("--state")
        .arg(dir.path().join("state.db"))
        .arg(&events)
        .env(SECRET_ENV, &o.client_secret)
        .output()?;
    let secs = start.elapsed().as_secs_f64();
    let summary = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(
        out.status.success(),
        "srs run failed: {summary}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = users.len() as u64;
    anyhow::ensure!(
        s.o365.applied_total() == n && s.google.applied_total() == n,
        "applied {} + {}, expected {n} each",
        s.o365.applied_total(),
        s.google.applied_total()
    );
    println!(
        "srs run{} in {secs:.2} s: {summary}",
        if faults { " with faults" } else { "" }
    );
    Ok(secs)
}

/// The same calls with nothing but an HTTP client: one token per provider,
/// then every revocation, `CONCURRENCY` at a time per provider. Returns seconds.
fn bare_loop(users: &[String]) -> anyhow::Result<f64> {
    let s = servers()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let secs = runtime.block_on(async {
        let http = reqwest::Client::new();
        let o = s.o365.options();
        let start = Instant::now();
        let o365_token = token(http.post(s.o365.token_url()).form(&[
            ("client_id", o.client_id.as_str()),
            ("client_secret", o.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ]))
        .await?;
        let google_token = token(http.post(s.google.token_url()).form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &google_assertion(&s.google)?),
        ]))
        .await?;
        let o365_urls = users
            .iter()
            .map(|u| format!("{}/v1.0/users/{u}/revokeSignInSessions", s.o365.graph_url()));
        let google_urls = users.iter().map(|u| {
            format!(
                "{}/admin/directory/v1/users/{u}/signOut",
                s.google.directory_url()
            )
        });
        let a = tokio::spawn(post_all(http.clone(), o365_token, o365_urls.collect()));
        let b = tokio::spawn(post_all(http.clone(), google_token, google_urls.collect()));
        a.await??;
        b.await??;
        anyhow::Ok(start.elapsed().as_secs_f64())
    })?;
    let n = users.len() as u64;
    anyhow::ensure!(
        s.o365.applied_total() == n && s.google.applied_total() == n,
        "the bare loop applied too few"
    );
    Ok(secs)
}

async fn token(request: reqwest::RequestBuilder) -> anyhow::Result<String> {
    let bytes = request.send().await?.error_for_status()?.bytes().await?;
    let body: serde_json::Value = serde_json::from_slice(&bytes)?;
    Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
}

async fn post_all(http: reqwest::Client, token: String, urls: Vec<String>) -> anyhow::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut calls = Vec::with_capacity(urls.len());
    for url in urls {
        let permit = permits.clone().acquire_owned().await?;
        let request = http.post(url).bearer_auth(&token).body(Vec::new());
        calls.push(tokio::spawn(async move {
            let response = request.send().await?.error_for_status()?;
            response.bytes().await?;
            drop(permit);
            anyhow::Ok(())
        }));
    }
    for call in calls {
        call.await??;
    }
    Ok(())
}

fn google_assertion(google: &FakeGoogle) -> anyhow::Result<String> {
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = serde_json::json!({
        "iss": google.options().client_email,
        "sub": google.options().admin_subject,
        "scope": "https://www.googleapis.com/auth/admin.directory.user.security",
        "aud": google.token_url(),
        "iat": iat,
        "exp": iat + 3600,
    });
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(fake_providers::TEST_PRIVATE_KEY_PEM.as_bytes())?;
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )?)
}
