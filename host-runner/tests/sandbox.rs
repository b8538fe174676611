//! Modules that break the ABI are refused before use, and a call that runs
//! into a limit fails with an error naming it, without harming the next one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test stops at its first failure"
)]

use host_runner::{Limits, Plugin, SandboxError, Worker};

/// A module with every export of ABI version 1; `body` replaces `srs_evaluate`'s.
fn module(version: i32, evaluate_body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
            (memory (export "memory") 1)
            (global $next (mut i32) (i32.const 1024))
            (func (export "srs_abi_version") (result i32) (i32.const {version}))
            (func (export "srs_alloc") (param $len i32) (result i32)
                (local $p i32)
                (local.set $p (global.get $next))
                (global.set $next (i32.add (global.get $next) (local.get $len)))
                (local.get $p))
            (func (export "srs_free") (param i32 i32))
            (func (export "srs_evaluate") (param i32 i32) (result i64) {evaluate_body})
            (func (export "srs_set_policy") (param i32 i32) (result i64) (i64.const 0))
            (func (export "srs_evaluate_event") (param i32 i32) (result i64) (i64.const 0)))"#
    ))
    .unwrap()
}

fn refused(wasm: &[u8]) -> SandboxError {
    match Plugin::load(wasm, Limits::default()) {
        Ok(_) => panic!("module was accepted"),
        Err(e) => e,
    }
}

#[test]
fn a_module_importing_anything_is_refused() {
    let wasm = wat::parse_str(r#"(module (import "env" "clock" (func)))"#).unwrap();
    let err = refused(&wasm);
    assert!(matches!(err, SandboxError::Import { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "module imports `env::clock`; a policy module must import nothing"
    );
}

#[test]
fn another_abi_version_is_refused() {
    let err = refused(&module(2, "(i64.const 0)"));
    assert_eq!(
        err.to_string(),
        "module reports ABI version 2; this host speaks version 1"
    );
}

#[test]
fn a_missing_or_mistyped_export_is_refused() {
    let wasm = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "srs_abi_version") (result i32) (i32.const 1)))"#).unwrap();
    assert!(matches!(
        refused(&wasm),
        SandboxError::MissingExport {
            name: "srs_alloc",
            ..
        }
    ));
    let wasm = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "srs_abi_version") (result i64) (i64.const 1)))"#).unwrap();
    assert!(matches!(
        refused(&wasm),
        SandboxError::ExportType {
            name: "srs_abi_version",
            ..
        }
    ));
}

#[test]
fn an_infinite_loop_runs_out_of_fuel_and_the_next_call_works() {
    let limits = Limits {
        fuel_per_call: 1_000_000,
        ..Limits::default()
    };
    let looping = Plugin::load(&module(1, "(loop $l (br $l)) (i64.const 0)"), limits).unwrap();
    let mut worker = Worker::new(&looping);
    let err = worker.evaluate(b"{}").unwrap_err();
    assert!(matches!(err, SandboxError::OutOfFuel(1_000_000)), "{err}");

    let good = Plugin::embedded(Limits::default()).unwrap();
    let answer = Worker::new(&good).evaluate(b"{}").unwrap();
    assert!(answer.starts_with(r#"{"type":"failure""#), "{answer}");
}

#[test]
fn an_answer_outside_memory_is_refused() {
    // (ptr 0x10000 << 32) | len 16, one byte past the single 64 KiB page.
    let plugin = Plugin::load(
        &module(1, "(i64.const 0x0000FFF800000010)"),
        Limits::default(),
    )
    .unwrap();
    let err = Worker::new(&plugin).evaluate(b"{}").unwrap_err();
    assert!(matches!(err, SandboxError::OutOfBounds { .. }), "{err}");
}

#[test]
fn a_poisoned_instance_is_replaced() {
    let limits = Limits {
        fuel_per_call: 1_000_000,
        ..Limits::default()
    };
    // Loops only when the request is longer than 2 bytes.
    let plugin = Plugin::load(
        &module(
            1,
            "(if (i32.gt_u (local.get 1) (i32.const 2)) (then (loop $l (br $l)))) (i64.const 0)",
        ),
        limits,
    )
    .unwrap();
    let mut worker = Worker::new(&plugin);
    assert!(worker.evaluate(b"{}").is_ok());
    assert!(matches!(
        worker.evaluate(b"long"),
        Err(SandboxError::OutOfFuel(_))
    ));
    assert!(
        worker.evaluate(b"{}").is_ok(),
        "a fresh instance answers after the failure"
    );
}
