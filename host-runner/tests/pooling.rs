//! The pooling allocator (`Allocation::Pooling`): the same answers as on-demand
//! instances, the same memory cap, and a bounded number of live instances.

#![expect(clippy::unwrap_used, reason = "a test stops at its first failure")]

use host_runner::sandbox::Allocation;
use host_runner::{EMBEDDED_MODULE, Limits, Plugin, SandboxError, Worker};

const POLICY: &str = r#"{"uem":"epmm","deployment":"access","providers":["office365","google_workspace"],"compliance_policies":[{"id":"jailbreak","actions":["Send Alert","Block"]}]}"#;

const EVENTS: [&str; 4] = [
    r#"{"id":"evt-1","device":{"id":"dev-1","state":"active"},"user":{"upn":"alice@example.com"},"compliance":{"compliant":false,"violations":[{"policy":"jailbreak"}]}}"#,
    r#"{"id":"evt-2","device":{"id":"dev-2","state":"quarantined"},"user":{"email":"bob@example.com"},"compliance":{"compliant":true}}"#,
    r#"{"id":"evt-3","device":{"id":"dev-3","state":"active"},"user":{"upn":"carol@example.com"},"compliance":{"compliant":false,"violations":[{"policy":"os","actions":["Send Alert"]}]}}"#,
    // A failure answer: an unknown action.
    r#"{"id":"evt-4","device":{"id":"dev-4","state":"active"},"user":{"upn":"dave@example.com"},"compliance":{"compliant":false,"violations":[{"policy":"os","actions":["Lock Down"]}]}}"#,
];

fn request(event: &str) -> String {
    format!(r#"{{"policy":{POLICY},"event":{event}}}"#)
}

fn pooled(instances: u32, limits: Limits) -> Plugin {
    Plugin::load_with(EMBEDDED_MODULE, limits, Allocation::Pooling { instances }).unwrap()
}

#[test]
fn a_pooled_plugin_gives_the_on_demand_answers() {
    let on_demand = Plugin::embedded(Limits::default()).unwrap();
    let pooled = pooled(4, Limits::default());
    let mut a = Worker::new(&on_demand);
    let mut b = Worker::new(&pooled);
    a.set_policy(POLICY.as_bytes()).unwrap();
    b.set_policy(POLICY.as_bytes()).unwrap();
    for event in EVENTS {
        let native = policy_core::evaluate_json_str(&request(event));
        assert_eq!(a.evaluate_event(event.as_bytes()).unwrap(), native);
        assert_eq!(b.evaluate_event(event.as_bytes()).unwrap(), native);
        // A fresh pooled instance per request, many more than the pool holds:
        // each returns its slot when dropped.
        for _ in 0..8 {
            let mut fresh = pooled.instantiate().unwrap();
            assert_eq!(fresh.evaluate(request(event).as_bytes()).unwrap(), native);
        }
    }
}

/// The module `wat`, its one-page memory declared with `pages` pages instead.
fn wasm_with_pages(wat: &str, pages: u32) -> Vec<u8> {
    let wat = wat.replace(
        r#"(memory (export "memory") 1)"#,
        &format!(r#"(memory (export "memory") {pages})"#),
    );
    wat::parse_str(wat).unwrap()
}

#[test]
fn a_pooled_plugin_still_enforces_the_memory_cap() {
    let limits = Limits {
        max_memory: 2 << 20,
        ..Limits::default()
    };
    // One page, and `srs_evaluate` grows memory by 100 pages (6.25 MiB), past
    // the 2 MiB cap, trapping if the growth failed.
    let wasm = r#"(module
            (memory (export "memory") 1)
            (global $next (mut i32) (i32.const 1024))
            (func (export "srs_abi_version") (result i32) (i32.const 1))
            (func (export "srs_alloc") (param $len i32) (result i32) (local $p i32)
                (local.set $p (global.get $next))
                (global.set $next (i32.add (global.get $next) (local.get $len)))
                (local.get $p))
            (func (export "srs_free") (param i32 i32))
            (func (export "srs_evaluate") (param i32 i32) (result i64)
                (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))
                (i64.const 0x20000000002))
            (func (export "srs_set_policy") (param i32 i32) (result i64) (i64.const 0))
            (func (export "srs_evaluate_event") (param i32 i32) (result i64) (i64.const 0))
            (data (i32.const 512) "{}"))"#;
    let plugin = Plugin::load_with(
        &wasm_with_pages(wasm, 1),
        limits,
        Allocation::Pooling { instances: 2 },
    )
    .unwrap();
    let mut worker = Worker::new(&plugin);
    for _ in 0..3 {
        // Each call after the first runs on a fresh instance from the pool.
        let err = worker.evaluate(b"{}").unwrap_err();
        assert!(matches!(err, SandboxError::MemoryCap(2_097_152)), "{err:?}");
    }
    // A memory declared larger than the cap is refused at load, pooled too:
    // by wasmtime's pool checks when compiling, before any instance exists.
    let declared = wasm_with_pages(wasm, 100);
    let err = match Plugin::load_with(&declared, limits, Allocation::Pooling { instances: 2 }) {
        Ok(_) => panic!("a 100-page memory was accepted under a 2 MiB cap"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, SandboxError::Compile(m) if m.contains("exceeds the limit of 0x200000 bytes")),
        "{err:?}"
    );
    // Under a cap that allows the growth, the same module answers, pooled.
    let roomy = Plugin::load_with(
        &wasm_with_pages(wasm, 1),
        Limits::default(),
        Allocation::Pooling { instances: 2 },
    )
    .unwrap();
    assert_eq!(Worker::new(&roomy).evaluate(b"{}").unwrap(), "{}");
}

#[test]
fn a_full_pool_refuses_one_more_instance() {
    let plugin = pooled(2, Limits::default());
    let first = plugin.instantiate().unwrap();
    let _second = plugin.instantiate().unwrap();
    assert!(plugin.instantiate().is_err());
    drop(first);
    let mut again = plugin.instantiate().unwrap();
    assert_eq!(
        again.evaluate(request(EVENTS[0]).as_bytes()).unwrap(),
        policy_core::evaluate_json_str(&request(EVENTS[0]))
    );
}
