//! The answer (SPEC §5): a tagged success with a decision, or a failure listing
//! every error found.

use serde::{Deserialize, Serialize};

use crate::model::{Action, Deployment, DeviceState, Mode, Provider};
use crate::names::wire_enum;

/// What the module says about one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Answer {
    /// The input was evaluated. A policy validated and kept without an event
    /// (`srs_set_policy`) has no `decision` but its `policy` summary; an
    /// evaluation has a `decision` and no `policy`.
    Success {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<Decision>,
        /// The kept policy's summary; boxed, so that `Answer` stays small
        /// enough to return in a `Result`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<Box<PolicySummary>>,
        warnings: Vec<Diagnostic>,
    },
    /// The input could not be evaluated; every error found, in input order.
    Failure { errors: Vec<Diagnostic> },
}

impl Answer {
    /// The answer as compact JSON, the bytes every implementation must agree
    /// on: what `serde_json::to_string` makes of it, written directly.
    pub fn to_json(&self) -> String {
        crate::write::answer(self)
    }
}

/// What a kept policy will ask of its host (SPEC §6, `srs_set_policy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct PolicySummary {
    /// The providers revocations go to, in the policy's order.
    pub providers: Vec<Provider>,
    pub mode: Mode,
    /// How long a blocking action waits before revoking (SPEC §4 step 3a).
    pub grace_seconds: u32,
}

/// The decision about one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Decision {
    pub event_id: String,
    pub outcome: Outcome,
    /// False in `report_only` mode: the decision is the same, nothing is executed.
    pub enforced: bool,
    /// The sign-in gate's verdict.
    pub access: Access,
    /// One per configured provider, in the policy's order, when the outcome is `revoke`.
    pub revocations: Vec<Revocation>,
    /// With outcome `grace` only: what is revoked at `due` unless a later
    /// event for the device says otherwise. Boxed, so that `Answer` stays
    /// small enough to return in a `Result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub scheduled: Option<Box<Scheduled>>,
    /// Each rule that fired, once, in rule order.
    pub reasons: Vec<Reason>,
}

/// Revocations that fall due at the end of a grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Scheduled {
    /// `event.time` + `grace_seconds`, in UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
    pub due: String,
    /// What the same event would revoke now without a grace period.
    pub revocations: Vec<Revocation>,
}

wire_enum! {
    /// What happens to the user's sessions.
    pub enum Outcome("outcome") {
        Revoke = "revoke",
        /// Revoke at `scheduled.due` unless the device is remediated first.
        Grace = "grace",
        NoAction = "no_action",
        Unsupported = "unsupported",
    }
}

wire_enum! {
    /// The sign-in gate's verdict.
    pub enum Access("access") {
        Allow = "allow",
        Block = "block",
    }
}

/// End this user's sessions at this provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Revocation {
    pub provider: Provider,
    pub subject: String,
}

/// A rule that fired, why, and what it matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Reason {
    pub rule: Rule,
    pub message: String,
    pub matched: Vec<Matched>,
}

wire_enum! {
    /// The rule ids of SPEC §4, in the order reasons are listed.
    #[derive(PartialOrd, Ord)]
    pub enum Rule("rule") {
        DeviceState = "device-state",
        BlockingAction = "blocking-action",
        GracePeriod = "grace-period",
        ExemptUser = "exempt-user",
        UnsupportedDeployment = "unsupported-deployment",
        Compliant = "compliant",
        NonBlockingOnly = "non-blocking-only",
    }
}

/// What a rule matched in the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(untagged)]
pub enum Matched {
    /// A violated compliance policy and one of its actions, as written.
    Action { policy: String, action: Action },
    /// The device state that is in `revoke_on_states`.
    State { state: DeviceState },
    /// The event identity that is in `exempt_users`.
    User { user: String },
    /// The deployment that cannot revoke.
    Deployment { deployment: Deployment },
    /// The grace period and when it ends.
    Grace { grace_seconds: u32, due: String },
}

/// An error or warning: a stable code, a path into the input, a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[error("{path}: {message}")]
pub struct Diagnostic {
    pub code: ErrorCode,
    /// Where in the input, e.g. `event.compliance.violations[0].actions[1]`;
    /// empty for the request as a whole.
    pub path: String,
    pub message: String,
}

wire_enum! {
    /// The stable error codes of SPEC §5.
    pub enum ErrorCode("error code") {
        MalformedJson = "malformed-json",
        MissingField = "missing-field",
        UnknownField = "unknown-field",
        InvalidValue = "invalid-value",
        UnknownAction = "unknown-action",
        UnknownCompliancePolicy = "unknown-compliance-policy",
        MissingIdentity = "missing-identity",
        TooLarge = "too-large",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::assert_wire_names;

    /// Clippy's `result_large_err` threshold (128 bytes): `Engine::from_json`
    /// and the hosts return `Result<_, Answer>`.
    #[test]
    fn answer_is_small_enough_for_a_result() {
        assert!(
            std::mem::size_of::<Answer>() <= 128,
            "{} bytes",
            std::mem::size_of::<Answer>()
        );
    }

    #[test]
    fn outcome_names() {
        assert_wire_names(&Outcome::ALL, Outcome::as_str);
    }

    #[test]
    fn access_names() {
        assert_wire_names(&Access::ALL, Access::as_str);
    }

    #[test]
    fn rule_names() {
        assert_wire_names(&Rule::ALL, Rule::as_str);
    }

    #[test]
    fn error_code_names() {
        assert_wire_names(&ErrorCode::ALL, ErrorCode::as_str);
    }
}
