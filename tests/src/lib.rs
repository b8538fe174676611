//! The conformance runners: every implementation answers the vectors in
//! `tests/vectors/`, and all must agree byte for byte.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use host_runner::conformance::Evaluator;

/// policy-core called directly: the reference implementation.
pub struct Native;

impl Evaluator for Native {
    fn name(&self) -> &str {
        "native"
    }
    fn evaluate(&mut self, request: &str) -> Result<String, String> {
        Ok(policy_core::evaluate_json_str(request))
    }
}

/// The directory holding the shared vector files.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}
