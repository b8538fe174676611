# SPEC §4 "The rules", as Rego: the peer the benchmarks compare policy-core with.
#
# Input: the request envelope of the core ABI's `srs_evaluate` (SPEC §6),
#   {"policy": …, "event": …}
# or, on the kept-policy path, {"event": …} with the policy in `data.srs_policy`.
#
# Output: `data.srs.decision`, the success decision of SPEC §5 without the
# messages: event_id, outcome, enforced, access, revocations (in the order of
# `providers`) and reasons as {"rule", "matched"} in rule order.
#
# Input validation is not replicated: policy-core answers every invalid policy
# or event with a failure, and this peer is compared on valid input only.
package srs

# --- the inputs ----------------------------------------------------------------

policy := input.policy

policy := data.srs_policy if not input.policy

event := input.event

# An optional field: `null` counts as absent (docs/semantics.md).
opt(obj, key, fallback) := value if {
	value := obj[key]
	value != null
} else := fallback

default_states := ["quarantined", "wiped", "retired"]

# --- action classes (SPEC §3, §4) ------------------------------------------------

# Names match case-insensitively with spaces, `_` and `-` ignored.
normalize(name) := lower(replace(replace(replace(name, " ", ""), "_", ""), "-", ""))

builtin_classes := {
	"block": "blocking",
	"quarantine": "blocking",
	"wipe": "blocking",
	"retire": "blocking",
	# EPMM's default action, "Block Email, AppConnect Apps And Send Alert".
	"blockemail,appconnectappsandsendalert": "blocking",
	"sendalert": "non_blocking",
	"email": "non_blocking",
	"notify": "non_blocking",
	"monitor": "non_blocking",
	"pushnotification": "non_blocking",
	"wait": "non_blocking",
}

# The policy's `actions` map, by normalized name.
custom_classes[normalize(name)] := class if some name, class in opt(policy, "actions", {})

# An EPMM tier object: blocking when block, quarantine or wipe is set.
tier_class(tier) := "blocking" if {
	some flag in ["block", "quarantine", "wipe"]
	tier[flag] == true
} else := "non_blocking"

# Built-in names first, then the policy's map, then `unknown_action`
# ("error" never reaches a success decision).
class_of(action) := tier_class(action) if {
	is_object(action)
} else := class if {
	class := builtin_classes[normalize(action)]
} else := class if {
	class := custom_classes[normalize(action)]
} else := opt(policy, "unknown_action", "error")

# An action as the decision shows it: a tier object with all four flags.
shown(action) := {flag: opt(action, flag, false) | some flag in ["alert", "block", "quarantine", "wipe"]} if {
	is_object(action)
} else := action

# --- violations -------------------------------------------------------------------

compliant := event.compliance.compliant

violations := opt(event.compliance, "violations", [])

configured[cp.id] := cp.actions if some cp in opt(policy, "compliance_policies", [])

# Inline actions win: the event is what the UEM reports now.
actions_of(violation) := actions if {
	actions := violation.actions
	actions != null
} else := configured[violation.policy]

# Every {policy, action} pair of class `class`, in input order.
matched_actions(class) := [{"policy": v.policy, "action": shown(action)} |
	some v in violations
	some action in actions_of(v)
	class_of(action) == class
]

# --- triggers -------------------------------------------------------------------

default state_trigger := false

state_trigger if event.device.state in opt(policy, "revoke_on_states", default_states)

blocking_matched := [] if compliant else := matched_actions("blocking")

default blocking_trigger := false

blocking_trigger if count(blocking_matched) > 0

trigger_reasons := array.concat(
	[{"rule": "device-state", "matched": [{"state": event.device.state}]} | state_trigger],
	[{"rule": "blocking-action", "matched": blocking_matched} | blocking_trigger],
)

triggered if count(trigger_reasons) > 0

# --- identities -------------------------------------------------------------------

identity[key] := id if {
	some key in ["upn", "email"]
	id := event.user[key]
	id != null
}

exempt_users := {lower(user) | some user in opt(policy, "exempt_users", [])}

# The event's identity found in exempt_users, upn checked first.
exempt_identity := [id |
	some key in ["upn", "email"]
	id := identity[key]
	lower(id) in exempt_users
][0]

# office365 uses upn, else email; google_workspace uses email, else upn.
subject_order := {"office365": ["upn", "email"], "google_workspace": ["email", "upn"]}

subject(provider) := [id | some key in subject_order[provider]; id := identity[key]][0]

# --- the decision (SPEC §4 step 3–5) ---------------------------------------------

verdict := {
	"outcome": "no_action", "access": "allow",
	"reason": {"rule": "exempt-user", "matched": [{"user": exempt_identity}]},
} if {
	triggered
	exempt_identity
} else := {
	"outcome": "unsupported", "access": "block",
	"reason": {"rule": "unsupported-deployment", "matched": [{"deployment": "access_standalone_sentry"}]},
} if {
	triggered
	policy.deployment == "access_standalone_sentry"
} else := {"outcome": "revoke", "access": "block"} if {
	triggered
} else := {
	"outcome": "no_action", "access": "allow",
	"reason": {"rule": "compliant", "matched": []},
} if {
	compliant
} else := {
	"outcome": "no_action", "access": "allow",
	"reason": {"rule": "non-blocking-only", "matched": matched_actions("non_blocking")},
}

revocations := [{"provider": provider, "subject": subject(provider)} |
	verdict.outcome == "revoke"
	some provider in policy.providers
]

decision := {
	"event_id": event.id,
	"outcome": verdict.outcome,
	"enforced": opt(policy, "mode", "enforce") != "report_only",
	"access": verdict.access,
	"revocations": revocations,
	"reasons": array.concat(trigger_reasons, [reason | reason := verdict.reason]),
}
