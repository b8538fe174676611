//! The answer to a kept policy (SPEC §6, `srs_set_policy`): success with the
//! policy's summary and no decision; evaluations never carry the summary.

#![expect(clippy::unwrap_used, reason = "a test stops at its first failure")]

use policy_core::{Answer, Engine, Mode, PolicySummary, Provider};

/// The answer built then written, which `Engine::keep_json` (the core
/// module's `srs_set_policy`) writes without building it.
fn accepted(policy: &str) -> String {
    let built = Engine::from_json(policy.as_bytes())
        .unwrap()
        .accepted()
        .to_json();
    let (kept, written) = Engine::keep_json(policy.as_bytes());
    assert!(kept.is_some());
    assert_eq!(written, built);
    built
}

#[test]
fn a_refused_policy_is_the_same_failure_written_or_built() {
    for policy in [
        "{",
        "[]",
        r#"{"uem":"epmm","deployment":"access","providers":[]}"#,
        r#"{"uem":"epmm","deployment":"access","providers":["office365"],
            "compliance_policies":[{"id":"p","actions":["Say \"no\"\n"]}],"x":1}"#,
    ] {
        let Err(failure) = Engine::from_json(policy.as_bytes()) else {
            panic!("{policy} was kept");
        };
        let (kept, written) = Engine::keep_json(policy.as_bytes());
        assert!(kept.is_none());
        assert_eq!(written, failure.to_json());
        let Answer::Failure { errors } = failure else {
            panic!("{policy}: not a failure");
        };
        assert!(!errors.is_empty());
        assert_eq!(policy_core::failure_json(&errors), written);
    }
}

#[test]
fn the_summary_keeps_the_policy_order_and_mode() {
    let policy = r#"{"uem":"neurons_mdm","deployment":"access",
        "providers":["google_workspace","office365"],"mode":"report_only"}"#;
    assert_eq!(
        accepted(policy),
        r#"{"type":"success","policy":{"providers":["google_workspace","office365"],"mode":"report_only","grace_seconds":0},"warnings":[]}"#
    );
}

#[test]
fn the_summary_of_a_policy_with_defaults() {
    let policy = r#"{"uem":"epmm","deployment":"access","providers":["office365"]}"#;
    assert_eq!(
        accepted(policy),
        r#"{"type":"success","policy":{"providers":["office365"],"mode":"enforce","grace_seconds":0},"warnings":[]}"#
    );
}

#[test]
fn warnings_follow_the_summary() {
    let policy = r#"{"uem":"epmm","deployment":"access","providers":["office365"],
        "unknown_action":"non_blocking","compliance_policies":[{"id":"p","actions":["Nag"]}]}"#;
    assert_eq!(
        accepted(policy),
        r#"{"type":"success","policy":{"providers":["office365"],"mode":"enforce","grace_seconds":0},"warnings":[{"code":"unknown-action","path":"policy.compliance_policies[0].actions[0]","message":"action `Nag` is not known; treated as non-blocking by policy.unknown_action"}]}"#
    );
}

#[test]
fn the_summary_reads_back_and_matches_the_typed_engine() {
    let policy = r#"{"uem":"epmm","deployment":"access",
        "providers":["google_workspace","office365"],"mode":"report_only"}"#;
    let engine = Engine::from_json(policy.as_bytes()).unwrap();
    let summary = PolicySummary {
        providers: vec![Provider::GoogleWorkspace, Provider::Office365],
        mode: Mode::ReportOnly,
        grace_seconds: 0,
    };
    assert_eq!(engine.summary(), summary);
    let typed = Engine::new(serde_json::from_str(policy).unwrap()).unwrap();
    assert_eq!(typed.accepted(), engine.accepted());
    let read: Answer = serde_json::from_str(&engine.accepted().to_json()).unwrap();
    assert_eq!(read, engine.accepted());
}

#[test]
fn evaluations_never_carry_the_summary() {
    let policy = r#"{"uem":"epmm","deployment":"access","providers":["office365"]}"#;
    let event = r#"{"id":"evt-1","device":{"id":"dev-9","state":"wiped"},
        "user":{"upn":"alice@example.com"},"compliance":{"compliant":true}}"#;
    let one_shot =
        policy_core::evaluate_json_str(&format!(r#"{{"policy":{policy},"event":{event}}}"#));
    let kept = Engine::from_json(policy.as_bytes())
        .unwrap()
        .evaluate_json(event.as_bytes())
        .to_json();
    assert_eq!(one_shot, kept);
    assert!(
        one_shot.starts_with(r#"{"type":"success","decision":"#),
        "{one_shot}"
    );
    assert!(!one_shot.contains(r#""policy":"#), "{one_shot}");
}
