//! `srs serve`: the live service and the sign-in gate (SPEC §10).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use super::{SandboxArgs, read};
use crate::journal::{self, Durability};
use crate::serve::{Checked, ServeOptions, check_policy, serve as run_service};

pub(super) fn serve(
    policy_path: &Path,
    config_path: &Path,
    state: &Path,
    listen: Option<String>,
    sandbox: &SandboxArgs,
) -> Result<ExitCode> {
    let config = crate::providers::load_config(config_path)?;
    let plugin = sandbox.plugin()?;
    let policy = read(policy_path, "policy")?;
    let summary = match check_policy(&plugin, &policy)? {
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
    run_service(ServeOptions {
        plugin,
        policy,
        summary,
        config,
        journal,
        listen,
    })?;
    Ok(ExitCode::SUCCESS)
}
