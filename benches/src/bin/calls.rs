//! One decision path, called over the benchmark mix N times, for counting
//! its instructions: `scripts/bench instructions` runs this under valgrind's
//! cachegrind with N and 2N calls, and the difference over N is the
//! instructions of one call, set-up (the policy, the module's compilation)
//! cancelled out. Unlike time, the count does not move with the machine's
//! load, so two builds compare without alternating runs.
//!
//! Paths, as criterion's `decide` group names them:
//! - `typed`: `Engine::evaluate` on events parsed beforehand
//!   (`native/engine_evaluate_typed`);
//! - `json`: `Engine::answer_json`, JSON in and out on a kept policy
//!   (`native/engine_evaluate_json_kept_policy`);
//! - `wasmtime`: the embedded core module's `srs_evaluate_event` on a kept
//!   policy, one reused instance, fuel on (`wasmtime/evaluate_event_kept_policy`).
//!
//! Run: `cargo run --release -p srs-bench --bin calls -- PATH N`

use std::hint::black_box;

use anyhow::{Context as _, Result, bail};
use host_runner::{EMBEDDED_MODULE, Limits, Plugin, Worker};
use srs_bench::{POLICY_JSON, events};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(n)) = (args.next(), args.next()) else {
        bail!("usage: calls typed|json|wasmtime N");
    };
    let n: usize = n.parse().context("N is a count of calls")?;
    let events = events();
    let engine = policy_core::Engine::from_json(POLICY_JSON.as_bytes())
        .map_err(|e| anyhow::anyhow!("the benchmark policy is invalid: {}", e.to_json()))?;
    let mut bytes = 0;
    match path.as_str() {
        "typed" => {
            let typed: Vec<policy_core::Event> = events
                .iter()
                .map(|e| serde_json::from_str(e))
                .collect::<Result<_, _>>()?;
            for event in typed.iter().cycle().take(n) {
                black_box(engine.evaluate(black_box(event)));
            }
        }
        "json" => {
            for event in events.iter().cycle().take(n) {
                bytes += black_box(engine.answer_json(black_box(event.as_bytes()))).len();
            }
        }
        "wasmtime" => {
            let plugin = Plugin::load(EMBEDDED_MODULE, Limits::default())?;
            let mut worker = Worker::new(&plugin);
            worker.set_policy(POLICY_JSON.as_bytes())?;
            for event in events.iter().cycle().take(n) {
                bytes += black_box(worker.evaluate_event(black_box(event.as_bytes()))?).len();
            }
        }
        other => bail!("no path {other:?}: typed, json or wasmtime"),
    }
    println!("{path}: {n} calls, {bytes} bytes of answers");
    Ok(())
}
