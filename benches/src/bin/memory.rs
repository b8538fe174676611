//! Memory over 10^6 kept-policy decisions in wasmtime on one reused instance:
//! the guest's linear memory and the process RSS at the start, after 10^4
//! calls and at the end. Exits 1 if the linear memory grew after the first
//! 10^4 calls or the RSS grew by more than 4 MiB, 2 if a call failed.
//!
//! `cargo run --release -p srs-bench --bin memory [CALLS]`

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmark harness"
)]

use std::process::ExitCode;
use std::time::Instant;

use host_runner::{Limits, Plugin};
use srs_bench::{POLICY_JSON, events};

const WARM: usize = 10_000;
const RSS_SLACK_KIB: u64 = 4 * 1024;

/// VmRSS of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let calls: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("CALLS is a number"));
    let events = events();
    let plugin = Plugin::embedded(Limits::default()).unwrap();
    // A PluginInstance, not a Worker: a failed call must not be hidden by a
    // replacement instance.
    let mut instance = plugin.instantiate().unwrap();
    let accepted = instance.set_policy(POLICY_JSON.as_bytes()).unwrap();
    assert!(accepted.starts_with(r#"{"type":"success""#), "{accepted}");

    let report = |label: &str, calls: usize, memory: usize, rss: u64| {
        println!(
            "{label:<14} calls {calls:>9}  wasm memory {memory:>9} bytes ({:>3} pages)  VmRSS {rss:>7} KiB",
            memory / 65_536
        );
    };
    let start = (instance.memory_size(), rss_kib());
    report("start", 0, start.0, start.1);
    let mut warm = start;
    let mut answer_bytes = 0_usize;
    let began = Instant::now();
    for i in 0..calls {
        match instance.evaluate_event(events[i % events.len()].as_bytes()) {
            Ok(answer) if answer.starts_with(r#"{"type":"success""#) => {
                answer_bytes += answer.len();
            }
            Ok(answer) => {
                eprintln!("call {i}: not a success: {answer}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("call {i}: {e}");
                return ExitCode::from(2);
            }
        }
        if i + 1 == WARM {
            warm = (instance.memory_size(), rss_kib());
            report("after 10^4", WARM, warm.0, warm.1);
        }
    }
    let elapsed = began.elapsed();
    let end = (instance.memory_size(), rss_kib());
    report("end", calls, end.0, end.1);
    println!(
        "{calls} calls in {:.2} s ({:.2} µs per call), {answer_bytes} answer bytes",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / calls as f64
    );
    let mut ok = true;
    if end.0 > warm.0 {
        println!(
            "FAIL: wasm memory grew by {} bytes after {WARM} calls",
            end.0 - warm.0
        );
        ok = false;
    }
    let rss_growth = end.1.saturating_sub(warm.1);
    if rss_growth > RSS_SLACK_KIB {
        println!("FAIL: RSS grew by {rss_growth} KiB after {WARM} calls (allowed {RSS_SLACK_KIB})");
        ok = false;
    }
    if ok {
        println!(
            "OK: wasm memory unchanged after {WARM} calls; RSS grew by {rss_growth} KiB (allowed {RSS_SLACK_KIB})"
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
