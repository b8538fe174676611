//! Checks on parts of a policy or an event that need nothing else. The JSON
//! walk runs each as soon as its part is read, so a broken sibling does not
//! hide them; the typed API runs them all through [`policy`] and [`event`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use crate::actions::{builtin_class, normalize};
use crate::answer::ErrorCode;
use crate::diag::{MAX_ITEMS, Path, Sink, clip, too_long, too_many};
use crate::model::{
    Action, ActionClass, Compliance, CompliancePolicy, Device, DeviceState, EventRef, Policy,
    Provider, User, Violations,
};
use crate::time::is_rfc3339;

/// Every policy-independent check on a typed event.
pub fn event(event: &EventRef<'_>, sink: &mut Sink) {
    let root = Path::root("event");
    id(event.id, &root.field("id"), sink);
    if let Some(t) = event.time {
        time(t, &root.field("time"), sink);
    }
    device_id(event.device_id, &root.field("device"), sink);
    identities(event.upn, event.email, &root.field("user"), sink);
    violations(
        event.compliant,
        event.violations,
        &root.field("compliance"),
        sink,
    );
}

pub fn id(id: &str, path: &Path<'_>, sink: &mut Sink) {
    not_blank(id, path, sink, "an event id");
}

pub fn time(time: &str, path: &Path<'_>, sink: &mut Sink) {
    if !is_rfc3339(time) {
        sink.error(
            ErrorCode::InvalidValue,
            path,
            format!("`{}` is not an RFC 3339 date-time", clip(time)),
        );
    }
}

pub fn device(device: &Device, path: &Path<'_>, sink: &mut Sink) {
    device_id(&device.id, path, sink);
}

fn device_id(id: &str, device: &Path<'_>, sink: &mut Sink) {
    not_blank(id, &device.field("id"), sink, "a device id");
}

/// Each identity given is non-blank, and there is at least one.
pub fn user(user: &User, path: &Path<'_>, sink: &mut Sink) {
    identities(user.upn.as_deref(), user.email.as_deref(), path, sink);
}

fn identities(upn: Option<&str>, email: Option<&str>, path: &Path<'_>, sink: &mut Sink) {
    for (name, what, value) in [("upn", "`upn`", upn), ("email", "`email`", email)] {
        if let Some(v) = value {
            not_blank(v, &path.field(name), sink, what);
        }
    }
    if upn.is_none() && email.is_none() {
        sink.error(
            ErrorCode::MissingIdentity,
            path,
            "the user needs a `upn` or an `email`",
        );
    }
}

/// `compliant: false` needs violations and `compliant: true` allows none.
pub fn compliance(compliance: &Compliance, path: &Path<'_>, sink: &mut Sink) {
    let list = Violations::Owned(&compliance.violations);
    violations(compliance.compliant, list, path, sink);
}

fn violations(compliant: bool, violations: Violations<'_>, path: &Path<'_>, sink: &mut Sink) {
    let list = path.field("violations");
    if violations.len() > MAX_ITEMS {
        too_many(violations.len(), &list, sink);
        return;
    }
    if compliant && !violations.is_empty() {
        sink.error(
            ErrorCode::InvalidValue,
            &list,
            "a compliant device cannot have violations",
        );
    } else if !compliant && violations.is_empty() {
        sink.error(
            ErrorCode::InvalidValue,
            &list,
            "a non-compliant device needs at least one violation",
        );
    }
    // A few ids (the usual case) are compared with the earlier ones, which
    // allocates nothing; a long list goes through a set, n log n, not n².
    let few = violations.len() <= 16;
    let mut seen = BTreeSet::new();
    for (i, (policy, _)) in violations.iter().enumerate() {
        let item = list.index(i);
        not_blank(policy, &item.field("policy"), sink, "a policy id");
        let twice = if few {
            violations
                .iter()
                .take(i)
                .any(|(earlier, _)| earlier == policy)
        } else {
            !seen.insert(policy)
        };
        if twice {
            let message = format!("compliance policy `{}` is listed twice", clip(policy));
            sink.error(ErrorCode::InvalidValue, &item.field("policy"), message);
        }
    }
    let actions: usize = violations
        .iter()
        .filter_map(|(_, actions)| actions)
        .map(<[Action]>::len)
        .sum();
    total_actions(actions, &list, sink, "violations");
}

/// More than [`MAX_ITEMS`] actions in one request's lists together is `too-large`.
fn total_actions(total: usize, path: &Path<'_>, sink: &mut Sink, lists: &str) {
    if total > MAX_ITEMS {
        let message = format!("{total} actions in all {lists}; the limit is {MAX_ITEMS}");
        sink.error(ErrorCode::TooLarge, path, message);
    }
}

/// A required string that must say something.
pub fn not_blank(value: &str, path: &Path<'_>, sink: &mut Sink, what: &str) {
    if is_blank(value) {
        sink.error(
            ErrorCode::InvalidValue,
            path,
            format!("{what} cannot be empty"),
        );
    } else {
        too_long(value, path, sink);
    }
}

/// Only whitespace (`str::trim` would leave nothing): a string starting
/// with an ASCII byte above the space is known not to be at once.
fn is_blank(value: &str) -> bool {
    match value.as_bytes().first() {
        Some(b) if b.is_ascii() && *b > b' ' => false,
        _ => value.trim_start().is_empty(),
    }
}

/// Every check on a typed policy that does not classify actions.
pub fn policy(policy: &Policy, sink: &mut Sink) {
    let root = Path::root("policy");
    providers(&policy.providers, &root.field("providers"), sink);
    states(
        &policy.revoke_on_states,
        &root.field("revoke_on_states"),
        sink,
    );
    action_map(&policy.actions, &root.field("actions"), sink);
    compliance_policies(
        &policy.compliance_policies,
        &root.field("compliance_policies"),
        sink,
    );
    exempt_users(&policy.exempt_users, &root.field("exempt_users"), sink);
    grace_seconds(policy.grace_seconds, &root.field("grace_seconds"), sink);
}

/// At most [`Policy::MAX_GRACE_SECONDS`] (30 days).
pub fn grace_seconds(seconds: u32, path: &Path<'_>, sink: &mut Sink) {
    if seconds > Policy::MAX_GRACE_SECONDS {
        out_of_grace_range(seconds, path, sink);
    }
}

pub fn out_of_grace_range(seconds: impl Display, path: &Path<'_>, sink: &mut Sink) {
    let max = Policy::MAX_GRACE_SECONDS;
    sink.error(
        ErrorCode::InvalidValue,
        path,
        format!("`{seconds}` is not a whole number of seconds from 0 to {max} (30 days)"),
    );
}

/// One or two providers, none twice.
pub fn providers(providers: &[Provider], path: &Path<'_>, sink: &mut Sink) {
    if providers.is_empty() {
        sink.error(
            ErrorCode::InvalidValue,
            path,
            "at least one provider is required",
        );
    }
    no_duplicates(providers, path, sink);
}

pub fn states(states: &[DeviceState], path: &Path<'_>, sink: &mut Sink) {
    no_duplicates(states, path, sink);
}

/// Custom names are not empty, do not give a built-in action another class,
/// and do not name one action twice with two classes.
pub fn action_map(actions: &BTreeMap<String, ActionClass>, path: &Path<'_>, sink: &mut Sink) {
    let mut seen: BTreeMap<String, (&str, ActionClass)> = BTreeMap::new();
    for (name, &class) in actions {
        let item = path.key(name);
        let key = normalize(name);
        if key.is_empty() {
            sink.error(
                ErrorCode::InvalidValue,
                &item,
                "an action name cannot be empty",
            );
        } else if let Some(builtin) = builtin_class(&key).filter(|b| *b != class) {
            let message = format!(
                "`{}` is a built-in {} action and cannot be remapped",
                clip(name),
                builtin.prose()
            );
            sink.error(ErrorCode::InvalidValue, &item, message);
        } else if let Some((first, other)) = seen.get(&key).filter(|(_, c)| *c != class) {
            let message = format!(
                "`{}` is the same action as `{}`, which is {}",
                clip(name),
                clip(first),
                other.prose()
            );
            sink.error(ErrorCode::InvalidValue, &item, message);
        } else {
            seen.entry(key).or_insert((name, class));
        }
    }
}

/// Ids are not blank and not listed twice; at most [`MAX_ITEMS`] policies.
pub fn compliance_policies(list: &[CompliancePolicy], path: &Path<'_>, sink: &mut Sink) {
    if list.len() > MAX_ITEMS {
        too_many(list.len(), path, sink);
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, cp) in list.iter().enumerate() {
        let item = path.index(i);
        let id = item.field("id");
        not_blank(&cp.id, &id, sink, "a compliance policy id");
        if !seen.insert(cp.id.as_str()) {
            sink.error(
                ErrorCode::InvalidValue,
                &id,
                format!("`{}` is listed twice", clip(&cp.id)),
            );
        }
    }
    let actions = list.iter().map(|cp| cp.actions.len()).sum();
    total_actions(actions, path, sink, "compliance policies");
}

pub fn exempt_users(users: &[String], path: &Path<'_>, sink: &mut Sink) {
    if users.len() > MAX_ITEMS {
        too_many(users.len(), path, sink);
        return;
    }
    for (i, user) in users.iter().enumerate() {
        not_blank(user, &path.index(i), sink, "an exempt user");
    }
}

fn no_duplicates<T: PartialEq + Display>(items: &[T], path: &Path<'_>, sink: &mut Sink) {
    if items.len() > MAX_ITEMS {
        too_many(items.len(), path, sink);
        return;
    }
    for (i, item) in items.iter().enumerate() {
        if items.iter().take(i).any(|earlier| earlier == item) {
            sink.error(
                ErrorCode::InvalidValue,
                &path.index(i),
                format!("`{item}` is listed twice"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_blank;
    use proptest::prelude::*;

    #[test]
    fn blank_is_what_trim_leaves_nothing_of() {
        for s in [
            "", " ", "\t\n\r", "\u{85}", "\u{a0}x", " x", "x ", "\u{3000}", "\u{1f}",
        ] {
            assert_eq!(is_blank(s), s.trim().is_empty(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn blank_agrees_with_trim(s in "[ \\t\\n\\x0b\\x0c\\r\\x1c-\\x1f\\u{85}\\u{a0}\\u{2000}\\u{3000}a-z!~\\u{e9}]{0,6}") {
            prop_assert_eq!(is_blank(&s), s.trim().is_empty());
        }
    }
}
