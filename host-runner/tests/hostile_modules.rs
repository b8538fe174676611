//! Hostile modules, written in WAT, loaded through the real loader and run
//! through a `Worker`: each is refused at load or fails its call with the
//! error that names what it broke, in bounded time, and a good module still
//! answers afterwards. Some tests show each limit is what stops them.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test stops at its first failure"
)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use host_runner::{Limits, Plugin, SandboxError, Worker};

/// A hang guard, not a benchmark.
const BOUND: Duration = Duration::from_secs(10);

const PAGE: usize = 64 * 1024;

/// The parts of a module with every export of ABI version 1.
struct Wat<'a> {
    /// Module fields before the memory, e.g. imports.
    imports: &'a str,
    /// The memory's size in pages.
    pages: u32,
    /// `srs_alloc`'s body; the default bumps a pointer from 1024.
    alloc: &'a str,
    /// `srs_evaluate`'s body.
    evaluate: &'a str,
    /// Data segments and other fields after the functions.
    data: &'a str,
    /// What `srs_abi_version` reports.
    version: i32,
}

impl Default for Wat<'_> {
    fn default() -> Self {
        Self {
            imports: "",
            pages: 1,
            alloc: "(local.set $p (global.get $next))
                    (global.set $next (i32.add (global.get $next) (local.get $len)))
                    (local.get $p)",
            evaluate: "(i64.const 0)",
            data: "",
            version: 1,
        }
    }
}

impl Wat<'_> {
    fn wasm(&self) -> Vec<u8> {
        let Self {
            imports,
            pages,
            alloc,
            evaluate,
            data,
            version,
        } = self;
        wat::parse_str(format!(
            r#"(module
                {imports}
                (memory (export "memory") {pages})
                (global $next (mut i32) (i32.const 1024))
                (func (export "srs_abi_version") (result i32) (i32.const {version}))
                (func (export "srs_alloc") (param $len i32) (result i32) (local $p i32) {alloc})
                (func (export "srs_free") (param i32 i32))
                (func (export "srs_evaluate") (param i32 i32) (result i64) {evaluate})
                (func (export "srs_set_policy") (param i32 i32) (result i64) (i64.const 0))
                (func (export "srs_evaluate_event") (param i32 i32) (result i64) (i64.const 0))
                {data})"#
        ))
        .unwrap()
    }
}

/// `srs_evaluate`'s result for an answer at `ptr` of `len` bytes.
fn packed(ptr: u32, len: u32) -> String {
    format!("(i64.const {})", (u64::from(ptr) << 32) | u64::from(len))
}

/// `srs_evaluate`: grow memory by `pages`, trap if that failed, answer `{}`.
fn grow(pages: u32) -> String {
    format!(
        "(if (i32.eq (memory.grow (i32.const {pages})) (i32.const -1)) (then unreachable)) {}",
        packed(512, 2)
    )
}

/// The answer `{}` at offset 512.
const EMPTY_OBJECT: &str = r#"(data (i32.const 512) "{}")"#;

/// Runs `f` under the hang guard.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    assert!(elapsed < BOUND, "{what} took {elapsed:?}");
    out
}

fn load(wasm: &[u8], limits: Limits) -> Plugin {
    timed("load", || Plugin::load(wasm, limits)).unwrap()
}

fn refused(wasm: &[u8], limits: Limits) -> SandboxError {
    match timed("load", || Plugin::load(wasm, limits)) {
        Ok(_) => panic!("module was accepted"),
        Err(e) => e,
    }
}

/// One call of `srs_evaluate` through a worker, under the hang guard.
fn evaluate(plugin: &Plugin, request: &[u8]) -> Result<String, SandboxError> {
    let mut worker = Worker::new(plugin);
    timed("evaluate", || worker.evaluate(request))
}

const REQUEST: &str = r#"{"policy":{"uem":"epmm","deployment":"access","providers":["office365","google_workspace"]},"event":{"id":"evt-1","device":{"id":"dev-9","state":"active"},"user":{"upn":"alice@example.com"},"compliance":{"compliant":false,"violations":[{"policy":"jailbreak","actions":["Block"]}]}}}"#;

/// The embedded module, compiled once for all tests.
fn good() -> &'static Plugin {
    static GOOD: OnceLock<Plugin> = OnceLock::new();
    GOOD.get_or_init(|| Plugin::embedded(Limits::default()).unwrap())
}

/// A real request through the embedded module still gives the native answer.
fn a_good_module_still_answers() {
    let answer = evaluate(good(), REQUEST.as_bytes()).unwrap();
    assert!(
        answer
            .starts_with(r#"{"type":"success","decision":{"event_id":"evt-1","outcome":"revoke""#),
        "{answer}"
    );
    assert_eq!(answer, policy_core::evaluate_json_str(REQUEST));
}

#[test]
fn growing_memory_past_the_cap_fails_naming_the_memory_limit() {
    let limits = Limits {
        max_memory: 2 << 20,
        ..Limits::default()
    };
    let plugin = load(
        &Wat {
            evaluate: &grow(100),
            data: EMPTY_OBJECT,
            ..Wat::default()
        }
        .wasm(),
        limits,
    );
    let mut worker = Worker::new(&plugin);
    for _ in 0..2 {
        // The second call runs on a fresh instance and meets the same cap.
        let err = timed("evaluate", || worker.evaluate(b"{}")).unwrap_err();
        assert!(matches!(err, SandboxError::MemoryCap(2_097_152)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "module tried to grow its memory past the 2097152-byte cap (memory limit)"
        );
    }
    a_good_module_still_answers();
}

#[test]
fn a_memory_declared_larger_than_the_cap_is_refused_at_load() {
    let limits = Limits {
        max_memory: 2 << 20,
        ..Limits::default()
    };
    // 100 pages (6.25 MiB) at instantiation, over a 2 MiB cap.
    let wasm = Wat {
        pages: 100,
        ..Wat::default()
    }
    .wasm();
    let err = refused(&wasm, limits);
    assert!(matches!(err, SandboxError::MemoryCap(2_097_152)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "module tried to grow its memory past the 2097152-byte cap (memory limit)"
    );
    // The same module loads under the default 64 MiB cap.
    assert!(load(&wasm, Limits::default()).limits() == Limits::default());
    a_good_module_still_answers();
}

#[test]
fn an_unreachable_trap_is_a_trap_error() {
    let plugin = load(
        &Wat {
            evaluate: "unreachable",
            ..Wat::default()
        }
        .wasm(),
        Limits::default(),
    );
    let err = evaluate(&plugin, b"{}").unwrap_err();
    let SandboxError::Trap(message) = &err else {
        panic!("expected a trap, got {err:?}");
    };
    assert!(message.contains("unreachable"), "{message}");
    assert!(err.to_string().starts_with("module trapped: "), "{err}");
    a_good_module_still_answers();
}

#[test]
fn a_4_gib_answer_length_is_too_large() {
    let plugin = load(
        &Wat {
            evaluate: &packed(1024, 0xFFFF_FFFF),
            ..Wat::default()
        }
        .wasm(),
        Limits::default(),
    );
    let err = evaluate(&plugin, b"{}").unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::AnswerTooLarge {
                len: 0xFFFF_FFFF,
                limit: 4_194_304
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "answer is 4294967295 bytes; the host's answer limit is 4194304"
    );
    a_good_module_still_answers();
}

#[test]
fn an_answer_that_is_not_utf8_is_refused() {
    let plugin = load(
        &Wat {
            evaluate: &packed(512, 2),
            data: r#"(data (i32.const 512) "\ff\fe")"#,
            ..Wat::default()
        }
        .wasm(),
        Limits::default(),
    );
    let err = evaluate(&plugin, b"{}").unwrap_err();
    assert!(matches!(err, SandboxError::AnswerNotUtf8(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "answer is not UTF-8: invalid utf-8 sequence of 1 bytes from index 0"
    );
    a_good_module_still_answers();
}

#[test]
fn an_allocation_outside_memory_is_refused() {
    // Past the end of the single page, and at 0xFFFF_FFF0, where ptr + len
    // wraps around in 32 bits.
    for (alloc, ptr) in [
        ("(i32.const 0x7FFFFFF0)", 0x7FFF_FFF0_u32),
        ("(i32.const -16)", 0xFFFF_FFF0),
    ] {
        let plugin = load(
            &Wat {
                alloc,
                evaluate: "unreachable",
                ..Wat::default()
            }
            .wasm(),
            Limits::default(),
        );
        let err = evaluate(&plugin, &[b' '; 32]).unwrap_err();
        assert!(
            matches!(
                err,
                SandboxError::OutOfBounds {
                    ptr: p,
                    len: 32,
                    memory: 65_536
                } if p == ptr
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("module returned a buffer at {ptr} of 32 bytes, outside its 65536-byte memory")
        );
    }
    a_good_module_still_answers();
}

#[test]
fn a_request_over_the_limit_is_refused_without_calling_the_guest() {
    // Any call into this guest traps, so reaching it would be a `Trap` error.
    let plugin = load(
        &Wat {
            alloc: "unreachable",
            evaluate: "unreachable",
            ..Wat::default()
        }
        .wasm(),
        Limits {
            max_request: 1024,
            ..Limits::default()
        },
    );
    let err = evaluate(&plugin, &[b'{'; 1025]).unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::RequestTooLarge {
                len: 1025,
                limit: 1024
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "request is 1025 bytes; the host's request limit is 1024"
    );
    // At the limit the guest is called (and traps).
    let err = evaluate(&plugin, &[b'{'; 1024]).unwrap_err();
    assert!(matches!(err, SandboxError::Trap(_)), "{err:?}");
    // The default limit is 4 MiB.
    let err = evaluate(good(), &vec![b' '; (4 << 20) + 1]).unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::RequestTooLarge {
                len: 4_194_305,
                limit: 4_194_304
            }
        ),
        "{err:?}"
    );
    a_good_module_still_answers();
}

#[test]
fn a_wasi_import_is_refused() {
    let wasm = Wat {
        imports: r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
        ..Wat::default()
    }
    .wasm();
    let err = refused(&wasm, Limits::default());
    assert!(
        matches!(&err, SandboxError::Import { module, name } if module == "wasi_snapshot_preview1" && name == "fd_write"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "module imports `wasi_snapshot_preview1::fd_write`; a policy module must import nothing"
    );
    a_good_module_still_answers();
}

// --- each limit is what stops the module --------------------------------

#[test]
fn the_memory_cap_is_what_stops_the_growth() {
    let wasm = Wat {
        evaluate: &grow(100),
        data: EMPTY_OBJECT,
        ..Wat::default()
    }
    .wasm();
    // Under the default 64 MiB cap the same 100 pages are granted.
    assert_eq!(
        evaluate(&load(&wasm, Limits::default()), b"{}").unwrap(),
        "{}"
    );
    // Exactly up to the cap is allowed; one page more is not.
    let cap = |pages: usize| Limits {
        max_memory: pages * PAGE,
        ..Limits::default()
    };
    assert_eq!(evaluate(&load(&wasm, cap(101)), b"{}").unwrap(), "{}");
    let err = evaluate(&load(&wasm, cap(100)), b"{}").unwrap_err();
    assert!(matches!(err, SandboxError::MemoryCap(6_553_600)), "{err:?}");
}

#[test]
fn the_answer_limit_is_what_refuses_the_answer() {
    let wasm = Wat {
        evaluate: &packed(512, 2),
        data: EMPTY_OBJECT,
        ..Wat::default()
    }
    .wasm();
    let limit = |max_answer| Limits {
        max_answer,
        ..Limits::default()
    };
    assert_eq!(evaluate(&load(&wasm, limit(2)), b"{}").unwrap(), "{}");
    let err = evaluate(&load(&wasm, limit(1)), b"{}").unwrap_err();
    assert!(
        matches!(err, SandboxError::AnswerTooLarge { len: 2, limit: 1 }),
        "{err:?}"
    );
}

#[test]
fn an_infinite_loop_stops_at_a_much_higher_fuel_limit_too() {
    let wasm = Wat {
        evaluate: "(loop $l (br $l)) (i64.const 0)",
        ..Wat::default()
    }
    .wasm();
    for fuel in [1_000_000, 100_000_000] {
        let limits = Limits {
            fuel_per_call: fuel,
            ..Limits::default()
        };
        let err = evaluate(&load(&wasm, limits), b"{}").unwrap_err();
        assert!(
            matches!(err, SandboxError::OutOfFuel(f) if f == fuel),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("module ran out of fuel: a call may use {fuel} units (fuel limit)")
        );
    }
    // A guest that stops by itself within its fuel answers.
    let counted = Wat {
        evaluate: &format!(
            "(local $i i32)
             (local.set $i (i32.const 100000))
             (loop $l (local.set $i (i32.sub (local.get $i) (i32.const 1)))
                      (br_if $l (local.get $i)))
             {}",
            packed(512, 2)
        ),
        data: EMPTY_OBJECT,
        ..Wat::default()
    }
    .wasm();
    let enough = Limits {
        fuel_per_call: 1_000_000,
        ..Limits::default()
    };
    assert_eq!(evaluate(&load(&counted, enough), b"{}").unwrap(), "{}");
    let too_little = Limits {
        fuel_per_call: 100_000,
        ..Limits::default()
    };
    let err = evaluate(&load(&counted, too_little), b"{}").unwrap_err();
    assert!(matches!(err, SandboxError::OutOfFuel(100_000)), "{err:?}");
    a_good_module_still_answers();
}

/// Requests whose answers once outgrew the sandbox (found by review of the
/// differential fuzz target): the module must give the native answer.
#[test]
fn amplifying_requests_get_the_native_answer_in_the_sandbox() {
    let policy = r#"{"uem":"epmm","deployment":"access","providers":["office365"]}"#;
    let actions = format!("[{}]", vec![r#""Block""#; 1024].join(","));
    let violations: Vec<String> = (0..4)
        .map(|i| {
            format!(
                r#"{{"policy":"{}{i}","actions":{actions}}}"#,
                "p".repeat(1000)
            )
        })
        .collect();
    let long_ids = format!(
        r#"{{"policy":{policy},"event":{{"id":"e","device":{{"id":"d","state":"active"}},"user":{{"upn":"a@b"}},"compliance":{{"compliant":false,"violations":[{}]}}}}}}"#,
        violations.join(",")
    );
    let keys: Vec<String> = (0..20_000).map(|i| format!(r#""{i:x}":0"#)).collect();
    let many_keys = format!(r#"{{"policy":{{{}}},"event":{{}}}}"#, keys.join(","));
    let plugin = Plugin::embedded(Limits::default()).unwrap();
    let mut worker = Worker::new(&plugin);
    for request in [long_ids, many_keys] {
        let native = policy_core::evaluate_json_str(&request);
        let start = Instant::now();
        assert_eq!(worker.evaluate(request.as_bytes()).unwrap(), native);
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn a_module_importing_anything_is_refused() {
    let wasm = wat::parse_str(r#"(module (import "env" "clock" (func)))"#).unwrap();
    let err = refused(&wasm, Limits::default());
    assert!(matches!(err, SandboxError::Import { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "module imports `env::clock`; a policy module must import nothing"
    );
}

#[test]
fn another_abi_version_is_refused() {
    let wasm = Wat {
        version: 2,
        ..Wat::default()
    }
    .wasm();
    let err = refused(&wasm, Limits::default());
    assert_eq!(
        err.to_string(),
        "module reports ABI version 2; this host speaks version 1"
    );
}

#[test]
fn a_missing_or_mistyped_export_is_refused() {
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "srs_abi_version") (result i32) (i32.const 1)))"#,
    )
    .unwrap();
    assert!(matches!(
        refused(&wasm, Limits::default()),
        SandboxError::MissingExport {
            name: "srs_alloc",
            ..
        }
    ));
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "srs_abi_version") (result i64) (i64.const 1)))"#,
    )
    .unwrap();
    assert!(matches!(
        refused(&wasm, Limits::default()),
        SandboxError::ExportType {
            name: "srs_abi_version",
            ..
        }
    ));
}

#[test]
fn an_answer_outside_memory_is_refused() {
    // 16 bytes at 0xFFF8: past the end of the single 64 KiB page.
    let wasm = Wat {
        evaluate: &packed(0xFFF8, 16),
        ..Wat::default()
    }
    .wasm();
    let err = evaluate(&load(&wasm, Limits::default()), b"{}").unwrap_err();
    assert!(matches!(err, SandboxError::OutOfBounds { .. }), "{err}");
}

#[test]
fn a_poisoned_instance_is_replaced() {
    let limits = Limits {
        fuel_per_call: 1_000_000,
        ..Limits::default()
    };
    // Loops only when the request is longer than 2 bytes.
    let body = format!(
        "(if (i32.gt_u (local.get 1) (i32.const 2)) (then (loop $l (br $l)))) {}",
        packed(512, 2)
    );
    let wasm = Wat {
        evaluate: &body,
        data: EMPTY_OBJECT,
        ..Wat::default()
    }
    .wasm();
    let plugin = load(&wasm, limits);
    let mut worker = Worker::new(&plugin);
    assert_eq!(worker.evaluate(b"{}").unwrap(), "{}");
    assert!(matches!(
        worker.evaluate(b"long"),
        Err(SandboxError::OutOfFuel(_))
    ));
    assert_eq!(
        worker.evaluate(b"{}").unwrap(),
        "{}",
        "a fresh instance answers after the failure"
    );
}

/// The host writes each request into one buffer it keeps (the caller frees
/// what it allocates, SPEC §6): `srs_alloc` is called again only for a
/// request that does not fit. The module answers with how many times it was
/// asked, as one digit, and checks it was handed the request's length.
#[test]
fn the_request_buffer_is_kept_and_grown_only_when_too_small() {
    let wasm = Wat {
        alloc: "(global.set $allocs (i32.add (global.get $allocs) (i32.const 1)))
                (local.set $p (global.get $next))
                (global.set $next (i32.add (global.get $next) (local.get $len)))
                (local.get $p)",
        evaluate: "(i32.store8 (i32.const 512) (i32.add (global.get $allocs) (i32.const 48)))
                   (i32.store8 (i32.const 513) (i32.add (i32.load8_u (local.get 0)) (i32.const 0)))
                   (i32.store8 (i32.const 514)
                       (i32.load8_u (i32.sub (i32.add (local.get 0) (local.get 1)) (i32.const 1))))
                   (i64.or (i64.shl (i64.const 512) (i64.const 32)) (i64.const 3))",
        data: "(global $allocs (mut i32) (i32.const 0))",
        pages: 2,
        ..Wat::default()
    }
    .wasm();
    let plugin = load(&wasm, Limits::default());
    let mut worker = Worker::new(&plugin);
    // The probe at load and the worker's instance are two instances; this
    // one has allocated nothing yet. Each answer: allocations so far, the
    // request's first byte, its last (so its length was passed as given).
    let big = format!("b{}z", "x".repeat(5000));
    for (request, answer) in [
        ("ab", "1ab"),
        ("cd", "1cd"),
        ("efghijklmn", "1en"),
        (big.as_str(), "2bz"),
        ("pq", "2pq"),
    ] {
        assert_eq!(worker.evaluate(request.as_bytes()).unwrap(), answer);
    }
}
