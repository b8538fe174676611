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

// Layers, lowest first: a module imports only from its own layer and earlier ones.
// 1. Data: wire names, the inputs (SPEC §2, §3), the output (SPEC §5) as
//    the rules reach it (borrowed) and owned, and its writer.
mod answer;
mod model;
mod names;
mod verdict;
mod write;
// 2. The diagnostics base: Path, Sink, the limits.
mod diag;
// 3. Validation, and the pure helpers it uses (action classes, RFC 3339).
mod actions;
mod case;
mod checks;
mod time;
// 4. The JSON parser (serde_json's values and refusals) and the reader over
//    it, then the schema walk over what it read; and the single-pass reader
//    of an event, which gives the same errors in one read.
mod json;
mod parse;
mod read;
mod schema;
// 5. The rules, the kept policy, the entry points.
mod engine;

pub use answer::{
    Access, Answer, Decision, Diagnostic, ErrorCode, Matched, Outcome, PolicySummary, Reason,
    Revocation, Rule, Scheduled,
};
pub use diag::{MAX_DIAGNOSTICS, MAX_INPUT_BYTES, MAX_ITEMS, MAX_STRING};
#[doc(hidden)]
pub use engine::evaluate_request_via_value;
pub use engine::{Engine, evaluate, evaluate_json_bytes, evaluate_json_str, evaluate_request};
#[doc(hidden)]
pub use json::serde_value;
pub use model::{
    Action, ActionClass, Compliance, CompliancePolicy, Deployment, Device, DeviceState, Event,
    Mode, Policy, Provider, Tier, Uem, UnknownAction, User, Violation,
};
pub use names::UnknownName;
#[doc(hidden)]
pub use parse::value as parse_value;
pub use time::{format_utc, unix_ms};
pub use write::failure as failure_json;
