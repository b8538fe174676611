//! The JSON reader: text to a [`Value`] (through [`parse`], refusing
//! oversized input and duplicate keys), and readers for a value's parts that
//! report what is wrong with its path instead of stopping at the first problem.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::answer::ErrorCode;
use crate::diag::{MAX_INPUT_BYTES, MAX_ITEMS, Path, Sink, clip, too_long, too_many};
use crate::names::Wire;
use crate::parse;

/// Parses JSON text, refusing oversized input and duplicate object keys (a
/// second `"mode"` must not silently win over the first).
pub fn read(bytes: &[u8], path: &Path<'_>, sink: &mut Sink) -> Option<Value> {
    if bytes.len() > MAX_INPUT_BYTES {
        let what = if path.is_request() {
            "request"
        } else {
            "input"
        };
        sink.error(
            ErrorCode::TooLarge,
            path,
            format!(
                "{what} is {} bytes; the limit is {MAX_INPUT_BYTES}",
                bytes.len()
            ),
        );
        return None;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            sink.error(
                ErrorCode::MalformedJson,
                path,
                format!("input is not UTF-8: {e}"),
            );
            return None;
        }
    };
    // A byte-order mark is not JSON; name it, since editors add it invisibly.
    if text.starts_with('\u{feff}') {
        sink.error(
            ErrorCode::MalformedJson,
            path,
            "input starts with a byte-order mark",
        );
        return None;
    }
    match parse::value(text) {
        Ok(value) => Some(value),
        Err(e) => {
            sink.error(
                ErrorCode::MalformedJson,
                path,
                format!("input is not valid JSON: {e}"),
            );
            None
        }
    }
}

/// One JSON value parsed as [`read`] parses it, without diagnostics: for a
/// reader that leaves a token (an escaped string, a number) to the parser.
pub fn token(text: &str) -> Option<Value> {
    parse::value(text).ok()
}

/// What [`read`] parsed with before `parse`, and what `parse` is compared
/// with: serde_json's own parser, through a visitor that refuses a
/// duplicate key; the refusal as serde_json words it. Not used by any entry
/// point (so not in the wasm builds); for tests and the fuzz targets.
#[doc(hidden)]
pub fn serde_value(text: &str) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    StrictValue::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v.0))
        .map_err(|e| e.to_string())
}

/// A JSON value whose objects have no duplicate keys.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reports `v` as not the `expected` kind of value.
pub fn wrong_type(v: &Value, expected: &str, path: &Path<'_>, sink: &mut Sink) {
    wrong_kind(kind(v), expected, path, sink);
}

/// Reports a value of kind `found` (as [`kind`] names it) as not the `expected` kind.
pub fn wrong_kind(found: &str, expected: &str, path: &Path<'_>, sink: &mut Sink) {
    sink.error(
        ErrorCode::InvalidValue,
        path,
        format!("expected {expected}, found {found}"),
    );
}

/// An object's fields, read one by one; `finish` reports the ones nobody read.
#[derive(Debug)]
pub struct Obj<'v, 'p> {
    map: &'v Map<String, Value>,
    path: &'p Path<'p>,
}

impl<'v, 'p> Obj<'v, 'p> {
    pub fn new(v: &'v Value, path: &'p Path<'p>, sink: &mut Sink) -> Option<Self> {
        match v {
            Value::Object(map) if map.len() > MAX_ITEMS => {
                too_many(map.len(), path, sink);
                None
            }
            Value::Object(map) => Some(Self { map, path }),
            other => {
                wrong_type(other, "an object", path, sink);
                None
            }
        }
    }

    /// A required field, parsed by `parse` at its own path.
    pub fn required<T>(
        &self,
        name: &'static str,
        sink: &mut Sink,
        parse: impl FnOnce(&'v Value, &Path<'_>, &mut Sink) -> Option<T>,
    ) -> Option<T> {
        let path = self.path.field(name);
        match self.map.get(name) {
            Some(v) => parse(v, &path, sink),
            None => {
                sink.error(
                    ErrorCode::MissingField,
                    &path,
                    format!("`{name}` is required"),
                );
                None
            }
        }
    }

    /// An optional field; `null` counts as absent. `Err` when present but invalid.
    pub fn optional<T>(
        &self,
        name: &'static str,
        sink: &mut Sink,
        parse: impl FnOnce(&'v Value, &Path<'_>, &mut Sink) -> Option<T>,
    ) -> Result<Option<T>, ()> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => parse(v, &self.path.field(name), sink).map(Some).ok_or(()),
        }
    }

    /// Reports every field not in `known` as `unknown-field`.
    pub fn finish(&self, known: &[&str], sink: &mut Sink) {
        for key in self.map.keys().filter(|k| !known.contains(&k.as_str())) {
            let message = format!(
                "unknown field `{}`; expected one of {}",
                clip(key),
                list(known)
            );
            sink.error(ErrorCode::UnknownField, &self.path.field(key), message);
        }
    }
}

pub fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn string<'v>(v: &'v Value, path: &Path<'_>, sink: &mut Sink) -> Option<&'v str> {
    match v {
        Value::String(s) if too_long(s, path, sink) => None,
        Value::String(s) => Some(s),
        other => {
            wrong_type(other, "a string", path, sink);
            None
        }
    }
}

pub fn owned_string(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<String> {
    string(v, path, sink).map(str::to_owned)
}

pub fn boolean(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        other => {
            wrong_type(other, "true or false", path, sink);
            None
        }
    }
}

/// A string that must be one of a wire enum's names.
pub fn one_of<T: Wire>(v: &Value, path: &Path<'_>, sink: &mut Sink) -> Option<T> {
    let s = string(v, path, sink)?;
    let found = s.parse().ok();
    if found.is_none() {
        let message = format!("`{}` is not one of {}", clip(s), list(T::NAMES));
        sink.error(ErrorCode::InvalidValue, path, message);
    }
    found
}

/// An array of at most [`MAX_ITEMS`] items, each parsed at its index; `None`
/// if the array or any item is invalid (every item is still checked).
pub fn array<'v, T>(
    parse: impl Fn(&'v Value, &Path<'_>, &mut Sink) -> Option<T>,
) -> impl FnOnce(&'v Value, &Path<'_>, &mut Sink) -> Option<Vec<T>> {
    move |v, path, sink| {
        let Value::Array(items) = v else {
            wrong_type(v, "an array", path, sink);
            return None;
        };
        if items.len() > MAX_ITEMS {
            too_many(items.len(), path, sink);
            return None;
        }
        let parsed: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| parse(item, &path.index(i), sink))
            .collect();
        parsed.into_iter().collect()
    }
}

/// `parse`, then `check` on what it read.
pub fn checked<'v, T>(
    parse: impl FnOnce(&'v Value, &Path<'_>, &mut Sink) -> Option<T>,
    check: impl FnOnce(&T, &Path<'_>, &mut Sink),
) -> impl FnOnce(&'v Value, &Path<'_>, &mut Sink) -> Option<T> {
    move |v, path, sink| {
        let parsed = parse(v, path, sink)?;
        check(&parsed, path, sink);
        Some(parsed)
    }
}
