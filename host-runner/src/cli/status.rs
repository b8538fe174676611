//! `srs status`: what the journal holds.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::journal::{self, Durability};
use crate::revocation::rfc3339;

pub(super) fn status(state: &Path) -> Result<ExitCode> {
    if !journal::is_url(state) && !state.exists() {
        bail!("no journal at {}", state.display());
    }
    let status = journal::open(state, Durability::Full)?.status()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {} events ({} from dry runs); revocations: {} done, {} failed, {} pending, {} scheduled, {} cancelled",
        journal::display(state),
        status.events,
        status.dry_run_events,
        status.tasks.done,
        status.tasks.failed,
        status.tasks.pending,
        status.tasks.scheduled,
        status.tasks.cancelled
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
    let d = &status.deliveries;
    if d != &crate::journal::TaskCounts::default() {
        writeln!(
            out,
            "shared signals: {} done, {} failed, {} pending, {} scheduled, {} cancelled",
            d.done, d.failed, d.pending, d.scheduled, d.cancelled
        )?;
    }
    for f in &status.failed_deliveries {
        writeln!(
            out,
            "failed   SET to {}  {} {}: {}  ({} attempts; event {})",
            f.receiver,
            f.http_status
                .map_or_else(|| "no answer".to_owned(), |s| s.to_string()),
            f.err.as_deref().unwrap_or("no err"),
            f.message.as_deref().unwrap_or("no description"),
            f.attempts,
            f.event_id
        )?;
    }
    for t in &status.scheduled {
        writeln!(
            out,
            "scheduled {} {}  due {}  (device {}; events {})",
            t.provider,
            t.subject,
            rfc3339(t.due_ms),
            t.device_id.as_deref().unwrap_or("unnamed"),
            t.events.join(",")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
