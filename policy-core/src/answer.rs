//! The answer (SPEC §5): a tagged success with a decision, or a failure listing
//! every error found.

use serde::{Deserialize, Serialize};

use crate::model::{Action, DeviceState, Provider};

/// What the module says about one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Answer {
    /// The input was evaluated. `decision` is absent only when a policy was
    /// validated and kept without an event (`srs_set_policy`).
    Success {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<Decision>,
        warnings: Vec<Diagnostic>,
    },
    /// The input could not be evaluated; every error found, in input order.
    Failure { errors: Vec<Diagnostic> },
}

impl Answer {
    /// The answer to a policy that was validated and kept.
    pub fn accepted(warnings: Vec<Diagnostic>) -> Self {
        Self::Success {
            decision: None,
            warnings,
        }
    }

    /// The answer as compact JSON, the bytes every implementation must agree on.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with non-string keys,
        // no floats, no custom serializers.
        serde_json::to_string(self).unwrap_or_else(|_| {
            String::from(
                r#"{"type":"failure","errors":[{"code":"invalid-value","path":"","message":"answer could not be serialized"}]}"#,
            )
        })
    }
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
    /// Each rule that fired, once, in rule order.
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Revoke,
    NoAction,
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Allow,
    Block,
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

/// The rule ids of SPEC §4, in the order reasons are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    DeviceState,
    BlockingAction,
    ExemptUser,
    UnsupportedDeployment,
    Compliant,
    NonBlockingOnly,
}

impl Rule {
    /// The stable rule id.
    pub fn id(self) -> &'static str {
        match self {
            Self::DeviceState => "device-state",
            Self::BlockingAction => "blocking-action",
            Self::ExemptUser => "exempt-user",
            Self::UnsupportedDeployment => "unsupported-deployment",
            Self::Compliant => "compliant",
            Self::NonBlockingOnly => "non-blocking-only",
        }
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
    Deployment {
        deployment: crate::model::Deployment,
    },
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

/// The stable error codes of SPEC §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    MalformedJson,
    MissingField,
    UnknownField,
    InvalidValue,
    UnknownAction,
    UnknownCompliancePolicy,
    MissingIdentity,
    TooLarge,
}

impl ErrorCode {
    /// The stable code string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed-json",
            Self::MissingField => "missing-field",
            Self::UnknownField => "unknown-field",
            Self::InvalidValue => "invalid-value",
            Self::UnknownAction => "unknown-action",
            Self::UnknownCompliancePolicy => "unknown-compliance-policy",
            Self::MissingIdentity => "missing-identity",
            Self::TooLarge => "too-large",
        }
    }
}
