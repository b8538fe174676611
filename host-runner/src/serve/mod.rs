//! `srs serve` (SPEC §10): the same decision and execution as `srs run`,
//! behind HTTP. UEMs push events, gateways ask the sign-in gate, the admin
//! API reads the journal and switches the policy.
//!
//! - `pool`: the sandbox workers and the policy in force.
//! - `api`: the endpoints.
//! - `metrics`: the Prometheus exposition.
//! - `console`: the admin console at `/console/` and the admin endpoints it reads.
//!
//! Order of work for a push: decide in the sandbox, commit to the journal,
//! move the gate, answer 202, then execute. So a 202 is durable, and a
//! restart (the gate is read back from the journal) never unblocks anyone.

mod api;
mod console;
mod metrics;
mod pool;
mod ssf;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use axum::http::HeaderName;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use policy_core::{Mode, Provider};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

pub use crate::revocation::intake::Checked;
pub use pool::check_policy;

use crate::config::{HostConfig, Secret, Unknown};
use crate::gate::Gate;
use crate::journal::{Journal, JournalError};
use crate::providers::Clients;
use crate::revocation::intake::EventWriter;
use crate::revocation::{Ended, Executor, unix_ms};
use crate::sandbox::Plugin;

/// What `srs serve` starts with.
#[derive(Debug)]
pub struct ServeOptions {
    pub plugin: Plugin,
    /// The policy, already checked: its bytes and summary.
    pub policy: Vec<u8>,
    pub summary: policy_core::PolicySummary,
    pub config: HostConfig,
    pub journal: Arc<dyn Journal>,
    /// `--listen`, over `[serve] listen`.
    pub listen: Option<String>,
}

/// Runs the service until SIGTERM or SIGINT, then drains and returns.
pub fn serve(options: ServeOptions) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(options))
}

async fn run(options: ServeOptions) -> Result<()> {
    let ServeOptions {
        plugin,
        policy,
        summary,
        config,
        journal,
        listen,
    } = options;
    let serve = &config.serve;
    let listen = listen.unwrap_or_else(|| serve.listen.clone());
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen `{listen}` is not an address such as 127.0.0.1:8080"))?;
    let tokens = api::Tokens {
        intake: token(serve.intake_token_env.as_deref())?,
        admin: token(serve.admin_token_env.as_deref())?,
        check: token(serve.check_token_env.as_deref())?,
    };
    if !addr.ip().is_loopback() && (tokens.intake.is_none() || tokens.admin.is_none()) {
        bail!(
            "srs serve listens on {addr}, beyond this machine, so [serve] needs intake_token_env and admin_token_env"
        );
    }
    for (open, what) in [
        (
            tokens.intake.is_none(),
            "POST /v1/events (set [serve] intake_token_env)",
        ),
        (
            tokens.admin.is_none(),
            "the admin API (set [serve] admin_token_env)",
        ),
    ] {
        if open {
            eprintln!("srs serve: warning: {what} needs no token");
        }
    }
    let pending = {
        let journal = journal.clone();
        tokio::task::spawn_blocking(move || journal.pending_tasks()).await??
    };
    let clients = clients(&config, &summary, pending.iter().map(|t| t.provider))?;
    let devices = {
        let journal = journal.clone();
        tokio::task::spawn_blocking(move || journal.devices()).await??
    };
    let gate = Gate::load(devices, serve.unknown == Unknown::Block);
    let metrics = Arc::new(metrics::Metrics::new());
    metrics.set_policy_generation(1);
    let observed = metrics.clone();
    let executor = Executor::new(journal.clone(), clients, config.retry);
    let (done, mut ends) = mpsc::unbounded_channel::<Ended>();
    let workers = match serve.workers {
        Some(n) => usize::try_from(n)?,
        None => std::thread::available_parallelism().map_or(2, usize::from),
    };
    let pool = pool::Pool::start(
        Arc::new(plugin),
        pool::Policy {
            generation: 1,
            bytes: policy,
            summary,
        },
        workers,
    );
    let ssf = match &config.ssf {
        Some(ssf) => Some(
            ssf::Ssf::start(ssf, &config.dir, journal.clone(), config.retry)
                .context("[ssf] cannot start")?,
        ),
        None => None,
    };
    let service = Arc::new(api::Service {
        pool,
        journal: journal.clone(),
        events: EventWriter::start(journal.clone()),
        gate: RwLock::new(gate),
        schedule: tokio::sync::Notify::new(),
        ssf,
        executor: executor.observing(Arc::new(move |provider, took| {
            observed.call(provider, took);
        })),
        done,
        metrics: metrics.clone(),
        tokens,
        user_header: HeaderName::from_bytes(serve.user_header.as_bytes())?,
        user_header_label: serve.user_header.clone(),
        device_header: HeaderName::from_bytes(serve.device_header.as_bytes())?,
        max_body: usize::try_from(serve.max_body_bytes)?,
        body_timeout: Duration::from_millis(serve.body_timeout_ms),
    });
    // Task ends: metrics.
    {
        let service = service.clone();
        tokio::spawn(async move {
            while let Some(ended) = ends.recv().await {
                api::ended(&service, &ended);
            }
        });
    }
    api::resume(&service, pending)?;
    // Pending tasks (a retry deadline passed, a provider was down) are
    // retried every `resume_ms`.
    {
        let service = service.clone();
        let every = Duration::from_millis(serve.resume_ms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let journal = service.journal.clone();
                match tokio::task::spawn_blocking(move || journal.pending_tasks()).await {
                    Ok(Ok(pending)) => {
                        if let Err(e) = api::resume(&service, pending) {
                            eprintln!("srs serve: cannot resume pending tasks: {e:#}");
                        }
                    }
                    Ok(Err(e)) => eprintln!("srs serve: cannot read pending tasks: {e:#}"),
                    Err(e) => eprintln!("srs serve: cannot read pending tasks: {e}"),
                }
            }
        });
    }
    tokio::spawn(execute_when_due(
        service.clone(),
        Duration::from_millis(serve.resume_ms),
    ));
    tokio::spawn(follow_gate(
        service.clone(),
        Duration::from_millis(serve.gate_refresh_ms),
    ));
    if let Some(ssf) = &service.ssf {
        tokio::spawn(
            ssf.courier
                .clone()
                .run(Duration::from_millis(serve.resume_ms)),
        );
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    // The one line a supervisor (or a test) waits for.
    println!("srs serve: listening on http://{local}");
    let router = api::router(service.clone());
    let limit = Arc::new(Semaphore::new(usize::try_from(serve.max_connections)?));
    let header_timeout = Duration::from_millis(serve.header_timeout_ms);
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit?,
            () = &mut stop => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    eprintln!("srs serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    eprintln!("srs serve: stopping: answering what was accepted, then draining calls in flight");
    let drain = Duration::from_millis(serve.drain_ms);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("srs serve: some requests were still open after the drain timeout");
    }
    let left = service.executor.drain(drain).await;
    if left > 0 {
        eprintln!("srs serve: {left} revocations still in flight stay pending in the journal");
    }
    Ok(())
}

/// The timer of scheduled revocations (SPEC §10): sleeps until the soonest
/// `due` in the journal, or until an event schedules one, then makes what
/// fell due pending and executes it. One query per wake-up, not a poll of
/// every task; it also looks every `at_most` (`resume_ms`), for what other
/// processes on a shared journal scheduled and in case the clock jumped.
async fn execute_when_due(service: Arc<api::Service>, at_most: Duration) {
    loop {
        let journal = service.journal.clone();
        let now = unix_ms(SystemTime::now());
        let step = tokio::task::spawn_blocking(move || {
            let due = journal.promote_due(now)?;
            Ok::<_, JournalError>((due, journal.next_due()?))
        })
        .await;
        let wait = match step {
            Ok(Ok((due, next))) => {
                // SETs of grace periods that ended fell due with their tasks.
                if let Some(ssf) = &service.ssf {
                    ssf.courier.wake();
                }
                for task in due {
                    if let Err(e) = api::start(&service, task.id, task.provider, task.subject) {
                        eprintln!("srs serve: cannot start a revocation that fell due: {e:#}");
                    }
                }
                next.map_or(at_most, |next| {
                    let ms = u64::try_from(next.saturating_sub(now)).unwrap_or(0);
                    Duration::from_millis(ms).min(at_most)
                })
            }
            Ok(Err(e)) => {
                eprintln!("srs serve: cannot read scheduled revocations: {e:#}");
                Duration::from_secs(1)
            }
            Err(e) => {
                eprintln!("srs serve: cannot read scheduled revocations: {e}");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = service.schedule.notified() => {}
        }
    }
}

/// Moves the gate with decisions other processes journaled on a shared
/// journal (SPEC §12): every `every`, the devices whose latest decision
/// arrived after the newest one the gate holds. Writers are serialized, so
/// arrival order is commit order and nothing committed is skipped.
async fn follow_gate(service: Arc<api::Service>, every: Duration) {
    let mut seen = service.gate_newest_seq();
    loop {
        tokio::time::sleep(every).await;
        let journal = service.journal.clone();
        let since = seen;
        match tokio::task::spawn_blocking(move || journal.devices_since(since)).await {
            Ok(Ok(records)) => {
                let mut gate = service
                    .gate
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for record in records {
                    seen = seen.max(record.seq);
                    gate.apply(crate::gate::DeviceVerdict::from_record(record));
                }
            }
            Ok(Err(e)) => eprintln!("srs serve: cannot read the gate's decisions: {e:#}"),
            Err(e) => eprintln!("srs serve: cannot read the gate's decisions: {e}"),
        }
    }
}

/// Reads a bearer token from the variable `[serve]` names.
fn token(env: Option<&str>) -> Result<Option<Secret>> {
    secret_from_env(env, "[serve]")
}

/// The secret in the environment variable `env` names, if it names one; an
/// unset or empty variable is an error naming `whose` setting it is.
pub(super) fn secret_from_env(env: Option<&str>, whose: &str) -> Result<Option<Secret>> {
    let Some(name) = env else { return Ok(None) };
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
        _ => bail!("{whose}: the environment variable {name} is not set"),
    }
}

/// The clients: every provider the policy calls (an error if one cannot be
/// built) and those of tasks left pending, then any other configured one
/// that builds, so a later policy may use it.
fn clients(
    config: &HostConfig,
    policy: &policy_core::PolicySummary,
    pending: impl Iterator<Item = Provider>,
) -> Result<Clients> {
    let needed: Vec<Provider> = policy
        .providers
        .iter()
        .copied()
        .filter(|_| policy.mode == Mode::Enforce)
        .chain(pending)
        .collect();
    let mut clients = Clients::for_providers(config, needed)?;
    for (provider, _) in config.sections() {
        if clients.get(provider).is_none()
            && let Ok(extra) = Clients::for_providers(config, [provider])
        {
            clients.merge(extra);
        }
    }
    Ok(clients)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
