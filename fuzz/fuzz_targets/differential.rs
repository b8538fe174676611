//! The same bytes natively (policy-core) and through the embedded core module
//! in the sandboxed wasmtime (host-runner): the answers must be identical,
//! and the sandbox must not refuse an input of at most 1 MiB.
//!
//! Each input goes through the three answer-returning exports:
//! `srs_evaluate` (as a request envelope), `srs_set_policy` (as a policy) and
//! `srs_evaluate_event` (as an event, against a fixed kept policy). Workers,
//! and so instances, are reused across inputs as `srs run` reuses them.

#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use host_runner::{Limits, Plugin, Worker};
use libfuzzer_sys::fuzz_target;
use policy_core::{Engine, MAX_INPUT_BYTES};

const POLICY: &str = r#"{"uem":"epmm","deployment":"access","providers":["office365","google_workspace"],"actions":{"Lock Down":"blocking"},"compliance_policies":[{"id":"jailbreak","actions":["Send Alert","Block"]}],"exempt_users":["breakglass@example.com"]}"#;

fn plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<Plugin> = OnceLock::new();
    PLUGIN.get_or_init(|| match Plugin::embedded(Limits::default()) {
        Ok(plugin) => plugin,
        Err(e) => panic!("the embedded module does not load: {e}"),
    })
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| match Engine::from_json(POLICY.as_bytes()) {
        Ok(engine) => engine,
        Err(answer) => panic!("the fixed policy is refused: {}", answer.to_json()),
    })
}

struct Workers {
    envelope: Worker<'static>,
    policy: Worker<'static>,
    event: Worker<'static>,
}

thread_local! {
    static WORKERS: RefCell<Workers> = RefCell::new({
        let mut event = Worker::new(plugin());
        if let Err(e) = event.set_policy(POLICY.as_bytes()) {
            panic!("srs_set_policy failed on the fixed policy: {e}");
        }
        Workers {
            envelope: Worker::new(plugin()),
            policy: Worker::new(plugin()),
            event,
        }
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

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT_BYTES {
        return;
    }
    WORKERS.with(|workers| {
        let mut workers = workers.borrow_mut();

        let native = policy_core::evaluate_json_bytes(data);
        same("srs_evaluate", &native, workers.envelope.evaluate(data));

        let native = match Engine::from_json(data) {
            Ok(engine) => engine.accepted(),
            Err(failure) => failure,
        }
        .to_json();
        same("srs_set_policy", &native, workers.policy.set_policy(data));

        let native = engine().evaluate_json(data).to_json();
        same(
            "srs_evaluate_event",
            &native,
            workers.event.evaluate_event(data),
        );
    });
});
