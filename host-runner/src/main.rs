//! `srs`: session revocation decisions from a sandboxed WebAssembly policy
//! module. Everything is in the library; see `host_runner::cli`.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    host_runner::cli::main()
}
