//! Shared benchmark inputs and the Rego peer.
//!
//! Every benchmark (criterion here, the Node benchmark elsewhere) decides the
//! same fixed mix: one policy (`data/policy.json`) and 100 events
//! (`data/events.jsonl`, one JSON event per line), all valid, mostly
//! realistic: compliant devices, revocations by blocking action (looked up,
//! inline, tier objects, custom names), by device state, non-blocking only,
//! exempt users, several violations. `data/generate.py` wrote them.
//!
//! The peer is SPEC §4 written in Rego (`rego/srs.rego`), evaluated by
//! regorus: [`RegoPeer`].

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use serde_json::Value as Json;

/// The policy every benchmark decides under.
pub const POLICY_JSON: &str = include_str!("../data/policy.json");

/// The event mix, one JSON event per line.
pub const EVENTS_JSONL: &str = include_str!("../data/events.jsonl");

/// SPEC §4 as Rego; the decision is `data.srs.decision`.
pub const REGO: &str = include_str!("../rego/srs.rego");

/// The rule the peer evaluates.
pub const DECISION_RULE: &str = "data.srs.decision";

/// The events of the mix, in file order.
pub fn events() -> Vec<&'static str> {
    EVENTS_JSONL
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
}

/// The request envelope `{"policy": …, "event": …}` (SPEC §6) for two JSON texts.
pub fn request(policy: &str, event: &str) -> String {
    format!(r#"{{"policy":{},"event":{}}}"#, policy.trim(), event.trim())
}

/// The envelope of every event of the mix under [`POLICY_JSON`].
pub fn requests() -> Vec<String> {
    events()
        .into_iter()
        .map(|event| request(POLICY_JSON, event))
        .collect()
}

/// SPEC §4 in Rego, prepared once in a regorus engine.
///
/// Two entry points, mirroring the core ABI: [`RegoPeer::decide_request`]
/// takes the request envelope (`srs_evaluate`); [`RegoPeer::decide_event`]
/// takes an event against the policy given to [`RegoPeer::with_policy`],
/// kept as regorus data (`srs_evaluate_event`).
#[derive(Clone)]
pub struct RegoPeer {
    engine: regorus::Engine,
}

impl RegoPeer {
    /// The peer with no kept policy: every input carries its own.
    pub fn new() -> Result<Self> {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("srs.rego".to_owned(), REGO.to_owned())
            .context("rego/srs.rego does not compile")?;
        let mut peer = Self { engine };
        // Prepares the engine (analysis, scheduling) before the first decision.
        peer.warm_up()?;
        Ok(peer)
    }

    /// The peer with `policy` (JSON) kept as `data.srs_policy`.
    pub fn with_policy(policy: &str) -> Result<Self> {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("srs.rego".to_owned(), REGO.to_owned())
            .context("rego/srs.rego does not compile")?;
        let policy = regorus::Value::from_json_str(policy).context("policy is not JSON")?;
        let data = BTreeMap::from([(regorus::Value::from("srs_policy"), policy)]);
        engine.add_data(regorus::Value::from(data))?;
        let mut peer = Self { engine };
        peer.warm_up()?;
        Ok(peer)
    }

    fn warm_up(&mut self) -> Result<()> {
        self.engine.set_input(regorus::Value::new_object());
        // Undefined with this input; only the preparation matters.
        self.engine.eval_rule(DECISION_RULE.to_owned())?;
        Ok(())
    }

    /// The decision for a request envelope `{"policy": …, "event": …}`.
    pub fn decide_request(&mut self, request: &str) -> Result<regorus::Value> {
        let input = regorus::Value::from_json_str(request).context("request is not JSON")?;
        self.decide(input)
    }

    /// The decision for an event under the kept policy.
    pub fn decide_event(&mut self, event: &str) -> Result<regorus::Value> {
        let event = regorus::Value::from_json_str(event).context("event is not JSON")?;
        let input = BTreeMap::from([(regorus::Value::from("event"), event)]);
        self.decide(regorus::Value::from(input))
    }

    /// The decision for an input document already parsed.
    pub fn decide(&mut self, input: regorus::Value) -> Result<regorus::Value> {
        self.engine.set_input(input);
        let decision = self.engine.eval_rule(DECISION_RULE.to_owned())?;
        if decision == regorus::Value::Undefined {
            bail!("{DECISION_RULE} is undefined for this input");
        }
        Ok(decision)
    }
}

/// A decision as JSON, for comparing with policy-core's.
pub fn rego_decision_json(decision: &regorus::Value) -> Result<Json> {
    Ok(serde_json::from_str(&decision.to_json_str()?)?)
}

/// The decision of a policy-core answer without the human messages, in the
/// shape the peer gives; `None` for a failure answer.
pub fn native_decision_json(answer: &str) -> Result<Option<Json>> {
    let mut answer: Json = serde_json::from_str(answer).context("answer is not JSON")?;
    if answer.get("type").and_then(Json::as_str) != Some("success") {
        return Ok(None);
    }
    let Some(mut decision) = answer.get_mut("decision").map(Json::take) else {
        bail!("a success answer without a decision");
    };
    if let Some(reasons) = decision.get_mut("reasons").and_then(Json::as_array_mut) {
        for reason in reasons {
            if let Some(reason) = reason.as_object_mut() {
                reason.remove("message");
            }
        }
    }
    Ok(Some(decision))
}

/// The first command-line argument as a count, else `default`.
pub fn count_arg(default: usize) -> Result<usize> {
    Ok(std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("the argument is a count")?
        .unwrap_or(default))
}

/// The `srs` binary to measure: `$SRS_BIN`, else the release build, which
/// must exist.
pub fn srs_bin() -> Result<std::path::PathBuf> {
    let srs = std::env::var_os("SRS_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target/release/srs"));
    if !srs.exists() {
        bail!(
            "{} is missing: cargo build --release -p host-runner",
            srs.display()
        );
    }
    Ok(srs)
}

/// The median of some timings (NaN for none).
pub fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds.get(seconds.len() / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_100_valid_events_with_every_outcome() {
        let events = events();
        assert_eq!(events.len(), 100);
        let mut outcomes = BTreeMap::<String, usize>::new();
        let mut rules = BTreeMap::<String, usize>::new();
        for request in requests() {
            let answer = policy_core::evaluate_json_str(&request);
            let decision = native_decision_json(&answer).unwrap().unwrap_or_else(|| {
                panic!("not a success: {answer}");
            });
            *outcomes
                .entry(decision["outcome"].as_str().unwrap().to_owned())
                .or_default() += 1;
            for reason in decision["reasons"].as_array().unwrap() {
                *rules
                    .entry(reason["rule"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        assert!(outcomes["revoke"] >= 40, "{outcomes:?}");
        assert!(outcomes["no_action"] >= 40, "{outcomes:?}");
        for rule in [
            "device-state",
            "blocking-action",
            "exempt-user",
            "compliant",
            "non-blocking-only",
        ] {
            assert!(rules.get(rule).is_some_and(|&n| n > 0), "{rule}: {rules:?}");
        }
    }

    #[test]
    fn both_peer_entry_points_give_the_native_decision_on_the_mix() {
        let mut envelope = RegoPeer::new().unwrap();
        let mut kept = RegoPeer::with_policy(POLICY_JSON).unwrap();
        for event in events() {
            let request = request(POLICY_JSON, event);
            let native = native_decision_json(&policy_core::evaluate_json_str(&request))
                .unwrap()
                .unwrap();
            let a = rego_decision_json(&envelope.decide_request(&request).unwrap()).unwrap();
            let b = rego_decision_json(&kept.decide_event(event).unwrap()).unwrap();
            assert_eq!(a, native, "{event}");
            assert_eq!(b, native, "{event}");
        }
    }
}
