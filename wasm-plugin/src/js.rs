//! The JavaScript API (SPEC §7): plain objects in and out, the same bytes as
//! the core ABI. Each input crosses the boundary once, as the text
//! `JSON.stringify` makes of it, and goes through exactly the path
//! `srs_evaluate`, `srs_set_policy` and `srs_evaluate_event` take; the answer
//! comes back once, as its JSON text, for `JSON.parse`. So the two shells
//! cannot drift apart, and a call is two crossings, not one per field.
//!
//! What the input means is what `JSON.stringify` says it means: a property
//! whose value is `undefined` (or a function or a symbol) is left out, `NaN`
//! and `Infinity` are `null`, a `Date` is its ISO string (its `toJSON`), a
//! `Map` or `Set` is `{}`. A value with no JSON text (a `BigInt`, a cycle, a
//! function, a symbol, a throwing `toJSON`) is a `malformed-json` error at
//! `policy` or `event`; `undefined` itself is `missing-field` there.

use wasm_bindgen::JsCast as _;
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
            // The three literals below are 20 bytes.
            let mut request = Vec::with_capacity(policy.len() + event.len() + 20);
            request.extend_from_slice(br#"{"policy":"#);
            request.extend_from_slice(&policy);
            request.extend_from_slice(br#","event":"#);
            request.extend_from_slice(&event);
            request.push(b'}');
            crate::evaluate(&request)
        }
        (policy, event) => failure(policy.err().into_iter().chain(event.err()).collect()),
    };
    parse(&answer)
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
    parse(&answer.to_json())
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
                let answer = parse(&failure.to_json());
                js_sys::Reflect::set(&error, &JsValue::from_str("answer"), &answer)?;
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
            // What `srs_evaluate_event` does with the kept policy.
            Ok(event) => self.inner.answer_json(&event),
            Err(error) => failure(vec![error]),
        };
        parse(&answer)
    }
}

/// What `srs_set_policy` does with the policy, keeping the engine.
fn compile(policy: &JsValue) -> Result<policy_core::Engine, Answer> {
    let policy = json(policy, "policy").map_err(|e| Answer::Failure { errors: vec![e] })?;
    policy_core::Engine::from_json(&policy)
}

/// A JS value as the JSON text `JSON.stringify` makes of it, in UTF-8;
/// `undefined` is missing, and a value with no JSON text is malformed.
fn json(value: &JsValue, path: &str) -> Result<Vec<u8>, Diagnostic> {
    if value.is_undefined() {
        return Err(Diagnostic {
            code: ErrorCode::MissingField,
            path: path.to_owned(),
            message: format!("`{path}` is required"),
        });
    }
    let why = match js_sys::JSON::stringify(value) {
        Ok(text) if text.is_string() => return Ok(utf8(&text)),
        // `JSON.stringify` gives `undefined` for these.
        Ok(_) => "it has no JSON text (a function or a symbol)".to_owned(),
        // A BigInt, a cycle, or a `toJSON` that throws.
        Err(thrown) => match thrown.dyn_ref::<js_sys::Error>() {
            Some(error) => String::from(error.message()),
            None => thrown
                .as_string()
                .unwrap_or_else(|| "JSON.stringify threw".to_owned()),
        },
    };
    Err(Diagnostic {
        code: ErrorCode::MalformedJson,
        path: path.to_owned(),
        message: format!("input is not JSON data: {why}"),
    })
}

#[wasm_bindgen]
extern "C" {
    /// The platform's `TextEncoder` (Node and every browser have it).
    type TextEncoder;

    #[wasm_bindgen(constructor)]
    fn new() -> TextEncoder;

    #[wasm_bindgen(method, js_name = encodeInto)]
    fn encode_into(
        this: &TextEncoder,
        text: &js_sys::JsString,
        into: &js_sys::Uint8Array,
    ) -> Encoded;

    /// What `encodeInto` did.
    type Encoded;

    #[wasm_bindgen(method, getter)]
    fn written(this: &Encoded) -> u32;
}

thread_local! {
    static ENCODER: TextEncoder = TextEncoder::new();
}

/// A string's UTF-8, written by the platform's `TextEncoder` straight into
/// this module's memory. wasm-bindgen's own string passing copies an ASCII
/// string a UTF-16 unit at a time in JavaScript: ~11% of a Node
/// `engine.evaluate` by `node --cpu-prof`; this made the call ~8% faster.
/// `JSON.stringify`'s text has no lone surrogate (it writes one as a
/// `\ud800` escape), so the UTF-8 is exact.
fn utf8(text: &js_sys::JsString) -> Vec<u8> {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    let mut out = vec![0u8; text.length() as usize * 3];
    let written = ENCODER.with(|encoder| {
        // A view of `out`'s bytes, by address: JavaScript writes them while
        // Rust holds no reference to them, and nothing allocates (which
        // could grow the memory and detach the view) while the view lives.
        let view = js_sys::Uint8Array::new_with_byte_offset_and_length(
            &wasm_bindgen::memory()
                .unchecked_into::<js_sys::WebAssembly::Memory>()
                .buffer(),
            out.as_mut_ptr() as usize as u32,
            out.len() as u32,
        );
        encoder.encode_into(text, &view).written()
    });
    out.truncate(written as usize);
    out
}

/// A failure answer's JSON text.
fn failure(errors: Vec<Diagnostic>) -> String {
    policy_core::failure_json(&errors)
}

/// The answer's JSON text as a plain object. The text is policy-core's own,
/// always valid JSON; were it not, the caller gets the text itself.
fn parse(answer: &str) -> JsValue {
    js_sys::JSON::parse(answer).unwrap_or_else(|_| JsValue::from_str(answer))
}

/// The module's `WebAssembly.Memory`, for memory checks (its
/// `buffer.byteLength` is the linear memory size).
#[wasm_bindgen(js_name = wasmMemory, unchecked_return_type = "WebAssembly.Memory")]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}
