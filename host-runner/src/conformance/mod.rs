//! Conformance vectors (SPEC §9): load the files, run every case through an
//! [`Evaluator`], compare answers with expectations, report as text or JUnit.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// One vector file: a policy and the cases evaluated under it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorFile {
    pub description: String,
    pub policy: Value,
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub description: String,
    pub event: Value,
    pub expect: Expect,
}

/// What a case expects; fields left out are not compared. Unknown fields are
/// refused, so a misspelt expectation cannot silently pass.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub outcome: Option<String>,
    pub access: Option<String>,
    pub enforced: Option<bool>,
    /// Compared exactly, in order.
    pub revocations: Option<Value>,
    /// `decision.scheduled` (SPEC §5, outcome `grace`), compared whole;
    /// `null` expects no `scheduled` at all, as every other outcome has.
    #[serde(default, deserialize_with = "present")]
    pub scheduled: Option<Value>,
    /// Rule ids, compared in order.
    pub reasons: Option<Vec<String>>,
    /// Error codes, compared as a set.
    pub failure: Option<Vec<String>>,
    /// Warning codes, compared as a set (an extension to SPEC §9).
    pub warnings: Option<Vec<String>>,
    /// Error paths, compared as a set (an extension to SPEC §9).
    pub error_paths: Option<Vec<String>>,
    /// Warning paths, compared as a set (an extension to SPEC §9).
    pub warning_paths: Option<Vec<String>>,
}

/// A field that is present, `null` included: `Some(Value::Null)` tells
/// "expected absent" apart from "not compared".
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// An implementation under test: answers one request envelope with answer JSON.
pub trait Evaluator {
    /// A short name for reports, e.g. `native` or `wasmtime`.
    fn name(&self) -> &str;
    /// Evaluates `{"policy": …, "event": …}`; `Err` when no answer came back.
    fn evaluate(&mut self, request: &str) -> Result<String, String>;
}

impl Evaluator for crate::sandbox::Worker<'_> {
    fn name(&self) -> &str {
        "wasmtime"
    }
    fn evaluate(&mut self, request: &str) -> Result<String, String> {
        crate::sandbox::Worker::evaluate(self, request.as_bytes()).map_err(|e| e.to_string())
    }
}

/// The request envelope for a case, the same bytes for every implementation.
pub fn request(policy: &Value, event: &Value) -> String {
    let mut envelope = serde_json::Map::new();
    envelope.insert("policy".to_owned(), policy.clone());
    envelope.insert("event".to_owned(), event.clone());
    Value::Object(envelope).to_string()
}

/// The vector files named by `paths`; a directory stands for its `*.json`
/// files, sorted by name. A file that does not parse is an error.
pub fn load(paths: &[PathBuf]) -> Result<Vec<(PathBuf, VectorFile)>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries =
                std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    files
        .into_iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let file =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((path, file))
        })
        .collect()
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    pub file: PathBuf,
    pub case: String,
    /// The answer, when one came back.
    pub answer: Option<String>,
    /// Every mismatch; empty when the case passed.
    pub mismatches: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Runs every case of every file.
pub fn run(evaluator: &mut dyn Evaluator, files: &[(PathBuf, VectorFile)]) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for (path, file) in files {
        for case in &file.cases {
            let (answer, mismatches) = match evaluator.evaluate(&request(&file.policy, &case.event))
            {
                Ok(answer) => {
                    let mismatches = compare(&case.expect, &answer);
                    (Some(answer), mismatches)
                }
                Err(e) => (
                    None,
                    vec![format!("{} gave no answer: {e}", evaluator.name())],
                ),
            };
            results.push(CaseResult {
                file: path.clone(),
                case: case.description.clone(),
                answer,
                mismatches,
            });
        }
    }
    results
}

/// Every way `answer` differs from `expect`.
pub fn compare(expect: &Expect, answer: &str) -> Vec<String> {
    let mut out = Vec::new();
    let answer: Value = match serde_json::from_str(answer) {
        Ok(v) => v,
        Err(e) => return vec![format!("answer is not JSON: {e}")],
    };
    let kind = answer.get("type").and_then(Value::as_str).unwrap_or("");
    let decision = answer.get("decision");
    let field = |name: &str| decision.and_then(|d| d.get(name));

    if let Some(codes) = &expect.failure {
        if kind != "failure" {
            out.push(format!(
                "expected a failure with {codes:?}, got a {kind} answer"
            ));
        } else {
            let found = strings(answer.get("errors"), "code");
            expect_set("error codes", codes, &found, &mut out);
        }
    } else if kind != "success" {
        let found = strings(answer.get("errors"), "message");
        out.push(format!(
            "expected a success, got a {kind} answer: {found:?}"
        ));
    }
    if let Some(paths) = &expect.error_paths {
        expect_set(
            "error paths",
            paths,
            &strings(answer.get("errors"), "path"),
            &mut out,
        );
    }
    if let Some(codes) = &expect.warnings {
        expect_set(
            "warning codes",
            codes,
            &strings(answer.get("warnings"), "code"),
            &mut out,
        );
    }
    if let Some(paths) = &expect.warning_paths {
        expect_set(
            "warning paths",
            paths,
            &strings(answer.get("warnings"), "path"),
            &mut out,
        );
    }
    let mut expect_eq = |name: &str, want: Option<Value>| {
        if let Some(want) = want {
            let got = field(name).cloned().unwrap_or(Value::Null);
            if got != want {
                out.push(format!("{name}: expected {want}, got {got}"));
            }
        }
    };
    expect_eq("outcome", expect.outcome.clone().map(Value::String));
    expect_eq("access", expect.access.clone().map(Value::String));
    expect_eq("enforced", expect.enforced.map(Value::Bool));
    expect_eq("revocations", expect.revocations.clone());
    expect_eq("scheduled", expect.scheduled.clone());
    if let Some(rules) = &expect.reasons {
        let got = strings(field("reasons"), "rule");
        if &got != rules {
            out.push(format!("reasons: expected {rules:?}, got {got:?}"));
        }
    }
    out
}

/// `key` of every object in the array `list`.
fn strings(list: Option<&Value>, key: &str) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get(key)?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn expect_set(what: &str, want: &[String], got: &[String], out: &mut Vec<String>) {
    let want: BTreeSet<&String> = want.iter().collect();
    let got: BTreeSet<&String> = got.iter().collect();
    if want != got {
        out.push(format!("{what}: expected {want:?}, got {got:?}"));
    }
}

/// The closing line every runner prints: `N passed, N failed`.
pub fn summary(results: &[CaseResult]) -> String {
    let passed = results.iter().filter(|r| r.passed()).count();
    format!("{passed} passed, {} failed", results.len() - passed)
}

/// A human report: one line per failed case with its mismatches, then the summary.
pub fn text_report(results: &[CaseResult]) -> String {
    let mut out = String::new();
    for r in results.iter().filter(|r| !r.passed()) {
        let _ = writeln!(out, "FAIL {}: {}", r.file.display(), r.case);
        for m in &r.mismatches {
            let _ = writeln!(out, "     {m}");
        }
        if let Some(answer) = &r.answer {
            let _ = writeln!(out, "     answer: {answer}");
        }
    }
    out.push_str(&summary(results));
    out.push('\n');
    out
}

/// A JUnit XML report: one test suite per file, one test case per case.
pub fn junit_report(results: &[CaseResult]) -> String {
    let failed = results.iter().filter(|r| !r.passed()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"srs test\" tests=\"{}\" failures=\"{failed}\">",
        results.len()
    );
    let mut files: Vec<&Path> = results.iter().map(|r| r.file.as_path()).collect();
    files.dedup();
    for file in files {
        let cases: Vec<&CaseResult> = results.iter().filter(|r| r.file == file).collect();
        let failures = cases.iter().filter(|r| !r.passed()).count();
        let name = xml(&file.display().to_string());
        let _ = writeln!(
            out,
            "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{failures}\">",
            cases.len()
        );
        for r in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{name}\" name=\"{}\"",
                xml(&r.case)
            );
            if r.passed() {
                out.push_str("/>\n");
            } else {
                let detail = xml(&r.mismatches.join("\n"));
                let first = xml(r.mismatches.first().map(String::as_str).unwrap_or(""));
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{first}\">{detail}</failure>\n    </testcase>"
                );
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters, escaped or not.
            c if c.is_control() && !matches!(c, '\n' | '\t' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
