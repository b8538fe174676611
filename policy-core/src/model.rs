//! The inputs: a tenant's [`Policy`] (SPEC §2) and a device [`Event`] (SPEC §3).
//!
//! These types serialize with serde's derive. They deserialize through the same
//! path-collecting parser as [`crate::evaluate_json_str`], so unknown fields are
//! rejected and there is exactly one reading of the JSON.

use std::collections::BTreeMap;

use serde::Serialize;

/// Which UEM reports the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum Uem {
    Epmm,
    NeuronsMdm,
}

/// How Ivanti Access is deployed; standalone Sentry cannot revoke sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum Deployment {
    Access,
    AccessStandaloneSentry,
}

/// A cloud service provider whose sessions can be revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Office365,
    GoogleWorkspace,
}

/// Whether decisions are enforced or only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    ReportOnly,
}

/// A device state as the UEM reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Active,
    Quarantined,
    Wiped,
    Retired,
    RetirePending,
    WipePending,
    Blocked,
    Lost,
    Expired,
}

/// The class of a compliance action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum ActionClass {
    Blocking,
    NonBlocking,
}

/// What to do with an action name that is neither built in nor in `policy.actions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "snake_case")]
pub enum UnknownAction {
    #[default]
    Error,
    Blocking,
    NonBlocking,
}

/// One tenant's policy (SPEC §2).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Policy {
    pub uem: Uem,
    pub deployment: Deployment,
    /// One or two providers, no duplicates; revocations follow this order.
    pub providers: Vec<Provider>,
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub mode: Mode,
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub revoke_on_states: Vec<DeviceState>,
    /// Custom action names and their class.
    #[cfg_attr(feature = "ts", tsify(optional, type = "Record<string, ActionClass>"))]
    pub actions: BTreeMap<String, ActionClass>,
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub unknown_action: UnknownAction,
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub compliance_policies: Vec<CompliancePolicy>,
    /// Users who are never revoked, matched case-insensitively on upn or email.
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub exempt_users: Vec<String>,
}

impl Policy {
    /// The states that revoke when a policy leaves `revoke_on_states` out.
    pub const DEFAULT_REVOKE_ON_STATES: [DeviceState; 3] = [
        DeviceState::Quarantined,
        DeviceState::Wiped,
        DeviceState::Retired,
    ];

    /// A policy with the SPEC's defaults for every optional field.
    pub fn new(uem: Uem, deployment: Deployment, providers: Vec<Provider>) -> Self {
        Self {
            uem,
            deployment,
            providers,
            mode: Mode::Enforce,
            revoke_on_states: Self::DEFAULT_REVOKE_ON_STATES.to_vec(),
            actions: BTreeMap::new(),
            unknown_action: UnknownAction::Error,
            compliance_policies: Vec::new(),
            exempt_users: Vec::new(),
        }
    }
}

/// A compliance policy as configured in the UEM, with its actions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct CompliancePolicy {
    pub id: String,
    pub actions: Vec<Action>,
}

/// A compliance action: a name, or an EPMM action-tier object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(untagged)]
pub enum Action {
    Name(String),
    Tier(Tier),
}

/// EPMM's action tier: which of alert, block, quarantine and wipe are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Tier {
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub alert: bool,
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub block: bool,
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub quarantine: bool,
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub wipe: bool,
}

/// One device's state as the UEM reports it (SPEC §3).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Event {
    /// Unique; the idempotency key downstream.
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub device: Device,
    pub user: User,
    pub compliance: Compliance,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Device {
    pub id: String,
    pub state: DeviceState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// The user's identities; at least one must be present.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct User {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Compliance {
    pub compliant: bool,
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub violations: Vec<Violation>,
}

/// A violated compliance policy; without `actions`, they are looked up in the policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct Violation {
    pub policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<Action>>,
}
