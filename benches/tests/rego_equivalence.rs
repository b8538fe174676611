//! The Rego peer (`rego/srs.rego` in regorus) against policy-core on every
//! conformance vector whose native answer is a success: the same event id,
//! outcome, enforced flag, access, revocations (in order), the grace period's
//! `scheduled` and reasons (rule ids in order, each with what it matched).
//! Failure answers are not compared: the peer does not replicate input
//! validation (nor a `due` outside years 0000..9999). Warnings are not part
//! of the decision and are not compared either.

use std::collections::BTreeSet;
use std::path::PathBuf;

use srs_bench::{RegoPeer, native_decision_json, rego_decision_json};

/// Success cases the peer is not expected to express, as (vector file name,
/// case description, why). Each entry must name a success case that exists,
/// so a stale entry fails the test.
const EXCLUDED: &[(&str, &str, &str)] = &[];

#[test]
fn the_rego_peer_decides_every_success_vector_like_policy_core() -> anyhow::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    let files = host_runner::conformance::load(&[dir]).map_err(anyhow::Error::msg)?;
    let mut peer = RegoPeer::new()?;
    let (mut cases, mut successes, mut compared) = (0_usize, 0_usize, 0_usize);
    let mut graces = 0_usize;
    let mut excluded_seen = BTreeSet::new();
    let mut mismatches = Vec::new();
    for (path, file) in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        for case in &file.cases {
            cases += 1;
            let request = host_runner::conformance::request(&file.policy, &case.event);
            let Some(native) = native_decision_json(&policy_core::evaluate_json_str(&request))?
            else {
                continue;
            };
            successes += 1;
            let excluded = EXCLUDED
                .iter()
                .any(|(f, c, _)| *f == name && *c == case.description);
            if excluded {
                excluded_seen.insert((name.to_owned(), case.description.clone()));
                continue;
            }
            let rego = peer
                .decide_request(&request)
                .and_then(|d| rego_decision_json(&d));
            match rego {
                Ok(rego) if rego == native => {
                    compared += 1;
                    graces += usize::from(native.get("outcome") == Some(&"grace".into()));
                }
                Ok(rego) => mismatches.push(format!(
                    "{name}: {}\n  native: {native}\n  rego:   {rego}",
                    case.description
                )),
                Err(e) => mismatches.push(format!("{name}: {}: rego: {e:#}", case.description)),
            }
        }
    }
    println!(
        "{} vector files, {cases} cases, {successes} successes: {compared} compared equal ({graces} of them grace), {} excluded, {} mismatched",
        files.len(),
        excluded_seen.len(),
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(
        excluded_seen.len(),
        EXCLUDED.len(),
        "an EXCLUDED entry names no success case"
    );
    assert_eq!(compared + excluded_seen.len(), successes);
    // The vectors hold many success cases; comparing a handful means loading broke.
    assert!(compared >= 50, "only {compared} cases compared");
    // The grace period is decided by the peer too, not only passed over.
    assert!(graces >= 30, "only {graces} grace cases compared");
    Ok(())
}
