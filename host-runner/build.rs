//! Builds the import-free core module (wasm-plugin) and puts it in OUT_DIR,
//! so `srs` embeds it and a user needs no separate build step.

use std::env;
use std::error::Error;
use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest
        .parent()
        .ok_or("host-runner has no parent directory")?;
    for watched in [
        "policy-core/src",
        "policy-core/Cargo.toml",
        "wasm-plugin/src",
        "wasm-plugin/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
        // The admin console's files, embedded by srs serve.
        "web/console",
        "web/shared",
    ] {
        println!(
            "cargo::rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    // The JS package's web build, embedded for the console when it was built
    // (`scripts/build-js`): until then, its parent, to notice it appear (a
    // missing path would make every build rerun this script).
    let package = workspace.join("wasm-plugin/js/web");
    let watched = if package.is_dir() {
        package
    } else {
        workspace.join("wasm-plugin/js")
    };
    println!("cargo::rerun-if-changed={}", watched.display());
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // A target directory of its own: the outer build holds a lock on the usual one.
    let target_dir = out.join("wasm-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| String::from("cargo"));
    let output = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "-p",
            "wasm-plugin",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm",
            // Made for size: the single-pass error reader left out (see
            // policy-core's Cargo.toml); the same answers.
            "--features",
            "small",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags are for the host, not for wasm.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        // Lints (clippy) are for the workspace build, not this nested one.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CLIPPY_CONF_DIR")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-unknown-unknown")
            && stderr.contains("target may not be installed")
        {
            "\nhint: run `rustup target add wasm32-unknown-unknown`"
        } else {
            ""
        };
        return Err(format!("building the core module failed:\n{stderr}{hint}").into());
    }
    let built = target_dir.join("wasm32-unknown-unknown/wasm/wasm_plugin.wasm");
    std::fs::copy(&built, out.join("srs_policy.wasm"))?;
    Ok(())
}
