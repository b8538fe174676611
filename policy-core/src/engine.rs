//! The rules of SPEC §4: a validated policy kept as an [`Engine`], the
//! decision for one event, and the JSON entry points that lead to them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::actions::{builtin_class, normalize, tier_class};
use crate::answer::{
    Access, Answer, Decision, Diagnostic, ErrorCode, Matched, Outcome, PolicySummary, Reason,
    Revocation, Rule, Scheduled,
};
use crate::case::{lowercase, lowercases_to};
use crate::checks;
use crate::diag::{MAX_ITEMS, Path, Sink, clip, too_many};
use crate::json;
use crate::model::{
    Action, ActionClass, CompliancePolicy, Deployment, Event, EventRef, Mode, Policy, Provider,
    UnknownAction, Violation,
};
use crate::read;
use crate::schema::{self, EventParts, PolicyParts};
use crate::time;

/// A violated policy's id and its classified actions.
type Violated<'e> = (&'e str, Vec<(Action, ActionClass)>);

/// A validated policy, ready to evaluate events.
///
/// Validation happens once, in [`Engine::new`]: action names are normalized
/// and every action in `compliance_policies` is classified, so an unknown one
/// fails here, referenced by an event or not.
#[derive(Debug, Clone)]
pub struct Engine {
    policy: Policy,
    classifier: Classifier,
    /// Configured compliance policies by id: their actions and classes.
    compliance: BTreeMap<String, Vec<(Action, ActionClass)>>,
    /// `exempt_users`, lowercased.
    exempt: Vec<String>,
    /// Warnings about the policy, repeated in every answer.
    warnings: Vec<Diagnostic>,
}

impl Engine {
    /// Validates `policy`; the error lists every problem found.
    pub fn new(policy: Policy) -> Result<Self, Vec<Diagnostic>> {
        let mut sink = Sink::default();
        checks::policy(&policy, &mut sink);
        Self::build(policy, sink)
    }

    /// Validates a policy given as JSON (paths start at `policy`).
    pub fn from_json(policy: &[u8]) -> Result<Self, Answer> {
        let mut sink = Sink::default();
        let engine = json::read(policy, &Path::root("policy"), &mut sink)
            .and_then(|value| compile(&value, &mut sink));
        engine.ok_or(Answer::Failure {
            errors: sink.errors,
        })
    }

    /// Finishes validating a policy as the schema walk left it: `sink` holds
    /// its errors so far, and compliance policies are still classified when
    /// the fields that classify them were read.
    fn from_parts(parts: PolicyParts, mut sink: Sink) -> Result<Self, Vec<Diagnostic>> {
        match parts.complete() {
            Ok(policy) => Self::build(policy, sink),
            Err(parts) => {
                if let (Some(actions), Some(unknown), Some(list)) = (
                    &parts.actions,
                    parts.unknown_action,
                    &parts.compliance_policies,
                ) {
                    Classifier::new(actions, unknown).compliance(list, &mut sink);
                }
                Err(sink.errors)
            }
        }
    }

    /// Classifies the compliance policies of a checked policy.
    fn build(policy: Policy, mut sink: Sink) -> Result<Self, Vec<Diagnostic>> {
        let classifier = Classifier::new(&policy.actions, policy.unknown_action);
        let compliance = classifier.compliance(&policy.compliance_policies, &mut sink);
        if !sink.errors.is_empty() {
            return Err(sink.errors);
        }
        let exempt = policy.exempt_users.iter().map(|u| lowercase(u)).collect();
        Ok(Self {
            policy,
            classifier,
            compliance,
            exempt,
            warnings: sink.warnings,
        })
    }

    /// The policy this engine evaluates.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Warnings about the policy, such as unknown actions it treats by `unknown_action`.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// What this policy will ask of its host.
    pub fn summary(&self) -> PolicySummary {
        PolicySummary {
            providers: self.policy.providers.clone(),
            mode: self.policy.mode,
            grace_seconds: self.policy.grace_seconds,
        }
    }

    /// The answer `srs_set_policy` gives for a policy that was kept.
    pub fn accepted(&self) -> Answer {
        Answer::Success {
            decision: None,
            policy: Some(Box::new(self.summary())),
            warnings: self.warnings.clone(),
        }
    }

    /// Evaluates one event against this policy.
    pub fn evaluate(&self, event: &Event) -> Answer {
        let event = EventRef::from(event);
        let mut sink = Sink::default();
        checks::event(&event, &mut sink);
        self.evaluate_checked(event, sink)
    }

    /// Evaluates an event given as JSON (paths start at `event`). The common
    /// case is read in one pass without looking for errors; anything else
    /// by the single-pass reader, which finds every error; input that one
    /// gives up on (any that is not well-formed JSON) is read again the old
    /// way, which words the `malformed-json` error. With the feature
    /// `small`, anything but the common case is read the old way.
    pub fn evaluate_json(&self, event: &[u8]) -> Answer {
        // The common case first, read without finding errors and borrowed
        // from the text: when its checks find none either, it is the event
        // `read::event` builds.
        if let Some(plain) = read::plain_event(event) {
            let view = plain.view();
            let mut sink = Sink::default();
            checks::event(&view, &mut sink);
            if sink.errors.is_empty() && sink.warnings.is_empty() {
                return self.evaluate_checked(view, sink);
            }
        }
        if cfg!(feature = "small") {
            return self.evaluate_json_via_value(event);
        }
        let mut sink = Sink::default();
        let parts = match read::event(event, &mut sink) {
            Ok(parts) => parts,
            Err(read::Fallback) => return self.evaluate_json_via_value(event),
        };
        self.evaluate_parts(parts, sink)
    }

    /// [`Engine::evaluate_json`] the old way: the text into a
    /// `serde_json::Value`, then the schema walk over it. The same answer
    /// for every input; kept for the differential tests and fuzz target.
    #[doc(hidden)]
    pub fn evaluate_json_via_value(&self, event: &[u8]) -> Answer {
        let mut sink = Sink::default();
        let parts = json::read(event, &Path::root("event"), &mut sink)
            .map(|value| schema::event(&value, &mut sink))
            .unwrap_or_default();
        self.evaluate_parts(parts, sink)
    }

    /// Evaluates an event as the schema walk left it: `sink` holds its
    /// errors so far, and the parts that were read are still classified.
    fn evaluate_parts(&self, parts: EventParts, mut sink: Sink) -> Answer {
        match parts.complete() {
            Ok(event) => self.evaluate_checked(EventRef::from(&event), sink),
            Err(parts) => {
                if let Some(compliance) = &parts.compliance {
                    self.violations(&compliance.violations, &mut sink);
                }
                Answer::Failure {
                    errors: sink.errors,
                }
            }
        }
    }

    /// Evaluates an event whose checks have run, their findings in `sink`.
    /// Not inlined: each entry point calling it inlined the decision again
    /// (about 6 KB of module per copy).
    #[inline(never)]
    fn evaluate_checked(&self, event: EventRef<'_>, mut sink: Sink) -> Answer {
        let violations = self.violations(event.violations, &mut sink);
        self.answer(sink, &event, violations)
    }

    fn answer(
        &self,
        mut sink: Sink,
        event: &EventRef<'_>,
        violations: Vec<Violated<'_>>,
    ) -> Answer {
        let decision = if sink.errors.is_empty() {
            Some(self.decide(event, &violations, &mut sink))
        } else {
            None
        };
        match decision {
            Some(decision) if sink.errors.is_empty() => {
                let mut warnings = self.warnings.clone();
                warnings.extend(sink.warnings);
                Answer::Success {
                    decision: Some(decision),
                    policy: None,
                    warnings,
                }
            }
            _ => Answer::Failure {
                errors: sink.errors,
            },
        }
    }

    /// Each violation's policy id and its classified actions: inline if the
    /// event gives them, else the configured compliance policy's.
    fn violations<'e>(&'e self, violations: &'e [Violation], sink: &mut Sink) -> Vec<Violated<'e>> {
        let root = Path::root("event");
        let path = root.field("compliance");
        let list = path.field("violations");
        if violations.len() > MAX_ITEMS {
            return Vec::new(); // reported by checks::compliance
        }
        let mut out = Vec::with_capacity(violations.len());
        for (i, violation) in violations.iter().enumerate() {
            let path = list.index(i);
            let policy = violation.policy.as_str();
            let actions = match &violation.actions {
                Some(actions) => {
                    self.classifier
                        .classify_list(actions, &path.field("actions"), sink)
                }
                None => match self.compliance.get(policy) {
                    Some(configured) => configured.clone(),
                    None => {
                        let message = format!(
                            "compliance policy `{}` is not in policy.compliance_policies; give its actions inline or configure it",
                            clip(policy)
                        );
                        sink.error(
                            ErrorCode::UnknownCompliancePolicy,
                            &path.field("policy"),
                            message,
                        );
                        Vec::new()
                    }
                },
            };
            out.push((policy, actions));
        }
        out
    }

    /// The decision of SPEC §4 steps 2 to 5; a grace period that cannot be
    /// scheduled is an error, and one that cannot start a warning, in `sink`.
    fn decide(
        &self,
        event: &EventRef<'_>,
        violations: &[Violated<'_>],
        sink: &mut Sink,
    ) -> Decision {
        let policy = &self.policy;
        let state = event.state;
        let state_trigger = policy.revoke_on_states.contains(&state);
        let matched = |want: ActionClass| -> Vec<Matched> {
            violations
                .iter()
                .flat_map(|(id, actions)| {
                    actions
                        .iter()
                        .filter(move |(_, c)| *c == want)
                        .map(move |(a, _)| Matched::Action {
                            policy: (*id).to_owned(),
                            action: a.clone(),
                        })
                })
                .collect()
        };
        let blocking = if event.compliant {
            Vec::new()
        } else {
            matched(ActionClass::Blocking)
        };
        let exempt_as = self.exempt_identity(event);
        let standalone = policy.deployment == Deployment::AccessStandaloneSentry;

        let mut reasons = Vec::new();
        if state_trigger {
            reasons.push(reason(
                Rule::DeviceState,
                format!("device state `{state}` is in revoke_on_states"),
                vec![Matched::State { state }],
            ));
        }
        if !blocking.is_empty() {
            let message = format!(
                "the device is out of compliance and a violated policy has a blocking action ({} matched)",
                blocking.len()
            );
            reasons.push(reason(Rule::BlockingAction, message, blocking));
        }
        let triggered = !reasons.is_empty();

        let (outcome, access) = match (triggered, exempt_as, standalone) {
            // A trigger, but the user is exempt: never revoked, never blocked.
            (true, Some(user), _) => {
                let message = format!("user `{user}` is in exempt_users");
                reasons.push(reason(
                    Rule::ExemptUser,
                    message,
                    vec![Matched::User {
                        user: user.to_owned(),
                    }],
                ));
                (Outcome::NoAction, Access::Allow)
            }
            // A trigger where revocation is unsupported: say so, still block at the gate.
            (true, None, true) => {
                let message =
                    "Access + Standalone Sentry deployments do not support session revocation";
                let deployment = Deployment::AccessStandaloneSentry;
                reasons.push(reason(
                    Rule::UnsupportedDeployment,
                    message.to_owned(),
                    vec![Matched::Deployment { deployment }],
                ));
                (Outcome::Unsupported, Access::Block)
            }
            // A trigger: revoke at every configured provider and block at the gate.
            (true, None, false) => (Outcome::Revoke, Access::Block),
            // No trigger, compliant.
            (false, _, _) if event.compliant => {
                reasons.push(reason(
                    Rule::Compliant,
                    "the device is compliant".to_owned(),
                    Vec::new(),
                ));
                (Outcome::NoAction, Access::Allow)
            }
            // No trigger, out of compliance with only non-blocking actions.
            (false, _, _) => {
                let message =
                    "the device is out of compliance, but no violated policy has a blocking action";
                reasons.push(reason(
                    Rule::NonBlockingOnly,
                    message.to_owned(),
                    matched(ActionClass::NonBlocking),
                ));
                (Outcome::NoAction, Access::Allow)
            }
        };

        let mut decision = Decision {
            event_id: event.id.to_owned(),
            outcome,
            enforced: policy.mode == Mode::Enforce,
            access,
            revocations: Vec::new(),
            scheduled: None,
            reasons,
        };
        if outcome == Outcome::Revoke {
            decision.revocations = policy
                .providers
                .iter()
                .filter_map(|&provider| {
                    subject(provider, event).map(|subject| Revocation {
                        provider,
                        subject: subject.to_owned(),
                    })
                })
                .collect();
            // Step 3a: a blocking action alone may wait; a device state never does.
            if policy.grace_seconds > 0 && !state_trigger {
                self.grace(event, &mut decision, sink);
            }
        }
        decision
    }

    /// Turns a `revoke` decision into `grace` (SPEC §4 step 3a), or says why
    /// it cannot: no `time` keeps `revoke` with a warning, and a `due` that
    /// cannot be written is an error.
    fn grace(&self, event: &EventRef<'_>, decision: &mut Decision, sink: &mut Sink) {
        let seconds = self.policy.grace_seconds;
        let root = Path::root("event");
        let path = root.field("time");
        let Some(time) = event.time else {
            let message = format!(
                "the event has no `time`, so its {seconds}-second grace period cannot start; revoked at once"
            );
            sink.warning(ErrorCode::MissingField, &path, message);
            return;
        };
        let Some(due) = time::after(time, seconds) else {
            let message = format!(
                "`{}` plus a {seconds}-second grace period is not a UTC date-time from year 0000 to 9999-12-31T23:59:59Z",
                clip(time)
            );
            sink.error(ErrorCode::InvalidValue, &path, message);
            return;
        };
        decision.outcome = Outcome::Grace;
        decision.access = Access::Allow;
        decision.reasons.push(reason(
            Rule::GracePeriod,
            format!("the device has {seconds} seconds to become compliant; its sessions are revoked at {due} unless it does"),
            vec![Matched::Grace {
                grace_seconds: seconds,
                due: due.clone(),
            }],
        ));
        decision.scheduled = Some(Box::new(Scheduled {
            due,
            revocations: std::mem::take(&mut decision.revocations),
        }));
    }

    /// The event identity (upn first, then email) found in `exempt_users`.
    fn exempt_identity<'e>(&self, event: &EventRef<'e>) -> Option<&'e str> {
        [event.upn, event.email]
            .into_iter()
            .flatten()
            .find(|id| self.exempt.iter().any(|e| lowercases_to(id, e)))
    }
}

/// How action names are classified under one policy.
#[derive(Debug, Clone)]
struct Classifier {
    /// Custom action classes by normalized name; conflicts are reported by
    /// `checks::action_map`, and the first spelling wins here.
    custom: BTreeMap<String, ActionClass>,
    unknown: UnknownAction,
}

impl Classifier {
    fn new(actions: &BTreeMap<String, ActionClass>, unknown: UnknownAction) -> Self {
        let mut custom = BTreeMap::new();
        for (name, class) in actions {
            custom.entry(normalize(name)).or_insert(*class);
        }
        Self { custom, unknown }
    }

    /// Each configured compliance policy's actions, classified; the first of
    /// a duplicated id wins (`checks::compliance_policies` reports it).
    fn compliance(
        &self,
        list: &[CompliancePolicy],
        sink: &mut Sink,
    ) -> BTreeMap<String, Vec<(Action, ActionClass)>> {
        let mut out = BTreeMap::new();
        if list.len() > MAX_ITEMS {
            return out;
        }
        let root = Path::root("policy");
        let path = root.field("compliance_policies");
        for (i, cp) in list.iter().enumerate() {
            let item = path.index(i);
            let classified = self.classify_list(&cp.actions, &item.field("actions"), sink);
            out.entry(cp.id.clone()).or_insert(classified);
        }
        out
    }

    /// Classifies a non-empty list of actions; an unknown name is an error or
    /// a warning as `unknown_action` says.
    fn classify_list(
        &self,
        actions: &[Action],
        path: &Path<'_>,
        sink: &mut Sink,
    ) -> Vec<(Action, ActionClass)> {
        if actions.is_empty() {
            sink.error(
                ErrorCode::InvalidValue,
                path,
                "at least one action is required; leave `actions` out to look them up",
            );
            return Vec::new();
        }
        if actions.len() > MAX_ITEMS {
            too_many(actions.len(), path, sink);
            return Vec::new();
        }
        let mut out = Vec::with_capacity(actions.len());
        for (j, action) in actions.iter().enumerate() {
            if let Some(class) = self.classify(action, &path.index(j), sink) {
                out.push((action.clone(), class));
            }
        }
        out
    }

    fn classify(&self, action: &Action, path: &Path<'_>, sink: &mut Sink) -> Option<ActionClass> {
        let name = match action {
            Action::Tier(tier) => return Some(tier_class(tier)),
            Action::Name(name) => name,
        };
        let key = normalize(name);
        if let Some(class) = builtin_class(&key).or_else(|| self.custom.get(&key).copied()) {
            return Some(class);
        }
        let class = match self.unknown {
            UnknownAction::Error => {
                let message = format!(
                    "action `{}` is not known; map it in policy.actions",
                    clip(name)
                );
                sink.error(ErrorCode::UnknownAction, path, message);
                return None;
            }
            UnknownAction::Blocking => ActionClass::Blocking,
            UnknownAction::NonBlocking => ActionClass::NonBlocking,
        };
        let message = format!(
            "action `{}` is not known; treated as {} by policy.unknown_action",
            clip(name),
            class.prose()
        );
        sink.warning(ErrorCode::UnknownAction, path, message);
        Some(class)
    }
}

/// Evaluates a request envelope `{"policy": …, "event": …}` (SPEC §6) and
/// returns the answer as JSON. Every bad input is a failure answer.
pub fn evaluate_json_str(request: &str) -> String {
    evaluate_request(request.as_bytes()).to_json()
}

/// [`evaluate_json_str`] over bytes, which need not be UTF-8.
pub fn evaluate_json_bytes(request: &[u8]) -> String {
    evaluate_request(request).to_json()
}

/// Evaluates a request envelope given as JSON bytes: the envelope and the
/// event read in one pass, the policy's text then read as a `Value`; input
/// the reader gives up on is read again the old way (see [`Engine::evaluate_json`]).
/// With the feature `small`, the old way only.
pub fn evaluate_request(request: &[u8]) -> Answer {
    if cfg!(feature = "small") {
        return evaluate_request_via_value(request);
    }
    let mut sink = Sink::default();
    let Ok((policy, event)) = read::request(request, &mut sink) else {
        return evaluate_request_via_value(request);
    };
    // Well-formed text, read again alone: the same `Value` as in the whole.
    let engine = policy.and_then(|policy| {
        json::read(policy.as_bytes(), &Path::root("policy"), &mut sink)
            .and_then(|value| compile(&value, &mut sink))
    });
    let parts = match event {
        Some((parts, errors)) => {
            sink.append(errors);
            parts
        }
        None => EventParts::default(),
    };
    match engine {
        Some(engine) => engine.evaluate_parts(parts, sink),
        None => Answer::Failure {
            errors: sink.errors,
        },
    }
}

/// [`evaluate_request`] the old way: the whole text into a
/// `serde_json::Value`, then the schema walk. Kept for the differential tests.
#[doc(hidden)]
pub fn evaluate_request_via_value(request: &[u8]) -> Answer {
    let mut sink = Sink::default();
    let Some(value) = json::read(request, &Path::root(""), &mut sink) else {
        return Answer::Failure {
            errors: sink.errors,
        };
    };
    let (policy, event) = schema::request(&value, &mut sink);
    let engine = policy.and_then(|policy| compile(policy, &mut sink));
    let parts = event
        .map(|event| schema::event(event, &mut sink))
        .unwrap_or_default();
    match engine {
        Some(engine) => engine.evaluate_parts(parts, sink),
        None => Answer::Failure {
            errors: sink.errors,
        },
    }
}

/// Walks and validates a policy; `None` (with errors in `sink`) if it is invalid.
fn compile(policy: &Value, sink: &mut Sink) -> Option<Engine> {
    let mut own = Sink::default();
    let parts = schema::policy(policy, &mut own);
    match Engine::from_parts(parts, own) {
        Ok(engine) => Some(engine),
        Err(errors) => {
            sink.append_errors(errors);
            None
        }
    }
}

/// Evaluates `event` under `policy`: one call validating both.
pub fn evaluate(policy: &Policy, event: &Event) -> Answer {
    match Engine::new(policy.clone()) {
        Ok(engine) => engine.evaluate(event),
        Err(errors) => {
            let mut sink = Sink::default();
            sink.append_errors(errors);
            checks::event(&EventRef::from(event), &mut sink);
            Answer::Failure {
                errors: sink.errors,
            }
        }
    }
}

/// `office365` uses upn, else email; `google_workspace` uses email, else upn.
fn subject<'e>(provider: Provider, event: &EventRef<'e>) -> Option<&'e str> {
    let (first, second) = match provider {
        Provider::Office365 => (event.upn, event.email),
        Provider::GoogleWorkspace => (event.email, event.upn),
    };
    first.or(second)
}

fn reason(rule: Rule, message: String, matched: Vec<Matched>) -> Reason {
    Reason {
        rule,
        message,
        matched,
    }
}
