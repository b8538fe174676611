//! The inputs: a tenant's [`Policy`] (SPEC §2) and a device [`Event`] (SPEC §3).
//!
//! These types serialize with serde's derive. [`Policy`] and [`Event`]
//! deserialize through the same schema walk as [`crate::evaluate_json_str`],
//! so unknown fields are rejected and the same checks run; only the first
//! error is returned. The 1 MiB input limit and the refusal of duplicate keys
//! belong to the JSON entry points, which read the text themselves.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::names::wire_enum;

wire_enum! {
    /// Which UEM reports the events.
    pub enum Uem("UEM") {
        Epmm = "epmm",
        NeuronsMdm = "neurons_mdm",
    }
}

wire_enum! {
    /// How Ivanti Access is deployed; standalone Sentry cannot revoke sessions.
    pub enum Deployment("deployment") {
        Access = "access",
        AccessStandaloneSentry = "access_standalone_sentry",
    }
}

wire_enum! {
    /// A cloud service provider whose sessions can be revoked.
    #[derive(PartialOrd, Ord)]
    pub enum Provider("provider") {
        Office365 = "office365",
        GoogleWorkspace = "google_workspace",
    }
}

wire_enum! {
    /// Whether decisions are enforced or only reported.
    #[derive(Default)]
    pub enum Mode("mode") {
        #[default]
        Enforce = "enforce",
        ReportOnly = "report_only",
    }
}

wire_enum! {
    /// A device state as the UEM reports it.
    pub enum DeviceState("device state") {
        Active = "active",
        Quarantined = "quarantined",
        Wiped = "wiped",
        Retired = "retired",
        RetirePending = "retire_pending",
        WipePending = "wipe_pending",
        Blocked = "blocked",
        Lost = "lost",
        Expired = "expired",
    }
}

wire_enum! {
    /// The class of a compliance action.
    pub enum ActionClass("action class") {
        Blocking = "blocking",
        NonBlocking = "non_blocking",
    }
}

impl ActionClass {
    /// The class as messages write it in prose: `blocking`, `non-blocking`.
    pub(crate) const fn prose(self) -> &'static str {
        match self {
            Self::Blocking => "blocking",
            Self::NonBlocking => "non-blocking",
        }
    }
}

wire_enum! {
    /// What to do with an action name that is neither built in nor in `policy.actions`.
    #[derive(Default)]
    pub enum UnknownAction("unknown_action setting") {
        #[default]
        Error = "error",
        Blocking = "blocking",
        NonBlocking = "non_blocking",
    }
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
    /// Seconds a `blocking-action` trigger waits before revoking (SPEC §4
    /// step 3a), 0 to [`Policy::MAX_GRACE_SECONDS`]; 0 revokes at once.
    #[cfg_attr(feature = "ts", tsify(optional))]
    pub grace_seconds: u32,
}

impl Policy {
    /// The states that revoke when a policy leaves `revoke_on_states` out.
    pub const DEFAULT_REVOKE_ON_STATES: [DeviceState; 3] = [
        DeviceState::Quarantined,
        DeviceState::Wiped,
        DeviceState::Retired,
    ];

    /// The longest grace period: 30 days.
    pub const MAX_GRACE_SECONDS: u32 = 2_592_000;

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
            grace_seconds: 0,
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

/// An event as the decision reads it, borrowed: from an [`Event`], or from
/// the text of one by the common-case reader, which so allocates nothing
/// for its strings but the violations'.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventRef<'e> {
    pub id: &'e str,
    pub time: Option<&'e str>,
    pub device_id: &'e str,
    pub state: DeviceState,
    pub upn: Option<&'e str>,
    pub email: Option<&'e str>,
    pub compliant: bool,
    pub violations: Violations<'e>,
}

/// An event's violations as the decision reads them: an [`Event`]'s, or
/// the common-case reader's, whose policy ids are borrowed from the text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Violations<'e> {
    Owned(&'e [Violation]),
    Borrowed(&'e [ViolationRef<'e>]),
}

/// A violation whose policy id is borrowed from the text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ViolationRef<'t> {
    pub policy: &'t str,
    pub actions: Option<Vec<Action>>,
}

impl<'e> Violations<'e> {
    pub fn len(self) -> usize {
        match self {
            Self::Owned(list) => list.len(),
            Self::Borrowed(list) => list.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Each violation's policy id and its inline actions, in order.
    pub fn iter(self) -> impl Iterator<Item = (&'e str, Option<&'e [Action]>)> {
        (0..self.len()).filter_map(move |i| match self {
            Self::Owned(list) => list
                .get(i)
                .map(|v| (v.policy.as_str(), v.actions.as_deref())),
            Self::Borrowed(list) => list.get(i).map(|v| (v.policy, v.actions.as_deref())),
        })
    }
}

impl<'e> From<&'e Event> for EventRef<'e> {
    fn from(event: &'e Event) -> Self {
        Self {
            id: &event.id,
            time: event.time.as_deref(),
            device_id: &event.device.id,
            state: event.device.state,
            upn: event.user.upn.as_deref(),
            email: event.user.email.as_deref(),
            compliant: event.compliance.compliant,
            violations: Violations::Owned(&event.compliance.violations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::assert_wire_names;

    #[test]
    fn uem_names() {
        assert_wire_names(&Uem::ALL, Uem::as_str);
    }

    #[test]
    fn deployment_names() {
        assert_wire_names(&Deployment::ALL, Deployment::as_str);
    }

    #[test]
    fn provider_names() {
        assert_wire_names(&Provider::ALL, Provider::as_str);
        let unknown = "okta".parse::<Provider>().unwrap_err();
        assert_eq!(unknown.to_string(), "unknown provider `okta`");
    }

    #[test]
    fn mode_names() {
        assert_wire_names(&Mode::ALL, Mode::as_str);
    }

    #[test]
    fn device_state_names() {
        assert_wire_names(&DeviceState::ALL, DeviceState::as_str);
    }

    #[test]
    fn action_class_names() {
        assert_wire_names(&ActionClass::ALL, ActionClass::as_str);
    }

    #[test]
    fn unknown_action_names() {
        assert_wire_names(&UnknownAction::ALL, UnknownAction::as_str);
    }
}
