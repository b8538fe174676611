# SPEC §4 "The rules", as Rego: the peer the benchmarks compare policy-core with.
#
# Input: the request envelope of the core ABI's `srs_evaluate` (SPEC §6),
#   {"policy": …, "event": …}
# or, on the kept-policy path, {"event": …} with the policy in `data.srs_policy`.
#
# Output: `data.srs.decision`, the success decision of SPEC §5 without the
# messages: event_id, outcome, enforced, access, revocations (in the order of
# `providers`), scheduled (outcome grace only) and reasons as
# {"rule", "matched"} in rule order.
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

# What `revoke` revokes, now or, after a grace period, at `due`.
revoke_list := [{"provider": provider, "subject": subject(provider)} |
	verdict.outcome == "revoke"
	some provider in policy.providers
]

# --- the grace period (SPEC §4 step 3a) -------------------------------------------

grace_seconds := opt(policy, "grace_seconds", 0)

# A revoke triggered by a blocking action alone waits when the event has a
# time; a device state never waits. Without `time` the outcome stays revoke
# (policy-core adds a warning, which this peer does not replicate), and a due
# outside years 0000..9999 is a failure answer, which is not compared.
default waits := false

waits if {
	verdict.outcome == "revoke"
	not state_trigger
	grace_seconds > 0
	due
}

due := utc_after(opt(event, "time", null), grace_seconds)

grace_reasons := [{"rule": "grace-period", "matched": [{"grace_seconds": grace_seconds, "due": due}]} | waits]

revocations := [] if waits else := revoke_list

outcome := "grace" if waits else := verdict.outcome

access := "allow" if waits else := verdict.access

decision_fields := {
	"event_id": event.id,
	"outcome": outcome,
	"enforced": opt(policy, "mode", "enforce") != "report_only",
	"access": access,
	"revocations": revocations,
	"reasons": array.concat(array.concat(trigger_reasons, grace_reasons), [reason | reason := verdict.reason]),
}

decision := object.union(decision_fields, {"scheduled": {"due": due, "revocations": revoke_list}}) if {
	waits
} else := decision_fields

# --- RFC 3339 date-time + seconds, in UTC (no time builtins: the instant may
# lie anywhere in years 0000..9999, beyond what nanoseconds since 1970 hold) ---

digit := {"0": 0, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9}

# The number written by the two (four) digits of `s` from index `i`.
num2(s, i) := digit[substring(s, i, 1)] * 10 + digit[substring(s, i + 1, 1)]

num4(s, i) := num2(s, i) * 100 + num2(s, i + 2)

# Integer division of a non-negative `a`, exact: no floats.
idiv(a, b) := (a - (a % b)) / b

# The offset in seconds east of UTC: `Z`/`z`, or `±HH:MM` at the end.
utc_offset(t) := 0 if {
	upper(substring(t, count(t) - 1, 1)) == "Z"
} else := sign * (num2(t, count(t) - 5) * 3600 + num2(t, count(t) - 2) * 60) if {
	sign := {"+": 1, "-": -1}[substring(t, count(t) - 6, 1)]
}

# Days since 0000-03-01 of a date 400 years on (one Gregorian cycle), so that
# every quantity below stays non-negative (H. Hinnant's algorithm).
shifted_days(year, month, day) := days if {
	y := (year + 400) - january_or_february(month)
	era := idiv(y, 400)
	yoe := y - era * 400
	mp := (month + 9) % 12
	doy := idiv(153 * mp + 2, 5) + day - 1
	doe := ((yoe * 365 + idiv(yoe, 4)) - idiv(yoe, 100)) + doy
	days := era * 146097 + doe
}

# The inverse: (year, month, day) of shifted days `z`.
civil(z) := [year, month, day] if {
	era := idiv(z, 146097)
	doe := z - era * 146097
	yoe := idiv(((doe - idiv(doe, 1460)) + idiv(doe, 36524)) - idiv(doe, 146096), 365)
	doy := doe - ((365 * yoe + idiv(yoe, 4)) - idiv(yoe, 100))
	mp := idiv(5 * doy + 2, 153)
	day := (doy - idiv(153 * mp + 2, 5)) + 1
	month := month_of(mp)
	year := ((yoe + era * 400) + january_or_february(month)) - 400
}

month_of(mp) := mp + 3 if mp < 10 else := mp - 9

# The algorithm counts years from March: January and February belong to the year before.
january_or_february(month) := 1 if month <= 2 else := 0

# `t` + `seconds` as `YYYY-MM-DDTHH:MM:SSZ`: fractions dropped (a fraction only
# ever adds to the whole seconds written, so dropping it is the floor), a leap
# second read as :59; undefined outside years 0000..9999.
utc_after(t, seconds) := sprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", [ymd[0], ymd[1], ymd[2], idiv(sod, 3600), idiv(sod, 60) % 60, sod % 60]) if {
	is_string(t)
	clock := (num2(t, 11) * 3600 + num2(t, 14) * 60) + min([num2(t, 17), 59])
	at := ((shifted_days(num4(t, 0), num2(t, 5), num2(t, 8)) * 86400 + clock) - utc_offset(t)) + seconds
	z := idiv(at, 86400)
	sod := at - z * 86400
	ymd := civil(z)
	ymd[0] >= 0
	ymd[0] <= 9999
}
