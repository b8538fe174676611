//! `srs`: session revocation decisions from a sandboxed WebAssembly policy
//! module. Everything is in the library; see `host_runner::cli`.

#![forbid(unsafe_code)]

/// mimalloc, not the system allocator: `srs run` allocates per call and per
/// journaled row on several threads (BENCHMARKS.md, stop 23).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    host_runner::cli::main()
}
