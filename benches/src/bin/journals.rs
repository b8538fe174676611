//! The journal backends side by side (SPEC §12): `srs run` over N events (two
//! revocations each) against the loopback providers with its journal in
//! SQLite, then in PostgreSQL with 1, 2 and 3 `srs run` processes sharing
//! one database (each a third of the events, all at once). One run, the
//! same machine, medians of three rounds; the ratio to SQLite is the figure.
//!
//! Run: `cargo build --release -p host-runner && cargo run --release -p srs-bench --bin journals [N]`

#![expect(clippy::indexing_slicing, reason = "benchmark harness")]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use fake_providers::postgres::TempPostgres;
use fake_providers::{FakeGoogle, FakeOffice365, GoogleOptions, Office365Options};
use srs_bench::median;

const CONCURRENCY: usize = 16;
const SECRET_ENV: &str = "SRS_BENCH_O365_SECRET";
const ROUNDS: usize = 3;

fn main() -> anyhow::Result<()> {
    let n = srs_bench::count_arg(6_000)?;
    let srs = srs_bench::srs_bin()?;
    // fsync on, as SQLite's journal syncs every commit (`synchronous = FULL`).
    let cluster = TempPostgres::start_durable()?;
    println!(
        "journals: {n} events, {} revocations, {CONCURRENCY} calls in flight per provider and process",
        2 * n
    );
    let mut rows: Vec<(String, Vec<f64>)> = vec![
        ("SQLite, 1 process".into(), vec![]),
        ("PostgreSQL, 1 process".into(), vec![]),
        ("PostgreSQL, 2 processes".into(), vec![]),
        ("PostgreSQL, 3 processes".into(), vec![]),
    ];
    for round in 0..ROUNDS {
        rows[0].1.push(run(&srs, n, 1, None, None)?);
        for (i, k) in [1, 2, 3].into_iter().enumerate() {
            let name = format!("bench_{round}_{k}");
            let url = cluster.create_database(&name)?;
            rows[i + 1]
                .1
                .push(run(&srs, n, k, Some(&url), cluster.pid())?);
            // Where the time went: how long intake took, and when the last
            // revocation ended, both from the first event's arrival.
            let spans = cluster.psql(
                &name,
                "SELECT (SELECT max(received_ms) - min(received_ms) FROM events),
                        (SELECT max(updated_ms) FROM tasks) - (SELECT min(received_ms) FROM events),
                        (SELECT xact_commit FROM pg_stat_database
                         WHERE datname = current_database())",
            )?;
            let spans: Vec<&str> = spans.trim().split('|').collect();
            println!(
                "  intake done after {} ms, the last revocation after {} ms; {} commits",
                spans.first().unwrap_or(&"?"),
                spans.get(1).unwrap_or(&"?"),
                spans.get(2).unwrap_or(&"?")
            );
        }
    }
    let sqlite = median(rows[0].1.clone());
    println!("| journal (median of {ROUNDS}) | seconds | revocations/s | vs SQLite |");
    println!("|---|---:|---:|---:|");
    for (name, secs) in rows {
        let secs = median(secs);
        println!(
            "| {name} | {secs:.2} | {:.0} | {:.0}% |",
            2.0 * n as f64 / secs,
            100.0 * sqlite / secs
        );
    }
    Ok(())
}

/// `k` `srs run` processes over `n` events split between them, on fresh
/// servers; the journal in `url` (the server's main process `postgres`),
/// else a fresh SQLite file. Seconds, wall; prints the CPU time it took.
fn run(
    srs: &Path,
    n: usize,
    k: usize,
    url: Option<&str>,
    postgres: Option<u32>,
) -> anyhow::Result<f64> {
    let o365 = FakeOffice365::start(Office365Options::default())?;
    let google = FakeGoogle::start(GoogleOptions::default())?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("sa.json"), google.key_file_json())?;
    std::fs::write(
        dir.path().join("policy.json"),
        r#"{"uem":"epmm","deployment":"access","providers":["office365","google_workspace"],
            "compliance_policies":[{"id":"jailbreak","actions":["Block"]}]}"#,
    )?;
    std::fs::write(
        dir.path().join("host.toml"),
        fake_providers::host_toml(
            &o365,
            &google,
            SECRET_ENV,
            &format!("max_concurrency = {CONCURRENCY}\n"),
            "[retry]\ninitial_backoff_ms = 10\nmax_backoff_ms = 100\n",
        ),
    )?;
    let state = url.map_or_else(
        || dir.path().join("state.db").display().to_string(),
        str::to_owned,
    );
    let mut files = Vec::new();
    for p in 0..k {
        let path = dir.path().join(format!("events-{p}.jsonl"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for i in (p..n).step_by(k) {
            writeln!(
                file,
                r#"{{"id":"evt-{i}","time":"2026-11-27T10:15:00Z","device":{{"id":"dev-{i}","state":"active"}},"user":{{"upn":"user{i}@example.com"}},"compliance":{{"compliant":false,"violations":[{{"policy":"jailbreak"}}]}}}}"#
            )?;
        }
        file.flush()?;
        files.push(path);
    }
    // Migrate first, so the processes do not race to create the schema.
    if url.is_some() {
        let status = Command::new(srs)
            .args(["status", "--state", &state])
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "srs status could not open {state}");
    }
    let secret = o365.options().client_secret.clone();
    let cpu = Cpu::now(postgres)?;
    let start = Instant::now();
    let children: Vec<Child> = files
        .iter()
        .map(|events| {
            Command::new(srs)
                .arg("run")
                .arg("--policy")
                .arg(dir.path().join("policy.json"))
                .arg("--config")
                .arg(dir.path().join("host.toml"))
                .args(["--state", &state])
                .arg(events)
                .env(SECRET_ENV, &secret)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for child in children {
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "srs run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu.since(postgres)?;
    let n = n as u64;
    anyhow::ensure!(
        o365.applied_total() == n && google.applied_total() == n,
        "applied {} + {}, expected {n} each",
        o365.applied_total(),
        google.applied_total()
    );
    println!(
        "{} process(es) on {}: {secs:.2} s; CPU: srs and the providers {:.2} s{}",
        k,
        if url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        cpu.here,
        cpu.postgres
            .map(|s| format!(", PostgreSQL {s:.2} s"))
            .unwrap_or_default()
    );
    Ok(secs)
}

/// CPU seconds: this process and its children (the `srs` processes, the
/// providers' threads), and the PostgreSQL server's processes that ended
/// (its connections' backends end with the `srs` processes).
struct Cpu {
    here: f64,
    postgres: Option<f64>,
}

impl Cpu {
    fn now(postgres: Option<u32>) -> anyhow::Result<Self> {
        Ok(Self {
            here: cpu_seconds("self", true)?,
            postgres: postgres
                .map(|pid| cpu_seconds(&pid.to_string(), false))
                .transpose()?,
        })
    }

    /// The CPU time from `self` until now, once the server's backends of
    /// the run have ended.
    fn since(self, postgres: Option<u32>) -> anyhow::Result<Self> {
        if postgres.is_some() {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        let now = Self::now(postgres)?;
        Ok(Self {
            here: now.here - self.here,
            postgres: now.postgres.zip(self.postgres).map(|(a, b)| a - b),
        })
    }
}

/// From `/proc/PID/stat`: user and system time of the process's children
/// that ended, and of the process itself when `own`; seconds.
fn cpu_seconds(pid: &str, own: bool) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command's closing parenthesis, from the state (3).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| -> anyhow::Result<f64> {
        let value = fields
            .get(n - 3)
            .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat has no field {n}"))?;
        Ok(value.parse::<f64>()?)
    };
    // utime 14, stime 15, cutime 16, cstime 17, in clock ticks (100 a second).
    let ticks = field(16)? + field(17)? + if own { field(14)? + field(15)? } else { 0.0 };
    Ok(ticks / 100.0)
}
