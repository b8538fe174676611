//! JSON → typed inputs, collecting every structural error with its path.
//!
//! One hand-written walk over a [`serde_json::Value`] instead of serde's derive:
//! derive stops at the first error, and SPEC §4 asks for all of them.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::answer::{Diagnostic, ErrorCode};
use crate::checks;
use crate::model::{
    Action, ActionClass, Compliance, CompliancePolicy, Deployment, Device, DeviceState, Event,
    Mode, Policy, Provider, Tier, Uem, UnknownAction, User, Violation,
};

/// Requests, policies and events larger than this are `too-large`.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Lists (violations, actions, ...) and objects with more items than this are
/// `too-large`; so are more actions than this in all violations together, or
/// in all compliance policies together.
pub const MAX_ITEMS: usize = 1024;
/// Strings longer than this many bytes are `too-large`: no identifier, name or
/// address is longer, and it bounds how much an answer can echo.
pub const MAX_STRING: usize = 256;
/// At most this many errors (and warnings) are listed; one more `too-large`
/// entry says the rest were left out.
pub const MAX_DIAGNOSTICS: usize = 100;

/// A user-chosen text as messages and paths show it: at most 64 characters.
pub fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", s.get(..end).unwrap_or_default()).into(),
        None => s.into(),
    }
}

/// A path into the input, built on the stack and printed only for an error.
#[derive(Clone, Copy)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root(&'static str),
    Field(&'a str),
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    pub const fn root(name: &'static str) -> Self {
        Self {
            parent: None,
            seg: Seg::Root(name),
        }
    }
    /// A field of an object, printed `.name`.
    pub fn field(&'a self, name: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Field(name),
        }
    }
    /// A user-chosen map key, printed `["key"]`.
    pub fn key(&'a self, key: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }
    pub fn index(&'a self, i: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            parent.fmt(f)?;
        }
        match self.seg {
            Seg::Root(name) => f.write_str(name),
            Seg::Field(name) if self.parent.is_some_and(|p| !p.is_empty_root()) => {
                write!(f, ".{}", clip(name))
            }
            Seg::Field(name) => f.write_str(&clip(name)),
            Seg::Key(key) => write!(f, "[{}]", Value::String(clip(key).into_owned())),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

impl Path<'_> {
    fn is_empty_root(&self) -> bool {
        matches!(self.seg, Seg::Root(""))
    }
}

/// Errors and warnings, in the order they were found.
#[derive(Default)]
pub struct Sink {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Sink {
    pub fn error(&mut self, code: ErrorCode, path: &Path<'_>, message: impl Into<String>) {
        push(&mut self.errors, || Diagnostic {
            code,
            path: path.to_string(),
            message: message.into(),
        });
    }
    pub fn warning(&mut self, code: ErrorCode, path: &Path<'_>, message: impl Into<String>) {
        push(&mut self.warnings, || Diagnostic {
            code,
            path: path.to_string(),
            message: message.into(),
        });
    }
    /// Moves `errors` found elsewhere into this sink, keeping the cap.
    pub fn append_errors(&mut self, errors: Vec<Diagnostic>) {
        for error in errors {
            push(&mut self.errors, || error);
        }
    }
}

/// Adds a diagnostic unless [`MAX_DIAGNOSTICS`] are listed already; the first
/// one over the cap becomes a `too-large` note, the rest are dropped.
fn push(list: &mut Vec<Diagnostic>, make: impl FnOnce() -> Diagnostic) {
    match list.len() {
        n if n < MAX_DIAGNOSTICS => list.push(make()),
        n if n == MAX_DIAGNOSTICS => list.push(Diagnostic {
            code: ErrorCode::TooLarge,
            path: String::new(),
            message: format!(
                "more than {MAX_DIAGNOSTICS} found; only the first {MAX_DIAGNOSTICS} are listed"
            ),
        }),
        _ => {}
    }
}

/// Parses JSON text, refusing oversized input and duplicate object keys (a
/// second `"mode"` must not silently win over the first).
pub fn json(bytes: &[u8], path: &Path<'_>, sink: &mut Sink) -> Option<Value> {
    if bytes.len() > MAX_INPUT_BYTES {
        let what = if path.is_empty_root() {
            "request"
        } else {
            "input"
        };
        sink.error(
            ErrorCode::TooLarge,
            path,
            format!(
                "{what} is {} bytes; the limit is {MAX_INPUT_BYTES}",
                bytes.len()
            ),
        );
        return None;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            sink.error(
                ErrorCode::MalformedJson,
                path,
                format!("input is not UTF-8: {e}"),
            );
            return None;
        }
    };
    // A byte-order mark is not JSON; name it, since editors add it invisibly.
    if text.starts_with('\u{feff}') {
        sink.error(
            ErrorCode::MalformedJson,
            path,
            "input starts with a byte-order mark",
        );
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = StrictValue::deserialize(&mut de).and_then(|v| de.end().map(|()| v.0));
    match parsed {
        Ok(value) => Some(value),
        Err(e) => {
            sink.error(
                ErrorCode::MalformedJson,
                path,
                format!("input is not valid JSON: {e}"),
            );
            None
        }
    }
}

/// A JSON value whose objects have no duplicate keys.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(v: &Value, expected: &str, path: &Path<'_>, sink: &mut Sink) {
    sink.error(
        ErrorCode::InvalidValue,
        path,
        format!("expected {expected}, found {}", kind(v)),
    );
}

/// An object's fields, read one by one; `finish` reports the ones nobody read.
pub struct Obj<'v, 'p> {
    map: &'v Map<String, Value>,
    path: &'p Path<'p>,
}

impl<'v, 'p> Obj<'v, 'p> {
    pub fn new(v: &'v Value, path: &'p Path<'p>, sink: &mut Sink) -> Option<Self> {
        match v {
            Value::Object(map) if map.len() > MAX_ITEMS => {
                too_many(map.len(), path, sink);
                None
            }
            Value::Object(map) => Some(Self { map, path }),
            other => {
                wrong_type(other, "an object", path, sink);
                None
            }
        }
    }

    /// A required field, parsed by `parse` at its own path.
    pub fn required<T>(
        &self,
        name: &'static str,
        sink: &mut Sink,
        parse: impl FnOnce(&'v Value, &Path<'_>, &mut Sink) -> Option<T>,
    ) -> Option<T> {
        let path = self.path.field(name);
        match self.map.get(name) {
            Some(v) => parse(v, &path, sink),
            None => {
                sink.error(
                    ErrorCode::MissingField,
                    &path,
                    format!("`{name}` is required"),
                );
                None
            }
        }
    }

    /// An optional field; `null` counts as absent. `Err` when present but invalid.
    pub fn optional<T>(
        &self,
        name: &'static str,
        sink: &mut Sink,
        parse: impl FnOnce(&'v Value, &Path<'_>, &mut Sink) -> Option<T>,
    ) -> Result<Option<T>, ()> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => parse(v, &self.path.field(name), sink).map(Some).ok_or(()),
        }
    }

    /// Reports every field not in `known` as `unknown-field`.
    pub fn finish(&self, known: &[&str], sink: &mut Sink) {
        for key in self.map.keys().filter(|k| !known.contains(&k.as_str())) {
            let message = format!(
                "unknown field `{}`; expected one of {}",
                clip(key),
                list(known)
            );
            sink.error(ErrorCode::UnknownField, &self.path.field(key), message);
        }
    }
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn string<'v>(v: &'v Value, path: &Path<'_>, sink: &mut Sink) -> Option<&'v str> {
    match v {
        Value::String(s) if too_long(s, path, sink) => None,
        Value::String(s) => Some(s),
        other => {
            wrong_type(other, "a string", path, sink);
            None
        }
    }
}

pub fn owned_string(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<String> {
    string(v, path, sink).map(str::to_owned)
}

pub fn boolean(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        other => {
            wrong_type(other, "true or false", path, sink);
            None
        }
    }
}

/// A string that must be one of `table`'s names.
fn one_of<T: Copy + 'static>(
    table: &'static [(&'static str, T)],
) -> impl Fn(&Value, &Path<'_>, &mut Sink) -> Option<T> {
    move |v, path, sink| {
        let s = string(v, path, sink)?;
        let found = table.iter().find(|(name, _)| *name == s).map(|(_, t)| *t);
        if found.is_none() {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            let message = format!("`{}` is not one of {}", clip(s), list(&names));
            sink.error(ErrorCode::InvalidValue, path, message);
        }
        found
    }
}

/// An array of at most [`MAX_ITEMS`] items, each parsed at its index; `None`
/// if the array or any item is invalid (every item is still checked).
pub fn array<'v, T>(
    parse: impl Fn(&'v Value, &Path<'_>, &mut Sink) -> Option<T>,
) -> impl FnOnce(&'v Value, &Path<'_>, &mut Sink) -> Option<Vec<T>> {
    move |v, path, sink| {
        let Value::Array(items) = v else {
            wrong_type(v, "an array", path, sink);
            return None;
        };
        if items.len() > MAX_ITEMS {
            too_many(items.len(), path, sink);
            return None;
        }
        let parsed: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| parse(item, &path.index(i), sink))
            .collect();
        parsed.into_iter().collect()
    }
}

pub fn too_many(len: usize, path: &Path<'_>, sink: &mut Sink) {
    sink.error(
        ErrorCode::TooLarge,
        path,
        format!("{len} items; the limit is {MAX_ITEMS}"),
    );
}

/// Reports a string over [`MAX_STRING`] bytes as `too-large`; true if it was.
pub fn too_long(s: &str, path: &Path<'_>, sink: &mut Sink) -> bool {
    let long = s.len() > MAX_STRING;
    if long {
        let message = format!("{} bytes; the limit is {MAX_STRING}", s.len());
        sink.error(ErrorCode::TooLarge, path, message);
    }
    long
}

const UEMS: &[(&str, Uem)] = &[("epmm", Uem::Epmm), ("neurons_mdm", Uem::NeuronsMdm)];
const DEPLOYMENTS: &[(&str, Deployment)] = &[
    ("access", Deployment::Access),
    (
        "access_standalone_sentry",
        Deployment::AccessStandaloneSentry,
    ),
];
const PROVIDERS: &[(&str, Provider)] = &[
    ("office365", Provider::Office365),
    ("google_workspace", Provider::GoogleWorkspace),
];
const MODES: &[(&str, Mode)] = &[
    ("enforce", Mode::Enforce),
    ("report_only", Mode::ReportOnly),
];
const CLASSES: &[(&str, ActionClass)] = &[
    ("blocking", ActionClass::Blocking),
    ("non_blocking", ActionClass::NonBlocking),
];
const UNKNOWN_ACTIONS: &[(&str, UnknownAction)] = &[
    ("error", UnknownAction::Error),
    ("blocking", UnknownAction::Blocking),
    ("non_blocking", UnknownAction::NonBlocking),
];
const STATES: &[(&str, DeviceState)] = &[
    ("active", DeviceState::Active),
    ("quarantined", DeviceState::Quarantined),
    ("wiped", DeviceState::Wiped),
    ("retired", DeviceState::Retired),
    ("retire_pending", DeviceState::RetirePending),
    ("wipe_pending", DeviceState::WipePending),
    ("blocked", DeviceState::Blocked),
    ("lost", DeviceState::Lost),
    ("expired", DeviceState::Expired),
];

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
#[derive(Default)]
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
}

impl PolicyParts {
    /// The policy, if every part was valid.
    #[allow(
        clippy::result_large_err,
        reason = "handed back whole, once per input; the size is per target"
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
        uem: obj.required("uem", sink, one_of(UEMS)),
        deployment: obj.required("deployment", sink, one_of(DEPLOYMENTS)),
        providers: obj.required(
            "providers",
            sink,
            checked(array(one_of(PROVIDERS)), |p: &Vec<_>, path, sink| {
                checks::providers(p, path, sink)
            }),
        ),
        mode: or_default(obj.optional("mode", sink, one_of(MODES))),
        revoke_on_states: obj
            .optional(
                "revoke_on_states",
                sink,
                checked(array(one_of(STATES)), |s: &Vec<_>, path, sink| {
                    checks::states(s, path, sink)
                }),
            )
            .map(|s| s.unwrap_or_else(|| Policy::DEFAULT_REVOKE_ON_STATES.to_vec()))
            .ok(),
        actions: or_default(obj.optional("actions", sink, checked(action_map, checks::action_map))),
        unknown_action: or_default(obj.optional("unknown_action", sink, one_of(UNKNOWN_ACTIONS))),
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
        ],
        sink,
    );
    parts
}

/// An optional field's value, its default when absent, `None` when invalid.
fn or_default<T: Default>(field: Result<Option<T>, ()>) -> Option<T> {
    field.map(Option::unwrap_or_default).ok()
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
    let class = one_of(CLASSES);
    let parsed: Vec<Option<(String, ActionClass)>> = map
        .iter()
        .map(|(name, v)| {
            let path = path.key(name);
            if too_long(name, &path, sink) {
                return None;
            }
            class(v, &path, sink).map(|c| (name.clone(), c))
        })
        .collect();
    parsed.into_iter().collect()
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
#[derive(Default)]
pub struct EventParts {
    pub id: Option<String>,
    pub time: Option<Option<String>>,
    pub device: Option<Device>,
    pub user: Option<User>,
    pub compliance: Option<Compliance>,
}

impl EventParts {
    /// The event, if every part was valid.
    #[allow(
        clippy::result_large_err,
        reason = "handed back whole, once per input; the size is per target"
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

/// `parse`, then `check` on what it read.
fn checked<'v, T>(
    parse: impl FnOnce(&'v Value, &Path<'_>, &mut Sink) -> Option<T>,
    check: impl FnOnce(&T, &Path<'_>, &mut Sink),
) -> impl FnOnce(&'v Value, &Path<'_>, &mut Sink) -> Option<T> {
    move |v, path, sink| {
        let parsed = parse(v, path, sink)?;
        check(&parsed, path, sink);
        Some(parsed)
    }
}

fn device(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<Device> {
    let obj = Obj::new(v, path, sink)?;
    let id = obj.required("id", sink, owned_string);
    let state = obj.required("state", sink, one_of(STATES));
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
