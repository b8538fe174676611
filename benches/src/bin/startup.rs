//! Start-up: `srs eval` of one event, wall time, beside `srs --version` (a
//! process that loads nothing), in one run. `srs eval` runs three ways: with
//! no code cache (`SRS_CACHE_DIR=off`: the module is compiled, as every
//! start did before), with an empty cache (compiled and kept), and with the
//! cache warm (the kept code loaded). Medians of many starts, interleaved so
//! that the machine's load falls on all alike.
//!
//! Run: `cargo build --release -p host-runner && cargo run --release -p srs-bench --bin startup [STARTS]`

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use srs_bench::median;

fn main() -> anyhow::Result<()> {
    let starts = srs_bench::count_arg(30)?;
    let srs = srs_bench::srs_bin()?;
    let dir = tempfile::tempdir()?;
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"id":"evt-1","time":"2026-11-27T10:15:00Z","device":{"id":"dev-9","state":"active"},"user":{"upn":"alice@example.com"},"compliance":{"compliant":false,"violations":[{"policy":"jailbreak"}]}}"#,
    )?;
    let policy = Path::new("examples/policy.json");
    let warm = dir.path().join("warm-cache");
    // One start fills the warm cache.
    eval(
        &srs,
        policy,
        &event,
        warm.as_os_str().to_str().unwrap_or("off"),
    )?;

    let (mut version, mut off, mut cold, mut hot) = (vec![], vec![], vec![], vec![]);
    for i in 0..starts {
        let t = Instant::now();
        let status = Command::new(&srs)
            .arg("--version")
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "srs --version failed");
        version.push(t.elapsed().as_secs_f64());
        off.push(eval(&srs, policy, &event, "off")?);
        let empty = dir.path().join(format!("cold-{i}"));
        cold.push(eval(&srs, policy, &event, empty.to_str().unwrap_or("off"))?);
        hot.push(eval(&srs, policy, &event, warm.to_str().unwrap_or("off"))?);
    }
    let version = median(version);
    println!("startup: {starts} starts each, medians, wall");
    println!("| start | ms | ÷ srs --version |");
    println!("|---|---:|---:|");
    for (name, times) in [
        ("srs --version", vec![version]),
        ("srs eval, no code cache (compiles)", off),
        ("srs eval, empty code cache (compiles, keeps)", cold),
        ("srs eval, warm code cache", hot),
    ] {
        let m = median(times);
        println!("| {name} | {:.1} | {:.1}× |", 1e3 * m, m / version);
    }
    Ok(())
}

/// One `srs eval` of `event` with `SRS_CACHE_DIR=cache`; seconds, wall.
fn eval(srs: &Path, policy: &Path, event: &Path, cache: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let status = Command::new(srs)
        .arg("eval")
        .arg("--policy")
        .arg(policy)
        .arg(event)
        .env("SRS_CACHE_DIR", cache)
        .stdout(Stdio::null())
        .status()?;
    let elapsed = t.elapsed().as_secs_f64();
    // Exit 0 (no action) or 2 (attention: a revocation) are answers.
    anyhow::ensure!(
        matches!(status.code(), Some(0 | 2)),
        "srs eval failed: {status}"
    );
    Ok(elapsed)
}
