#!/usr/bin/env python3
"""Writes the shared benchmark inputs: policy.json and events.jsonl (100 events).

Deterministic (fixed seed), so re-running gives the same bytes. Every event is
a success under the policy: the mix measures decisions, not error answers.
Run from this directory: python3 generate.py
"""
import json
import random

rng = random.Random(6)

policy = {
    "uem": "epmm",
    "deployment": "access",
    "providers": ["office365", "google_workspace"],
    "mode": "enforce",
    "revoke_on_states": ["quarantined", "wiped", "retired"],
    "actions": {"Lock Down": "blocking", "Nag": "non_blocking"},
    "unknown_action": "error",
    "compliance_policies": [
        {"id": "jailbreak", "actions": ["Send Alert", "Block"]},
        {"id": "os-version", "actions": ["Send Alert"]},
        {"id": "passcode", "actions": [{"alert": True, "block": False, "quarantine": True, "wipe": False}]},
        {"id": "mdm-default", "actions": ["Block Email, AppConnect Apps And Send Alert"]},
        {"id": "encryption", "actions": [{"alert": True}]},
        {"id": "app-inventory", "actions": ["Nag", "Email"]},
    ],
    "exempt_users": ["breakglass@example.com", "Ops-Admin@Example.com"],
}

PLATFORMS = ["ios", "android", "ios", "android", "macos", "windows"]
n = 0


def event(state, violations, user=None, compliant=None):
    global n
    n += 1
    name = f"user{rng.randrange(1, 5000):04d}"
    if user is None:
        user = {"upn": f"{name}@example.com", "email": f"{name}@mail.example.com"}
    ev = {
        "id": f"evt-{n:06d}",
        "time": f"2026-11-27T{8 + n // 60:02d}:{n % 60:02d}:00Z",
        "device": {"id": f"dev-{rng.randrange(1, 100000):05d}", "state": state,
                   "platform": rng.choice(PLATFORMS)},
        "user": user,
        "compliance": {"compliant": not violations if compliant is None else compliant},
    }
    if violations:
        ev["compliance"]["violations"] = violations
    return ev


events = []
# Compliant, active devices: the common case (25).
for _ in range(25):
    events.append(event("active", []))
# Revoke by a blocking action looked up in compliance_policies (14).
for pid in ["jailbreak"] * 8 + ["passcode"] * 3 + ["mdm-default"] * 3:
    events.append(event("active", [{"policy": pid}]))
# Revoke by a blocking action named inline, in several spellings (12).
for name in ["Block", "BLOCK", "block", "Quarantine", "WIPE", "Retire", "Lock Down",
             "lock_down", "Block Email, AppConnect Apps And Send Alert", "quarantine",
             "Block", "Wipe"]:
    events.append(event("active", [{"policy": "custom-rule", "actions": ["Send Alert", name]}]))
# Revoke by an EPMM tier object inline (8).
for tier in [{"alert": True, "block": True}, {"quarantine": True}, {"wipe": True},
             {"alert": True, "block": False, "quarantine": True, "wipe": False},
             {"block": True}, {"alert": False, "block": False, "quarantine": False, "wipe": True},
             {"alert": True, "quarantine": True}, {"block": True, "wipe": True}]:
    events.append(event("active", [{"policy": "tiered", "actions": [tier]}]))
# Revoke by device state (10): compliant or with only non-blocking violations.
for state in ["quarantined", "wiped", "retired", "quarantined", "wiped"]:
    events.append(event(state, []))
for state in ["quarantined", "retired", "wiped", "quarantined", "retired"]:
    events.append(event(state, [{"policy": "os-version"}]))
# Non-blocking only (14): looked up, inline names, tier objects, custom names.
for v in [[{"policy": "os-version"}], [{"policy": "encryption"}], [{"policy": "app-inventory"}],
          [{"policy": "x", "actions": ["Send Alert"]}], [{"policy": "x", "actions": ["SendAlert"]}],
          [{"policy": "x", "actions": ["SEND_ALERT", "email"]}], [{"policy": "x", "actions": ["Notify"]}],
          [{"policy": "x", "actions": ["monitor", "Push Notification"]}], [{"policy": "x", "actions": ["Wait"]}],
          [{"policy": "x", "actions": ["Nag"]}], [{"policy": "x", "actions": [{"alert": True}]}],
          [{"policy": "x", "actions": [{}]}],
          [{"policy": "os-version"}, {"policy": "encryption"}],
          [{"policy": "os-version"}, {"policy": "app-inventory"}, {"policy": "y", "actions": ["Nag"]}]]:
    events.append(event(rng.choice(["active", "active", "lost", "expired", "blocked"]), v))
# Several violations, blocking among them (8).
for v in [[{"policy": "os-version"}, {"policy": "jailbreak"}],
          [{"policy": "encryption"}, {"policy": "passcode"}, {"policy": "os-version"}],
          [{"policy": "jailbreak"}, {"policy": "mdm-default"}],
          [{"policy": "a", "actions": ["Send Alert"]}, {"policy": "b", "actions": ["Block", "Wipe"]},
           {"policy": "c", "actions": [{"quarantine": True}]}],
          [{"policy": "os-version"}, {"policy": "app-inventory"}, {"policy": "encryption"},
           {"policy": "jailbreak"}],
          [{"policy": "a", "actions": ["Nag", "Lock Down"]}, {"policy": "passcode"}],
          [{"policy": "jailbreak"}, {"policy": "b", "actions": [{"alert": True}, {"wipe": True}]}],
          [{"policy": "os-version"}, {"policy": "jailbreak"}, {"policy": "passcode"},
           {"policy": "mdm-default"}, {"policy": "z", "actions": ["Retire"]}]]:
    events.append(event("active", v))
# A device state trigger and a blocking action together (3).
for state in ["quarantined", "wiped", "retired"]:
    events.append(event(state, [{"policy": "jailbreak"}]))
# Exempt users (4): a trigger, but never revoked; matched case-insensitively.
for user, state, v in [
    ({"upn": "breakglass@example.com", "email": "breakglass@example.com"}, "active", [{"policy": "jailbreak"}]),
    ({"upn": "BreakGlass@Example.com"}, "quarantined", []),
    ({"email": "ops-admin@example.com"}, "active", [{"policy": "x", "actions": ["Block"]}]),
    ({"upn": "ops-admin@example.com", "email": "OPS-ADMIN@EXAMPLE.COM"}, "wiped", [{"policy": "passcode"}]),
]:
    events.append(event(state, v, user=user))
# Users with one identity only (2): subjects fall back per provider.
events.append(event("active", [{"policy": "jailbreak"}], user={"upn": "solo-upn@example.com"}))
events.append(event("retired", [], user={"email": "solo-mail@example.com"}))

assert len(events) == 100, len(events)
with open("policy.json", "w") as f:
    json.dump(policy, f, indent=2)
    f.write("\n")
with open("events.jsonl", "w") as f:
    for ev in events:
        f.write(json.dumps(ev, separators=(",", ":")) + "\n")
