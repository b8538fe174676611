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

/// `scheduled` is compared whole (SPEC §9): a wrong `due`, a wrong or missing
/// scheduled revocation, a `scheduled` expected where there is none, and one
/// present where `null` (absent) is expected each fail the case; the right one
/// passes.
#[test]
fn a_wrong_scheduled_fails() {
    let grace_event = serde_json::json!({
        "id": "e1", "time": "2026-11-27T10:15:00Z",
        "device": {"id": "d1", "state": "active"},
        "user": {"upn": "a@example.com", "email": "b@example.com"},
        "compliance": {"compliant": false,
                       "violations": [{"policy": "jailbreak", "actions": ["Block"]}]}
    });
    let revoke_event = serde_json::json!({
        "id": "e2", "device": {"id": "d2", "state": "wiped"},
        "user": {"upn": "a@example.com"}, "compliance": {"compliant": true}
    });
    let revocations = serde_json::json!([
        {"provider": "office365", "subject": "a@example.com"},
        {"provider": "google_workspace", "subject": "b@example.com"}
    ]);
    let right = serde_json::json!({"due": "2026-11-27T14:15:00Z", "revocations": revocations});
    let case = |description: &str, event: &serde_json::Value, scheduled: serde_json::Value| {
        serde_json::json!({"description": description, "event": event,
                           "expect": {"scheduled": scheduled}})
    };
    let file: VectorFile = serde_json::from_value(serde_json::json!({
        "description": "scheduled compared whole",
        "policy": {"uem": "epmm", "deployment": "access",
                   "providers": ["office365", "google_workspace"], "grace_seconds": 14400},
        "cases": [
            case("right", &grace_event, right.clone()),
            case("due off by a second", &grace_event,
                 serde_json::json!({"due": "2026-11-27T14:15:01Z", "revocations": revocations})),
            case("a scheduled revocation missing", &grace_event,
                 serde_json::json!({"due": "2026-11-27T14:15:00Z",
                                    "revocations": [{"provider": "office365", "subject": "a@example.com"}]})),
            case("subjects swapped", &grace_event,
                 serde_json::json!({"due": "2026-11-27T14:15:00Z", "revocations": [
                     {"provider": "office365", "subject": "b@example.com"},
                     {"provider": "google_workspace", "subject": "a@example.com"}]})),
            case("an extra field", &grace_event,
                 serde_json::json!({"due": "2026-11-27T14:15:00Z", "revocations": revocations, "x": 1})),
            case("expected absent, but there is one", &grace_event, serde_json::Value::Null),
            case("expected, but revoke has none", &revoke_event, right),
            case("absent as expected", &revoke_event, serde_json::Value::Null),
        ]
    }))
    .unwrap();
    let results = conformance::run(&mut Native, &[("inline.json".into(), file)]);
    let passed: Vec<&str> = results
        .iter()
        .filter(|r| r.passed())
        .map(|r| r.case.as_str())
        .collect();
    assert_eq!(passed, ["right", "absent as expected"]);
    for r in results.iter().filter(|r| !r.passed()) {
        assert!(
            r.mismatches.iter().all(|m| m.starts_with("scheduled:")),
            "{}: {:?}",
            r.case,
            r.mismatches
        );
    }
}

/// Warning codes and paths in an expectation are compared (extensions to SPEC §9).
#[test]
fn a_wrong_warning_path_fails() {
    let file: VectorFile = serde_json::from_value(serde_json::json!({
        "description": "warning paths",
        "policy": {"uem": "epmm", "deployment": "access", "providers": ["office365"],
                   "grace_seconds": 60},
        "cases": [
            {"description": "no time: missing-field at event.time",
             "event": {"id": "e1", "device": {"id": "d1", "state": "active"},
                       "user": {"upn": "a@example.com"},
                       "compliance": {"compliant": false,
                                      "violations": [{"policy": "p", "actions": ["Block"]}]}},
             "expect": {"outcome": "revoke", "warnings": ["missing-field"],
                        "warning_paths": ["event.time"]}},
            {"description": "the same with a wrong path",
             "event": {"id": "e1", "device": {"id": "d1", "state": "active"},
                       "user": {"upn": "a@example.com"},
                       "compliance": {"compliant": false,
                                      "violations": [{"policy": "p", "actions": ["Block"]}]}},
             "expect": {"warning_paths": ["event.id"]}}
        ]
    }))
    .unwrap();
    let results = conformance::run(&mut Native, &[("inline.json".into(), file)]);
    assert_eq!(conformance::summary(&results), "1 passed, 1 failed");
    let second = &results[1].mismatches;
    assert!(
        second.iter().any(|m| m.starts_with("warning paths:")),
        "{second:?}"
    );
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
