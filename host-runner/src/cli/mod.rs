//! The `srs` command line: one file per subcommand, the exit codes here.

mod eval;
mod run;
mod serve;
mod status;
mod test;

use std::borrow::Cow;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use policy_core::Answer;

use crate::sandbox::{EMBEDDED_MODULE, Limits, Plugin};

/// Exit code: a usage, I/O or config error, or failed vectors (SPEC §8).
pub const EXIT_ERROR: u8 = 1;
/// Exit code: a failure answer, a bad input line, or a revocation not done.
pub const EXIT_ATTENTION: u8 = 2;

/// Decide, from a UEM device event, whether to revoke a user's sign-in sessions
/// at Office 365 and Google Workspace. Decisions come from a WebAssembly policy
/// module run in a sandbox: the one built into this binary, or `--module`.
#[derive(Debug, Parser)]
#[command(
    name = "srs",
    version,
    after_help = "Exit codes: 0 success, 1 usage or I/O error (or failed vectors), 2 a failure answer.\nDocs: README.md and docs/semantics.md in the source tree."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
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
        /// The journal: a SQLite file (created if missing) or a postgres:// URL.
        #[arg(
            long,
            value_name = "STATE.db|postgres://…",
            default_value = "srs-state.db"
        )]
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
    /// Run as a service: UEMs push events, gateways ask the sign-in gate.
    ///
    /// Example: srs serve --policy examples/policy.json --config examples/host.toml
    ///
    /// Endpoints (SPEC §10): POST /v1/events, GET /v1/check, GET
    /// /v1/devices/{id}, GET /v1/users/{subject}, PUT /v1/policy, GET
    /// /v1/status, GET /metrics, GET /healthz, GET /readyz. Each pushed event
    /// is decided and journaled before its 202; revocations are executed as
    /// for `srs run`. Prints `srs serve: listening on http://ADDR` once ready.
    /// SIGTERM or SIGINT stops accepting, answers what was accepted, lets
    /// calls in flight finish within `[serve] drain_ms`, and exits 0.
    Serve {
        /// The tenant policy (JSON, SPEC §2); `PUT /v1/policy` switches it.
        #[arg(long, value_name = "POLICY.json")]
        policy: PathBuf,
        /// Provider endpoints, credentials and `[serve]` (TOML, SPEC §8, §10).
        #[arg(long, value_name = "HOST.toml")]
        config: PathBuf,
        /// The journal: a SQLite file (created if missing) or a postgres:// URL.
        #[arg(
            long,
            value_name = "STATE.db|postgres://…",
            default_value = "srs-state.db"
        )]
        state: PathBuf,
        /// Where to listen, over `[serve] listen` (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Show the journal: events, revocations by state, failed and pending ones.
    ///
    /// Example: srs status --state srs-state.db
    Status {
        /// The journal (SQLite).
        #[arg(
            long,
            value_name = "STATE.db|postgres://…",
            default_value = "srs-state.db"
        )]
        state: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Junit,
}

/// Which module to run, and its limits.
#[derive(Debug, Args)]
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
        let (wasm, what) = match &self.module {
            Some(path) => (
                Cow::Owned(
                    std::fs::read(path)
                        .with_context(|| format!("cannot read module {}", path.display()))?,
                ),
                format!("module {}", path.display()),
            ),
            None => (
                Cow::Borrowed(EMBEDDED_MODULE),
                "the built-in module".to_owned(),
            ),
        };
        // Compiled code is kept between runs where it can be; without a
        // cache the module is compiled as before.
        let plugin = match code_cache_dir() {
            Some(dir) => {
                if let Some(why) = crate::sandbox::cache::unusable(&dir) {
                    eprintln!("srs: note: {why}");
                }
                Plugin::load_cached(&wasm, limits, &dir)
            }
            None => Plugin::load(&wasm, limits),
        };
        plugin.with_context(|| format!("{what} was refused"))
    }
}

/// Where compiled module code is kept between runs: `$SRS_CACHE_DIR`
/// (`off` for nowhere), else `$XDG_CACHE_HOME/srs`, else `~/.cache/srs`.
/// Only absolute paths: the user's own directory, never the working one.
fn code_cache_dir() -> Option<PathBuf> {
    let absolute = |p: PathBuf| p.is_absolute().then_some(p);
    match std::env::var_os("SRS_CACHE_DIR") {
        Some(dir) if dir == "off" => None,
        Some(dir) => absolute(PathBuf::from(dir)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .and_then(|d| absolute(PathBuf::from(d)))
            .or_else(|| {
                std::env::var_os("HOME").and_then(|h| absolute(PathBuf::from(h).join(".cache")))
            })
            .map(|d| d.join("srs")),
    }
}

/// Parses the command line, runs the subcommand, and turns an error into
/// exit code 1 with the error on stderr.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(EXIT_ERROR); // SPEC §8: usage errors exit 1
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
        } => eval::eval(&policy, &events, pretty, &sandbox),
        Command::Test {
            paths,
            format,
            sandbox,
        } => test::test(&paths, format, &sandbox),
        Command::Run {
            policy,
            config,
            state,
            dry_run,
            events,
            sandbox,
        } => run::run(
            &policy,
            &config,
            &state,
            dry_run,
            events.as_deref(),
            &sandbox,
        ),
        Command::Serve {
            policy,
            config,
            state,
            listen,
            sandbox,
        } => serve::serve(&policy, &config, &state, listen, &sandbox),
        Command::Status { state } => status::status(&state),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
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

/// Reads a file, naming it in the error.
fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Exit 0, or [`EXIT_ATTENTION`] when something needs a person.
fn exit(attention: bool) -> ExitCode {
    if attention {
        ExitCode::from(EXIT_ATTENTION)
    } else {
        ExitCode::SUCCESS
    }
}
