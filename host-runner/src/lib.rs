//! The host side of SRS policy: the `srs` command. Its rooms, each a folder
//! (or file) under `src/`, each depending only on the ones listed before it:
//!
//! - [`config`] — `HOST.toml`: provider sections, `[retry]`, every number bounded.
//! - [`sandbox`] — the policy module in wasmtime (the only importer of wasmtime).
//! - [`conformance`] — vector files: loading, comparing answers, text and JUnit reports.
//! - [`journal`] — the durable record of events, tasks and attempts: the trait, then SQLite.
//! - [`providers`] — Office 365 and Google Workspace: one file each, a registry, the shared HTTP client.
//! - [`gate`] — the sign-in gate's view: each device's latest decision, each user's devices.
//! - [`revocation`] — the executor: classify answers, retry, execute tasks, the `srs run` loop.
//! - [`serve`] — `srs serve`: the HTTP service (intake, gate, admin API, metrics).
//! - [`ssf`] — Shared Signals: our signing key, the SETs we push, the ones we accept.
//! - [`cli`] — the subcommands (`eval`, `test`, `run`, `serve`, `status`) and their exit codes.

// One `unsafe` is allowed, with its SAFETY argument: mapping kept compiled
// code (`sandbox/cache.rs`).
#![deny(unsafe_code)]

#[cfg(feature = "service")]
pub mod cli;
#[cfg(feature = "service")]
pub mod config;
pub mod conformance;
#[cfg(feature = "service")]
pub mod gate;
#[cfg(feature = "service")]
pub mod journal;
#[cfg(feature = "service")]
pub mod providers;
#[cfg(feature = "service")]
pub mod revocation;
pub mod sandbox;
#[cfg(feature = "service")]
pub mod serve;
#[cfg(feature = "service")]
pub mod ssf;

pub use sandbox::{EMBEDDED_MODULE, Limits, Plugin, PluginInstance, SandboxError, Worker};

/// Cuts `text` to at most `max_bytes` at a character boundary: the one bound
/// on outside text (provider codes and messages, headers) srs keeps or shows.
pub fn clip(text: &str, max_bytes: usize) -> &str {
    text.get(..text.floor_char_boundary(max_bytes))
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clip_cuts_at_a_character_boundary() {
        assert_eq!(super::clip("short", 1024), "short");
        assert_eq!(super::clip("ééé", 3), "é");
        assert_eq!(super::clip(&"x".repeat(5_000), 1024).len(), 1024);
    }
}
