//! The same bytes natively (policy-core) and through the embedded core module
//! in the sandboxed wasmtime (host-runner): the answers must be identical,
//! and the sandbox must not refuse an input of at most 1 MiB.
//!
//! Each input goes through the three answer-returning exports:
//! `srs_evaluate` (as a request envelope), `srs_set_policy` (as a policy) and
//! `srs_evaluate_event` (as an event, against a fixed kept policy, and again
//! against a fixed policy with a grace period). Workers, and so instances, are
//! reused across inputs as `srs run` reuses them.
//!
//! The same bytes also drive a generator of well-formed-looking requests
//! (`generated`) that reach the grace period (SPEC §4 step 3a): policies with
//! `grace_seconds` of 0, 1, the maximum, one past it and other edges, and
//! events with and without `time`, with offsets, fractions, leap seconds and
//! years near 0000 and 9999. Each generated request goes through all three
//! exports too, and its event through `srs_evaluate_event` under its policy.
//!
//! Natively, each input also goes through both JSON readers of policy-core:
//! the single-pass reader the entry points use and the old way (the text
//! into a `serde_json::Value`, then the schema walk); the answers must be
//! identical. And policy-core's JSON parser (`parse_value`, what the old
//! way and every `malformed-json` message use) must give the same value or
//! the same error text as serde_json's own parser (`serde_value`).

#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use host_runner::{Limits, Plugin, Worker};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use policy_core::{Engine, MAX_INPUT_BYTES};
use serde_json::{Map, Value, json};

const POLICY: &str = r#"{"uem":"epmm","deployment":"access","providers":["office365","google_workspace"],"actions":{"Lock Down":"blocking"},"compliance_policies":[{"id":"jailbreak","actions":["Send Alert","Block"]}],"exempt_users":["breakglass@example.com"]}"#;

/// The fixed policy with the longest grace period.
const GRACE_POLICY: &str = r#"{"uem":"neurons_mdm","deployment":"access","providers":["google_workspace","office365"],"actions":{"Lock Down":"blocking"},"exempt_users":["breakglass@example.com"],"grace_seconds":2592000}"#;

fn plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<Plugin> = OnceLock::new();
    PLUGIN.get_or_init(|| match Plugin::embedded(Limits::default()) {
        Ok(plugin) => plugin,
        Err(e) => panic!("the embedded module does not load: {e}"),
    })
}

fn fixed(policy: &str) -> Engine {
    match Engine::from_json(policy.as_bytes()) {
        Ok(engine) => engine,
        Err(answer) => panic!("the fixed policy is refused: {}", answer.to_json()),
    }
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| fixed(POLICY))
}

fn grace_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| fixed(GRACE_POLICY))
}

fn kept(policy: &str) -> Worker<'static> {
    let mut worker = Worker::new(plugin());
    if let Err(e) = worker.set_policy(policy.as_bytes()) {
        panic!("srs_set_policy failed on the fixed policy: {e}");
    }
    worker
}

struct Workers {
    envelope: Worker<'static>,
    policy: Worker<'static>,
    event: Worker<'static>,
    grace_event: Worker<'static>,
}

thread_local! {
    static WORKERS: RefCell<Workers> = RefCell::new(Workers {
        envelope: Worker::new(plugin()),
        policy: Worker::new(plugin()),
        event: kept(POLICY),
        grace_event: kept(GRACE_POLICY),
    });
}

fn same(what: &str, native: &str, wasm: Result<String, host_runner::SandboxError>) {
    match wasm {
        Ok(wasm) => {
            if wasm != native {
                panic!("{what}: native and wasm answers differ\nnative: {native}\nwasm:   {wasm}");
            }
        }
        Err(e) => panic!(
            "{what}: the sandbox gave no answer ({e}); native answer is {} bytes: {:.300}",
            native.len(),
            native
        ),
    }
}

/// The single-pass reader's answer against the old way's.
fn readers(what: &str, new: &str, old: String) {
    if new != old {
        panic!("{what}: the single-pass reader and the Value path differ\nnew: {new}\nold: {old}");
    }
}

/// One input through every export, natively and in wasmtime: `request` as an
/// envelope, `policy` as a policy (then `event` under it, when it is kept),
/// `event` under both fixed policies.
fn differ(workers: &mut Workers, request: &[u8], policy: &[u8], event: &[u8]) {
    let native = policy_core::evaluate_json_bytes(request);
    readers(
        "evaluate_request",
        &native,
        policy_core::evaluate_request_via_value(request).to_json(),
    );
    same("srs_evaluate", &native, workers.envelope.evaluate(request));

    let kept = Engine::from_json(policy);
    let native = match &kept {
        Ok(engine) => engine.accepted(),
        Err(failure) => failure.clone(),
    }
    .to_json();
    same("srs_set_policy", &native, workers.policy.set_policy(policy));
    if let Ok(engine) = &kept {
        let native = engine.evaluate_json(event).to_json();
        same(
            "srs_evaluate_event (its own policy)",
            &native,
            workers.policy.evaluate_event(event),
        );
    }

    let native = engine().evaluate_json(event).to_json();
    readers(
        "Engine::evaluate_json",
        &native,
        engine().evaluate_json_via_value(event).to_json(),
    );
    readers("Engine::answer_json", &engine().answer_json(event), native.clone());
    same(
        "srs_evaluate_event",
        &native,
        workers.event.evaluate_event(event),
    );
    let native = grace_engine().evaluate_json(event).to_json();
    readers(
        "Engine::evaluate_json (grace policy)",
        &native,
        grace_engine().evaluate_json_via_value(event).to_json(),
    );
    readers(
        "Engine::answer_json (grace policy)",
        &grace_engine().answer_json(event),
        native.clone(),
    );
    same(
        "srs_evaluate_event (grace policy)",
        &native,
        workers.grace_event.evaluate_event(event),
    );
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT_BYTES {
        return;
    }
    // policy-core's JSON parser beside serde_json's, which it replaces.
    if let Ok(text) = std::str::from_utf8(data) {
        let ours = policy_core::parse_value(text).map(|v| v.to_string());
        let serde = policy_core::serde_value(text).map(|v| v.to_string());
        assert_eq!(ours, serde, "the JSON parsers differ on {text:?}");
    }
    let (policy, event) = generated(&mut Gen(Unstructured::new(data)));
    let request = json!({"policy": policy, "event": event}).to_string();
    let (policy, event) = (policy.to_string(), event.to_string());
    WORKERS.with(|workers| {
        let mut workers = workers.borrow_mut();
        differ(&mut workers, data, data, data);
        differ(
            &mut workers,
            request.as_bytes(),
            policy.as_bytes(),
            event.as_bytes(),
        );
    });
});

/// Choices drawn from the fuzzer's bytes; once they run out, the lowest
/// number, the first choice and `false`: a grace policy and a timed event.
struct Gen<'a>(Unstructured<'a>);

impl Gen<'_> {
    fn int(&mut self, low: u32, high: u32) -> u32 {
        self.0.int_in_range(low..=high).unwrap_or(low)
    }

    fn one_in(&mut self, n: u32) -> bool {
        self.int(1, n) == n
    }

    fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        match self.0.choose(from) {
            Ok(x) => x.clone(),
            Err(_) => match from.first() {
                Some(x) => x.clone(),
                None => panic!("pick from nothing"),
            },
        }
    }
}

const MAX_GRACE: u64 = 2_592_000;

/// A policy and an event that mostly pass validation, built to reach the
/// grace period and its edges.
fn generated(g: &mut Gen<'_>) -> (Value, Value) {
    (policy(g), event(g))
}

fn policy(g: &mut Gen<'_>) -> Value {
    let mut p = Map::new();
    p.insert("uem".into(), json!(g.pick(&["epmm", "neurons_mdm"])));
    let deployment = if g.one_in(6) {
        "access_standalone_sentry"
    } else {
        "access"
    };
    p.insert("deployment".into(), json!(deployment));
    let providers = g.pick(&[
        &["office365"][..],
        &["google_workspace"],
        &["office365", "google_workspace"],
        &["google_workspace", "office365"],
    ]);
    p.insert("providers".into(), json!(providers));
    if g.one_in(3) {
        p.insert("mode".into(), json!(g.pick(&["enforce", "report_only"])));
    }
    if g.one_in(3) {
        let states: Vec<&str> = [
            "quarantined",
            "wiped",
            "retired",
            "blocked",
            "lost",
            "active",
        ]
        .into_iter()
        .filter(|_| g.one_in(2))
        .collect();
        p.insert("revoke_on_states".into(), json!(states));
    }
    if g.one_in(2) {
        p.insert(
            "actions".into(),
            json!({"Lock Down": "blocking", "Nag": "non_blocking"}),
        );
    }
    if g.one_in(3) {
        p.insert("exempt_users".into(), json!(["breakglass@example.com"]));
    }
    if let Some(grace) = grace_seconds(g) {
        p.insert("grace_seconds".into(), grace);
    }
    Value::Object(p)
}

/// `grace_seconds`, absent or at its edges: 0, 1, the maximum, one past it,
/// the ends of `u32`, any value in range, and values of the wrong type.
fn grace_seconds(g: &mut Gen<'_>) -> Option<Value> {
    Some(match g.int(0, 15) {
        0 => json!(14_400),
        1 => json!(0),
        2 => json!(1),
        3 => json!(MAX_GRACE),
        4 => json!(MAX_GRACE + 1),
        5 => json!(MAX_GRACE - 1),
        6 => json!(u32::MAX),
        7 => json!(u64::from(u32::MAX) + 1),
        8 => json!(-1),
        9 => json!(g.pick(&[1.5, 14400.0, 0.0, -0.0, 1e300])),
        10 => json!(g.pick(&["14400", "", "0"])),
        11 => Value::Null,
        12 => json!(g.int(0, u32::MAX)),
        13 => return None,
        _ => json!(g.int(0, MAX_GRACE as u32)),
    })
}

fn event(g: &mut Gen<'_>) -> Value {
    let mut e = Map::new();
    e.insert("id".into(), json!(format!("evt-{}", g.int(0, 9))));
    if let Some(time) = time(g) {
        e.insert("time".into(), time);
    }
    let state = g.pick(&[
        "active",
        "active",
        "active",
        "quarantined",
        "wiped",
        "retired",
        "retire_pending",
        "wipe_pending",
        "blocked",
        "lost",
        "expired",
    ]);
    e.insert("device".into(), json!({"id": "dev-9", "state": state}));
    let user = match g.int(0, 3) {
        0 => json!({"upn": "alice@example.com"}),
        1 => json!({"email": "alice@example.com"}),
        2 => json!({"upn": "BreakGlass@example.com", "email": "alice@example.com"}),
        _ => json!({"upn": "alice@corp.example.com", "email": "alice@example.com"}),
    };
    e.insert("user".into(), user);
    // One violation, of one blocking action, when the bytes run out.
    let count = (g.int(0, 3) + 1) % 4;
    let violations: Vec<Value> = (0..count)
        .map(|i| {
            let actions: Vec<Value> = (0..g.int(1, 3))
                .map(|_| match g.int(0, 3) {
                    3 => json!({
                        "alert": g.one_in(2),
                        "block": g.one_in(2),
                        "quarantine": g.one_in(3),
                    }),
                    _ => json!(g.pick(&[
                        "Block",
                        "Send Alert",
                        "quarantine",
                        "Lock Down",
                        "Nag",
                        "wait",
                    ])),
                })
                .collect();
            json!({"policy": format!("p{i}"), "actions": actions})
        })
        .collect();
    let compliant = if g.one_in(8) {
        !violations.is_empty()
    } else {
        violations.is_empty()
    };
    e.insert(
        "compliance".into(),
        json!({"compliant": compliant, "violations": violations}),
    );
    Value::Object(e)
}

/// `time`: absent, of the wrong type, or an RFC 3339 date-time (now and then
/// a near miss) with the year near 0000, 1970 or 9999, leap seconds and days,
/// fractions of any length and offsets either way.
fn time(g: &mut Gen<'_>) -> Option<Value> {
    match g.int(0, 9) {
        8 => return None,
        9 => {
            return Some(g.pick(&[Value::Null, json!(1_795_774_500), json!("2026-11-27")]));
        }
        _ => {}
    }
    let year = match g.int(0, 7) {
        0 => g.int(0, 1),
        1 => g.int(1969, 1970),
        2 => g.int(9998, 9999),
        3 => 9999,
        4 => 0,
        _ => g.int(0, 9999),
    };
    let month = if g.one_in(3) {
        g.pick(&[1, 2, 12])
    } else {
        g.int(1, 12)
    };
    let day = if g.one_in(3) {
        g.pick(&[1, 28, 29, 30, 31])
    } else {
        g.int(1, 28)
    };
    let (hour, minute) = if g.one_in(2) {
        (23, 59)
    } else {
        (g.int(0, 23), g.int(0, 59))
    };
    let second = if g.one_in(2) {
        g.pick(&[0, 59, 60])
    } else {
        g.int(0, 59)
    };
    let t = if g.one_in(8) { 't' } else { 'T' };
    let fraction = match g.int(0, 3) {
        0 | 1 => String::new(),
        2 => format!(".{}", "9".repeat(g.int(1, 12) as usize)),
        _ => format!(
            ".{:0width$}",
            g.int(0, 999_999),
            width = g.int(1, 9) as usize
        ),
    };
    let offset = match g.int(0, 4) {
        0 | 1 => "Z".to_owned(),
        2 => "z".to_owned(),
        n => {
            let sign = if n == 3 { '+' } else { '-' };
            let (h, m) = if g.one_in(2) {
                (23, 59)
            } else {
                (g.int(0, 23), g.int(0, 59))
            };
            format!("{sign}{h:02}:{m:02}")
        }
    };
    Some(json!(format!(
        "{year:04}-{month:02}-{day:02}{t}{hour:02}:{minute:02}:{second:02}{fraction}{offset}"
    )))
}
