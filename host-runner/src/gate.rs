//! The sign-in gate's view (SPEC §10): each device's latest decision by event
//! time, each user's devices, and the verdict for a sign-in. Pure: the
//! journal fills it at start ([`Gate::load`]) and each journaled event moves it
//! on ([`Gate::apply`]) with the same rule the journal uses, so a check is a
//! lookup and a restart answers as before.

use std::collections::{BTreeSet, HashMap};

use policy_core::{Access, Outcome};
use serde::Deserialize;

use crate::journal::{DeviceFacts, DeviceRecord};

/// The parts of an event the gate keeps, read from an event the module has
/// already accepted (so its shape is known to be right).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFacts {
    pub device_id: String,
    /// Lowercased.
    pub upn: Option<String>,
    /// Lowercased.
    pub email: Option<String>,
    /// `event.time` in unix ms, if the event has one.
    pub time_ms: Option<i64>,
}

#[derive(Deserialize)]
struct RawEvent {
    time: Option<String>,
    device: RawDevice,
    user: RawUser,
}

#[derive(Deserialize)]
struct RawDevice {
    id: String,
}

#[derive(Deserialize)]
struct RawUser {
    upn: Option<String>,
    email: Option<String>,
}

impl EventFacts {
    /// Reads the facts of an accepted event; `None` if it lacks them.
    pub fn read(event: &[u8]) -> Option<Self> {
        let raw: RawEvent = serde_json::from_slice(event).ok()?;
        Some(Self {
            device_id: raw.device.id,
            upn: raw.user.upn.map(|u| u.to_lowercase()),
            email: raw.user.email.map(|e| e.to_lowercase()),
            time_ms: raw.time.as_deref().and_then(policy_core::unix_ms),
        })
    }

    /// The event's time for the gate: an event without one counts as
    /// arriving at `received_ms`.
    pub fn time_or(&self, received_ms: i64) -> i64 {
        self.time_ms.unwrap_or(received_ms)
    }

    /// What the journal keeps.
    pub fn journaled(&self, received_ms: i64, access: Access) -> DeviceFacts<'_> {
        DeviceFacts {
            device_id: &self.device_id,
            upn: self.upn.as_deref(),
            email: self.email.as_deref(),
            time_ms: self.time_or(received_ms),
            access,
        }
    }
}

/// What the gate answers for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceVerdict {
    pub device_id: String,
    pub upn: Option<String>,
    pub email: Option<String>,
    /// (event time, arrival order): the newer one wins.
    pub order: (i64, i64),
    pub event_id: String,
    pub outcome: Outcome,
    pub enforced: bool,
    pub access: Access,
    /// While its decisions are `grace`: when the grace period ends (unix ms).
    pub due_ms: Option<i64>,
    /// The decision's `reasons`, as JSON.
    pub reasons: serde_json::Value,
}

impl DeviceVerdict {
    /// Whether this device's sign-ins are blocked at `now_ms`: its latest
    /// decision blocks, or its grace period has ended, and it was enforced
    /// (a `report_only` policy blocks no one).
    pub fn blocks(&self, now_ms: i64) -> bool {
        let grace_over = self.due_ms.is_some_and(|due| due <= now_ms);
        self.enforced && (self.access == Access::Block || grace_over)
    }

    pub fn from_record(record: DeviceRecord) -> Self {
        let reasons = reasons_of(&record.decision);
        Self {
            device_id: record.device_id,
            upn: record.upn,
            email: record.email,
            order: (record.time_ms, record.seq),
            event_id: record.event_id,
            outcome: record.outcome,
            enforced: record.enforced,
            access: record.access,
            due_ms: record.due_ms,
            reasons,
        }
    }

    /// The user's upn and email, lowercased.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.upn.iter().chain(self.email.iter()).map(String::as_str)
    }
}

/// The `reasons` of a decision (or of a success answer holding one).
pub fn reasons_of(decision: &str) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_str(decision).unwrap_or_default();
    let reasons = value
        .get("decision")
        .and_then(|d| d.get("reasons"))
        .or_else(|| value.get("reasons"));
    reasons
        .cloned()
        .unwrap_or_else(|| serde_json::Value::Array(vec![]))
}

/// A sign-in's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// No known decision blocks it.
    Allow,
    /// This device's latest decision blocks it.
    Block(&'a DeviceVerdict),
    /// Nothing is known of the user or device and `[serve] unknown = "block"`.
    BlockUnknown,
}

/// Every device's latest decision, and which devices each user has.
#[derive(Debug, Default)]
pub struct Gate {
    devices: HashMap<String, DeviceVerdict>,
    /// Lowercased upn or email → device ids.
    users: HashMap<String, BTreeSet<String>>,
    block_unknown: bool,
}

impl Gate {
    /// The gate over these journaled devices.
    pub fn load(records: Vec<DeviceRecord>, block_unknown: bool) -> Self {
        let mut gate = Self {
            block_unknown,
            ..Self::default()
        };
        for record in records {
            gate.apply(DeviceVerdict::from_record(record));
        }
        gate
    }

    /// Takes a newly journaled decision, unless the device already has a newer one.
    /// Returns whether it did. A `grace` that follows a `grace` keeps the
    /// earlier `due`, as the journal does.
    pub fn apply(&mut self, mut verdict: DeviceVerdict) -> bool {
        if let Some(old) = self.devices.get(&verdict.device_id) {
            if old.order >= verdict.order {
                return false;
            }
            if let (Some(new), Some(old)) = (verdict.due_ms, old.due_ms) {
                verdict.due_ms = Some(new.min(old));
            }
            let old_users: Vec<String> = old.users().map(str::to_owned).collect();
            for user in old_users {
                if let Some(set) = self.users.get_mut(&user) {
                    set.remove(&verdict.device_id);
                    if set.is_empty() {
                        self.users.remove(&user);
                    }
                }
            }
        }
        for user in verdict.users() {
            self.users
                .entry(user.to_owned())
                .or_default()
                .insert(verdict.device_id.clone());
        }
        self.devices.insert(verdict.device_id.clone(), verdict);
        true
    }

    /// A device's latest decision.
    pub fn device(&self, id: &str) -> Option<&DeviceVerdict> {
        self.devices.get(id)
    }

    /// A user's devices (by upn or email, any case), in device id order.
    pub fn user_devices(&self, user: &str) -> Vec<&DeviceVerdict> {
        self.users
            .get(&user.to_lowercase())
            .into_iter()
            .flatten()
            .filter_map(|id| self.devices.get(id))
            .collect()
    }

    /// The verdict at `now_ms` for a sign-in by `user`, from `device` if the
    /// gateway names one. A known device answers for itself; an unknown
    /// device, or none, is judged by the user: blocked while any of their
    /// devices is (the most recent blocking decision is shown).
    pub fn check(&self, user: &str, device: Option<&str>, now_ms: i64) -> Verdict<'_> {
        if let Some(verdict) = device.and_then(|id| self.devices.get(id)) {
            return if verdict.blocks(now_ms) {
                Verdict::Block(verdict)
            } else {
                Verdict::Allow
            };
        }
        let devices = self.user_devices(user);
        if devices.is_empty() {
            return if self.block_unknown {
                Verdict::BlockUnknown
            } else {
                Verdict::Allow
            };
        }
        devices
            .into_iter()
            .filter(|d| d.blocks(now_ms))
            .max_by_key(|d| d.order)
            .map_or(Verdict::Allow, Verdict::Block)
    }

    /// The devices whose latest decision blocks at `now_ms`, by device id.
    pub fn blocked(&self, now_ms: i64) -> Vec<&DeviceVerdict> {
        let mut blocked: Vec<&DeviceVerdict> =
            self.devices.values().filter(|d| d.blocks(now_ms)).collect();
        blocked.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        blocked
    }

    /// The newest arrival order among the decisions the gate holds.
    pub fn newest_seq(&self) -> i64 {
        self.devices
            .values()
            .map(|d| d.order.1)
            .max()
            .unwrap_or(i64::MIN)
    }

    /// How many devices the gate knows.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn verdict(device: &str, user: &str, order: (i64, i64), access: Access) -> DeviceVerdict {
        DeviceVerdict {
            device_id: device.into(),
            upn: Some(user.into()),
            email: None,
            order,
            event_id: format!("evt-{}-{}", order.0, order.1),
            outcome: if access == Access::Block {
                Outcome::Revoke
            } else {
                Outcome::NoAction
            },
            enforced: true,
            access,
            due_ms: None,
            reasons: serde_json::json!([]),
        }
    }

    #[test]
    fn the_latest_event_by_time_decides_and_a_late_older_one_does_not() {
        let mut gate = Gate::default();
        assert!(gate.apply(verdict("d1", "alice@x", (100, 1), Access::Block)));
        assert!(matches!(
            gate.check("alice@x", None, NOW),
            Verdict::Block(_)
        ));
        // Older by time, newer by arrival: ignored.
        assert!(!gate.apply(verdict("d1", "alice@x", (50, 2), Access::Allow)));
        assert!(matches!(
            gate.check("ALICE@X", Some("d1"), NOW),
            Verdict::Block(_)
        ));
        // Same time, later arrival: wins.
        assert!(gate.apply(verdict("d1", "alice@x", (100, 3), Access::Allow)));
        assert_eq!(gate.check("alice@x", None, NOW), Verdict::Allow);
    }

    #[test]
    fn a_user_is_blocked_while_any_device_is() {
        let mut gate = Gate::default();
        gate.apply(verdict("d1", "alice@x", (1, 1), Access::Allow));
        gate.apply(verdict("d2", "alice@x", (2, 2), Access::Block));
        match gate.check("alice@x", None, NOW) {
            Verdict::Block(d) => assert_eq!(d.device_id, "d2"),
            other => panic!("{other:?}"),
        }
        // The compliant device answers for itself; an unknown one by the user.
        assert_eq!(gate.check("alice@x", Some("d1"), NOW), Verdict::Allow);
        assert!(matches!(
            gate.check("alice@x", Some("new"), NOW),
            Verdict::Block(_)
        ));
    }

    fn grace(device: &str, order: (i64, i64), due_ms: i64) -> DeviceVerdict {
        DeviceVerdict {
            outcome: Outcome::Grace,
            due_ms: Some(due_ms),
            ..verdict(device, "alice@x", order, Access::Allow)
        }
    }

    #[test]
    fn grace_allows_until_due_and_a_later_grace_keeps_the_earlier_due() {
        let mut gate = Gate::default();
        gate.apply(grace("d1", (1, 1), NOW));
        assert_eq!(gate.check("alice@x", None, NOW - 1), Verdict::Allow);
        assert!(matches!(
            gate.check("alice@x", Some("d1"), NOW),
            Verdict::Block(_)
        ));
        gate.apply(grace("d1", (2, 2), NOW + 500));
        assert!(matches!(
            gate.check("alice@x", None, NOW),
            Verdict::Block(_)
        ));
        // Compliant again: the clock is gone; a new grace starts a new one.
        gate.apply(verdict("d1", "alice@x", (3, 3), Access::Allow));
        assert_eq!(gate.check("alice@x", None, NOW + 10_000), Verdict::Allow);
        gate.apply(grace("d1", (4, 4), NOW + 20_000));
        assert_eq!(gate.check("alice@x", None, NOW + 10_000), Verdict::Allow);
        // report_only never blocks, grace or not.
        let mut quiet = grace("d2", (5, 5), NOW);
        quiet.enforced = false;
        quiet.upn = Some("bob@x".into());
        gate.apply(quiet);
        assert_eq!(gate.check("bob@x", None, NOW + 1), Verdict::Allow);
    }

    #[test]
    fn unknown_users_follow_the_setting() {
        let gate = Gate::load(vec![], false);
        assert_eq!(gate.check("bob@x", None, NOW), Verdict::Allow);
        let gate = Gate::load(vec![], true);
        assert_eq!(gate.check("bob@x", Some("d9"), NOW), Verdict::BlockUnknown);
    }

    #[test]
    fn report_only_decisions_block_no_one() {
        let mut gate = Gate::default();
        let mut v = verdict("d1", "alice@x", (1, 1), Access::Block);
        v.enforced = false;
        gate.apply(v);
        assert_eq!(gate.check("alice@x", None, NOW), Verdict::Allow);
    }

    #[test]
    fn a_device_that_changes_user_leaves_the_old_one() {
        let mut gate = Gate::default();
        gate.apply(verdict("d1", "alice@x", (1, 1), Access::Block));
        gate.apply(verdict("d1", "bob@x", (2, 2), Access::Block));
        assert!(gate.user_devices("alice@x").is_empty());
        assert_eq!(gate.user_devices("bob@x").len(), 1);
    }

    #[test]
    fn facts_are_read_from_an_event() {
        let facts = EventFacts::read(
            br#"{"id":"e","time":"1970-01-01T00:00:01Z","device":{"id":"d","state":"active"},
                "user":{"upn":"Alice@X"},"compliance":{"compliant":true}}"#,
        )
        .unwrap();
        assert_eq!(facts.device_id, "d");
        assert_eq!(facts.upn.as_deref(), Some("alice@x"));
        assert_eq!(facts.time_ms, Some(1000));
        assert_eq!(facts.journaled(5, Access::Allow).time_ms, 1000);
        let untimed = EventFacts::read(br#"{"device":{"id":"d"},"user":{"email":"a@x"}}"#).unwrap();
        assert_eq!(untimed.journaled(5, Access::Allow).time_ms, 5);
    }
}
