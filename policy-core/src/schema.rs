//! The schema walk: a JSON value as the request envelope, policy (SPEC §2)
//! and event (SPEC §3), collecting every structural error with its path.
//!
//! One hand-written walk instead of serde's derive: derive stops at the first
//! error, and SPEC §4 asks for all of them. [`Policy`] and [`Event`]
//! deserialize through it too.

use std::collections::BTreeMap;

use serde::de::{Deserialize, Deserializer};
use serde_json::Value;

use crate::checks;
use crate::diag::{MAX_ITEMS, Path, Sink, too_long, too_many};
use crate::json::{Obj, array, boolean, checked, one_of, owned_string, string, wrong_type};
use crate::model::{
    Action, ActionClass, Compliance, CompliancePolicy, Deployment, Device, DeviceState, Event,
    Mode, Policy, Provider, Tier, Uem, UnknownAction, User, Violation,
};

/// The halves of a request envelope `{"policy": …, "event": …}`.
pub fn request<'v>(v: &'v Value, sink: &mut Sink) -> (Option<&'v Value>, Option<&'v Value>) {
    let root = Path::root("");
    let Some(obj) = Obj::new(v, &root, sink) else {
        return (None, None);
    };
    let policy = obj.required("policy", sink, |v, _, _| Some(v));
    let event = obj.required("event", sink, |v, _, _| Some(v));
    obj.finish(&["policy", "event"], sink);
    (policy, event)
}

/// The parts of a policy, each `None` where it was invalid (absent optional
/// fields hold their defaults); checks that need no other part have run.
#[derive(Debug, Default)]
pub struct PolicyParts {
    pub uem: Option<Uem>,
    pub deployment: Option<Deployment>,
    pub providers: Option<Vec<Provider>>,
    pub mode: Option<Mode>,
    pub revoke_on_states: Option<Vec<DeviceState>>,
    pub actions: Option<BTreeMap<String, ActionClass>>,
    pub unknown_action: Option<UnknownAction>,
    pub compliance_policies: Option<Vec<CompliancePolicy>>,
    pub exempt_users: Option<Vec<String>>,
    pub grace_seconds: Option<u32>,
}

impl PolicyParts {
    /// The policy, if every part was valid.
    #[cfg_attr(
        target_pointer_width = "64",
        expect(
            clippy::result_large_err,
            reason = "handed back whole, once per input; half the size on wasm32"
        )
    )]
    pub fn complete(self) -> Result<Policy, Self> {
        match self {
            Self {
                uem: Some(uem),
                deployment: Some(deployment),
                providers: Some(providers),
                mode: Some(mode),
                revoke_on_states: Some(revoke_on_states),
                actions: Some(actions),
                unknown_action: Some(unknown_action),
                compliance_policies: Some(compliance_policies),
                exempt_users: Some(exempt_users),
                grace_seconds: Some(grace_seconds),
            } => Ok(Policy {
                uem,
                deployment,
                providers,
                mode,
                revoke_on_states,
                actions,
                unknown_action,
                compliance_policies,
                exempt_users,
                grace_seconds,
            }),
            parts => Err(parts),
        }
    }
}

/// A policy at path `policy`.
pub fn policy(v: &Value, sink: &mut Sink) -> PolicyParts {
    let path = Path::root("policy");
    let Some(obj) = Obj::new(v, &path, sink) else {
        return PolicyParts::default();
    };
    let parts = PolicyParts {
        uem: obj.required("uem", sink, one_of::<Uem>),
        deployment: obj.required("deployment", sink, one_of::<Deployment>),
        providers: obj.required(
            "providers",
            sink,
            checked(array(one_of::<Provider>), |p: &Vec<_>, path, sink| {
                checks::providers(p, path, sink)
            }),
        ),
        mode: or_default(obj.optional("mode", sink, one_of::<Mode>)),
        revoke_on_states: obj
            .optional(
                "revoke_on_states",
                sink,
                checked(array(one_of::<DeviceState>), |s: &Vec<_>, path, sink| {
                    checks::states(s, path, sink)
                }),
            )
            .map(|s| s.unwrap_or_else(|| Policy::DEFAULT_REVOKE_ON_STATES.to_vec()))
            .ok(),
        actions: or_default(obj.optional("actions", sink, checked(action_map, checks::action_map))),
        unknown_action: or_default(obj.optional("unknown_action", sink, one_of::<UnknownAction>)),
        compliance_policies: or_default(obj.optional(
            "compliance_policies",
            sink,
            checked(array(compliance_policy), |l: &Vec<_>, path, sink| {
                checks::compliance_policies(l, path, sink)
            }),
        )),
        exempt_users: or_default(obj.optional(
            "exempt_users",
            sink,
            checked(array(owned_string), |u: &Vec<_>, path, sink| {
                checks::exempt_users(u, path, sink)
            }),
        )),
        grace_seconds: or_default(obj.optional(
            "grace_seconds",
            sink,
            checked(seconds, |n: &u32, path, sink| {
                checks::grace_seconds(*n, path, sink)
            }),
        )),
    };
    obj.finish(
        &[
            "uem",
            "deployment",
            "providers",
            "mode",
            "revoke_on_states",
            "actions",
            "unknown_action",
            "compliance_policies",
            "exempt_users",
            "grace_seconds",
        ],
        sink,
    );
    parts
}

/// An optional field's value, its default when absent, `None` when invalid.
fn or_default<T: Default>(field: Result<Option<T>, ()>) -> Option<T> {
    field.map(Option::unwrap_or_default).ok()
}

/// A whole number of seconds that fits in a `u32`.
fn seconds(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<u32> {
    let Value::Number(n) = v else {
        wrong_type(v, "a whole number of seconds", path, sink);
        return None;
    };
    let seconds = n.as_u64().and_then(|n| u32::try_from(n).ok());
    if seconds.is_none() {
        checks::out_of_grace_range(n, path, sink);
    }
    seconds
}

fn action_map(
    v: &Value,
    path: &Path<'_>,
    sink: &mut Sink,
) -> Option<BTreeMap<String, ActionClass>> {
    let Value::Object(map) = v else {
        wrong_type(v, "an object of action names", path, sink);
        return None;
    };
    if map.len() > MAX_ITEMS {
        too_many(map.len(), path, sink);
        return None;
    }
    let parsed: Vec<Option<(String, ActionClass)>> = map
        .iter()
        .map(|(name, v)| {
            let path = path.key(name);
            if too_long(name, &path, sink) {
                return None;
            }
            one_of::<ActionClass>(v, &path, sink).map(|c| (name.clone(), c))
        })
        .collect();
    // Inserted one by one, not collected: `BTreeMap`'s `FromIterator` brings
    // a stable sort into the wasm module (~5 KB) for keys already in order.
    let mut out = BTreeMap::new();
    for item in parsed {
        let (name, class) = item?;
        out.insert(name, class);
    }
    Some(out)
}

fn compliance_policy(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<CompliancePolicy> {
    let obj = Obj::new(v, path, sink)?;
    let id = obj.required("id", sink, owned_string);
    let actions = obj.required("actions", sink, array(action));
    obj.finish(&["id", "actions"], sink);
    Some(CompliancePolicy {
        id: id?,
        actions: actions?,
    })
}

fn action(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<Action> {
    match v {
        Value::String(_) => string(v, path, sink).map(|name| Action::Name(name.to_owned())),
        Value::Object(_) => {
            let obj = Obj::new(v, path, sink)?;
            let flag = |name, sink: &mut Sink| obj.optional(name, sink, boolean);
            let alert = flag("alert", sink);
            let block = flag("block", sink);
            let quarantine = flag("quarantine", sink);
            let wipe = flag("wipe", sink);
            obj.finish(&["alert", "block", "quarantine", "wipe"], sink);
            Some(Action::Tier(Tier {
                alert: alert.ok()?.unwrap_or(false),
                block: block.ok()?.unwrap_or(false),
                quarantine: quarantine.ok()?.unwrap_or(false),
                wipe: wipe.ok()?.unwrap_or(false),
            }))
        }
        other => {
            wrong_type(other, "an action name or an action-tier object", path, sink);
            None
        }
    }
}

/// The parts of an event, each `None` where it was invalid; checks that need
/// no policy have already run on the parts that were read.
#[derive(Debug, Default)]
pub struct EventParts {
    pub id: Option<String>,
    pub time: Option<Option<String>>,
    pub device: Option<Device>,
    pub user: Option<User>,
    pub compliance: Option<Compliance>,
}

impl EventParts {
    /// The event, if every part was valid.
    #[cfg_attr(
        target_pointer_width = "64",
        expect(
            clippy::result_large_err,
            reason = "handed back whole, once per input; half the size on wasm32"
        )
    )]
    pub fn complete(self) -> Result<Event, Self> {
        match self {
            Self {
                id: Some(id),
                time: Some(time),
                device: Some(device),
                user: Some(user),
                compliance: Some(compliance),
            } => Ok(Event {
                id,
                time,
                device,
                user,
                compliance,
            }),
            parts => Err(parts),
        }
    }
}

/// An event at path `event`.
pub fn event(v: &Value, sink: &mut Sink) -> EventParts {
    let path = Path::root("event");
    let Some(obj) = Obj::new(v, &path, sink) else {
        return EventParts::default();
    };
    let id = obj.required(
        "id",
        sink,
        checked(owned_string, |id, path, sink| checks::id(id, path, sink)),
    );
    let time = obj.optional(
        "time",
        sink,
        checked(owned_string, |t, path, sink| checks::time(t, path, sink)),
    );
    let device = obj.required("device", sink, checked(device, checks::device));
    let user = obj.required("user", sink, checked(user, checks::user));
    let compliance = obj.required("compliance", sink, checked(compliance, checks::compliance));
    obj.finish(&["id", "time", "device", "user", "compliance"], sink);
    EventParts {
        id,
        time: time.ok(),
        device,
        user,
        compliance,
    }
}

fn device(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<Device> {
    let obj = Obj::new(v, path, sink)?;
    let id = obj.required("id", sink, owned_string);
    let state = obj.required("state", sink, one_of::<DeviceState>);
    let platform = obj.optional("platform", sink, owned_string);
    obj.finish(&["id", "state", "platform"], sink);
    Some(Device {
        id: id?,
        state: state?,
        platform: platform.ok()?,
    })
}

fn user(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<User> {
    let obj = Obj::new(v, path, sink)?;
    let upn = obj.optional("upn", sink, owned_string);
    let email = obj.optional("email", sink, owned_string);
    obj.finish(&["upn", "email"], sink);
    Some(User {
        upn: upn.ok()?,
        email: email.ok()?,
    })
}

fn compliance(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<Compliance> {
    let obj = Obj::new(v, path, sink)?;
    let compliant = obj.required("compliant", sink, boolean);
    let violations = obj.optional("violations", sink, array(violation));
    obj.finish(&["compliant", "violations"], sink);
    Some(Compliance {
        compliant: compliant?,
        violations: violations.ok()?.unwrap_or_default(),
    })
}

fn violation(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<Violation> {
    let obj = Obj::new(v, path, sink)?;
    let policy = obj.required("policy", sink, owned_string);
    let actions = obj.optional("actions", sink, array(action));
    obj.finish(&["policy", "actions"], sink);
    Some(Violation {
        policy: policy?,
        actions: actions.ok()?,
    })
}

/// Reads a policy with the same walk as the JSON entry points.
impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let mut sink = Sink::default();
        let policy = policy(&value, &mut sink).complete().ok();
        first_error(policy, sink)
    }
}

/// Reads an event with the same walk as the JSON entry points.
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let mut sink = Sink::default();
        let event = event(&value, &mut sink).complete().ok();
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
