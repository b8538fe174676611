//! `srs test`: conformance vectors through the module, as a user's CI runs them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::{EXIT_ERROR, Format, SandboxArgs};
use crate::conformance;
use crate::sandbox::Worker;

pub(super) fn test(paths: &[PathBuf], format: Format, sandbox: &SandboxArgs) -> Result<ExitCode> {
    let files = conformance::load(paths).map_err(anyhow::Error::msg)?;
    let plugin = sandbox.plugin()?;
    let mut worker = Worker::new(&plugin);
    let results = conformance::run(&mut worker, &files);
    let summary = conformance::summary(&results);
    match format {
        Format::Text => print!("{}", conformance::text_report(&results)),
        Format::Junit => {
            print!("{}", conformance::junit_report(&results));
            eprintln!("{summary}");
        }
    }
    let failed = results.iter().any(|r| !r.passed());
    Ok(if failed || results.is_empty() {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}
