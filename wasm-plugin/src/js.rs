//! The JavaScript API (SPEC §7): plain objects in and out, the same bytes as
//! the core ABI. Each input is turned into JSON text and goes through exactly
//! the path `srs_evaluate`, `srs_set_policy` and `srs_evaluate_event` take,
//! so the two shells cannot drift apart.

use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;

use policy_core::{Answer, Diagnostic, ErrorCode};

/// Evaluates `event` under `policy`; returns the answer object.
#[wasm_bindgen(unchecked_return_type = "Answer")]
pub fn evaluate(
    #[wasm_bindgen(unchecked_param_type = "Policy")] policy: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Event")] event: JsValue,
) -> JsValue {
    let answer = match (json(&policy, "policy"), json(&event, "event")) {
        (Ok(policy), Ok(event)) => {
            let request = serde_json::json!({"policy": policy, "event": event});
            policy_core::evaluate_request(request.to_string().as_bytes())
        }
        (policy, event) => failure(policy.err().into_iter().chain(event.err()).collect()),
    };
    to_js(&answer)
}

/// Validates a policy: a success answer with the policy's summary and no
/// decision (as `srs_set_policy` answers), or a failure.
#[wasm_bindgen(js_name = validatePolicy, unchecked_return_type = "Answer")]
pub fn validate_policy(
    #[wasm_bindgen(unchecked_param_type = "Policy")] policy: JsValue,
) -> JsValue {
    let answer = match compile(&policy) {
        Ok(engine) => engine.accepted(),
        Err(failure) => failure,
    };
    to_js(&answer)
}

/// The package version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// A validated policy kept for many events (the fast path).
#[derive(Debug)]
#[wasm_bindgen(js_name = Engine)]
pub struct JsEngine {
    inner: policy_core::Engine,
}

#[wasm_bindgen(js_class = Engine)]
impl JsEngine {
    /// Validates `policy`. Throws an `Error` whose `answer` property is the
    /// failure answer listing every problem.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "Policy")] policy: JsValue,
    ) -> Result<JsEngine, JsValue> {
        match compile(&policy) {
            Ok(inner) => Ok(Self { inner }),
            Err(failure) => {
                let count = match &failure {
                    Answer::Failure { errors } => errors.len(),
                    Answer::Success { .. } => 0,
                };
                let error = js_sys::Error::new(&format!(
                    "invalid policy: {count} errors; see error.answer"
                ));
                js_sys::Reflect::set(&error, &JsValue::from_str("answer"), &to_js(&failure))?;
                Err(error.into())
            }
        }
    }

    /// Evaluates `event` under the kept policy.
    #[wasm_bindgen(unchecked_return_type = "Answer")]
    pub fn evaluate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Event")] event: JsValue,
    ) -> JsValue {
        let answer = match json(&event, "event") {
            Ok(event) => self.inner.evaluate_json(event.to_string().as_bytes()),
            Err(error) => failure(vec![error]),
        };
        to_js(&answer)
    }
}

fn compile(policy: &JsValue) -> Result<policy_core::Engine, Answer> {
    let policy = json(policy, "policy").map_err(|e| failure(vec![e]))?;
    policy_core::Engine::from_json(policy.to_string().as_bytes())
}

/// A JS value as JSON; `undefined` and functions are not JSON.
fn json(value: &JsValue, path: &str) -> Result<Value, Diagnostic> {
    if value.is_undefined() {
        return Err(Diagnostic {
            code: ErrorCode::MissingField,
            path: path.to_owned(),
            message: format!("`{path}` is required"),
        });
    }
    serde_wasm_bindgen::from_value(value.clone()).map_err(|e| Diagnostic {
        code: ErrorCode::MalformedJson,
        path: path.to_owned(),
        message: format!("input is not JSON data: {e}"),
    })
}

fn failure(errors: Vec<Diagnostic>) -> Answer {
    Answer::Failure { errors }
}

/// The answer as a plain object (maps as objects, not `Map`).
fn to_js(answer: &Answer) -> JsValue {
    answer
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap_or_else(|e| JsValue::from_str(&format!("answer could not be converted: {e}")))
}

/// The module's `WebAssembly.Memory`, for memory checks (its
/// `buffer.byteLength` is the linear memory size).
#[wasm_bindgen(js_name = wasmMemory, unchecked_return_type = "WebAssembly.Memory")]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}
