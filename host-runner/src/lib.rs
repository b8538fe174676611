//! The host side of SRS policy: the sandboxed module runner and the
//! conformance-vector runner behind the `srs` command.

#![forbid(unsafe_code)]

pub mod sandbox;
pub mod vectors;

pub use sandbox::{EMBEDDED_MODULE, Limits, Plugin, PluginInstance, SandboxError, Worker};
