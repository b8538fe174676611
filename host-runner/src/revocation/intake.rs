//! From event bytes to journaled decisions, the same for `srs run` and
//! `srs serve`: decide in the sandbox, then journal a batch in one commit.

use anyhow::{Context, Result, bail};
use policy_core::{Answer, Decision, Diagnostic, Provider};

use crate::gate::{DeviceVerdict, EventFacts};
use crate::journal::{Journal, JournalError, NewEvent, Recorded};
use crate::sandbox::Worker;

/// An event the module decided.
#[derive(Debug, Clone)]
pub struct Decided {
    pub decision: Decision,
    /// The module's answer, as it gave it: journaled for audit.
    pub answer: String,
    /// What the gate keeps of the event.
    pub facts: Option<EventFacts>,
}

impl Decided {
    /// The gate's view of this decision once journaled as `seq`.
    pub fn verdict(&self, received_ms: i64, seq: i64) -> Option<DeviceVerdict> {
        let facts = self.facts.as_ref()?;
        Some(DeviceVerdict {
            device_id: facts.device_id.clone(),
            upn: facts.upn.clone(),
            email: facts.email.clone(),
            order: (facts.time_ms.unwrap_or(received_ms), seq),
            event_id: self.decision.event_id.clone(),
            outcome: self.decision.outcome,
            enforced: self.decision.enforced,
            access: self.decision.access,
            reasons: serde_json::to_value(&self.decision.reasons).unwrap_or_default(),
        })
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
    let pairs: Vec<Vec<(Provider, &str)>> = decided
        .iter()
        .map(|d| {
            d.decision
                .revocations
                .iter()
                .map(|r| (r.provider, r.subject.as_str()))
                .collect()
        })
        .collect();
    let events: Vec<NewEvent<'_>> = decided
        .iter()
        .zip(&pairs)
        .map(|(d, pairs)| NewEvent {
            id: &d.decision.event_id,
            received_ms,
            outcome: d.decision.outcome,
            enforced: d.decision.enforced,
            dry_run,
            decision: &d.answer,
            revocations: pairs,
            device: d
                .facts
                .as_ref()
                .map(|f| f.journaled(received_ms, d.decision.access)),
        })
        .collect();
    let recorded = journal.record_events(&events)?;
    if recorded.len() != events.len() {
        return Err(JournalError::BatchMismatch {
            sent: events.len(),
            got: recorded.len(),
        });
    }
    Ok(recorded)
}
