//! `srs`: session revocation decisions from a sandboxed WebAssembly policy module.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use host_runner::config::HostConfig;
use host_runner::journal::{Durability, Journal, SqliteJournal};
use host_runner::providers::{Client, Clients};
use host_runner::runner::{self, RunOptions, provider_id};
use host_runner::{Limits, Plugin, Worker, vectors};
use policy_core::Answer;
use policy_core::{Mode, Provider};

/// Decide, from a UEM device event, whether to revoke a user's sign-in sessions
/// at Office 365 and Google Workspace. Decisions come from a WebAssembly policy
/// module run in a sandbox: the one built into this binary, or `--module`.
#[derive(Parser)]
#[command(
    name = "srs",
    version,
    after_help = "Exit codes: 0 success, 1 usage or I/O error (or failed vectors), 2 a failure answer.\nDocs: README.md and docs/semantics.md in the source tree."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate device events under a policy and print one JSON answer per event.
    ///
    /// Example: srs eval --policy examples/policy.json examples/events/jailbroken-iphone.json
    ///
    /// The policy is checked first; if it is invalid its failure answer is
    /// printed and nothing else is evaluated. Exit 0 when every answer is a
    /// success, 2 when any is a failure, 1 on a usage or I/O error.
    Eval {
        /// The tenant policy (JSON, SPEC §2).
        #[arg(long, value_name = "POLICY.json")]
        policy: PathBuf,
        /// Event files (JSON, SPEC §3); `-` or nothing reads one event from stdin.
        #[arg(value_name = "EVENT.json")]
        events: Vec<PathBuf>,
        /// Print each answer indented instead of on one line.
        #[arg(long)]
        pretty: bool,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Run conformance vector files and report which cases pass.
    ///
    /// Example: srs test tests/vectors
    ///
    /// Each PATH is a vector file (SPEC §9) or a directory of them. The last
    /// line of the text report is `N passed, N failed`; with `--format junit`
    /// the XML goes to stdout and that line to stderr. Exit 1 if any case failed.
    Test {
        /// Vector files or directories of `*.json` vector files.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Evaluate events from JSON Lines and revoke sessions at the providers.
    ///
    /// Example: srs run --policy examples/policy-report-only.json --config examples/host.toml examples/events.jsonl
    ///
    /// Each event and its revocation tasks are committed to the journal
    /// (`--state`) before any provider call; an event id seen before executes
    /// nothing again; tasks left pending by a crash or a long outage are
    /// resumed first. One line per event, in input order, then a summary.
    /// Exit 0 when every revocation is done, 2 when an input line was bad, a
    /// revocation failed or one is still pending, 1 on a usage, config or I/O
    /// error (or an invalid policy).
    Run {
        /// The tenant policy (JSON, SPEC §2).
        #[arg(long, value_name = "POLICY.json")]
        policy: PathBuf,
        /// Provider endpoints and credentials (TOML, SPEC §8).
        #[arg(long, value_name = "HOST.toml")]
        config: PathBuf,
        /// The journal (SQLite); created if missing.
        #[arg(long, value_name = "STATE.db", default_value = "srs-state.db")]
        state: PathBuf,
        /// Decide and journal, but call no provider.
        #[arg(long)]
        dry_run: bool,
        /// Events, one JSON object per line; `-` or nothing reads stdin.
        #[arg(value_name = "EVENTS.jsonl")]
        events: Option<PathBuf>,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Show the journal: events, revocations by state, failed and pending ones.
    ///
    /// Example: srs status --state srs-state.db
    Status {
        /// The journal (SQLite).
        #[arg(long, value_name = "STATE.db", default_value = "srs-state.db")]
        state: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Junit,
}

/// Which module to run, and its limits.
#[derive(Args)]
struct SandboxArgs {
    /// A core wasm module implementing SRS ABI version 1, instead of the built-in one.
    #[arg(long, value_name = "MODULE.wasm")]
    module: Option<PathBuf>,
    /// Linear memory cap per module instance, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = Limits::default().max_memory >> 20)]
    max_memory_mib: usize,
    /// Fuel per call (about one unit per wasm instruction).
    #[arg(long, value_name = "UNITS", default_value_t = Limits::default().fuel_per_call)]
    fuel: u64,
    /// Largest request (policy, event or envelope) handed to the module, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_request)]
    max_request_bytes: usize,
    /// Largest answer read back from the module, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_answer)]
    max_answer_bytes: usize,
}

impl SandboxArgs {
    fn plugin(&self) -> Result<Plugin> {
        let limits = Limits {
            max_memory: self.max_memory_mib.saturating_mul(1 << 20),
            fuel_per_call: self.fuel,
            max_request: self.max_request_bytes,
            max_answer: self.max_answer_bytes,
        };
        match &self.module {
            Some(path) => {
                let wasm = std::fs::read(path)
                    .with_context(|| format!("cannot read module {}", path.display()))?;
                Plugin::load(&wasm, limits)
                    .with_context(|| format!("module {} was refused", path.display()))
            }
            None => Plugin::embedded(limits).context("the built-in module was refused"),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(1); // SPEC §8: usage errors exit 1
        }
        Err(e) => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
    };
    let result = match cli.command {
        Command::Eval {
            policy,
            events,
            pretty,
            sandbox,
        } => eval(&policy, &events, pretty, &sandbox),
        Command::Test {
            paths,
            format,
            sandbox,
        } => test(&paths, format, &sandbox),
        Command::Run {
            policy,
            config,
            state,
            dry_run,
            events,
            sandbox,
        } => run(
            &policy,
            &config,
            &state,
            dry_run,
            events.as_deref(),
            &sandbox,
        ),
        Command::Status { state } => status(&state),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn eval(
    policy: &Path,
    events: &[PathBuf],
    pretty: bool,
    sandbox: &SandboxArgs,
) -> Result<ExitCode> {
    let plugin = sandbox.plugin()?;
    let mut worker = Worker::new(&plugin);
    let policy = std::fs::read(policy)
        .with_context(|| format!("cannot read policy {}", policy.display()))?;
    let mut out = std::io::stdout().lock();
    // An invalid policy is reported once, with every error; nothing else runs.
    let raw = worker.set_policy(&policy)?;
    let accepted = parse_answer(&raw)?;
    if let Answer::Failure { .. } = accepted {
        print_answer(&mut out, &accepted, &raw, pretty)?;
        return Ok(ExitCode::from(2));
    }
    let stdin = [PathBuf::from("-")];
    let mut any_failure = false;
    for path in if events.is_empty() {
        &stdin[..]
    } else {
        events
    } {
        let raw = worker.evaluate_event(&read_input(path)?)?;
        let answer = parse_answer(&raw)?;
        any_failure |= matches!(answer, Answer::Failure { .. });
        print_answer(&mut out, &answer, &raw, pretty)?;
    }
    Ok(if any_failure {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads the module's answer, refusing one that is not of the SPEC §5 shape.
fn parse_answer(raw: &str) -> Result<Answer> {
    serde_json::from_str(raw).context("the module's answer is not a SPEC answer")
}

/// Prints the module's bytes as they are, or the answer indented.
fn print_answer(out: &mut dyn Write, answer: &Answer, raw: &str, pretty: bool) -> Result<()> {
    if pretty {
        writeln!(out, "{}", serde_json::to_string_pretty(answer)?)?;
    } else {
        writeln!(out, "{raw}")?;
    }
    Ok(())
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read the event from stdin")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read event {}", path.display()))
    }
}

fn test(paths: &[PathBuf], format: Format, sandbox: &SandboxArgs) -> Result<ExitCode> {
    let files = vectors::load(paths).map_err(anyhow::Error::msg)?;
    let plugin = sandbox.plugin()?;
    let mut worker = Worker::new(&plugin);
    let results = vectors::run(&mut worker, &files);
    let summary = vectors::summary(&results);
    match format {
        Format::Text => print!("{}", vectors::text_report(&results)),
        Format::Junit => {
            print!("{}", vectors::junit_report(&results));
            eprintln!("{summary}");
        }
    }
    let failed = results.iter().any(|r| !r.passed());
    Ok(if failed || results.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run(
    policy_path: &Path,
    config_path: &Path,
    state: &Path,
    dry_run: bool,
    events: Option<&Path>,
    sandbox: &SandboxArgs,
) -> Result<ExitCode> {
    let config = HostConfig::load(config_path)?;
    let plugin = sandbox.plugin()?;
    let mut worker = Worker::new(&plugin);
    let policy = std::fs::read(policy_path)
        .with_context(|| format!("cannot read policy {}", policy_path.display()))?;
    let raw = worker.set_policy(&policy)?;
    if let Answer::Failure { .. } = parse_answer(&raw)? {
        println!("{raw}");
        anyhow::bail!(
            "the policy {} is invalid (its errors are above)",
            policy_path.display()
        );
    }
    let mut journal = SqliteJournal::open(state, Durability::Full)?;
    // Which providers will be called: the policy's when it is enforced, and
    // those of tasks an earlier run left pending. Credentials are read for
    // those only, so a report_only policy needs none.
    let mut needed: Vec<Provider> = Vec::new();
    let mut resume = Vec::new();
    if !dry_run {
        let engine = policy_core::Engine::from_json(&policy)
            .map_err(|_| anyhow::anyhow!("the policy was accepted by the module but not by srs"))?;
        if engine.policy().mode == Mode::Enforce {
            needed.extend(&engine.policy().providers);
        }
        resume = journal.pending_tasks()?;
        for task in &resume {
            needed.push(runner::parse_provider(&task.provider)?);
        }
    }
    let clients = clients(&config, &needed)
        .with_context(|| format!("host config {}", config_path.display()))?;
    let input: Box<dyn std::io::BufRead + Send> = match events {
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
        Some(path) if path.as_os_str() == "-" => {
            Box::new(std::io::BufReader::new(std::io::stdin()))
        }
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path)
                .with_context(|| format!("cannot read events {}", path.display()))?,
        )),
    };
    let options = RunOptions {
        dry_run,
        retry: config.retry,
        resume,
    };
    let out = Box::new(std::io::LineWriter::new(std::io::stdout()));
    let summary = runner::run(&mut worker, Box::new(journal), clients, options, input, out)?;
    println!("{summary}");
    Ok(if summary.needs_attention() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Builds a client for each provider in `needed`; a missing section is an error.
fn clients(config: &HostConfig, needed: &[Provider]) -> Result<Clients> {
    let mut clients = Clients::default();
    for &provider in needed {
        let missing = || {
            anyhow::anyhow!(
                "`{}` revocations are due but there is no [{}] section",
                provider_id(provider),
                provider_id(provider)
            )
        };
        match provider {
            Provider::Office365 if clients.office365.is_none() => {
                let section = config.office365.as_ref().ok_or_else(missing)?;
                clients.office365 = Some(std::sync::Arc::new(Client::office365(section)?));
            }
            Provider::GoogleWorkspace if clients.google_workspace.is_none() => {
                let section = config.google_workspace.as_ref().ok_or_else(missing)?;
                clients.google_workspace = Some(std::sync::Arc::new(Client::google(section)?));
            }
            _ => {}
        }
    }
    Ok(clients)
}

fn status(state: &Path) -> Result<ExitCode> {
    if !state.exists() {
        anyhow::bail!("no journal at {}", state.display());
    }
    let status = SqliteJournal::open(state, Durability::Full)?.status()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {} events ({} from dry runs); revocations: {} done, {} failed, {} pending",
        state.display(),
        status.events,
        status.dry_run_events,
        status.tasks.done,
        status.tasks.failed,
        status.tasks.pending
    )?;
    for t in &status.failed {
        let error = [
            t.error_code.clone(),
            t.http_status.map(|s| s.to_string()),
            t.provider_code.clone(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        writeln!(
            out,
            "failed   {} {}  {error}: {}  ({} attempts; events {})",
            t.provider,
            t.subject,
            t.message.as_deref().unwrap_or("no message"),
            t.attempts,
            t.events.join(",")
        )?;
    }
    for t in &status.pending {
        writeln!(
            out,
            "pending  {} {}  ({} attempts; events {})",
            t.provider,
            t.subject,
            t.attempts,
            t.events.join(",")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
