//! Properties of the decision over generated policies and events (proptest).

#![expect(clippy::panic, reason = "a test stops at its first failure")]

use policy_core::{
    Action, Answer, Compliance, Deployment, Device, DeviceState, Event, Mode, Outcome, Policy,
    Provider, Tier, Uem, User, Violation, evaluate, evaluate_json_str,
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
    (state(), user(), violations).prop_map(|(state, user, mut violations)| {
        // A violated policy is listed once per event.
        for (i, v) in violations.iter_mut().enumerate() {
            v.policy = format!("{}-{i}", v.policy);
        }
        Event {
            id: "evt-1".to_owned(),
            time: None,
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
    (uem, deployment, providers, mode, states, exempt).prop_map(
        |(uem, deployment, providers, mode, states, exempt)| {
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
            policy
        },
    )
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

    /// The typed API and the JSON API agree.
    #[test]
    fn typed_and_json_agree(policy in policy(), event in event(true)) {
        let request = serde_json::json!({"policy": policy, "event": event}).to_string();
        prop_assert_eq!(evaluate(&policy, &event).to_json(), evaluate_json_str(&request));
    }
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
