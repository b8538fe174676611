//! One decision, every way SRS policy can make it, over the shared event mix
//! (`data/policy.json`, `data/events.jsonl`): each iteration decides the next
//! event of the mix, so a time is the mean cost of one decision over the mix.
//!
//! `cargo bench -p srs-bench --bench decide`

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "benchmark harness"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use host_runner::sandbox::Allocation;
use host_runner::{EMBEDDED_MODULE, Limits, Plugin, Worker};
use srs_bench::{POLICY_JSON, RegoPeer, events, requests};

/// Cycles through the mix: the next item on every call.
struct Cycle<'a, T> {
    items: &'a [T],
    next: usize,
}

impl<'a, T> Cycle<'a, T> {
    fn new(items: &'a [T]) -> Self {
        assert!(!items.is_empty());
        Self { items, next: 0 }
    }

    fn next(&mut self) -> &'a T {
        let item = &self.items[self.next];
        self.next = (self.next + 1) % self.items.len();
        item
    }
}

fn decide(c: &mut Criterion) {
    let events = events();
    let requests = requests();
    let mut group = c.benchmark_group("decide");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // (a) policy-core, typed: a validated Engine, events parsed beforehand.
    let engine = policy_core::Engine::new(serde_json::from_str(POLICY_JSON).unwrap()).unwrap();
    let typed: Vec<policy_core::Event> = events
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let mut cycle = Cycle::new(&typed);
    group.bench_function("native/engine_evaluate_typed", |b| {
        b.iter(|| black_box(engine.evaluate(black_box(cycle.next()))));
    });

    // (b) policy-core, JSON in and out: the request envelope, as `srs_evaluate` takes it.
    let mut cycle = Cycle::new(&requests);
    group.bench_function("native/evaluate_json_str_envelope", |b| {
        b.iter(|| black_box(policy_core::evaluate_json_str(black_box(cycle.next()))));
    });

    // (b') policy-core, JSON in and out on a kept policy: what the module's
    // `srs_evaluate_event` runs, natively (`Engine::answer_json`: the
    // answer written as the decision is reached).
    let kept = policy_core::Engine::from_json(POLICY_JSON.as_bytes()).unwrap();
    let mut cycle = Cycle::new(&events);
    group.bench_function("native/engine_evaluate_json_kept_policy", |b| {
        b.iter(|| black_box(kept.answer_json(black_box(cycle.next().as_bytes()))));
    });

    // (b'+) The same with the answer built, then written:
    // `evaluate_json(event).to_json()`, what (b') measured until stop 20.
    let mut cycle = Cycle::new(&events);
    group.bench_function("native/engine_evaluate_json_answer_to_json", |b| {
        b.iter(|| {
            let event = cycle.next().as_bytes();
            black_box(kept.evaluate_json(black_box(event)).to_json())
        });
    });

    // (b'') The same, the old way (issue 16's "before"): the event into a
    // `serde_json::Value` and the schema walk over it, the answer written by
    // `serde_json::to_string`.
    let mut cycle = Cycle::new(&events);
    group.bench_function("native/engine_evaluate_json_kept_policy_value_path", |b| {
        b.iter(|| {
            let event = cycle.next().as_bytes();
            black_box(
                serde_json::to_string(&kept.evaluate_json_via_value(black_box(event))).unwrap(),
            )
        });
    });

    // (c) The core module in wasmtime, kept-policy fast path, one reused instance.
    let plugin = Plugin::load(EMBEDDED_MODULE, Limits::default()).unwrap();
    let mut worker = Worker::new(&plugin);
    worker.set_policy(POLICY_JSON.as_bytes()).unwrap();
    let mut cycle = Cycle::new(&events);
    group.bench_function("wasmtime/evaluate_event_kept_policy", |b| {
        b.iter(|| {
            black_box(
                worker
                    .evaluate_event(black_box(cycle.next().as_bytes()))
                    .unwrap(),
            )
        });
    });

    // (d) The core module, one-shot: the policy in every request, reused instance.
    let mut worker = Worker::new(&plugin);
    let mut cycle = Cycle::new(&requests);
    group.bench_function("wasmtime/evaluate_envelope_reused_instance", |b| {
        b.iter(|| black_box(worker.evaluate(black_box(cycle.next().as_bytes())).unwrap()));
    });

    // (e) A fresh instance per decision from the InstancePre, on-demand and
    // pooled; and instantiation alone (create and drop).
    let pooled = Plugin::load_with(
        EMBEDDED_MODULE,
        Limits::default(),
        Allocation::Pooling { instances: 16 },
    )
    .unwrap();
    for (name, plugin) in [("on_demand", &plugin), ("pooled", &pooled)] {
        let mut cycle = Cycle::new(&requests);
        group.bench_function(
            format!("wasmtime/fresh_instance_{name}/evaluate_envelope"),
            |b| {
                b.iter(|| {
                    let mut instance = plugin.instantiate().unwrap();
                    black_box(
                        instance
                            .evaluate(black_box(cycle.next().as_bytes()))
                            .unwrap(),
                    )
                });
            },
        );
        group.bench_function(
            format!("wasmtime/fresh_instance_{name}/instantiate_only"),
            |b| {
                b.iter(|| black_box(plugin.instantiate().unwrap()));
            },
        );
    }

    // (f) The Rego peer in regorus: the prepared engine, input set and the
    // decision rule evaluated per event; the envelope, and a kept policy
    // (regorus data) with the event alone as input.
    let mut peer = RegoPeer::new().unwrap();
    let mut cycle = Cycle::new(&requests);
    group.bench_function("regorus/decide_envelope", |b| {
        b.iter(|| black_box(peer.decide_request(black_box(cycle.next())).unwrap()));
    });
    let mut peer = RegoPeer::with_policy(POLICY_JSON).unwrap();
    let mut cycle = Cycle::new(&events);
    group.bench_function("regorus/decide_event_kept_policy", |b| {
        b.iter(|| black_box(peer.decide_event(black_box(cycle.next())).unwrap()));
    });

    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
