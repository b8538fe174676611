//! The rules of SPEC §4: a validated policy kept as an [`Engine`], the
//! decision for one event, and the JSON entry points that lead to them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::actions::{builtin_class, normalize, normalize_into, tier_class};
use crate::answer::{Access, Answer, Diagnostic, ErrorCode, Outcome, PolicySummary};
use crate::case::{lowercase, lowercases_to};
use crate::checks;
use crate::diag::{MAX_ITEMS, Path, Sink, clip, too_many};
use crate::json;
use crate::model::{
    Action, ActionClass, CompliancePolicy, Deployment, Event, EventRef, Mode, Policy,
    UnknownAction, Violations,
};
use crate::read;
use crate::schema::{self, EventParts, PolicyParts};
use crate::time;
use crate::verdict::{Matches, Then, Verdict, Violated};
use crate::write;

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
        Self::compile_json(policy, &mut sink).ok_or(Answer::Failure {
            errors: sink.errors,
        })
    }

    /// What `srs_set_policy` does (SPEC §6): the policy given as JSON
    /// validated, the engine if it is valid, and the answer as JSON, the
    /// bytes of [`Engine::accepted`] or of [`Engine::from_json`]'s failure,
    /// written without building the answer.
    pub fn keep_json(policy: &[u8]) -> (Option<Self>, String) {
        let mut sink = Sink::default();
        match Self::compile_json(policy, &mut sink) {
            Some(engine) => {
                let answer = write::accepted(&engine.summary(), &engine.warnings);
                (Some(engine), answer)
            }
            None => (None, write::failure(&sink.errors)),
        }
    }

    fn compile_json(policy: &[u8], sink: &mut Sink) -> Option<Self> {
        json::read(policy, &Path::root("policy"), sink).and_then(|value| compile(&value, sink))
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
        self.evaluate_checked::<Typed>(event, sink)
    }

    /// Evaluates an event given as JSON (paths start at `event`). The common
    /// case is read in one pass without looking for errors; anything else
    /// by the single-pass reader, which finds every error; input that one
    /// gives up on (any that is not well-formed JSON) is read again the old
    /// way, which words the `malformed-json` error. With the feature
    /// `small`, anything but the common case is read the old way.
    pub fn evaluate_json(&self, event: &[u8]) -> Answer {
        self.event_json::<Typed>(event)
    }

    /// [`Engine::evaluate_json`]'s answer as JSON, the bytes of
    /// `evaluate_json(event).to_json()`, written as the decision is
    /// reached: no [`Answer`] is built.
    pub fn answer_json(&self, event: &[u8]) -> String {
        self.event_json::<Json>(event)
    }

    /// The common case first, read without finding errors and borrowed
    /// from the text: when its checks find none either, it is the event
    /// `read::event` builds.
    fn event_json<F: Form>(&self, event: &[u8]) -> F::Out {
        if let Some(plain) = read::plain_event(event) {
            let view = plain.view();
            let mut sink = Sink::default();
            checks::event(&view, &mut sink);
            if sink.errors.is_empty() && sink.warnings.is_empty() {
                return self.evaluate_checked::<F>(view, sink);
            }
        }
        self.evaluate_uncommon::<F>(event)
    }

    /// [`Engine::evaluate_json`] of anything but the common case.
    fn evaluate_uncommon<F: Form>(&self, event: &[u8]) -> F::Out {
        if cfg!(feature = "small") {
            return self.via_value::<F>(event);
        }
        let mut sink = Sink::default();
        let parts = match read::event(event, &mut sink) {
            Ok(parts) => parts,
            Err(read::Fallback) => return self.via_value::<F>(event),
        };
        self.evaluate_parts::<F>(parts, sink)
    }

    /// [`Engine::evaluate_json`] the old way: the text into a
    /// `serde_json::Value`, then the schema walk over it. The same answer
    /// for every input; kept for the differential tests and fuzz target.
    #[doc(hidden)]
    pub fn evaluate_json_via_value(&self, event: &[u8]) -> Answer {
        self.via_value::<Typed>(event)
    }

    fn via_value<F: Form>(&self, event: &[u8]) -> F::Out {
        let mut sink = Sink::default();
        let parts = json::read(event, &Path::root("event"), &mut sink)
            .map(|value| schema::event(&value, &mut sink))
            .unwrap_or_default();
        self.evaluate_parts::<F>(parts, sink)
    }

    /// Evaluates an event as the schema walk left it: `sink` holds its
    /// errors so far, and the parts that were read are still classified.
    fn evaluate_parts<F: Form>(&self, parts: EventParts, mut sink: Sink) -> F::Out {
        match parts.complete() {
            Ok(event) => self.evaluate_checked::<F>(EventRef::from(&event), sink),
            Err(parts) => {
                if let Some(compliance) = &parts.compliance {
                    self.violations(Violations::Owned(&compliance.violations), &mut sink);
                }
                F::failure(sink.errors)
            }
        }
    }

    /// Evaluates an event whose checks have run, their findings in `sink`.
    #[inline(never)]
    fn evaluate_checked<F: Form>(&self, event: EventRef<'_>, mut sink: Sink) -> F::Out {
        let violations = self.violations(event.violations, &mut sink);
        match self.judge(&event, &violations, &mut sink) {
            Some(verdict) => F::success(&self.warnings, &verdict, sink.warnings),
            None => F::failure(sink.errors),
        }
    }

    /// The decision about an event whose checks have run, unless they or
    /// the decision found an error (in `sink`). Not inlined: each entry
    /// point calling it inlined the decision again (about 6 KB of module
    /// per copy).
    #[inline(never)]
    fn judge<'a>(
        &'a self,
        event: &'a EventRef<'a>,
        violations: &'a [Violated<'a>],
        sink: &mut Sink,
    ) -> Option<Verdict<'a>> {
        if !sink.errors.is_empty() {
            return None;
        }
        let verdict = self.decide(event, violations, sink);
        sink.errors.is_empty().then_some(verdict)
    }

    /// Each violation's policy id and its classified actions: inline if the
    /// event gives them, else the configured compliance policy's.
    fn violations<'e>(&'e self, violations: Violations<'e>, sink: &mut Sink) -> Vec<Violated<'e>> {
        let root = Path::root("event");
        let path = root.field("compliance");
        let list = path.field("violations");
        if violations.len() > MAX_ITEMS {
            return Vec::new(); // reported by checks::compliance
        }
        let mut out = Vec::with_capacity(violations.len());
        for (i, (policy, actions)) in violations.iter().enumerate() {
            let path = list.index(i);
            let actions = match actions {
                Some(actions) => {
                    self.classifier
                        .classify_list(actions, &path.field("actions"), sink)
                }
                None => match self.compliance.get(policy) {
                    Some(configured) => configured.iter().map(|(a, c)| (a, *c)).collect(),
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
    fn decide<'a>(
        &'a self,
        event: &'a EventRef<'a>,
        violations: &'a [Violated<'a>],
        sink: &mut Sink,
    ) -> Verdict<'a> {
        let policy = &self.policy;
        let state = event.state;
        let state_trigger = policy.revoke_on_states.contains(&state);
        let blocking = if event.compliant {
            0
        } else {
            let mut n = 0;
            Matches::each_action(violations, ActionClass::Blocking, |_, _| n += 1);
            n
        };
        let exempt_as = self.exempt_identity(event);
        let standalone = policy.deployment == Deployment::AccessStandaloneSentry;
        let triggered = state_trigger || blocking > 0;
        let (then, outcome, access) = match (triggered, exempt_as, standalone) {
            // A trigger, but the user is exempt: never revoked, never blocked.
            (true, Some(user), _) => (Some(Then::Exempt(user)), Outcome::NoAction, Access::Allow),
            // A trigger where revocation is unsupported: say so, still block at the gate.
            (true, None, true) => (Some(Then::Unsupported), Outcome::Unsupported, Access::Block),
            // A trigger: revoke at every configured provider and block at the gate.
            (true, None, false) => (None, Outcome::Revoke, Access::Block),
            // No trigger, compliant.
            (false, _, _) if event.compliant => {
                (Some(Then::Compliant), Outcome::NoAction, Access::Allow)
            }
            // No trigger, out of compliance with only non-blocking actions.
            (false, _, _) => (Some(Then::NonBlocking), Outcome::NoAction, Access::Allow),
        };
        let mut verdict = Verdict {
            event,
            providers: &policy.providers,
            violations,
            outcome,
            enforced: policy.mode == Mode::Enforce,
            access,
            state: state_trigger.then_some(state),
            blocking,
            then,
            grace: None,
        };
        // Step 3a: a blocking action alone may wait; a device state never does.
        if outcome == Outcome::Revoke && policy.grace_seconds > 0 && !state_trigger {
            self.grace(event, &mut verdict, sink);
        }
        verdict
    }

    /// Turns a `revoke` decision into `grace` (SPEC §4 step 3a), or says why
    /// it cannot: no `time` keeps `revoke` with a warning, and a `due` that
    /// cannot be written is an error.
    fn grace(&self, event: &EventRef<'_>, verdict: &mut Verdict<'_>, sink: &mut Sink) {
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
        verdict.outcome = Outcome::Grace;
        verdict.access = Access::Allow;
        verdict.grace = Some((seconds, due));
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
            out.entry(cp.id.clone()).or_insert_with(|| {
                classified
                    .into_iter()
                    .map(|(a, c)| (a.clone(), c))
                    .collect()
            });
        }
        out
    }

    /// Classifies a non-empty list of actions; an unknown name is an error or
    /// a warning as `unknown_action` says.
    fn classify_list<'a>(
        &self,
        actions: &'a [Action],
        path: &Path<'_>,
        sink: &mut Sink,
    ) -> Vec<(&'a Action, ActionClass)> {
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
        let mut key = String::new();
        for (j, action) in actions.iter().enumerate() {
            if let Some(class) = self.classify(action, &mut key, &path.index(j), sink) {
                out.push((action, class));
            }
        }
        out
    }

    /// An action's class; `key` is room for its normalized name.
    fn classify(
        &self,
        action: &Action,
        key: &mut String,
        path: &Path<'_>,
        sink: &mut Sink,
    ) -> Option<ActionClass> {
        let name = match action {
            Action::Tier(tier) => return Some(tier_class(tier)),
            Action::Name(name) => name,
        };
        normalize_into(name, key);
        let key = key.as_str();
        if let Some(class) = builtin_class(key).or_else(|| self.custom.get(key).copied()) {
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
    request_answer::<Json>(request.as_bytes())
}

/// [`evaluate_json_str`] over bytes, which need not be UTF-8.
pub fn evaluate_json_bytes(request: &[u8]) -> String {
    request_answer::<Json>(request)
}

/// Evaluates a request envelope given as JSON bytes: the envelope and the
/// event read in one pass, the policy's text then read as a `Value`; input
/// the reader gives up on is read again the old way (see [`Engine::evaluate_json`]).
/// With the feature `small`, the old way only.
pub fn evaluate_request(request: &[u8]) -> Answer {
    request_answer::<Typed>(request)
}

fn request_answer<F: Form>(request: &[u8]) -> F::Out {
    if cfg!(feature = "small") {
        return request_via_value::<F>(request);
    }
    let mut sink = Sink::default();
    let Ok((policy, event)) = read::request(request, &mut sink) else {
        return request_via_value::<F>(request);
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
        Some(engine) => engine.evaluate_parts::<F>(parts, sink),
        None => F::failure(sink.errors),
    }
}

/// [`evaluate_request`] the old way: the whole text into a
/// `serde_json::Value`, then the schema walk. Kept for the differential tests.
#[doc(hidden)]
pub fn evaluate_request_via_value(request: &[u8]) -> Answer {
    request_via_value::<Typed>(request)
}

fn request_via_value<F: Form>(request: &[u8]) -> F::Out {
    let mut sink = Sink::default();
    let Some(value) = json::read(request, &Path::root(""), &mut sink) else {
        return F::failure(sink.errors);
    };
    let (policy, event) = schema::request(&value, &mut sink);
    let engine = policy.and_then(|policy| compile(policy, &mut sink));
    let parts = event
        .map(|event| schema::event(event, &mut sink))
        .unwrap_or_default();
    match engine {
        Some(engine) => engine.evaluate_parts::<F>(parts, sink),
        None => F::failure(sink.errors),
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

/// What an entry point makes of its answer: the [`Answer`] ([`Typed`]),
/// or its JSON written straight from the decision ([`Json`]), the same
/// bytes as `Answer::to_json`. A build that only answers in JSON (the core
/// module) has no `Decision` in it.
trait Form {
    type Out;
    /// A decision, with the policy's `warnings` and then the event's `more`.
    fn success(warnings: &[Diagnostic], verdict: &Verdict<'_>, more: Vec<Diagnostic>) -> Self::Out;
    fn failure(errors: Vec<Diagnostic>) -> Self::Out;
}

enum Typed {}

impl Form for Typed {
    type Out = Answer;

    fn success(warnings: &[Diagnostic], verdict: &Verdict<'_>, more: Vec<Diagnostic>) -> Answer {
        let decision = Some(verdict.decision());
        let mut warnings = warnings.to_vec();
        warnings.extend(more);
        Answer::Success {
            decision,
            policy: None,
            warnings,
        }
    }

    fn failure(errors: Vec<Diagnostic>) -> Answer {
        Answer::Failure { errors }
    }
}

enum Json {}

impl Form for Json {
    type Out = String;

    fn success(warnings: &[Diagnostic], verdict: &Verdict<'_>, more: Vec<Diagnostic>) -> String {
        write::success(verdict, warnings, &more)
    }

    fn failure(errors: Vec<Diagnostic>) -> String {
        write::failure(&errors)
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
