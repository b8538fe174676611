//! Properties of the decision over generated policies and events (proptest).

#![expect(clippy::panic, reason = "a test stops at its first failure")]

use policy_core::{
    Access, Action, Answer, Compliance, Deployment, Device, DeviceState, ErrorCode, Event, Matched,
    Mode, Outcome, Policy, Provider, Rule, Tier, Uem, User, Violation, evaluate, evaluate_json_str,
    unix_ms,
};
use proptest::prelude::*;

const STATES: [DeviceState; 9] = [
    DeviceState::Active,
    DeviceState::Quarantined,
    DeviceState::Wiped,
    DeviceState::Retired,
    DeviceState::RetirePending,
    DeviceState::WipePending,
    DeviceState::Blocked,
    DeviceState::Lost,
    DeviceState::Expired,
];

const NON_BLOCKING: [&str; 8] = [
    "Send Alert",
    "SEND_ALERT",
    "email",
    "Notify",
    "monitor",
    "Push Notification",
    "wait",
    "Nag",
];
const BLOCKING: [&str; 6] = [
    "Block",
    "quarantine",
    "WIPE",
    "retire",
    "Lock Down",
    "Block Email, AppConnect Apps And Send Alert",
];

/// Whether the test's own action lists (and the generated policies' `actions`
/// map) call `action` blocking: SPEC §4's classes, independently of policy-core.
fn is_blocking(action: &Action) -> bool {
    match action {
        Action::Name(name) => BLOCKING.contains(&name.as_str()),
        Action::Tier(t) => t.block || t.quarantine || t.wipe,
    }
}

/// An RFC 3339 date-time in one of `years`: a valid date (leap days
/// included), a leap second now and then, `T` or `t`, fractions of 0 to 12
/// digits, and `Z`, `z` or an offset either way. Years 0000 and 9999 are
/// often in their first or last month, where a due time can fall outside them.
fn time(years: impl Strategy<Value = i64>) -> impl Strategy<Value = String> {
    let clock = (
        0..24u32,
        0..60u32,
        prop_oneof![0..60u32, Just(59u32), Just(60u32)],
    );
    let fraction = prop_oneof![
        Just(String::new()),
        "[0-9]{1,12}".prop_map(|digits| format!(".{digits}")),
    ];
    let offset = prop_oneof![
        Just("Z".to_owned()),
        Just("z".to_owned()),
        (prop::sample::select(vec!['+', '-']), 0..24u32, 0..60u32)
            .prop_map(|(sign, h, m)| format!("{sign}{h:02}:{m:02}")),
        Just("+23:59".to_owned()),
        Just("-23:59".to_owned()),
    ];
    // In years 0000 and 9999, half the months are the year's first or last.
    let month = (1..=12i64, any::<bool>());
    (
        years,
        month,
        1..=31i64,
        clock,
        any::<bool>(),
        fraction,
        offset,
    )
        .prop_map(
            |(year, (month, edge), day, (h, m, sec), upper, fraction, offset)| {
                let month = match year {
                    0 if edge => 1,
                    9999 if edge => 12,
                    _ => month,
                };
                let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
                let last = match month {
                    2 if leap => 29,
                    2 => 28,
                    4 | 6 | 9 | 11 => 30,
                    _ => 31,
                };
                let t = if upper { 'T' } else { 't' };
                format!(
                    "{year:04}-{month:02}-{:02}{t}{h:02}:{m:02}:{sec:02}{fraction}{offset}",
                    day.min(last)
                )
            },
        )
}

/// Years whose every time plus any grace period is writable (0000 to 9999 in UTC).
fn safe_years() -> impl Strategy<Value = i64> {
    1..=9998i64
}

/// Years at the edges too: 0000, 9999, and around 1970.
fn edge_years() -> impl Strategy<Value = i64> {
    prop_oneof![
        0..=1i64,
        9998..=9999i64,
        Just(9999i64),
        Just(0i64),
        1969..=1970i64,
        0..=9999i64
    ]
}

fn state() -> impl Strategy<Value = DeviceState> {
    prop::sample::select(STATES.to_vec())
}

fn action(blocking_allowed: bool) -> impl Strategy<Value = Action> {
    let names: Vec<&str> = if blocking_allowed {
        NON_BLOCKING
            .iter()
            .chain(BLOCKING.iter())
            .copied()
            .collect()
    } else {
        NON_BLOCKING.to_vec()
    };
    let name = prop::sample::select(names).prop_map(|n| Action::Name(n.to_owned()));
    let tier = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        move |(a, b, q, w)| {
            let blocking = blocking_allowed;
            Action::Tier(Tier {
                alert: a,
                block: b && blocking,
                quarantine: q && blocking,
                wipe: w && blocking,
            })
        },
    );
    prop_oneof![name, tier]
}

fn user() -> impl Strategy<Value = User> {
    let id = prop::option::of(prop::sample::select(vec![
        "alice@example.com",
        "ALICE@example.com",
        "bob@example.com",
        "carol@corp.example.com",
    ]));
    (id.clone(), id)
        .prop_filter("at least one identity", |(u, e)| u.is_some() || e.is_some())
        .prop_map(|(upn, email)| User {
            upn: upn.map(str::to_owned),
            email: email.map(str::to_owned),
        })
}

fn event(blocking_allowed: bool) -> impl Strategy<Value = Event> {
    event_at(blocking_allowed, prop::option::of(time(safe_years())))
}

fn event_at(
    blocking_allowed: bool,
    time: impl Strategy<Value = Option<String>>,
) -> impl Strategy<Value = Event> {
    let violations = prop::collection::vec(
        (
            prop::sample::select(vec!["jailbreak", "os-version", "passcode"]),
            prop::collection::vec(action(blocking_allowed), 1..4),
        )
            .prop_map(|(policy, actions)| Violation {
                policy: policy.to_owned(),
                actions: Some(actions),
            }),
        0..4,
    );
    (state(), user(), violations, time).prop_map(|(state, user, mut violations, time)| {
        // A violated policy is listed once per event.
        for (i, v) in violations.iter_mut().enumerate() {
            v.policy = format!("{}-{i}", v.policy);
        }
        Event {
            id: "evt-1".to_owned(),
            time,
            device: Device {
                id: "dev-1".to_owned(),
                state,
                platform: None,
            },
            user,
            compliance: Compliance {
                compliant: violations.is_empty(),
                violations,
            },
        }
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    let providers = prop::sample::select(vec![
        vec![Provider::Office365],
        vec![Provider::GoogleWorkspace],
        vec![Provider::Office365, Provider::GoogleWorkspace],
        vec![Provider::GoogleWorkspace, Provider::Office365],
    ]);
    let states = prop::sample::subsequence(STATES.to_vec(), 0..=4);
    let exempt = prop::collection::vec(
        prop::sample::select(vec!["alice@example.com", "Bob@Example.com"]),
        0..2,
    );
    let uem = prop::sample::select(vec![Uem::Epmm, Uem::NeuronsMdm]);
    let deployment =
        prop::sample::select(vec![Deployment::Access, Deployment::AccessStandaloneSentry]);
    let mode = prop::sample::select(vec![Mode::Enforce, Mode::ReportOnly]);
    (
        uem,
        deployment,
        providers,
        mode,
        states,
        exempt,
        grace_seconds(),
    )
        .prop_map(
            |(uem, deployment, providers, mode, states, exempt, grace)| {
                let mut policy = Policy::new(uem, deployment, providers);
                policy.mode = mode;
                policy.revoke_on_states = states;
                policy
                    .actions
                    .insert("Lock Down".to_owned(), policy_core::ActionClass::Blocking);
                policy
                    .actions
                    .insert("Nag".to_owned(), policy_core::ActionClass::NonBlocking);
                policy.exempt_users = exempt.into_iter().map(str::to_owned).collect();
                policy.grace_seconds = grace;
                policy
            },
        )
}

/// Every valid `grace_seconds`, with 0, 1 and the maximum often.
fn grace_seconds() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => Just(0u32),
        1 => Just(1u32),
        1 => Just(Policy::MAX_GRACE_SECONDS),
        1 => Just(Policy::MAX_GRACE_SECONDS - 1),
        3 => 1..=Policy::MAX_GRACE_SECONDS,
    ]
}

/// Whether `seconds` after `time` (fractions dropped) is a UTC second from
/// 0000-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
fn writable(time: &str, seconds: u32) -> bool {
    let instants = (
        unix_ms("0000-01-01T00:00:00Z"),
        unix_ms("9999-12-31T23:59:59Z"),
        unix_ms(time),
    );
    let (Some(first), Some(last), Some(time_ms)) = instants else {
        panic!("not RFC 3339: {instants:?} ({time})");
    };
    let due = time_ms.div_euclid(1000) + i64::from(seconds);
    (first / 1000..=last / 1000).contains(&due)
}

/// Whether `s` is written `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_seconds_form(s: &str) -> bool {
    s.len() == 20
        && s.bytes().enumerate().all(|(i, c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn decision(answer: Answer) -> policy_core::Decision {
    match answer {
        Answer::Success {
            decision: Some(d), ..
        } => d,
        other => panic!("expected a decision, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary text never panics and always gives a tagged answer.
    #[test]
    fn arbitrary_strings_give_a_tagged_answer(input in ".{0,300}") {
        let answer: serde_json::Value = serde_json::from_str(&evaluate_json_str(&input)).unwrap();
        let kind = answer["type"].as_str().unwrap();
        prop_assert!(kind == "success" || kind == "failure");
    }

    /// Arbitrary JSON-shaped text around a valid skeleton never panics either.
    #[test]
    fn arbitrary_json_gives_a_tagged_answer(policy in arb_json(), event in arb_json()) {
        let request = serde_json::json!({"policy": policy, "event": event}).to_string();
        let answer: serde_json::Value = serde_json::from_str(&evaluate_json_str(&request)).unwrap();
        prop_assert!(answer["type"] == "success" || answer["type"] == "failure");
    }

    /// Only non-blocking actions, in a state that does not revoke: never revoke.
    #[test]
    fn non_blocking_only_never_revokes(policy in policy(), event in event(false)) {
        prop_assume!(!policy.revoke_on_states.contains(&event.device.state));
        let d = decision(evaluate(&policy, &event));
        prop_assert_eq!(d.outcome, Outcome::NoAction);
        prop_assert!(d.revocations.is_empty());
    }

    /// `report_only` changes `enforced` and nothing else.
    #[test]
    fn report_only_changes_only_enforced(policy in policy(), event in event(true)) {
        let mut enforce = policy.clone();
        enforce.mode = Mode::Enforce;
        let mut report = policy;
        report.mode = Mode::ReportOnly;
        let a = decision(evaluate(&enforce, &event));
        let mut b = decision(evaluate(&report, &event));
        prop_assert!(a.enforced);
        prop_assert!(!b.enforced);
        b.enforced = true;
        prop_assert_eq!(a, b);
    }

    /// Revocations name only configured providers, in the policy's order, once each.
    #[test]
    fn revocations_follow_configured_providers(policy in policy(), event in event(true)) {
        let d = decision(evaluate(&policy, &event));
        let named: Vec<Provider> = d.revocations.iter().map(|r| r.provider).collect();
        match d.outcome {
            Outcome::Revoke => prop_assert_eq!(&named, &policy.providers),
            _ => prop_assert!(named.is_empty()),
        }
    }

    /// Exempt users are never revoked and never blocked.
    #[test]
    fn exempt_users_never_revoke(mut policy in policy(), event in event(true)) {
        let identity = event.user.email.clone().or(event.user.upn.clone()).unwrap();
        policy.exempt_users.push(identity.to_uppercase());
        let d = decision(evaluate(&policy, &event));
        prop_assert_eq!(d.outcome, Outcome::NoAction);
        prop_assert!(d.revocations.is_empty());
        prop_assert_eq!(d.access, policy_core::Access::Allow);
    }

    /// SPEC §4 step 3a: the outcome is `grace` exactly when a grace period is
    /// set, `blocking-action` is the only trigger, the event has a time, the
    /// user is not exempt and the deployment can revoke, and then the due
    /// time must be writable (else `invalid-value` at `event.time`). Without a
    /// time such an event is revoked at once, with a `missing-field` warning.
    #[test]
    fn grace_exactly_when_step_3a_applies(
        policy in policy(),
        event in event_at(true, prop::option::of(time(edge_years()))),
    ) {
        let blocking = event
            .compliance
            .violations
            .iter()
            .any(|v| v.actions.iter().flatten().any(is_blocking));
        let state = policy.revoke_on_states.contains(&event.device.state);
        let exempt = policy.exempt_users.iter().any(|x| {
            [&event.user.upn, &event.user.email]
                .into_iter()
                .flatten()
                .any(|id| id.eq_ignore_ascii_case(x))
        });
        let standalone = policy.deployment == Deployment::AccessStandaloneSentry;
        let waits = policy.grace_seconds > 0 && blocking && !state && !exempt && !standalone;
        let answer = evaluate(&policy, &event);
        match &event.time {
            Some(time) if waits && !writable(time, policy.grace_seconds) => {
                let Answer::Failure { errors } = answer else {
                    panic!("{time} + {}: expected a failure, got {answer:?}", policy.grace_seconds);
                };
                let found: Vec<_> = errors.iter().map(|e| (e.code, e.path.as_str())).collect();
                prop_assert_eq!(found, vec![(ErrorCode::InvalidValue, "event.time")]);
            }
            time => {
                let warnings = match &answer {
                    Answer::Success { warnings, .. } => warnings.clone(),
                    Answer::Failure { .. } => Vec::new(),
                };
                let d = decision(answer);
                prop_assert_eq!(d.outcome == Outcome::Grace, waits && time.is_some());
                prop_assert_eq!(d.scheduled.is_some(), d.outcome == Outcome::Grace);
                let missing_time = warnings
                    .iter()
                    .filter(|w| w.code == ErrorCode::MissingField && w.path == "event.time")
                    .count();
                prop_assert_eq!(missing_time, usize::from(waits && time.is_none()));
                if d.outcome == Outcome::Grace {
                    prop_assert_eq!(d.access, Access::Allow);
                    prop_assert!(d.revocations.is_empty());
                    let rules: Vec<Rule> = d.reasons.iter().map(|r| r.rule).collect();
                    prop_assert_eq!(rules, vec![Rule::BlockingAction, Rule::GracePeriod]);
                }
            }
        }
    }

    /// `scheduled.revocations` are the revocations the same event gets under
    /// the same policy without a grace period; nothing else about the
    /// decision but outcome, access, revocations and the grace reason differs.
    #[test]
    fn scheduled_is_what_no_grace_revokes(policy in policy(), event in event(true)) {
        let mut now = policy.clone();
        now.grace_seconds = 0;
        let later = decision(evaluate(&policy, &event));
        let now = decision(evaluate(&now, &event));
        match later.scheduled.as_deref() {
            Some(scheduled) => {
                prop_assert_eq!(now.outcome, Outcome::Revoke);
                prop_assert_eq!(&scheduled.revocations, &now.revocations);
                prop_assert!(!scheduled.revocations.is_empty());
                prop_assert_eq!(later.enforced, now.enforced);
                prop_assert_eq!(later.reasons.get(..now.reasons.len()), Some(now.reasons.as_slice()));
                prop_assert_eq!(later.reasons.len(), now.reasons.len() + 1);
            }
            None => prop_assert_eq!(later, now),
        }
    }

    /// `due` is `event.time` plus `grace_seconds` in whole UTC seconds,
    /// written `YYYY-MM-DDTHH:MM:SSZ`, and the grace-period reason says the same.
    #[test]
    fn due_is_time_plus_grace(
        mut policy in policy(),
        grace in 1..=Policy::MAX_GRACE_SECONDS,
        mut event in event_at(true, time(edge_years()).prop_map(Some)),
    ) {
        policy.grace_seconds = grace;
        policy.deployment = Deployment::Access;
        policy.exempt_users.clear();
        policy.revoke_on_states.clear();
        event.compliance.violations.push(Violation {
            policy: "jailbreak".to_owned(),
            actions: Some(vec![Action::Name("Block".to_owned())]),
        });
        event.compliance.compliant = false;
        let time = event.time.clone().unwrap();
        prop_assume!(writable(&time, grace));
        let d = decision(evaluate(&policy, &event));
        let scheduled = d.scheduled.as_deref().unwrap();
        prop_assert!(utc_seconds_form(&scheduled.due), "{}", scheduled.due);
        prop_assert_eq!(
            unix_ms(&scheduled.due),
            Some(unix_ms(&time).unwrap().div_euclid(1000) * 1000 + i64::from(grace) * 1000),
            "{} + {}", time, grace
        );
        let grace_reason = d.reasons.iter().find(|r| r.rule == Rule::GracePeriod).unwrap();
        prop_assert_eq!(
            &grace_reason.matched,
            &vec![Matched::Grace { grace_seconds: grace, due: scheduled.due.clone() }]
        );
    }

    /// A grace period past 30 days is refused, as `invalid-value` at its path.
    #[test]
    fn grace_past_30_days_is_refused(
        mut policy in policy(),
        grace in (Policy::MAX_GRACE_SECONDS + 1)..=u32::MAX,
        event in event(true),
    ) {
        policy.grace_seconds = grace;
        let Answer::Failure { errors } = evaluate(&policy, &event) else {
            panic!("grace_seconds {grace} was accepted");
        };
        let found: Vec<_> = errors.iter().map(|e| (e.code, e.path.as_str())).collect();
        prop_assert_eq!(found, vec![(ErrorCode::InvalidValue, "policy.grace_seconds")]);
    }

    /// The typed API and the JSON API agree.
    #[test]
    fn typed_and_json_agree(policy in policy(), event in event(true)) {
        let request = serde_json::json!({"policy": policy, "event": event}).to_string();
        prop_assert_eq!(evaluate(&policy, &event).to_json(), evaluate_json_str(&request));
    }
}

/// The grace properties are not vacuous: the generators reach a grace
/// outcome, an event without a time under a grace period, and a due time
/// past year 9999 or before year 0000, each many times in 512 draws.
#[test]
fn generators_reach_every_grace_case() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let strategy = (
        policy(),
        event_at(true, prop::option::of(time(edge_years()))),
    );
    let mut runner = TestRunner::deterministic();
    let (mut grace, mut untimed, mut unwritable) = (0, 0, 0);
    for _ in 0..512 {
        let (policy, event) = strategy.new_tree(&mut runner).unwrap().current();
        match evaluate(&policy, &event) {
            Answer::Success {
                decision: Some(d),
                warnings,
                ..
            } => {
                grace += usize::from(d.outcome == Outcome::Grace);
                untimed += usize::from(warnings.iter().any(|w| w.path == "event.time"));
            }
            Answer::Failure { errors } => {
                unwritable += usize::from(errors.iter().any(|e| e.path == "event.time"));
            }
            Answer::Success { decision: None, .. } => panic!("no decision"),
        }
    }
    assert!(
        grace >= 20 && untimed >= 10 && unwritable >= 5,
        "grace {grace}, without time {untimed}, unwritable due {unwritable}"
    );
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![
            "epmm",
            "access",
            "office365",
            "Block",
            "active",
            "quarantined",
            "",
            "x@y"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    let keys = prop::sample::select(vec![
        "uem",
        "deployment",
        "providers",
        "mode",
        "actions",
        "id",
        "device",
        "state",
        "user",
        "upn",
        "email",
        "compliance",
        "compliant",
        "violations",
        "policy",
        "block",
        "bogus",
    ]);
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}
