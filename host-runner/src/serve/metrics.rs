//! `GET /metrics`: what the service did, in the Prometheus text format
//! (OpenMetrics 1.0 text, which Prometheus scrapes), by `prometheus-client`.

use std::time::Duration;

use policy_core::{Outcome, Provider};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::journal::{TaskCounts, TaskState};

type Labels = Vec<(&'static str, &'static str)>;

/// The service's counters, gauges and histograms.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    duplicates: Counter,
    rejected: Counter,
    revocations: Family<Labels, Counter>,
    checks: Family<Labels, Counter>,
    decision_seconds: Histogram,
    call_seconds: Family<Labels, Histogram>,
    pending: Gauge,
    scheduled: Gauge,
    policy_generation: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("srs");
        let events = Family::<Labels, Counter>::default();
        registry.register(
            "events",
            "Events decided and journaled, by outcome",
            events.clone(),
        );
        let duplicates = Counter::default();
        registry.register(
            "events_duplicate",
            "Events whose id was journaled before: accepted, nothing done again",
            duplicates.clone(),
        );
        let rejected = Counter::default();
        registry.register(
            "events_rejected",
            "Pushed events refused with a failure answer",
            rejected.clone(),
        );
        let revocations = Family::<Labels, Counter>::default();
        registry.register(
            "revocations",
            "Revocation task executions that ended, by provider and state",
            revocations.clone(),
        );
        let checks = Family::<Labels, Counter>::default();
        registry.register(
            "gate_checks",
            "Sign-in gate checks, by verdict",
            checks.clone(),
        );
        let decision_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 16));
        registry.register(
            "decision_seconds",
            "Time to decide one event in the sandbox",
            decision_seconds.clone(),
        );
        let call_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "provider_call_seconds",
            "Provider revocation calls, by provider",
            call_seconds.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "tasks_pending",
            "Revocation tasks pending in the journal",
            pending.clone(),
        );
        let scheduled = Gauge::default();
        registry.register(
            "tasks_scheduled",
            "Revocation tasks waiting in the journal for a grace period to end",
            scheduled.clone(),
        );
        let policy_generation = Gauge::default();
        registry.register(
            "policy_generation",
            "The policy in force: 1 at start, one more per switch",
            policy_generation.clone(),
        );
        Self {
            registry,
            events,
            duplicates,
            rejected,
            revocations,
            checks,
            decision_seconds,
            call_seconds,
            pending,
            scheduled,
            policy_generation,
        }
    }

    pub fn event(&self, outcome: Outcome) {
        self.events
            .get_or_create(&vec![("outcome", outcome.as_str())])
            .inc();
    }

    pub fn duplicate(&self) {
        self.duplicates.inc();
    }

    pub fn rejected(&self) {
        self.rejected.inc();
    }

    pub fn decided(&self, events: usize, took: Duration) {
        if events > 0 {
            let each = took.as_secs_f64() / events as f64;
            for _ in 0..events {
                self.decision_seconds.observe(each);
            }
        }
    }

    pub fn revocation(&self, provider: Provider, state: TaskState) {
        self.revocations
            .get_or_create(&vec![
                ("provider", provider.as_str()),
                ("state", state.as_str()),
            ])
            .inc();
    }

    pub fn call(&self, provider: Provider, took: Duration) {
        self.call_seconds
            .get_or_create(&vec![("provider", provider.as_str())])
            .observe(took.as_secs_f64());
    }

    pub fn check(&self, verdict: &'static str) {
        self.checks.get_or_create(&vec![("verdict", verdict)]).inc();
    }

    pub fn set_policy_generation(&self, generation: u64) {
        self.policy_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// The exposition, with the task counts read just now.
    pub fn render(&self, tasks: TaskCounts) -> String {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.pending.set(gauge(tasks.pending));
        self.scheduled.set(gauge(tasks.scheduled));
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
