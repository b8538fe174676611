//! Arbitrary bytes to `policy_core::evaluate_json_bytes`: never a panic, and
//! always exactly one JSON object whose `type` is `success` or `failure`; and
//! the same answer as the old reader (the text into a `serde_json::Value`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let typed = policy_core::evaluate_request(data);
    let answer = policy_core::evaluate_json_bytes(data);
    // The answer's writer gives serde_json's bytes.
    assert_eq!(answer, typed.to_json());
    assert_eq!(
        serde_json::to_string(&typed).ok().as_deref(),
        Some(answer.as_str()),
        "Answer::to_json and serde_json differ"
    );
    let value: Value = match serde_json::from_str(&answer) {
        Ok(value) => value,
        Err(e) => panic!("answer is not JSON ({e}): {answer}"),
    };
    match value.get("type").and_then(Value::as_str) {
        Some("success") => {
            assert!(
                value.get("warnings").is_some_and(Value::is_array),
                "{answer}"
            );
        }
        Some("failure") => {
            let errors = value.get("errors").and_then(Value::as_array);
            assert!(errors.is_some_and(|e| !e.is_empty()), "{answer}");
        }
        _ => panic!("answer has no success/failure type: {answer}"),
    }
    // The single-pass reader answers as the old way (a `serde_json::Value`,
    // then the schema walk) does.
    let old = policy_core::evaluate_request_via_value(data).to_json();
    assert_eq!(
        answer, old,
        "the single-pass reader and the Value path differ"
    );
    // The str entry point gives the same bytes for UTF-8 input.
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(policy_core::evaluate_json_str(text), answer);
    }
});
