//! The `srs` binary as a user runs it: exit codes, output, and the SPEC §8 CLI.

#![expect(clippy::unwrap_used, reason = "a test stops at its first failure")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn srs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srs"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn eval_jailbroken_iphone_revokes_at_both_providers() {
    let out = srs(&[
        "eval",
        "--policy",
        "examples/policy.json",
        "examples/events/jailbroken-iphone.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["decision"]["outcome"], "revoke");
    assert_eq!(
        answer["decision"]["revocations"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn eval_prints_one_answer_per_event_in_order() {
    let out = srs(&[
        "eval",
        "--policy",
        "examples/policy.json",
        "examples/events/os-too-old.json",
        "examples/events/retired-laptop.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["decision"]["event_id"]
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["\"evt-000124\"", "\"evt-000125\""]);
}

#[test]
fn eval_malformed_event_lists_every_error_and_exits_2() {
    let out = srs(&[
        "eval",
        "--policy",
        "examples/policy.json",
        "examples/malformed-event.json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(answer["type"], "failure");
    let paths: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "event.id",
            "event.device.state",
            "event.device.colour",
            "event.user",
            "event.compliance.violations[0].actions[1]"
        ]
    );
}

#[test]
fn eval_reads_the_event_from_stdin() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_srs"))
        .current_dir(root())
        .args(["eval", "--policy", "examples/policy.json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let event = std::fs::read(root().join("examples/events/retired-laptop.json")).unwrap();
    child.stdin.take().unwrap().write_all(&event).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains(r#""rule":"device-state""#));
}

#[test]
fn eval_invalid_policy_prints_its_failure_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"uem": "intune", "deployment": "access", "providers": []}"#,
    )
    .unwrap();
    let out = srs(&[
        "eval",
        "--policy",
        policy.to_str().unwrap(),
        "examples/events/jailbroken-iphone.json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains(r#""path":"policy.uem""#), "{text}");
    assert!(text.contains(r#""path":"policy.providers""#), "{text}");
}

#[test]
fn eval_missing_file_and_bad_usage_exit_1() {
    let out = srs(&[
        "eval",
        "--policy",
        "no-such-policy.json",
        "examples/events/jailbroken-iphone.json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read policy no-such-policy.json")
    );
    let out = srs(&["eval", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(1));
    let out = srs(&["eval"]);
    assert_eq!(out.status.code(), Some(1), "--policy is required");
}

#[test]
fn help_exits_0_and_explains_the_commands() {
    let out = srs(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("eval") && text.contains("test"), "{text}");
}

#[test]
fn test_command_passes_the_shipped_vectors() {
    let out = srs(&["test", "tests/vectors"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let last = text.lines().last().unwrap();
    let (passed, failed) = last.split_once(" passed, ").unwrap();
    assert!(passed.parse::<usize>().unwrap() >= 60, "{last}");
    assert_eq!(failed, "0 failed");
}

fn write_vector(dir: &Path, expect: &str) -> PathBuf {
    let path = dir.join("wrong.json");
    let text = format!(
        r#"{{"description": "one wrong expectation",
            "policy": {{"uem": "epmm", "deployment": "access", "providers": ["office365"]}},
            "cases": [{{"description": "compliant phone",
                        "event": {{"id": "e1", "device": {{"id": "d1", "state": "active"}},
                                   "user": {{"upn": "a@example.com"}}, "compliance": {{"compliant": true}}}},
                        "expect": {expect}}}]}}"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn test_command_reports_a_failed_case_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_vector(dir.path(), r#"{"outcome": "revoke"}"#);
    let out = srs(&["test", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL") && text.contains("outcome: expected \"revoke\""),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("0 passed, 1 failed"));
}

#[test]
fn test_command_writes_junit() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_vector(dir.path(), r#"{"outcome": "revoke"}"#);
    let out = srs(&["test", "--format", "junit", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let xml = stdout(&out);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains(r#"<testsuites name="srs test" tests="1" failures="1">"#),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"outcome: expected &quot;revoke&quot;"),
        "{xml}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "0 passed, 1 failed"
    );
}

#[test]
fn test_command_refuses_a_module_that_imports() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("imports.wasm");
    let wasm = wat::parse_str(r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))))"#).unwrap();
    std::fs::write(&module, wasm).unwrap();
    let out = srs(&[
        "test",
        "--module",
        module.to_str().unwrap(),
        "tests/vectors",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("imports `wasi_snapshot_preview1::fd_write`"),
        "{err}"
    );
}

/// The `srs eval` the code cache tests run, with or without a cache.
const EVAL: [&str; 4] = [
    "eval",
    "--policy",
    "examples/policy.json",
    "examples/events/jailbroken-iphone.json",
];

/// `srs eval` with its compiled code kept in `cache`.
fn eval_cached(cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srs"))
        .current_dir(root())
        .env("SRS_CACHE_DIR", cache)
        .args(EVAL)
        .output()
        .unwrap()
}

/// The kept files under `dir`, with their sizes.
fn kept(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(kept(&path));
        } else {
            let len = path.metadata().unwrap().len();
            out.push((path, len));
        }
    }
    out
}

/// A cache directory group or others may write is not used, and srs says
/// so (else the only symptom is a compile at every start).
#[cfg(unix)]
#[test]
fn a_cache_others_may_write_is_named_and_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("shared");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let plain = srs(&EVAL);
    for _ in 0..2 {
        let out = eval_cached(&cache);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(stdout(&out), stdout(&plain));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is not used: group or others may write it (mode 777)"),
            "{err}"
        );
    }
    // Nothing was written there; once private, it is used.
    assert_eq!(kept(&cache), vec![]);
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = eval_cached(&cache);
    assert!(out.stderr.is_empty(), "{out:?}");
    assert_eq!(kept(&cache).len(), 1, "{:?}", kept(&cache));
}

#[test]
fn compiled_code_is_kept_between_runs_and_a_broken_cache_only_costs_a_compile() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let plain = srs(&EVAL);
    // The first run compiles and keeps the code; the second loads it; both
    // answer as a run without the cache does.
    for _ in 0..2 {
        let out = eval_cached(&cache);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(stdout(&out), stdout(&plain));
    }
    let modules: Vec<(PathBuf, u64)> = kept(&cache)
        .into_iter()
        .filter(|(p, len)| *len > 10_000 && p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(modules.len(), 1, "{:?}", kept(&cache));

    // Only whole files are kept: nothing else is left in the directory.
    assert_eq!(kept(&cache).len(), 1, "{:?}", kept(&cache));

    // A kept file cut short (changed by something else) is compiled again,
    // not run.
    let (module, len) = &modules[0];
    let bytes = std::fs::read(module).unwrap();
    std::fs::write(module, &bytes[..usize::try_from(*len / 2).unwrap()]).unwrap();
    let out = eval_cached(&cache);
    assert_eq!(stdout(&out), stdout(&plain), "{out:?}");

    // A cache that cannot be made (its path is a file) is no cache.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let out = eval_cached(&file);
    assert_eq!(stdout(&out), stdout(&plain), "{out:?}");

    // `off` keeps nothing anywhere.
    let off = Command::new(env!("CARGO_BIN_EXE_srs"))
        .current_dir(dir.path())
        .env("SRS_CACHE_DIR", "off")
        .env("HOME", dir.path())
        .args([
            "eval",
            "--policy",
            root().join("examples/policy.json").to_str().unwrap(),
            root()
                .join("examples/events/jailbroken-iphone.json")
                .to_str()
                .unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&off), stdout(&plain), "{off:?}");
    assert!(!dir.path().join(".cache").exists());
}
