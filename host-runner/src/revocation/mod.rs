//! The executor: from decided events to revoked sessions, durably (SPEC §8).
//! No HTTP and no SQL here: calls go through `providers`, state through the
//! `journal` trait.
//!
//! - `retry`: what a provider's answer means and how long to wait (pure).
//! - `execute`: one task until it settles, each attempt journaled (group commit).
//! - `executor`: starts tasks (one execution per task at a time), reports ends.
//! - `intake`: decide events in the sandbox and journal them (both front doors).
//! - `runner`: `srs run`'s loop: read lines, decide in the sandbox, journal,
//!   execute, print a row per event in input order.

mod execute;
mod executor;
pub mod intake;
pub mod retry;
mod runner;

pub use execute::{AttemptWriter, TaskEnd, execute, rfc3339, unix_ms};
pub use executor::{Ended, Executor, ProviderObserver, owner};
pub use runner::{RunOptions, Summary, run};
