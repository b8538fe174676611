//! From event bytes to journaled decisions, the same for `srs run` and
//! `srs serve`: decide in the sandbox, then journal a batch in one commit.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use policy_core::{Answer, Decision, Diagnostic, PolicySummary, Provider};
use tokio::sync::oneshot;

use super::execute::group_commit;
use crate::gate::{DeviceVerdict, EventFacts};
use crate::journal::{Journal, JournalError, NewDelivery, NewEvent, Recorded};
use crate::sandbox::Worker;

/// An event the module decided.
#[derive(Debug, Clone)]
pub struct Decided {
    pub decision: Decision,
    /// The module's answer, as it gave it: journaled for audit.
    pub answer: String,
    /// What the gate keeps of the event.
    pub facts: Option<EventFacts>,
    /// The Shared Signals SETs announcing it (`srs serve` with receivers).
    pub announcements: Vec<Announcement>,
    /// The event as it was sent (the module read it as UTF-8 JSON).
    pub event: String,
}

/// A `session-revoked` SET to journal with its event (SPEC §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub receiver: String,
    pub jti: String,
    pub user: String,
    pub device_id: String,
    pub event_ms: i64,
    pub reason: String,
}

impl Decided {
    /// The gate's view of this decision once journaled as `seq`.
    pub fn verdict(&self, received_ms: i64, seq: i64) -> Option<DeviceVerdict> {
        let facts = self.facts.as_ref()?;
        Some(DeviceVerdict {
            device_id: facts.device_id.clone(),
            upn: facts.upn.clone(),
            email: facts.email.clone(),
            order: (facts.time_or(received_ms), seq),
            event_id: self.decision.event_id.clone(),
            outcome: self.decision.outcome,
            enforced: self.decision.enforced,
            access: self.decision.access,
            due_ms: due_ms(&self.decision),
            reasons: serde_json::to_value(&self.decision.reasons).unwrap_or_default(),
        })
    }
}

/// What the module said of a policy (`srs_set_policy`): its summary, or the
/// failure answer as it gave it.
#[derive(Debug)]
pub enum Checked {
    Valid {
        summary: PolicySummary,
        answer: String,
    },
    Invalid {
        answer: String,
    },
}

/// Reads the module's `srs_set_policy` answer. A success without the
/// `policy` summary (SPEC §6) is an error: the host learns the providers and
/// the mode from it.
pub fn checked_policy(answer: String) -> Result<Checked> {
    match serde_json::from_str(&answer).context("the module's answer is not a SPEC answer")? {
        Answer::Failure { .. } => Ok(Checked::Invalid { answer }),
        Answer::Success {
            policy: Some(summary),
            ..
        } => Ok(Checked::Valid {
            summary: *summary,
            answer,
        }),
        Answer::Success { policy: None, .. } => bail!(
            "the module accepted the policy without saying what it asks for \
             (SPEC §6: `srs_set_policy` answers a `policy` summary); is it built for an older SPEC?"
        ),
    }
}

/// Decides one event under the worker's policy: the decision, or the
/// failure answer's errors. `Err` only when the sandbox or the module fails.
pub fn decide(worker: &mut Worker<'_>, event: &[u8]) -> Result<Result<Decided, Vec<Diagnostic>>> {
    let answer = worker.evaluate_event(event)?;
    let parsed: Answer =
        serde_json::from_str(&answer).context("the module's answer is not a SPEC answer")?;
    match parsed {
        Answer::Failure { errors } => Ok(Err(errors)),
        Answer::Success {
            decision: Some(decision),
            ..
        } => Ok(Ok(Decided {
            decision,
            facts: EventFacts::read(event),
            answer,
            announcements: Vec::new(),
            event: String::from_utf8_lossy(event).into_owned(),
        })),
        Answer::Success { decision: None, .. } => {
            bail!("the module answered an event without a decision")
        }
    }
}

/// Journals decided events in one commit; one [`Recorded`] per event.
pub fn record(
    journal: &dyn Journal,
    decided: &[Decided],
    received_ms: i64,
    dry_run: bool,
) -> Result<Vec<Recorded>, JournalError> {
    let pairs = pairs(decided);
    let deliveries = deliveries(decided);
    let events = new_events(decided, &pairs, &deliveries, received_ms, dry_run);
    checked(events.len(), journal.record_events(&events)?)
}

/// Each decision's (provider, subject) pairs: its revocations, or for
/// outcome `grace` the scheduled ones.
fn pairs(decided: &[Decided]) -> Vec<Vec<(Provider, &str)>> {
    decided
        .iter()
        .map(|d| {
            let decision = &d.decision;
            let list = match &decision.scheduled {
                Some(scheduled) => &scheduled.revocations,
                None => &decision.revocations,
            };
            list.iter()
                .map(|r| (r.provider, r.subject.as_str()))
                .collect()
        })
        .collect()
}

/// Each decision's announcements, as the journal takes them.
fn deliveries(decided: &[Decided]) -> Vec<Vec<NewDelivery<'_>>> {
    decided
        .iter()
        .map(|d| {
            d.announcements
                .iter()
                .map(|a| NewDelivery {
                    receiver: &a.receiver,
                    jti: &a.jti,
                    user: &a.user,
                    device_id: &a.device_id,
                    event_ms: a.event_ms,
                    reason: &a.reason,
                })
                .collect()
        })
        .collect()
}

/// When a `grace` decision's revocations fall due (unix ms).
pub fn due_ms(decision: &Decision) -> Option<i64> {
    decision
        .scheduled
        .as_ref()
        .and_then(|s| policy_core::unix_ms(&s.due))
}

fn new_events<'a>(
    decided: &'a [Decided],
    pairs: &'a [Vec<(Provider, &'a str)>],
    deliveries: &'a [Vec<NewDelivery<'a>>],
    received_ms: i64,
    dry_run: bool,
) -> Vec<NewEvent<'a>> {
    decided
        .iter()
        .zip(pairs)
        .zip(deliveries)
        .map(|((d, pairs), deliveries)| NewEvent {
            id: &d.decision.event_id,
            received_ms,
            outcome: d.decision.outcome,
            enforced: d.decision.enforced,
            dry_run,
            decision: &d.answer,
            revocations: pairs,
            deliveries,
            body: Some(&d.event),
            due_ms: due_ms(&d.decision),
            device: d
                .facts
                .as_ref()
                .map(|f| f.journaled(received_ms, d.decision.access)),
        })
        .collect()
}

fn checked(sent: usize, recorded: Vec<Recorded>) -> Result<Vec<Recorded>, JournalError> {
    if recorded.len() == sent {
        Ok(recorded)
    } else {
        Err(JournalError::BatchMismatch {
            sent,
            got: recorded.len(),
        })
    }
}

/// A batch sent to the [`EventWriter`], returned with its results.
type Batch = (Vec<Decided>, Result<Vec<Recorded>, String>);

/// Group commit for pushed events: one thread journals every batch waiting
/// in one transaction, then answers each; so concurrent requests share one
/// fsync, and each is answered only once its events are durable. All of a
/// group commits, or none of it.
#[derive(Debug, Clone)]
pub struct EventWriter {
    tx: std::sync::mpsc::Sender<(Vec<Decided>, i64, oneshot::Sender<Batch>)>,
}

impl EventWriter {
    /// Batches journaled in one transaction, at most.
    const GROUP: usize = 256;

    pub fn start(journal: Arc<dyn Journal>) -> Self {
        let tx = group_commit(
            Self::GROUP,
            move |group: Vec<(Vec<Decided>, i64, oneshot::Sender<Batch>)>| {
                let result = {
                    let pairs: Vec<_> = group.iter().map(|(d, _, _)| pairs(d)).collect();
                    let deliveries: Vec<_> = group.iter().map(|(d, _, _)| deliveries(d)).collect();
                    let events: Vec<NewEvent<'_>> = group
                        .iter()
                        .zip(&pairs)
                        .zip(&deliveries)
                        .flat_map(|(((d, at, _), p), s)| new_events(d, p, s, *at, false))
                        .collect();
                    journal
                        .record_events(&events)
                        .and_then(|r| checked(events.len(), r))
                        .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
                };
                let mut results = result.map(Vec::into_iter);
                for (decided, _, reply) in group {
                    let answer = match &mut results {
                        Ok(all) => Ok(all.by_ref().take(decided.len()).collect()),
                        Err(e) => Err(e.clone()),
                    };
                    let _ = reply.send((decided, answer));
                }
            },
        );
        Self { tx }
    }

    /// Journals decided events (received at `received_ms`); returns them
    /// with one [`Recorded`] each, once they are durable.
    pub async fn record(
        &self,
        decided: Vec<Decided>,
        received_ms: i64,
    ) -> Result<(Vec<Decided>, Vec<Recorded>)> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((decided, received_ms, reply))
            .map_err(|_| anyhow!("the journal writer stopped"))?;
        let (decided, recorded) = done
            .await
            .map_err(|_| anyhow!("the journal writer stopped"))?;
        let recorded = recorded.map_err(|e| anyhow!("cannot journal the events: {e}"))?;
        Ok((decided, recorded))
    }
}
