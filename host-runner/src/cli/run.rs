//! `srs run`: events from JSON Lines, decided in the sandbox, revoked durably.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use policy_core::{Mode, PolicySummary, Provider};

use super::{SandboxArgs, exit, read};
use crate::journal::{self, Durability};
use crate::providers::Clients;
use crate::revocation::intake::{self, Checked};
use crate::revocation::{self, RunOptions};
use crate::sandbox::Worker;

pub(super) fn run(
    policy_path: &Path,
    config_path: &Path,
    state: &Path,
    dry_run: bool,
    events: Option<&Path>,
    sandbox: &SandboxArgs,
) -> Result<ExitCode> {
    let config = crate::providers::load_config(config_path)?;
    let plugin = sandbox.plugin()?;
    let mut worker = Worker::new(&plugin);
    let answer = worker.set_policy(&read(policy_path, "policy")?)?;
    let summary = match intake::checked_policy(answer)? {
        Checked::Invalid { answer } => {
            println!("{answer}");
            bail!(
                "the policy {} is invalid (its errors are above)",
                policy_path.display()
            );
        }
        Checked::Valid { summary, .. } => summary,
    };
    let journal = journal::open(state, Durability::Full)?;
    // Which providers will be called: the policy's when it is enforced, and
    // those of tasks an earlier run left pending or scheduled. Credentials
    // are read for those only, so a report_only policy needs none.
    let (resume, scheduled) = if dry_run {
        (Vec::new(), Vec::new())
    } else {
        (journal.pending_tasks()?, journal.status()?.scheduled)
    };
    let needed = called(&summary, dry_run)
        .chain(resume.iter().map(|t| t.provider))
        .chain(scheduled.iter().map(|t| t.provider));
    let clients = Clients::for_providers(&config, needed)
        .with_context(|| format!("host config {}", config_path.display()))?;
    let input: Box<dyn std::io::BufRead + Send> = match events {
        Some(path) if path.as_os_str() != "-" => Box::new(std::io::BufReader::new(
            std::fs::File::open(path)
                .with_context(|| format!("cannot read events {}", path.display()))?,
        )),
        _ => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let options = RunOptions {
        dry_run,
        retry: config.retry,
        resume,
    };
    // Buffered: the run writes its rows out in bursts (at most 50 ms late).
    // Not locked for the whole run: stdout is taken for each burst only.
    let out = Box::new(std::io::BufWriter::new(std::io::stdout()));
    let summary = revocation::run(&mut worker, journal, clients, options, input, out)?;
    println!("{summary}");
    Ok(exit(summary.needs_attention()))
}

/// The providers a policy's decisions will call: none in a dry run or in
/// `report_only` mode.
fn called(policy: &PolicySummary, dry_run: bool) -> impl Iterator<Item = Provider> + '_ {
    let calls = !dry_run && policy.mode == Mode::Enforce;
    policy.providers.iter().copied().filter(move |_| calls)
}
