//! The session-revocation decision of SRS policy: (policy, event) → answer.
//!
//! A pure function of its input: no I/O, no clock, no randomness, and no input
//! makes it panic. The same input gives the same bytes out on every platform,
//! natively, in the core wasm module and in the JavaScript package.
//!
//! ```
//! let request = r#"{
//!   "policy": {"uem": "epmm", "deployment": "access", "providers": ["office365"]},
//!   "event": {"id": "evt-1", "device": {"id": "dev-9", "state": "active"},
//!             "user": {"upn": "alice@example.com"},
//!             "compliance": {"compliant": false,
//!                            "violations": [{"policy": "jailbreak", "actions": ["Block"]}]}}
//! }"#;
//! let answer = policy_core::evaluate_json_str(request);
//! assert!(answer.starts_with(r#"{"type":"success","decision":{"event_id":"evt-1","outcome":"revoke""#));
//! ```

#![forbid(unsafe_code)]

mod actions;
mod answer;
mod checks;
mod engine;
mod model;
mod parse;
mod time;

use serde::de::{Deserialize, Deserializer};

pub use actions::normalize as normalize_action_name;
pub use answer::{
    Access, Answer, Decision, Diagnostic, ErrorCode, Matched, Outcome, Reason, Revocation, Rule,
};
pub use engine::{Engine, evaluate};
pub use model::{
    Action, ActionClass, Compliance, CompliancePolicy, Deployment, Device, DeviceState, Event,
    Mode, Policy, Provider, Tier, Uem, UnknownAction, User, Violation,
};
pub use parse::{MAX_DIAGNOSTICS, MAX_INPUT_BYTES, MAX_ITEMS, MAX_STRING};

use parse::{Path, Sink};

/// Evaluates a request envelope `{"policy": …, "event": …}` (SPEC §6) and
/// returns the answer as JSON. Every bad input is a failure answer.
pub fn evaluate_json_str(request: &str) -> String {
    evaluate_request(request.as_bytes()).to_json()
}

/// [`evaluate_json_str`] over bytes, which need not be UTF-8.
pub fn evaluate_json_bytes(request: &[u8]) -> String {
    evaluate_request(request).to_json()
}

/// Evaluates a request envelope given as JSON bytes.
pub fn evaluate_request(request: &[u8]) -> Answer {
    let mut sink = Sink::default();
    let Some(value) = parse::json(request, &Path::root(""), &mut sink) else {
        return Answer::Failure {
            errors: sink.errors,
        };
    };
    let (policy, event) = parse::request(&value, &mut sink);
    let engine = policy.and_then(|policy| compile(policy, &mut sink));
    let parts = event
        .map(|event| parse::event(event, &mut sink))
        .unwrap_or_default();
    match engine {
        Some(engine) => engine.evaluate_parts(parts, sink),
        None => Answer::Failure {
            errors: sink.errors,
        },
    }
}

/// Parses and validates a policy; `None` (with errors in `sink`) if it is invalid.
fn compile(policy: &serde_json::Value, sink: &mut Sink) -> Option<Engine> {
    let mut own = Sink::default();
    let parts = parse::policy(policy, &mut own);
    match Engine::from_parts(parts, own) {
        Ok(engine) => Some(engine),
        Err(errors) => {
            sink.append_errors(errors);
            None
        }
    }
}

impl Engine {
    /// Validates a policy given as JSON (paths start at `policy`).
    pub fn from_json(policy: &[u8]) -> Result<Self, Answer> {
        let mut sink = Sink::default();
        let engine = parse::json(policy, &Path::root("policy"), &mut sink)
            .and_then(|value| compile(&value, &mut sink));
        engine.ok_or(Answer::Failure {
            errors: sink.errors,
        })
    }

    /// The answer `srs_set_policy` gives for a policy that was kept.
    pub fn accepted(&self) -> Answer {
        Answer::accepted(self.warnings().to_vec())
    }

    /// Evaluates an event given as JSON (paths start at `event`).
    pub fn evaluate_json(&self, event: &[u8]) -> Answer {
        let mut sink = Sink::default();
        let parts = parse::json(event, &Path::root("event"), &mut sink)
            .map(|value| parse::event(&value, &mut sink))
            .unwrap_or_default();
        self.evaluate_parts(parts, sink)
    }
}

/// Reads a policy with the same parser as the JSON entry points.
impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let mut sink = Sink::default();
        let policy = parse::policy(&value, &mut sink).complete().ok();
        first_error(policy, sink)
    }
}

/// Reads an event with the same parser as the JSON entry points.
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let mut sink = Sink::default();
        let event = parse::event(&value, &mut sink).complete().ok();
        first_error(event, sink)
    }
}

fn first_error<T, E: serde::de::Error>(parsed: Option<T>, sink: Sink) -> Result<T, E> {
    match (parsed, sink.errors.into_iter().next()) {
        (Some(value), None) => Ok(value),
        (_, Some(error)) => Err(E::custom(error)),
        (None, None) => Err(E::custom("invalid input")),
    }
}
