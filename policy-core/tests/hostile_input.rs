//! Hostile input through the JSON entry points: every case gives a failure
//! answer with a stable code (or, where the input is valid, a normal answer),
//! never a panic, never a hang, and always one JSON object on one line.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test stops at its first failure"
)]

use std::time::{Duration, Instant};

use policy_core::{Answer, Engine, MAX_INPUT_BYTES, MAX_ITEMS};
use serde_json::Value;

/// A hang guard, not a benchmark: a debug build takes well under a second.
const BOUND: Duration = Duration::from_secs(10);

const POLICY: &str = r#"{"uem":"epmm","deployment":"access","providers":["office365"]}"#;

/// An event whose `id` and violations are spliced in as raw JSON text.
fn event_with(id: &str, violations: &str) -> String {
    format!(
        r#"{{"id":{id},"device":{{"id":"dev-9","state":"active"}},"user":{{"upn":"alice@example.com"}},"compliance":{{"compliant":false,"violations":{violations}}}}}"#
    )
}

fn event() -> String {
    event_with(
        r#""evt-1""#,
        r#"[{"policy":"jailbreak","actions":["Block"]}]"#,
    )
}

fn request(policy: &str, event: &str) -> String {
    format!(r#"{{"policy":{policy},"event":{event}}}"#)
}

/// Runs `f` under the hang guard.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    assert!(elapsed < BOUND, "{what} took {elapsed:?}");
    out
}

/// The answer text as JSON, checking it is exactly one object on one line
/// with a known `type`, and for a failure a non-empty list of well-formed errors.
fn parse_answer(text: &str) -> Value {
    assert!(!text.contains('\n'), "answer spans lines: {text:.200}");
    let value: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text:.200}"));
    let object = value.as_object().expect("answer is an object");
    match object["type"].as_str() {
        Some("success") => {
            assert!(object["warnings"].is_array(), "{text:.200}");
        }
        Some("failure") => {
            let errors = object["errors"].as_array().expect("errors is a list");
            assert!(!errors.is_empty(), "a failure lists its errors");
            for error in errors {
                let code = error["code"].as_str().expect("code is a string");
                assert!(
                    [
                        "malformed-json",
                        "missing-field",
                        "unknown-field",
                        "invalid-value",
                        "unknown-action",
                        "unknown-compliance-policy",
                        "missing-identity",
                        "too-large",
                    ]
                    .contains(&code),
                    "unknown code {code}"
                );
                assert!(error["path"].is_string() && error["message"].is_string());
            }
        }
        other => panic!("answer type {other:?}: {text:.200}"),
    }
    value
}

/// `evaluate_json_bytes` on `input`; for UTF-8 input `evaluate_json_str` must agree.
fn evaluate(input: &[u8]) -> Value {
    let text = timed("evaluate_json_bytes", || {
        policy_core::evaluate_json_bytes(input)
    });
    if let Ok(s) = std::str::from_utf8(input) {
        let same = timed("evaluate_json_str", || policy_core::evaluate_json_str(s));
        assert_eq!(same, text, "str and bytes entry points disagree");
    }
    parse_answer(&text)
}

fn from_json(policy: &[u8]) -> Result<Engine, Value> {
    timed("Engine::from_json", || Engine::from_json(policy))
        .map_err(|answer| parse_answer(&answer.to_json()))
}

/// The failure answer to a policy that must be refused.
fn refused_policy(policy: &[u8]) -> Value {
    match from_json(policy) {
        Ok(_) => panic!("policy was accepted"),
        Err(answer) => answer,
    }
}

fn engine() -> Engine {
    from_json(POLICY.as_bytes()).unwrap_or_else(|a| panic!("policy refused: {a}"))
}

fn evaluate_event(event: &[u8]) -> Value {
    let engine = engine();
    let answer: Answer = timed("Engine::evaluate_json", || engine.evaluate_json(event));
    parse_answer(&answer.to_json())
}

/// The one error of a failure answer: (code, path, message).
fn only_error(answer: &Value) -> (String, String, String) {
    assert_eq!(answer["type"], "failure", "{answer:.300}");
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "expected exactly one error: {answer:.500}");
    let e = &errors[0];
    (
        e["code"].as_str().unwrap().to_owned(),
        e["path"].as_str().unwrap().to_owned(),
        e["message"].as_str().unwrap().to_owned(),
    )
}

fn assert_only_error(answer: &Value, code: &str, path: &str, message_has: &str) {
    let (c, p, m) = only_error(answer);
    assert_eq!((c.as_str(), p.as_str()), (code, path), "{m}");
    assert!(
        m.contains(message_has),
        "message {m:?} lacks {message_has:?}"
    );
}

#[test]
fn the_baseline_request_is_a_revoke() {
    let answer = evaluate(request(POLICY, &event()).as_bytes());
    assert_eq!(answer["type"], "success");
    assert_eq!(answer["decision"]["outcome"], "revoke");
    assert_eq!(
        evaluate_event(event().as_bytes())["decision"]["outcome"],
        "revoke"
    );
}

// --- nesting ---------------------------------------------------------------

#[test]
fn nesting_100_000_deep_is_malformed_json() {
    let depth = 100_000;
    let open = "[".repeat(depth);
    let closed = format!("{open}{}", "]".repeat(depth));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    for input in [&open, &closed, &objects] {
        let answer = evaluate(input.as_bytes());
        assert_only_error(&answer, "malformed-json", "", "recursion limit exceeded");
    }
    // Deep inside an otherwise valid envelope.
    let inside = request(
        &format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        &event(),
    );
    assert_only_error(
        &evaluate(inside.as_bytes()),
        "malformed-json",
        "",
        "recursion limit exceeded",
    );
    let policy = refused_policy(closed.as_bytes());
    assert_only_error(
        &policy,
        "malformed-json",
        "policy",
        "recursion limit exceeded",
    );
    assert_only_error(
        &evaluate_event(objects.as_bytes()),
        "malformed-json",
        "event",
        "recursion limit exceeded",
    );
}

// --- size --------------------------------------------------------------------

#[test]
fn a_request_of_1_mib_plus_one_byte_is_too_large() {
    let mut input = request(POLICY, &event()).into_bytes();
    input.resize(MAX_INPUT_BYTES + 1, b' ');
    assert_only_error(
        &evaluate(&input),
        "too-large",
        "",
        "request is 1048577 bytes; the limit is 1048576",
    );
    // The same bytes with the last one dropped are whitespace-padded valid JSON.
    assert_eq!(evaluate(&input[..MAX_INPUT_BYTES])["type"], "success");

    let mut policy = POLICY.as_bytes().to_vec();
    policy.resize(MAX_INPUT_BYTES + 1, b' ');
    let refused = refused_policy(&policy);
    assert_only_error(
        &refused,
        "too-large",
        "policy",
        "input is 1048577 bytes; the limit is 1048576",
    );
    let mut event = event().into_bytes();
    event.resize(MAX_INPUT_BYTES + 1, b' ');
    assert_only_error(
        &evaluate_event(&event),
        "too-large",
        "event",
        "input is 1048577 bytes; the limit is 1048576",
    );
    // Garbage is not even read when it is too large.
    assert_only_error(
        &evaluate(&vec![0xff; MAX_INPUT_BYTES + 1]),
        "too-large",
        "",
        "request is 1048577 bytes",
    );
}

/// A request of exactly `total` bytes whose event id is a long string of `x`.
fn long_id_request(total: usize) -> String {
    let skeleton = request(
        POLICY,
        &event_with(r#""""#, r#"[{"policy":"jailbreak","actions":["Block"]}]"#),
    );
    let id = "x".repeat(total - skeleton.len());
    let text = request(
        POLICY,
        &event_with(
            &format!("\"{id}\""),
            r#"[{"policy":"jailbreak","actions":["Block"]}]"#,
        ),
    );
    assert_eq!(text.len(), total);
    text
}

#[test]
fn a_1_mib_string_in_a_small_field_is_evaluated_under_the_limit_and_too_large_over_it() {
    // Exactly at the request limit: read, but no string may exceed 256 bytes.
    let at_limit = long_id_request(MAX_INPUT_BYTES);
    assert_only_error(
        &evaluate(at_limit.as_bytes()),
        "too-large",
        "event.id",
        "1048318 bytes; the limit is 256",
    );
    // A 256-byte id is evaluated and echoed.
    let id = "x".repeat(policy_core::MAX_STRING);
    let answer = evaluate(
        request(
            POLICY,
            &event_with(
                &format!("\"{id}\""),
                r#"[{"policy":"jailbreak","actions":["Block"]}]"#,
            ),
        )
        .as_bytes(),
    );
    assert_eq!(answer["decision"]["event_id"], id.as_str());

    // One byte more: too-large, the content not inspected.
    let over = long_id_request(MAX_INPUT_BYTES + 1);
    assert_only_error(
        &evaluate(over.as_bytes()),
        "too-large",
        "",
        "request is 1048577 bytes",
    );

    // A ~1 MiB string where a date-time belongs: too-large at its path.
    let time = format!("\"{}\"", "9".repeat(MAX_INPUT_BYTES - 1024));
    let long_time = event().replacen(
        r#""id":"evt-1","#,
        &format!(r#""id":"evt-1","time":{time},"#),
        1,
    );
    let answer = evaluate(request(POLICY, &long_time).as_bytes());
    assert_only_error(
        &answer,
        "too-large",
        "event.time",
        "bytes; the limit is 256",
    );
    // A bad date-time of allowed length is echoed clipped to 64 characters.
    let clipped = event().replacen(
        r#""id":"evt-1","#,
        &format!(r#""id":"evt-1","time":"{}","#, "9".repeat(200)),
        1,
    );
    let answer = evaluate(request(POLICY, &clipped).as_bytes());
    let (code, path, message) = only_error(&answer);
    assert_eq!(
        (code.as_str(), path.as_str()),
        ("invalid-value", "event.time")
    );
    assert_eq!(
        message,
        format!("`{}…` is not an RFC 3339 date-time", "9".repeat(64))
    );
}

#[test]
fn an_array_of_a_million_elements_is_too_large() {
    let million = format!("[{}0]", "0,".repeat(999_999));
    assert!(million.len() > MAX_INPUT_BYTES);
    let input = request(POLICY, &event_with(r#""evt-1""#, &million));
    assert_only_error(
        &evaluate(input.as_bytes()),
        "too-large",
        "",
        "request is 2000",
    );
    assert_only_error(
        &evaluate(million.as_bytes()),
        "too-large",
        "",
        "the limit is 1048576",
    );

    // Half a million elements fit in 1 MiB as text: the list itself is too-large,
    // and its items (numbers, not violations) are not inspected.
    let half = format!("[{}0]", "0,".repeat(499_999));
    let input = request(POLICY, &event_with(r#""evt-1""#, &half));
    assert!(input.len() < MAX_INPUT_BYTES);
    assert_only_error(
        &evaluate(input.as_bytes()),
        "too-large",
        "event.compliance.violations",
        "500000 items; the limit is 1024",
    );
}

#[test]
fn more_than_1024_violations_or_actions_under_1_mib_is_too_large() {
    let violations = |n: usize| {
        let items: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"policy":"p{i}","actions":["Block"]}}"#))
            .collect();
        format!("[{}]", items.join(","))
    };
    let over = event_with(r#""evt-1""#, &violations(MAX_ITEMS + 1));
    let input = request(POLICY, &over);
    assert!(input.len() < MAX_INPUT_BYTES);
    assert_only_error(
        &evaluate(input.as_bytes()),
        "too-large",
        "event.compliance.violations",
        "1025 items; the limit is 1024",
    );
    assert_only_error(
        &evaluate_event(over.as_bytes()),
        "too-large",
        "event.compliance.violations",
        "1025 items; the limit is 1024",
    );
    // 1,024 is allowed.
    let at = request(POLICY, &event_with(r#""evt-1""#, &violations(MAX_ITEMS)));
    assert_eq!(evaluate(at.as_bytes())["decision"]["outcome"], "revoke");

    // Items of an oversized list are not inspected: 1,025 nulls give one error.
    let nulls = format!("[{}]", vec!["null"; MAX_ITEMS + 1].join(","));
    let input = request(POLICY, &event_with(r#""evt-1""#, &nulls));
    assert_only_error(
        &evaluate(input.as_bytes()),
        "too-large",
        "event.compliance.violations",
        "1025 items",
    );

    // 1,025 actions in one violation.
    let actions = format!("[{}]", vec![r#""Block""#; MAX_ITEMS + 1].join(","));
    let one = format!(r#"[{{"policy":"jailbreak","actions":{actions}}}]"#);
    let input = request(POLICY, &event_with(r#""evt-1""#, &one));
    assert_only_error(
        &evaluate(input.as_bytes()),
        "too-large",
        "event.compliance.violations[0].actions",
        "1025 items; the limit is 1024",
    );
}

// --- duplicate keys ---------------------------------------------------------

#[test]
fn duplicate_keys_are_malformed_json_naming_the_key() {
    let policy = r#"{"uem":"epmm","deployment":"access","providers":["office365"],"mode":"enforce","mode":"report_only"}"#;
    assert_only_error(
        &evaluate(request(policy, &event()).as_bytes()),
        "malformed-json",
        "",
        "duplicate key `mode`",
    );
    let refused = refused_policy(policy.as_bytes());
    assert_only_error(&refused, "malformed-json", "policy", "duplicate key `mode`");

    // Deep in the event, in a tier object: a second `block` must not win either.
    let event = event_with(
        r#""evt-1""#,
        r#"[{"policy":"p","actions":[{"block":true,"block":false}]}]"#,
    );
    assert_only_error(
        &evaluate_event(event.as_bytes()),
        "malformed-json",
        "event",
        "duplicate key `block`",
    );
    // In the envelope itself.
    let twice = format!(
        r#"{{"policy":{POLICY},"event":{},"event":{}}}"#,
        self::event(),
        self::event()
    );
    assert_only_error(
        &evaluate(twice.as_bytes()),
        "malformed-json",
        "",
        "duplicate key `event`",
    );
}

// --- numbers ------------------------------------------------------------------

/// The event with `"compliant": <token>`.
fn compliant_token(token: &str) -> String {
    request(
        POLICY,
        &event().replacen(
            r#""compliant":false"#,
            &format!(r#""compliant":{token}"#),
            1,
        ),
    )
}

#[test]
fn nan_and_infinity_tokens_are_malformed_json() {
    for token in ["NaN", "Infinity", "-Infinity", "+1", "0x10", ".5", "01"] {
        let answer = evaluate(compliant_token(token).as_bytes());
        let (code, path, message) = only_error(&answer);
        assert_eq!(
            (code.as_str(), path.as_str()),
            ("malformed-json", ""),
            "{token}: {message}"
        );
        assert!(
            message.starts_with("input is not valid JSON: "),
            "{message}"
        );
    }
}

#[test]
fn a_number_out_of_f64_range_is_malformed_json() {
    for token in ["1e999", "-1e999"] {
        assert_only_error(
            &evaluate(compliant_token(token).as_bytes()),
            "malformed-json",
            "",
            "number out of range",
        );
    }
}

#[test]
fn negative_zero_and_huge_integers_are_numbers_so_invalid_values() {
    for token in ["-0", "-0.0", "1e308", "18446744073709551616", "1e-999"] {
        assert_only_error(
            &evaluate(compliant_token(token).as_bytes()),
            "invalid-value",
            "event.compliance.compliant",
            "expected true or false, found a number",
        );
    }
}

// --- encoding -------------------------------------------------------------

#[test]
fn bytes_that_are_not_utf8_are_malformed_json() {
    let valid = request(POLICY, &event());
    // A stray 0xff in a string, an overlong encoding, and a truncated sequence.
    for bad in [&b"\xff"[..], b"\xc0\xaf", b"\xe2\x82"] {
        let mut input = valid.clone().into_bytes();
        let at = valid.find("evt-1").unwrap();
        input.splice(at..at, bad.iter().copied());
        assert_only_error(
            &evaluate(&input),
            "malformed-json",
            "",
            "input is not UTF-8",
        );
        let mut event = event().into_bytes();
        let at = event.windows(5).position(|w| w == b"evt-1").unwrap();
        event.splice(at..at, bad.iter().copied());
        assert_only_error(
            &evaluate_event(&event),
            "malformed-json",
            "event",
            "input is not UTF-8",
        );
    }
    // An escaped lone surrogate is valid UTF-8 text but not a Unicode string.
    for (lone, message) in [
        (r"evt-\ud800", "unexpected end of hex escape"),
        (r"evt-\udc00", "lone leading surrogate"),
        (r"evt-\ud800\u0041", "lone leading surrogate"),
    ] {
        let surrogate = valid.replacen("evt-1", lone, 1);
        assert_only_error(
            &evaluate(surrogate.as_bytes()),
            "malformed-json",
            "",
            message,
        );
    }
}

#[test]
fn a_byte_order_mark_is_malformed_json() {
    let input = format!("\u{feff}{}", request(POLICY, &event()));
    assert_only_error(
        &evaluate(input.as_bytes()),
        "malformed-json",
        "",
        "input starts with a byte-order mark",
    );
    let policy = format!("\u{feff}{POLICY}");
    let refused = refused_policy(policy.as_bytes());
    assert_only_error(&refused, "malformed-json", "policy", "byte-order mark");
    let event = format!("\u{feff}{}", event());
    assert_only_error(
        &evaluate_event(event.as_bytes()),
        "malformed-json",
        "event",
        "byte-order mark",
    );
}

// --- degenerate documents -------------------------------------------------

#[test]
fn empty_and_blank_input_is_malformed_json() {
    for input in ["", " ", "\n\t "] {
        assert_only_error(
            &evaluate(input.as_bytes()),
            "malformed-json",
            "",
            "EOF while parsing a value",
        );
    }
    let refused = refused_policy(b"");
    assert_only_error(&refused, "malformed-json", "policy", "EOF while parsing");
    assert_only_error(
        &evaluate_event(b""),
        "malformed-json",
        "event",
        "EOF while parsing",
    );
}

#[test]
fn null_is_an_invalid_value_at_the_root() {
    assert_only_error(
        &evaluate(b"null"),
        "invalid-value",
        "",
        "expected an object, found null",
    );
    let refused = refused_policy(b"null");
    assert_only_error(
        &refused,
        "invalid-value",
        "policy",
        "expected an object, found null",
    );
    assert_only_error(
        &evaluate_event(b"null"),
        "invalid-value",
        "event",
        "expected an object, found null",
    );
}

#[test]
fn a_top_level_array_is_an_invalid_value() {
    let array = format!("[{POLICY},{}]", event());
    assert_only_error(
        &evaluate(array.as_bytes()),
        "invalid-value",
        "",
        "expected an object, found an array",
    );
    let refused = refused_policy(b"[]");
    assert_only_error(
        &refused,
        "invalid-value",
        "policy",
        "expected an object, found an array",
    );
    assert_only_error(
        &evaluate_event(b"[]"),
        "invalid-value",
        "event",
        "expected an object, found an array",
    );
}

#[test]
fn trailing_text_after_the_object_is_malformed_json() {
    let valid = request(POLICY, &event());
    for tail in [" {}", "x", "\u{0}", ",", "]"] {
        let input = format!("{valid}{tail}");
        assert_only_error(
            &evaluate(input.as_bytes()),
            "malformed-json",
            "",
            "trailing characters",
        );
    }
}

// --- every answer is one JSON object ---------------------------------------

/// Every hostile input of this file, for the catch-all check below.
fn hostile_inputs() -> Vec<Vec<u8>> {
    let valid = request(POLICY, &event());
    let mut padded = valid.clone().into_bytes();
    padded.resize(MAX_INPUT_BYTES + 1, b' ');
    let mut inputs: Vec<Vec<u8>> = vec![
        "[".repeat(100_000).into_bytes(),
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000)).into_bytes(),
        padded,
        long_id_request(MAX_INPUT_BYTES).into_bytes(),
        long_id_request(MAX_INPUT_BYTES + 1).into_bytes(),
        format!("[{}0]", "0,".repeat(999_999)).into_bytes(),
        request(
            POLICY,
            &event_with(r#""e""#, &format!("[{}]", vec!["{}"; 1025].join(","))),
        )
        .into_bytes(),
        request(
            r#"{"uem":"epmm","deployment":"access","providers":["office365"],"mode":"enforce","mode":"report_only"}"#,
            &event(),
        )
        .into_bytes(),
        b"\xff\xfe".to_vec(),
        b"\xef\xbb\xbf{}".to_vec(),
        format!("\u{feff}{valid}").into_bytes(),
        Vec::new(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"\"policy\"".to_vec(),
        b"0".to_vec(),
        b"true".to_vec(),
        br#"{"policy":null,"event":null}"#.to_vec(),
        br#"{"policy":{},"event":{}}"#.to_vec(),
        br#"{"policy":"\u0000","event":[]}"#.to_vec(),
        br#"{"a":1}"#.to_vec(),
        valid.replacen("evt-1", "\u{0}\u{1f}", 1).into_bytes(),
        valid.replacen("evt-1", r"\u0000\ud83d\ude00", 1).into_bytes(),
    ];
    for token in [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "-0",
        "-0.0",
        "1e-999",
    ] {
        inputs.push(compliant_token(token).into_bytes());
    }
    inputs
}

#[test]
fn every_answer_is_a_single_json_object() {
    let inputs = hostile_inputs();
    assert!(inputs.len() > 30);
    let engine = engine();
    for input in &inputs {
        // The request envelope, and the same bytes as a policy and as an event.
        let answer = evaluate(input);
        assert!(answer.is_object());
        let policy = match from_json(input) {
            Ok(engine) => parse_answer(&engine.accepted().to_json()),
            Err(answer) => answer,
        };
        assert!(policy.is_object());
        let event =
            parse_answer(&timed("Engine::evaluate_json", || engine.evaluate_json(input)).to_json());
        assert!(event.is_object());
    }
}

// --- answers stay proportionate to requests --------------------------------

#[test]
fn more_than_1024_actions_across_violations_is_too_large() {
    let actions = format!("[{}]", vec![r#""Block""#; 600].join(","));
    let two =
        format!(r#"[{{"policy":"a","actions":{actions}}},{{"policy":"b","actions":{actions}}}]"#);
    assert_only_error(
        &evaluate(request(POLICY, &event_with(r#""evt-1""#, &two)).as_bytes()),
        "too-large",
        "event.compliance.violations",
        "1200 actions in all violations; the limit is 1024",
    );
}

#[test]
fn a_violated_policy_listed_twice_is_invalid() {
    let twice = r#"[{"policy":"jailbreak","actions":["Block"]},{"policy":"jailbreak","actions":["Block"]}]"#;
    assert_only_error(
        &evaluate(request(POLICY, &event_with(r#""evt-1""#, twice)).as_bytes()),
        "invalid-value",
        "event.compliance.violations[1].policy",
        "compliance policy `jailbreak` is listed twice",
    );
}

/// The baseline request with `items` (JSON objects) as the event's violations.
fn evaluate_violations(items: &[String]) -> Value {
    let violations = format!("[{}]", items.join(","));
    evaluate(request(POLICY, &event_with(r#""evt-1""#, &violations)).as_bytes())
}

/// A short list of violations is checked pairwise and a long one (over 16)
/// through a set: each way, every repeat is reported at its own index.
#[test]
fn a_violated_policy_repeated_in_a_short_or_long_list_is_reported_at_each_repeat() {
    for len in [4, 16, 17, 40] {
        let ids: Vec<String> = (0..len)
            .map(|i| match i {
                1 => "p0".to_owned(),
                i if i == len - 1 => "p2".to_owned(),
                i => format!("p{i}"),
            })
            .collect();
        let items: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"policy":"{id}","actions":["Block"]}}"#))
            .collect();
        let answer = evaluate_violations(&items);
        let errors: Vec<(String, String)> = answer["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["path"].as_str().unwrap().to_owned(),
                    e["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let path = |i: usize| format!("event.compliance.violations[{i}].policy");
        assert_eq!(
            errors,
            [
                (path(1), "compliance policy `p0` is listed twice".to_owned()),
                (
                    path(len - 1),
                    "compliance policy `p2` is listed twice".to_owned()
                ),
            ],
            "{len} violations"
        );
    }
}

/// Found by review of the differential fuzz target: 4 violations with a
/// 1,000-character policy id and 1,024 actions each made a 4 MB answer from a
/// 37 KB request, which the sandbox could not return.
#[test]
fn a_long_policy_id_repeated_per_action_is_refused_not_amplified() {
    let actions = format!("[{}]", vec![r#""Block""#; 1024].join(","));
    let items: Vec<String> = (0..4)
        .map(|i| {
            format!(
                r#"{{"policy":"{}{i}","actions":{actions}}}"#,
                "p".repeat(1000)
            )
        })
        .collect();
    let input = request(
        POLICY,
        &event_with(r#""evt-1""#, &format!("[{}]", items.join(","))),
    );
    let answer = policy_core::evaluate_json_str(&input);
    assert!(answer.len() < 4096, "{} bytes", answer.len());
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let codes: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert!(codes.iter().all(|c| *c == "too-large"), "{codes:?}");
}

#[test]
fn at_most_100_errors_are_listed_and_the_cut_is_said() {
    let items: Vec<String> = (0..300)
        .map(|i| format!(r#"{{"policy":"p{i}","actions":["Block"],"extra":1}}"#))
        .collect();
    let answer = evaluate_violations(&items);
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 101);
    assert!(errors[..100].iter().all(|e| e["code"] == "unknown-field"));
    assert_eq!(errors[100]["code"], "too-large");
    assert_eq!(errors[100]["path"], "");
    assert_eq!(
        errors[100]["message"],
        "more than 100 found; only the first 100 are listed"
    );
}

#[test]
fn an_object_with_more_than_1024_keys_is_too_large() {
    let keys: Vec<String> = (0..20_000).map(|i| format!(r#""{i:x}":0"#)).collect();
    let policy = format!(r#"{{"uem":"epmm",{}}}"#, keys.join(","));
    let answer = evaluate(request(&policy, "{}").as_bytes());
    let paths: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths[0], "policy");
    assert_eq!(answer["errors"][0]["code"], "too-large");
    assert!(serde_json::to_string(&answer).unwrap().len() < 4096);
}
