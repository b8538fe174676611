//! A decision as the rules reach it (SPEC §4 steps 2 to 5), borrowed from
//! its event and policy: what a [`Decision`] holds, with its reasons'
//! messages and matched lists still to be made. The typed entry points make
//! a `Decision` of it ([`Verdict::decision`]); the JSON ones write it as
//! JSON directly ([`write::success`](crate::write::success)), with no tree
//! of owned strings in between. Both take every word from here.

use crate::write::push_u32;

use crate::answer::{Access, Decision, Matched, Outcome, Reason, Revocation, Rule, Scheduled};
use crate::model::{Action, ActionClass, Deployment, DeviceState, EventRef, Provider};

/// A violated policy's id and its classified actions, borrowed from the
/// event (inline) or the policy (looked up).
pub type Violated<'e> = (&'e str, Vec<(&'e Action, ActionClass)>);

/// The decision about one event, borrowed.
#[derive(Debug)]
pub struct Verdict<'a> {
    pub event: &'a EventRef<'a>,
    /// The policy's providers, in its order.
    pub providers: &'a [Provider],
    pub violations: &'a [Violated<'a>],
    pub outcome: Outcome,
    pub enforced: bool,
    pub access: Access,
    /// The device's state, when `device-state` fired.
    pub state: Option<DeviceState>,
    /// How many blocking actions matched; `blocking-action` fired if any did.
    pub blocking: usize,
    /// The rule that settled the outcome after those two, if one did.
    pub then: Option<Then<'a>>,
    /// With outcome `grace` only: its seconds and `due`.
    pub grace: Option<(u32, String)>,
}

/// The third reason, when there is one.
#[derive(Debug, Clone, Copy)]
pub enum Then<'a> {
    /// A trigger, but this identity is in `exempt_users`.
    Exempt(&'a str),
    /// A trigger in an Access + Standalone Sentry deployment.
    Unsupported,
    /// No trigger; the device is compliant.
    Compliant,
    /// No trigger; the device is out of compliance with non-blocking actions only.
    NonBlocking,
}

/// One reason, its message and matched list still to be made.
pub struct ReasonRef<'a> {
    pub rule: Rule,
    pub message: Message<'a>,
    pub matched: Matches<'a>,
}

/// A reason's message; [`Message::pieces`] gives its text.
#[derive(Clone, Copy)]
pub enum Message<'a> {
    Text(&'static str),
    State(DeviceState),
    Blocking(usize),
    Exempt(&'a str),
    Grace(u32, &'a str),
}

/// A reason's matched list.
#[derive(Clone, Copy)]
pub enum Matches<'a> {
    Nothing,
    State(DeviceState),
    /// Each violated policy's actions of this class, in the event's order.
    Actions(&'a [Violated<'a>], ActionClass),
    User(&'a str),
    Deployment(Deployment),
    Grace(u32, &'a str),
}

/// A piece of a message: fixed text, a value given in the event or the
/// policy (which a JSON writer escapes), or a count.
#[derive(Clone, Copy)]
pub enum Piece<'a> {
    Fixed(&'static str),
    Given(&'a str),
    Count(u32),
}

impl<'a> Message<'a> {
    /// Calls `f` with each piece of the message, in order: the owned
    /// `Decision` and the JSON writer both write these, so every message
    /// has one wording.
    pub fn pieces(self, mut f: impl FnMut(Piece<'a>)) {
        use Piece::{Count, Fixed, Given};
        match self {
            Self::Text(text) => f(Fixed(text)),
            Self::State(state) => {
                f(Fixed("device state `"));
                f(Fixed(state.as_str()));
                f(Fixed("` is in revoke_on_states"));
            }
            Self::Blocking(n) => {
                f(Fixed(
                    "the device is out of compliance and a violated policy has a blocking action (",
                ));
                // At most MAX_ITEMS actions are classified.
                f(Count(u32::try_from(n).unwrap_or(u32::MAX)));
                f(Fixed(" matched)"));
            }
            Self::Exempt(user) => {
                f(Fixed("user `"));
                f(Given(user));
                f(Fixed("` is in exempt_users"));
            }
            Self::Grace(seconds, due) => {
                f(Fixed("the device has "));
                f(Count(seconds));
                f(Fixed(
                    " seconds to become compliant; its sessions are revoked at ",
                ));
                f(Given(due));
                f(Fixed(" unless it does"));
            }
        }
    }

    /// The message as a `String`: a fixed text copied; the others written
    /// piece by piece into room for the longest (one allocation).
    fn owned(self) -> String {
        match self {
            Self::Text(text) => text.to_owned(),
            _ => {
                let mut out = String::with_capacity(128);
                self.pieces(|piece| match piece {
                    Piece::Fixed(text) | Piece::Given(text) => out.push_str(text),
                    Piece::Count(n) => push_u32(&mut out, n),
                });
                out
            }
        }
    }
}

impl<'a> Matches<'a> {
    /// Calls `f` with a violated policy's id and action, for each action
    /// of `class`, in the event's order.
    pub fn each_action(
        violations: &'a [Violated<'a>],
        class: ActionClass,
        mut f: impl FnMut(&'a str, &'a Action),
    ) {
        for (id, actions) in violations {
            for &(action, c) in actions {
                if c == class {
                    f(id, action);
                }
            }
        }
    }

    fn to_vec(self) -> Vec<Matched> {
        match self {
            Self::Nothing => Vec::new(),
            Self::State(state) => vec![Matched::State { state }],
            Self::Actions(violations, class) => {
                let mut matched = Vec::new();
                Self::each_action(violations, class, |policy, action| {
                    matched.push(Matched::Action {
                        policy: policy.to_owned(),
                        action: action.clone(),
                    });
                });
                matched
            }
            Self::User(user) => vec![Matched::User {
                user: user.to_owned(),
            }],
            Self::Deployment(deployment) => vec![Matched::Deployment { deployment }],
            Self::Grace(grace_seconds, due) => vec![Matched::Grace {
                grace_seconds,
                due: due.to_owned(),
            }],
        }
    }
}

impl<'a> Verdict<'a> {
    /// Each rule that fired, once, in rule order (those that did not are `None`).
    pub fn reasons(&self) -> [Option<ReasonRef<'_>>; 4] {
        let state = self.state.map(|state| ReasonRef {
            rule: Rule::DeviceState,
            message: Message::State(state),
            matched: Matches::State(state),
        });
        let blocking = (self.blocking > 0).then_some(ReasonRef {
            rule: Rule::BlockingAction,
            message: Message::Blocking(self.blocking),
            matched: Matches::Actions(self.violations, ActionClass::Blocking),
        });
        let then = self.then.map(|then| match then {
            Then::Exempt(user) => ReasonRef {
                rule: Rule::ExemptUser,
                message: Message::Exempt(user),
                matched: Matches::User(user),
            },
            Then::Unsupported => ReasonRef {
                rule: Rule::UnsupportedDeployment,
                message: Message::Text(
                    "Access + Standalone Sentry deployments do not support session revocation",
                ),
                matched: Matches::Deployment(Deployment::AccessStandaloneSentry),
            },
            Then::Compliant => ReasonRef {
                rule: Rule::Compliant,
                message: Message::Text("the device is compliant"),
                matched: Matches::Nothing,
            },
            Then::NonBlocking => ReasonRef {
                rule: Rule::NonBlockingOnly,
                message: Message::Text(
                    "the device is out of compliance, but no violated policy has a blocking action",
                ),
                matched: Matches::Actions(self.violations, ActionClass::NonBlocking),
            },
        });
        let grace = self.grace.as_ref().map(|(seconds, due)| ReasonRef {
            rule: Rule::GracePeriod,
            message: Message::Grace(*seconds, due),
            matched: Matches::Grace(*seconds, due),
        });
        [state, blocking, then, grace]
    }

    /// Who would be revoked at which provider, in the policy's order:
    /// now when the outcome is `revoke`, at `due` when it is `grace`.
    pub fn subjects(&self) -> impl Iterator<Item = (Provider, &'a str)> {
        let event = self.event;
        self.providers
            .iter()
            .filter_map(move |&provider| subject(provider, event).map(|s| (provider, s)))
    }

    /// The revocations to make now: none but with outcome `revoke`.
    pub fn revocations(&self) -> impl Iterator<Item = (Provider, &'a str)> {
        let now = self.outcome == Outcome::Revoke;
        self.subjects().filter(move |_| now)
    }

    /// The same decision, owned.
    #[inline(never)]
    pub fn decision(&self) -> Decision {
        let owned = |(provider, subject): (Provider, &str)| Revocation {
            provider,
            subject: subject.to_owned(),
        };
        Decision {
            event_id: self.event.id.to_owned(),
            outcome: self.outcome,
            enforced: self.enforced,
            access: self.access,
            revocations: self.revocations().map(owned).collect(),
            scheduled: self.grace.as_ref().map(|(_, due)| {
                Box::new(Scheduled {
                    due: due.clone(),
                    revocations: self.subjects().map(owned).collect(),
                })
            }),
            reasons: {
                let fired = self.reasons();
                let mut reasons = Vec::with_capacity(fired.iter().flatten().count());
                for r in fired.into_iter().flatten() {
                    reasons.push(Reason {
                        rule: r.rule,
                        message: r.message.owned(),
                        matched: r.matched.to_vec(),
                    });
                }
                reasons
            },
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
