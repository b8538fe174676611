//! The host side of SRS policy: the sandboxed module runner and the
//! conformance-vector runner behind the `srs` command.

#![forbid(unsafe_code)]

pub mod config;
pub mod journal;
pub mod providers;
pub mod retry;
pub mod runner;
pub mod sandbox;
pub mod vectors;

pub use sandbox::{EMBEDDED_MODULE, Limits, Plugin, PluginInstance, SandboxError, Worker};
