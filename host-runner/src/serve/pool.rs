//! The sandbox workers `srs serve` decides events with: one thread and one
//! module instance each, fed from a bounded queue. Every job carries the
//! policy in force when it was queued, so a policy switch is atomic: a job
//! queued after it is decided under the new policy, by whichever worker.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use policy_core::{Answer, Diagnostic, PolicySummary};
use tokio::sync::{mpsc, oneshot};

use crate::revocation::intake::{self, Checked, Decided};
use crate::sandbox::{Plugin, Worker};

/// A validated policy and its place in the order of switches.
#[derive(Debug)]
pub struct Policy {
    /// 1 for the policy srs started with, then one more per switch.
    pub generation: u64,
    pub bytes: Vec<u8>,
    pub summary: PolicySummary,
}

/// One line's decision, or the failure answer's errors.
pub type LineResult = Result<Decided, Vec<Diagnostic>>;

struct Job {
    policy: Arc<Policy>,
    events: Vec<Vec<u8>>,
    reply: oneshot::Sender<Result<(Vec<LineResult>, Duration)>>,
}

/// The workers and the policy in force.
#[derive(Debug)]
pub struct Pool {
    plugin: Arc<Plugin>,
    jobs: mpsc::Sender<Job>,
    policy: RwLock<Arc<Policy>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("policy", &self.policy.generation)
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

/// Checks a policy in a fresh instance.
pub fn check_policy(plugin: &Plugin, bytes: &[u8]) -> Result<Checked> {
    intake::checked_policy(Worker::new(plugin).set_policy(bytes)?)
}

impl Pool {
    /// Starts `workers` threads deciding under `policy` (already checked).
    pub fn start(plugin: Arc<Plugin>, policy: Policy, workers: usize) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>(workers * 4);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..workers {
            let plugin = plugin.clone();
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("srs-sandbox-{n}"))
                .spawn(move || work(&plugin, &rx));
            if let Err(e) = spawned {
                eprintln!("srs serve: cannot start sandbox worker {n}: {e}");
            }
        }
        Self {
            plugin,
            jobs,
            policy: RwLock::new(Arc::new(policy)),
        }
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Puts a checked policy in force; returns its generation.
    pub fn switch(&self, bytes: Vec<u8>, summary: PolicySummary) -> u64 {
        let mut current = self
            .policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = current.generation + 1;
        *current = Arc::new(Policy {
            generation,
            bytes,
            summary,
        });
        generation
    }

    /// Decides events, in order, under the policy in force now; also returns
    /// the time spent deciding.
    pub async fn decide(&self, events: Vec<Vec<u8>>) -> Result<(Vec<LineResult>, Duration)> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            policy: self.policy(),
            events,
            reply,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| anyhow!("the sandbox workers stopped"))?;
        answer
            .await
            .map_err(|_| anyhow!("a sandbox worker stopped"))?
    }
}

/// One worker: takes jobs until the pool is dropped.
fn work(plugin: &Plugin, jobs: &Mutex<mpsc::Receiver<Job>>) {
    let mut worker = Worker::new(plugin);
    let mut generation = 0;
    loop {
        let job = match jobs.lock() {
            Ok(mut rx) => rx.blocking_recv(),
            Err(_) => None,
        };
        let Some(job) = job else { return };
        let started = Instant::now();
        let result = (|| {
            if job.policy.generation != generation {
                generation = 0;
                let answer = worker.set_policy(&job.policy.bytes)?;
                if !matches!(serde_json::from_str(&answer), Ok(Answer::Success { .. })) {
                    bail!("a checked policy was refused by a sandbox worker: {answer}");
                }
                generation = job.policy.generation;
            }
            job.events
                .iter()
                .map(|event| intake::decide(&mut worker, event))
                .collect::<Result<Vec<_>>>()
        })();
        let _ = job.reply.send(result.map(|r| (r, started.elapsed())));
    }
}
