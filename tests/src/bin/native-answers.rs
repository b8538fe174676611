//! Prints the native answer to every vector case, for the JavaScript runners
//! (Node and the browser) to compare with byte for byte.
//!
//! Output: `{"<file name>": ["<answer JSON>", …], …}` in file and case order.
//! Run: `cargo run -p srs-conformance --bin native-answers [VECTOR_DIR]`

#![forbid(unsafe_code)]

use std::process::ExitCode;

use host_runner::conformance::{self, Evaluator};
use serde_json::{Map, Value};
use srs_conformance::{Native, vectors_dir};

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(vectors_dir, Into::into);
    let files = match conformance::load(&[dir]) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let mut out = Map::new();
    for (path, file) in &files {
        let mut answers = Vec::new();
        for case in &file.cases {
            match Native.evaluate(&conformance::request(&file.policy, &case.event)) {
                Ok(answer) => answers.push(Value::String(answer)),
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return ExitCode::from(1);
                }
            }
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.insert(name, Value::Array(answers));
    }
    println!("{}", Value::Object(out));
    ExitCode::SUCCESS
}
