//! Every vector through every Rust-side implementation: native policy-core and
//! the embedded core module in wasmtime, through the host's own loader.

#![expect(clippy::unwrap_used, reason = "a test stops at its first failure")]

use host_runner::conformance::{self, Evaluator, VectorFile};
use host_runner::{Limits, Plugin, Worker};
use srs_conformance::{Native, vectors_dir};

fn files() -> Vec<(std::path::PathBuf, VectorFile)> {
    let files = conformance::load(&[vectors_dir()]).unwrap();
    assert!(
        !files.is_empty(),
        "no vector files in {}",
        vectors_dir().display()
    );
    files
}

#[track_caller]
fn assert_all_pass(evaluator: &mut dyn Evaluator, files: &[(std::path::PathBuf, VectorFile)]) {
    let results = conformance::run(evaluator, files);
    let report = conformance::text_report(&results);
    assert!(
        results.iter().all(|r| r.passed()),
        "{} failed vectors:\n{report}",
        evaluator.name()
    );
    assert!(results.len() >= 60, "only {} cases", results.len());
}

#[test]
fn native_passes_every_vector() {
    assert_all_pass(&mut Native, &files());
}

#[test]
fn wasmtime_passes_every_vector() {
    let plugin = Plugin::embedded(Limits::default()).unwrap();
    assert_all_pass(&mut Worker::new(&plugin), &files());
}

/// The same request gives the same bytes natively and in the module, on both
/// ABI paths: one-shot `srs_evaluate` and the kept policy of `srs_set_policy`.
#[test]
fn native_and_wasmtime_answers_are_byte_identical() {
    let plugin = Plugin::embedded(Limits::default()).unwrap();
    let mut one_shot = Worker::new(&plugin);
    let mut kept = Worker::new(&plugin);
    let mut compared = 0;
    for (path, file) in files() {
        let policy = file.policy.to_string();
        let policy_ok = kept
            .set_policy(policy.as_bytes())
            .unwrap()
            .starts_with(r#"{"type":"success""#);
        for case in &file.cases {
            let request = conformance::request(&file.policy, &case.event);
            let native = policy_core::evaluate_json_str(&request);
            let wasm = one_shot.evaluate(request.as_bytes()).unwrap();
            assert_eq!(native, wasm, "{}: {}", path.display(), case.description);
            if policy_ok {
                // Under a valid policy, the kept-policy path answers the same bytes.
                let fast = kept
                    .evaluate_event(case.event.to_string().as_bytes())
                    .unwrap();
                assert_eq!(
                    native,
                    fast,
                    "{}: {} (kept policy)",
                    path.display(),
                    case.description
                );
            }
            compared += 1;
        }
    }
    assert!(compared >= 60);
}

/// A vector file with a wrong expectation is reported as failed: the runner
/// can fail.
#[test]
fn a_wrong_expectation_fails() {
    let file: VectorFile = serde_json::from_value(serde_json::json!({
        "description": "deliberately wrong",
        "policy": {"uem": "epmm", "deployment": "access", "providers": ["office365"]},
        "cases": [
            {"description": "compliant device expected to revoke",
             "event": {"id": "e1", "device": {"id": "d1", "state": "active"},
                       "user": {"upn": "a@example.com"}, "compliance": {"compliant": true}},
             "expect": {"outcome": "revoke", "reasons": ["blocking-action"]}},
            {"description": "success expected to fail",
             "event": {"id": "e2", "device": {"id": "d1", "state": "active"},
                       "user": {"upn": "a@example.com"}, "compliance": {"compliant": true}},
             "expect": {"failure": ["missing-identity"]}}
        ]
    }))
    .unwrap();
    let results = conformance::run(&mut Native, &[("inline.json".into(), file)]);
    assert_eq!(conformance::summary(&results), "0 passed, 2 failed");
    let first = &results[0].mismatches;
    assert!(first.iter().any(|m| m.starts_with("outcome:")), "{first:?}");
    assert!(first.iter().any(|m| m.starts_with("reasons:")), "{first:?}");
}

#[test]
fn a_misspelt_expectation_is_refused() {
    let file = serde_json::from_value::<VectorFile>(serde_json::json!({
        "description": "typo", "policy": {}, "cases": [
            {"description": "x", "event": {}, "expect": {"outcomes": "revoke"}}]
    }));
    assert!(file.is_err());
}

#[test]
fn junit_report_names_every_case() {
    let results = conformance::run(&mut Native, &files());
    let xml = conformance::junit_report(&results);
    assert_eq!(xml.matches("<testcase ").count(), results.len());
    assert!(!xml.contains("<failure"), "{xml}");
}

/// `srs_set_policy` (SPEC §6) answers the policy summary a host reads to know
/// what the policy will ask of it: the same bytes natively and in wasmtime,
/// for every vector's policy, and exactly these for two policies.
#[test]
fn set_policy_answers_the_policy_summary_natively_and_in_wasmtime() {
    let plugin = Plugin::embedded(Limits::default()).unwrap();
    let mut worker = Worker::new(&plugin);
    let native = |policy: &[u8]| match policy_core::Engine::from_json(policy) {
        Ok(engine) => engine.accepted().to_json(),
        Err(failure) => failure.to_json(),
    };
    let mut accepted = 0;
    for (path, file) in files() {
        let policy = file.policy.to_string();
        let wasm = worker.set_policy(policy.as_bytes()).unwrap();
        assert_eq!(native(policy.as_bytes()), wasm, "{}", path.display());
        accepted += usize::from(wasm.contains(r#""policy":{"providers":"#));
    }
    assert!(accepted >= 15, "only {accepted} vector policies accepted");
    for (policy, expected) in [
        (
            r#"{"uem":"epmm","deployment":"access","providers":["google_workspace","office365"],"mode":"report_only"}"#,
            r#"{"type":"success","policy":{"providers":["google_workspace","office365"],"mode":"report_only","grace_seconds":0},"warnings":[]}"#,
        ),
        (
            r#"{"uem":"neurons_mdm","deployment":"access_standalone_sentry","providers":["office365"]}"#,
            r#"{"type":"success","policy":{"providers":["office365"],"mode":"enforce","grace_seconds":0},"warnings":[]}"#,
        ),
    ] {
        assert_eq!(native(policy.as_bytes()), expected);
        assert_eq!(worker.set_policy(policy.as_bytes()).unwrap(), expected);
    }
}
