//! `srs eval`: one answer per event, as the module gives it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use policy_core::Answer;

use super::{EXIT_ATTENTION, SandboxArgs, exit, parse_answer, print_answer, read};
use crate::sandbox::Worker;

pub(super) fn eval(
    policy: &Path,
    events: &[PathBuf],
    pretty: bool,
    sandbox: &SandboxArgs,
) -> Result<ExitCode> {
    let plugin = sandbox.plugin()?;
    let mut worker = Worker::new(&plugin);
    let policy = read(policy, "policy")?;
    let mut out = std::io::stdout().lock();
    // An invalid policy is reported once, with every error; nothing else runs.
    let raw = worker.set_policy(&policy)?;
    let accepted = parse_answer(&raw)?;
    if let Answer::Failure { .. } = accepted {
        print_answer(&mut out, &accepted, &raw, pretty)?;
        return Ok(ExitCode::from(EXIT_ATTENTION));
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
    Ok(exit(any_failure))
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read the event from stdin")?;
        Ok(buf)
    } else {
        read(path, "event")
    }
}
