//! The single-pass reader: JSON text straight into an event's typed parts,
//! borrowing strings from the text, with the same errors, paths, codes and
//! order as [`json::read`](crate::json::read) followed by the schema walk
//! ([`schema::event`](crate::schema::event)) over the `Value` it builds.
//!
//! How it keeps the walk's order in one pass: each known field of an object
//! is read into its own [`Slot`] with its own [`Sink`]; when the object ends,
//! the slots are reported in the walk's (schema) order, then the unknown
//! fields sorted by name, as the walk over a `serde_json::Map` (a `BTreeMap`)
//! reports them. An object or array over [`MAX_ITEMS`] reports only that, as
//! the walk does, though every item is still read to check the syntax.
//!
//! What it does not do: word a `malformed-json` error. Any input that
//! `json::read` refuses (over [`MAX_INPUT_BYTES`], not UTF-8, a byte-order
//! mark, a syntax error, a duplicate key, nesting over serde_json's limit, a
//! number out of range, a bad escape) makes this reader give up with
//! [`Fallback`], and the caller reads the input again with `json::read`,
//! whose error text (serde_json's, as [`parse`](crate::parse) words it) is
//! the message the conformance vectors and the hostile-input tests pin. So a
//! refusal costs two reads and a well-formed input one. Escaped strings and
//! numbers other than small integers are decoded by that parser, token by
//! token, so that what counts as a valid escape or a finite number is its
//! answer.
//!
//! Before it, [`plain_event`] tries the common case (a valid event with no
//! unknown key) with none of the slots and sinks that keep the errors'
//! order; it gives up on anything else, and this reader reads that input
//! again. The feature `small` leaves this reader out of the entry points
//! (and so out of a build): what `plain_event` gives up on is then read
//! the old way.
//!
//! The old path stays: the fallback needs it, and the `Deserialize` impls of
//! [`Policy`](crate::Policy) and [`Event`](crate::Event) walk a `Value`; tests and the
//! differential fuzz target compare the two on every input they make.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::Value;

use crate::answer::ErrorCode;
use crate::checks;
use crate::diag::{MAX_INPUT_BYTES, MAX_ITEMS, Path, Sink, clip, too_long, too_many};
use crate::json::{self, list, wrong_kind};
use crate::model::{
    Action, Compliance, Device, DeviceState, EventRef, Tier, User, Violation, ViolationRef,
    Violations,
};
use crate::names::Wire;
use crate::parse::MAX_DEPTH;
use crate::schema::EventParts;
use crate::write::string_stop;

/// The input is one `json::read` refuses, or this reader cannot vouch for:
/// read it again with `json::read`, whose error is the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback;

type R<T> = Result<T, Fallback>;

/// The kind of a JSON value, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    /// As `json::kind` names a `Value`.
    const fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool => "a boolean",
            Self::Number => "a number",
            Self::String => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        }
    }
}

/// The input as text, or [`Fallback`] for what `json::read` refuses before parsing.
fn text(bytes: &[u8]) -> R<&str> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(Fallback);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| Fallback)?;
    if text.starts_with('\u{feff}') {
        return Err(Fallback);
    }
    Ok(text)
}

/// A cursor over JSON text.
struct Reader<'t> {
    text: &'t str,
    pos: usize,
    depth: u32,
}

impl<'t> Reader<'t> {
    const fn new(text: &'t str) -> Self {
        Self {
            text,
            pos: 0,
            depth: 0,
        }
    }

    fn byte(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// The next byte after whitespace (JSON's four), not consumed.
    fn peek(&mut self) -> Option<u8> {
        // Most input has no whitespace between tokens, and every other
        // byte a token starts with is above the space.
        if let Some(b) = self.byte().filter(|&b| b > b' ') {
            return Some(b);
        }
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.byte() {
            self.pos += 1;
        }
        self.byte()
    }

    fn eat(&mut self, b: u8) -> R<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    /// Only whitespace is left.
    fn end(&mut self) -> R<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Fallback),
        }
    }

    /// The kind of the next value, not consumed.
    fn kind(&mut self) -> R<Kind> {
        match self.peek() {
            Some(b'{') => Ok(Kind::Object),
            Some(b'[') => Ok(Kind::Array),
            Some(b'"') => Ok(Kind::String),
            Some(b't' | b'f') => Ok(Kind::Bool),
            Some(b'n') => Ok(Kind::Null),
            Some(b'-' | b'0'..=b'9') => Ok(Kind::Number),
            _ => Err(Fallback),
        }
    }

    /// `word` is next: compared as a fixed-size array, which the compiler
    /// checks with a word or two, not a call to `memcmp`.
    fn literal<const N: usize>(&mut self, word: &[u8; N]) -> R<()> {
        let next = self.text.as_bytes().get(self.pos..);
        if next.and_then(<[u8]>::first_chunk::<N>) == Some(word) {
            self.pos += N;
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    fn boolean(&mut self) -> R<bool> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|()| true),
            Some(b'f') => self.literal(b"false").map(|()| false),
            _ => Err(Fallback),
        }
    }

    /// A string: borrowed from the text unless it has escapes, which
    /// `json::token` decodes (and refuses as it would in the whole document).
    fn string(&mut self) -> R<Cow<'t, str>> {
        self.eat(b'"')?;
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut escaped = false;
        loop {
            let rest = bytes.get(self.pos..).unwrap_or_default();
            self.pos += string_stop(rest).ok_or(Fallback)?;
            match bytes.get(self.pos) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                _ => return Err(Fallback),
            }
        }
        let end = self.pos;
        self.pos += 1;
        if escaped {
            let quoted = self.text.get(start - 1..=end).ok_or(Fallback)?;
            match json::token(quoted) {
                Some(Value::String(s)) => Ok(Cow::Owned(s)),
                _ => Err(Fallback),
            }
        } else {
            self.text.get(start..end).map(Cow::Borrowed).ok_or(Fallback)
        }
    }

    /// A number in JSON's grammar; any but a small non-negative integer is
    /// also parsed by `json::token`, which refuses one out of `f64`'s range.
    fn number(&mut self) -> R<&'t str> {
        self.peek();
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let digits = |pos: &mut usize| {
            let from = *pos;
            while let Some(b'0'..=b'9') = bytes.get(*pos) {
                *pos += 1;
            }
            if *pos == from { Err(Fallback) } else { Ok(()) }
        };
        let mut pos = start;
        let mut simple = true;
        if bytes.get(pos) == Some(&b'-') {
            simple = false;
            pos += 1;
        }
        match bytes.get(pos) {
            Some(b'0') => pos += 1,
            Some(b'1'..=b'9') => digits(&mut pos)?,
            _ => return Err(Fallback),
        }
        if bytes.get(pos) == Some(&b'.') {
            simple = false;
            pos += 1;
            digits(&mut pos)?;
        }
        if let Some(b'e' | b'E') = bytes.get(pos) {
            simple = false;
            pos += 1;
            if let Some(b'+' | b'-') = bytes.get(pos) {
                pos += 1;
            }
            digits(&mut pos)?;
        }
        self.pos = pos;
        let token = self.text.get(start..pos).ok_or(Fallback)?;
        if !simple || token.len() > 18 {
            let Some(Value::Number(_)) = json::token(token) else {
                return Err(Fallback);
            };
        }
        Ok(token)
    }

    /// Enters an array or object, within serde_json's nesting limit.
    fn enter(&mut self, open: u8) -> R<()> {
        self.eat(open)?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Fallback);
        }
        Ok(())
    }

    /// An object: `field` reads each value, given its key; the number of keys.
    fn object(&mut self, mut field: impl FnMut(&mut Self, Cow<'t, str>) -> R<()>) -> R<usize> {
        self.enter(b'{')?;
        let mut count = 0;
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                field(self, key)?;
                count += 1;
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(Fallback),
                }
            }
        }
        self.depth -= 1;
        Ok(count)
    }

    /// An array: `item` reads each item, given its index; the number of items.
    fn array(&mut self, mut item: impl FnMut(&mut Self, usize) -> R<()>) -> R<usize> {
        self.enter(b'[')?;
        let mut count = 0;
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                item(self, count)?;
                count += 1;
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(Fallback),
                }
            }
        }
        self.depth -= 1;
        Ok(count)
    }

    /// Reads and checks any value, keeping nothing; its kind.
    fn skip(&mut self) -> R<Kind> {
        let kind = self.kind()?;
        match kind {
            Kind::Null => self.literal(b"null")?,
            Kind::Bool => drop(self.boolean()?),
            Kind::Number => drop(self.number()?),
            Kind::String => drop(self.string()?),
            Kind::Array => drop(self.array(|r, _| r.skip().map(drop))?),
            Kind::Object => {
                let mut keys = Unknown::default();
                self.object(|r, key| keys.skip(r, key))?;
            }
        }
        Ok(kind)
    }

    /// Whether the next value is of kind `want`; if not, reports it as not
    /// `expected` (as `json::wrong_type` does) and skips it.
    fn is(&mut self, want: Kind, expected: &str, path: &Path<'_>, sink: &mut Sink) -> R<bool> {
        let kind = self.kind()?;
        if kind == want {
            return Ok(true);
        }
        wrong_kind(kind.name(), expected, path, sink);
        self.skip()?;
        Ok(false)
    }
}

/// One known field of an object, read at most once; its errors wait in its
/// own sink until the object ends.
struct Slot<T> {
    seen: bool,
    value: Option<T>,
    sink: Sink,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            seen: false,
            value: None,
            sink: Sink::default(),
        }
    }
}

impl<T> Slot<T> {
    /// Reads the field's value with `parse` at `path`; a second one is a
    /// duplicate key.
    fn read<'t>(
        &mut self,
        r: &mut Reader<'t>,
        path: &Path<'_>,
        parse: impl FnOnce(&mut Reader<'t>, &Path<'_>, &mut Sink) -> R<Option<T>>,
    ) -> R<()> {
        if self.seen {
            return Err(Fallback);
        }
        self.seen = true;
        self.value = parse(r, path, &mut self.sink)?;
        Ok(())
    }

    /// As `Obj::required`.
    fn required(self, name: &str, obj: &Path<'_>, sink: &mut Sink) -> Option<T> {
        if !self.seen {
            let path = obj.field(name);
            sink.error(
                ErrorCode::MissingField,
                &path,
                format!("`{name}` is required"),
            );
            return None;
        }
        sink.append(self.sink);
        self.value
    }
}

impl<T> Slot<Option<T>> {
    /// As `Obj::optional`, for a field read with [`nullable`].
    fn optional(self, sink: &mut Sink) -> Result<Option<T>, ()> {
        if !self.seen {
            return Ok(None);
        }
        sink.append(self.sink);
        self.value.ok_or(())
    }
}

/// `parse` for an optional field, where `null` counts as absent: `Some(None)`.
fn nullable<'t, T>(
    parse: impl FnOnce(&mut Reader<'t>, &Path<'_>, &mut Sink) -> R<Option<T>>,
) -> impl FnOnce(&mut Reader<'t>, &Path<'_>, &mut Sink) -> R<Option<Option<T>>> {
    move |r, path, sink| {
        if r.kind()? == Kind::Null {
            r.literal(b"null")?;
            return Ok(Some(None));
        }
        Ok(parse(r, path, sink)?.map(Some))
    }
}

/// An object's unknown keys, skipped as they come and reported, sorted as a
/// `serde_json::Map` orders them, at its end. A set, not a sorted `Vec`: the
/// map code is in the module already, a sort would be another ~3 KB.
#[derive(Default)]
struct Unknown<'t> {
    keys: BTreeSet<Cow<'t, str>>,
}

impl<'t> Unknown<'t> {
    /// Skips the value of an unknown key; a duplicate key is refused.
    fn skip(&mut self, r: &mut Reader<'t>, key: Cow<'t, str>) -> R<()> {
        r.skip()?;
        if self.keys.insert(key) {
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    /// Checks an object of `count` keys: `false` (reported) if it has too many.
    fn check(&self, count: usize, path: &Path<'_>, sink: &mut Sink) -> R<bool> {
        if count > MAX_ITEMS {
            too_many(count, path, sink);
            return Ok(false);
        }
        Ok(true)
    }

    /// As `Obj::finish`.
    fn report(&self, known: &[&str], path: &Path<'_>, sink: &mut Sink) {
        for key in &self.keys {
            let message = format!(
                "unknown field `{}`; expected one of {}",
                clip(key),
                list(known)
            );
            sink.error(ErrorCode::UnknownField, &path.field(key), message);
        }
    }
}

/// As `json::string`, borrowed where the text has no escapes.
fn string<'t>(r: &mut Reader<'t>, path: &Path<'_>, sink: &mut Sink) -> R<Option<Cow<'t, str>>> {
    if !r.is(Kind::String, "a string", path, sink)? {
        return Ok(None);
    }
    let s = r.string()?;
    Ok(if too_long(&s, path, sink) {
        None
    } else {
        Some(s)
    })
}

fn owned_string(r: &mut Reader<'_>, path: &Path<'_>, sink: &mut Sink) -> R<Option<String>> {
    Ok(string(r, path, sink)?.map(Cow::into_owned))
}

fn boolean(r: &mut Reader<'_>, path: &Path<'_>, sink: &mut Sink) -> R<Option<bool>> {
    if !r.is(Kind::Bool, "true or false", path, sink)? {
        return Ok(None);
    }
    r.boolean().map(Some)
}

/// As `json::one_of`.
fn one_of<T: Wire>(r: &mut Reader<'_>, path: &Path<'_>, sink: &mut Sink) -> R<Option<T>> {
    let Some(s) = string(r, path, sink)? else {
        return Ok(None);
    };
    let found = s.parse().ok();
    if found.is_none() {
        let message = format!("`{}` is not one of {}", clip(&s), list(T::NAMES));
        sink.error(ErrorCode::InvalidValue, path, message);
    }
    Ok(found)
}

/// As `json::array`: at most [`MAX_ITEMS`] items, each parsed at its index.
fn array<'t, T>(
    mut parse: impl FnMut(&mut Reader<'t>, &Path<'_>, &mut Sink) -> R<Option<T>>,
) -> impl FnOnce(&mut Reader<'t>, &Path<'_>, &mut Sink) -> R<Option<Vec<T>>> {
    move |r, path, sink| {
        if !r.is(Kind::Array, "an array", path, sink)? {
            return Ok(None);
        }
        let mut items = Sink::default();
        let mut out = Vec::new();
        let mut valid = true;
        let count = r.array(|r, i| {
            if i >= MAX_ITEMS {
                return r.skip().map(drop);
            }
            match parse(r, &path.index(i), &mut items)? {
                Some(item) => out.push(item),
                None => valid = false,
            }
            Ok(())
        })?;
        if count > MAX_ITEMS {
            too_many(count, path, sink);
            return Ok(None);
        }
        sink.append(items);
        Ok(valid.then_some(out))
    }
}

/// As `json::checked`: `parse`, then `check` on what it read.
fn checked<'t, T>(
    parse: impl FnOnce(&mut Reader<'t>, &Path<'_>, &mut Sink) -> R<Option<T>>,
    check: impl FnOnce(&T, &Path<'_>, &mut Sink),
) -> impl FnOnce(&mut Reader<'t>, &Path<'_>, &mut Sink) -> R<Option<T>> {
    move |r, path, sink| {
        let parsed = parse(r, path, sink)?;
        if let Some(parsed) = &parsed {
            check(parsed, path, sink);
        }
        Ok(parsed)
    }
}

/// Whether the next value is an object (as `Obj::new` asks), else reported.
fn is_object(r: &mut Reader<'_>, path: &Path<'_>, sink: &mut Sink) -> R<bool> {
    r.is(Kind::Object, "an object", path, sink)
}

/// The common case, read without the machinery that finds every error: an
/// event whose keys are all known and given once, with every required
/// field, values of the kinds the schema wants (`null` where it allows
/// one), a device state that parses, no string over
/// [`MAX_STRING`](crate::diag::MAX_STRING) bytes
/// and no array over [`MAX_ITEMS`] items. For such input [`event`] finds no
/// error either, and builds the same event: its other errors are the checks
/// of [`checks::event`], which the caller runs on this one. Anything else is
/// `None`, and the caller reads the input again with [`event`], which finds
/// and words every error. Its strings are borrowed from the text: one with
/// an escape is not the common case either.
pub fn plain_event(bytes: &[u8]) -> Option<PlainEvent<'_>> {
    let mut r = Reader::new(text(bytes).ok()?);
    let event = plain::event(&mut r).ok()?;
    r.end().ok()?;
    Some(event)
}

/// An event as [`plain_event`] reads it: [`Event`](crate::Event)'s
/// fields, strings borrowed from the text.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainEvent<'t> {
    pub id: &'t str,
    pub time: Option<&'t str>,
    pub device: PlainDevice<'t>,
    pub user: PlainUser<'t>,
    pub compliant: bool,
    pub violations: Vec<ViolationRef<'t>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlainDevice<'t> {
    pub id: &'t str,
    pub state: DeviceState,
    pub platform: Option<&'t str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlainUser<'t> {
    pub upn: Option<&'t str>,
    pub email: Option<&'t str>,
}

impl PlainEvent<'_> {
    /// What the decision reads.
    pub fn view(&self) -> EventRef<'_> {
        EventRef {
            id: self.id,
            time: self.time,
            device_id: self.device.id,
            state: self.device.state,
            upn: self.user.upn,
            email: self.user.email,
            compliant: self.compliant,
            violations: Violations::Borrowed(&self.violations),
        }
    }

    /// The same event, owned (for the tests that compare the readers).
    #[cfg(test)]
    pub fn to_event(&self) -> crate::model::Event {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        crate::model::Event {
            id: self.id.to_owned(),
            time: owned(self.time),
            device: Device {
                id: self.device.id.to_owned(),
                state: self.device.state,
                platform: owned(self.device.platform),
            },
            user: User {
                upn: owned(self.user.upn),
                email: owned(self.user.email),
            },
            compliance: Compliance {
                compliant: self.compliant,
                violations: self
                    .violations
                    .iter()
                    .map(|v| Violation {
                        policy: v.policy.to_owned(),
                        actions: v.actions.clone(),
                    })
                    .collect(),
            },
        }
    }
}

/// [`plain_event`]'s parts: any deviation from the common case is `Err`.
mod plain {
    use super::{Fallback, Kind, PlainDevice as Device, PlainEvent, PlainUser as User, R, Reader};
    use crate::diag::{MAX_ITEMS, MAX_STRING};
    use crate::model::{Action, Tier, ViolationRef};
    use crate::write::string_stop;

    /// Keeps a field's value; a second one is a duplicate key.
    fn once<T>(slot: &mut Option<T>, value: T) -> R<()> {
        match slot.replace(value) {
            None => Ok(()),
            Some(_) => Err(Fallback),
        }
    }

    /// A string without escapes, borrowed from the text (one with an
    /// escape is read again by the caller).
    #[inline(never)]
    fn string<'t>(r: &mut Reader<'t>) -> R<&'t str> {
        r.eat(b'"')?;
        let start = r.pos;
        let rest = r.text.as_bytes().get(start..).unwrap_or_default();
        let len = string_stop(rest).ok_or(Fallback)?;
        if rest.get(len) != Some(&b'"') || len > MAX_STRING {
            return Err(Fallback);
        }
        r.pos = start + len + 1;
        r.text.get(start..start + len).ok_or(Fallback)
    }

    /// A string kept past the text (an action's name).
    fn owned(r: &mut Reader<'_>) -> R<String> {
        string(r).map(str::to_owned)
    }

    /// `null` or what `read` reads.
    fn nullable<'t, T>(
        r: &mut Reader<'t>,
        read: impl FnOnce(&mut Reader<'t>) -> R<T>,
    ) -> R<Option<T>> {
        // `read` refuses what is neither `null` nor what it reads.
        if r.peek() == Some(b'n') {
            r.literal(b"null")?;
            return Ok(None);
        }
        read(r).map(Some)
    }

    /// An object whose keys are among `keys`: `field` reads each value,
    /// given its key's index in `keys`. Generic, so the loop is in the
    /// module once per object (six copies, 2.5 KB of the core module):
    /// through a `dyn`, each value was an indirect call, which in wasmtime
    /// costs a table lookup and a signature check besides the call (the
    /// fast path 8% more instructions).
    ///
    /// The common case nests five deep at most, far within serde_json's
    /// limit, so the depth is not counted here.
    fn object<'t>(
        r: &mut Reader<'t>,
        keys: &[Key],
        mut field: impl FnMut(&mut Reader<'t>, usize) -> R<()>,
    ) -> R<()> {
        r.eat(b'{')?;
        if r.peek() == Some(b'}') {
            r.pos += 1;
            return Ok(());
        }
        loop {
            let key = key(r, keys)?;
            r.eat(b':')?;
            field(r, key)?;
            if next(r, b'}')? {
                return Ok(());
            }
        }
    }

    /// A key the common case knows, closing quote included, as the first
    /// 16 bytes of the text it matches: a key is one masked 128-bit compare
    /// with each name, not a scan for its end and a `memcmp` (in the module,
    /// a call to a byte loop). A name is at most 15 bytes.
    pub(super) struct Key {
        bytes: u128,
        mask: u128,
        len: usize,
    }

    impl Key {
        pub(super) const fn new(name: &str) -> Self {
            assert!(name.len() < 16, "a key is compared as 16 bytes");
            let (mut bytes, mut mask, mut shift) = (0, 0, 0);
            let mut rest = name.as_bytes();
            while let [b, tail @ ..] = rest {
                bytes |= (*b as u128) << shift;
                mask |= 0xff << shift;
                shift += 8;
                rest = tail;
            }
            Self {
                bytes: bytes | (b'"' as u128) << shift,
                mask: mask | 0xff << shift,
                len: name.len() + 1,
            }
        }
    }

    /// A key (after its opening quote), as its index in `keys`. Any other
    /// key is not the common case, nor is one spelt with an escape (it
    /// matches no name).
    fn key(r: &mut Reader<'_>, keys: &[Key]) -> R<usize> {
        r.eat(b'"')?;
        let rest = r.text.as_bytes().get(r.pos..).unwrap_or_default();
        let head = match rest.first_chunk::<16>() {
            Some(head) => *head,
            None => {
                // Near the end of the text: the bytes after it are zeros,
                // which no name has.
                let mut head = [0; 16];
                head.iter_mut().zip(rest).for_each(|(to, b)| *to = *b);
                head
            }
        };
        let head = u128::from_le_bytes(head);
        let (i, key) = keys
            .iter()
            .enumerate()
            .find(|(_, key)| (head ^ key.bytes) & key.mask == 0)
            .ok_or(Fallback)?;
        r.pos += key.len;
        Ok(i)
    }

    /// After an item: `,` (false) or the closing `close` (true).
    fn next(r: &mut Reader<'_>, close: u8) -> R<bool> {
        match r.peek() {
            Some(b',') => {
                r.pos += 1;
                Ok(false)
            }
            Some(b) if b == close => {
                r.pos += 1;
                Ok(true)
            }
            _ => Err(Fallback),
        }
    }

    fn array<'t, T>(
        r: &mut Reader<'t>,
        mut item: impl FnMut(&mut Reader<'t>) -> R<T>,
    ) -> R<Vec<T>> {
        r.eat(b'[')?;
        let mut out = Vec::new();
        if r.peek() == Some(b']') {
            r.pos += 1;
            return Ok(out);
        }
        loop {
            out.push(item(r)?);
            if out.len() > MAX_ITEMS {
                return Err(Fallback);
            }
            if next(r, b']')? {
                return Ok(out);
            }
        }
    }

    pub(super) fn event<'t>(r: &mut Reader<'t>) -> R<PlainEvent<'t>> {
        let (mut id, mut time, mut device, mut user, mut compliance) =
            (None, None, None, None, None);
        const KEYS: [Key; 5] = [
            Key::new("id"),
            Key::new("time"),
            Key::new("device"),
            Key::new("user"),
            Key::new("compliance"),
        ];
        object(r, &KEYS, |r: &mut Reader<'t>, key| match key {
            0 => once(&mut id, string(r)?),
            1 => once(&mut time, nullable(r, string)?),
            2 => once(&mut device, self::device(r)?),
            3 => once(&mut user, self::user(r)?),
            _ => once(&mut compliance, self::compliance(r)?),
        })?;
        let (compliant, violations) = compliance.ok_or(Fallback)?;
        Ok(PlainEvent {
            id: id.ok_or(Fallback)?,
            time: time.flatten(),
            device: device.ok_or(Fallback)?,
            user: user.ok_or(Fallback)?,
            compliant,
            violations,
        })
    }

    fn device<'t>(r: &mut Reader<'t>) -> R<Device<'t>> {
        let (mut id, mut state, mut platform) = (None, None, None);
        const KEYS: [Key; 3] = [Key::new("id"), Key::new("state"), Key::new("platform")];
        object(r, &KEYS, |r: &mut Reader<'t>, key| match key {
            0 => once(&mut id, string(r)?),
            1 => once(&mut state, string(r)?.parse().map_err(|_| Fallback)?),
            _ => once(&mut platform, nullable(r, string)?),
        })?;
        Ok(Device {
            id: id.ok_or(Fallback)?,
            state: state.ok_or(Fallback)?,
            platform: platform.flatten(),
        })
    }

    fn user<'t>(r: &mut Reader<'t>) -> R<User<'t>> {
        let (mut upn, mut email) = (None, None);
        const KEYS: [Key; 2] = [Key::new("upn"), Key::new("email")];
        object(r, &KEYS, |r: &mut Reader<'t>, key| match key {
            0 => once(&mut upn, nullable(r, string)?),
            _ => once(&mut email, nullable(r, string)?),
        })?;
        Ok(User {
            upn: upn.flatten(),
            email: email.flatten(),
        })
    }

    fn compliance<'t>(r: &mut Reader<'t>) -> R<(bool, Vec<ViolationRef<'t>>)> {
        let (mut compliant, mut violations) = (None, None);
        const KEYS: [Key; 2] = [Key::new("compliant"), Key::new("violations")];
        object(r, &KEYS, |r: &mut Reader<'t>, key| match key {
            0 => once(&mut compliant, r.boolean()?),
            _ => once(&mut violations, nullable(r, |r| array(r, violation))?),
        })?;
        Ok((
            compliant.ok_or(Fallback)?,
            violations.flatten().unwrap_or_default(),
        ))
    }

    fn violation<'t>(r: &mut Reader<'t>) -> R<ViolationRef<'t>> {
        let (mut policy, mut actions) = (None, None);
        const KEYS: [Key; 2] = [Key::new("policy"), Key::new("actions")];
        object(r, &KEYS, |r: &mut Reader<'t>, key| match key {
            0 => once(&mut policy, string(r)?),
            _ => once(&mut actions, nullable(r, |r| array(r, action))?),
        })?;
        Ok(ViolationRef {
            policy: policy.ok_or(Fallback)?,
            actions: actions.flatten(),
        })
    }

    fn action(r: &mut Reader<'_>) -> R<Action> {
        if r.kind()? == Kind::String {
            return owned(r).map(Action::Name);
        }
        const KEYS: [Key; 4] = [
            Key::new("alert"),
            Key::new("block"),
            Key::new("quarantine"),
            Key::new("wipe"),
        ];
        let mut flags: [Option<Option<bool>>; 4] = [None; 4];
        object(r, &KEYS, |r: &mut Reader<'_>, at| {
            let flag = nullable(r, Reader::boolean)?;
            once(flags.get_mut(at).ok_or(Fallback)?, flag)
        })?;
        let [alert, block, quarantine, wipe] = flags.map(|f| f.flatten().unwrap_or(false));
        Ok(Action::Tier(Tier {
            alert,
            block,
            quarantine,
            wipe,
        }))
    }
}

/// An event given as JSON, as `json::read` then `schema::event` read it,
/// errors into `sink`; [`Fallback`] (with `sink` to be dropped) for input
/// `json::read` refuses.
pub fn event(bytes: &[u8], sink: &mut Sink) -> R<EventParts> {
    let mut r = Reader::new(text(bytes)?);
    let parts = event_value(&mut r, &Path::root("event"), sink)?;
    r.end()?;
    Ok(parts)
}

/// A request envelope `{"policy": …, "event": …}` as `json::read` then
/// `schema::request` read it, errors into `sink`: the policy's text (well
/// formed, for `json::read` to read again), and the event's parts with their
/// errors, which the caller reports after the policy's.
#[expect(
    clippy::type_complexity,
    reason = "two halves, each as the caller reports it"
)]
pub fn request<'t>(
    bytes: &'t [u8],
    sink: &mut Sink,
) -> R<(Option<&'t str>, Option<(EventParts, Sink)>)> {
    let mut r = Reader::new(text(bytes)?);
    let root = Path::root("");
    if !is_object(&mut r, &root, sink)? {
        r.end()?;
        return Ok((None, None));
    }
    let mut policy: Slot<&str> = Slot::default();
    let mut event: Slot<EventParts> = Slot::default();
    let mut unknown = Unknown::default();
    let event_path = Path::root("event");
    let count = r.object(|r, key| match key.as_ref() {
        "policy" => policy.read(r, &root, |r, _, _| {
            let start = r.pos;
            r.skip()?;
            Ok(r.text.get(start..r.pos))
        }),
        "event" => event.read(r, &root, |r, _, sink| {
            event_value(r, &event_path, sink).map(Some)
        }),
        _ => unknown.skip(r, key),
    })?;
    r.end()?;
    if !unknown.check(count, &root, sink)? {
        return Ok((None, None));
    }
    let policy = policy.required("policy", &root, sink);
    // The event's errors are the caller's to report, after the policy's.
    let event = if event.seen {
        event.value.map(|parts| (parts, event.sink))
    } else {
        event
            .required("event", &root, sink)
            .map(|p| (p, Sink::default()))
    };
    unknown.report(&["policy", "event"], &root, sink);
    Ok((policy, event))
}

/// As `schema::event`.
fn event_value(r: &mut Reader<'_>, path: &Path<'_>, sink: &mut Sink) -> R<EventParts> {
    if !is_object(r, path, sink)? {
        return Ok(EventParts::default());
    }
    let mut id = Slot::default();
    let mut time = Slot::default();
    let mut device = Slot::default();
    let mut user = Slot::default();
    let mut compliance = Slot::default();
    let mut unknown = Unknown::default();
    let count = r.object(|r, key| match key.as_ref() {
        "id" => id.read(
            r,
            &path.field("id"),
            checked(owned_string, |id: &String, path, sink| {
                checks::id(id, path, sink);
            }),
        ),
        "time" => time.read(
            r,
            &path.field("time"),
            nullable(checked(owned_string, |t: &String, path, sink| {
                checks::time(t, path, sink);
            })),
        ),
        "device" => device.read(
            r,
            &path.field("device"),
            checked(self::device, checks::device),
        ),
        "user" => user.read(r, &path.field("user"), checked(self::user, checks::user)),
        "compliance" => compliance.read(
            r,
            &path.field("compliance"),
            checked(self::compliance, checks::compliance),
        ),
        _ => unknown.skip(r, key),
    })?;
    if !unknown.check(count, path, sink)? {
        return Ok(EventParts::default());
    }
    let parts = EventParts {
        id: id.required("id", path, sink),
        time: time.optional(sink).ok(),
        device: device.required("device", path, sink),
        user: user.required("user", path, sink),
        compliance: compliance.required("compliance", path, sink),
    };
    unknown.report(&["id", "time", "device", "user", "compliance"], path, sink);
    Ok(parts)
}

fn device(r: &mut Reader<'_>, path: &Path<'_>, sink: &mut Sink) -> R<Option<Device>> {
    if !is_object(r, path, sink)? {
        return Ok(None);
    }
    let mut id = Slot::default();
    let mut state = Slot::default();
    let mut platform = Slot::default();
    let mut unknown = Unknown::default();
    let count = r.object(|r, key| match key.as_ref() {
        "id" => id.read(r, &path.field("id"), owned_string),
        "state" => state.read(r, &path.field("state"), one_of::<DeviceState>),
        "platform" => platform.read(r, &path.field("platform"), nullable(owned_string)),
        _ => unknown.skip(r, key),
    })?;
    if !unknown.check(count, path, sink)? {
        return Ok(None);
    }
    let id = id.required("id", path, sink);
    let state = state.required("state", path, sink);
    let platform = platform.optional(sink);
    unknown.report(&["id", "state", "platform"], path, sink);
    Ok(match (id, state, platform) {
        (Some(id), Some(state), Ok(platform)) => Some(Device {
            id,
            state,
            platform,
        }),
        _ => None,
    })
}

fn user(r: &mut Reader<'_>, path: &Path<'_>, sink: &mut Sink) -> R<Option<User>> {
    if !is_object(r, path, sink)? {
        return Ok(None);
    }
    let mut upn = Slot::default();
    let mut email = Slot::default();
    let mut unknown = Unknown::default();
    let count = r.object(|r, key| match key.as_ref() {
        "upn" => upn.read(r, &path.field("upn"), nullable(owned_string)),
        "email" => email.read(r, &path.field("email"), nullable(owned_string)),
        _ => unknown.skip(r, key),
    })?;
    if !unknown.check(count, path, sink)? {
        return Ok(None);
    }
    let upn = upn.optional(sink);
    let email = email.optional(sink);
    unknown.report(&["upn", "email"], path, sink);
    Ok(match (upn, email) {
        (Ok(upn), Ok(email)) => Some(User { upn, email }),
        _ => None,
    })
}

fn compliance(r: &mut Reader<'_>, path: &Path<'_>, sink: &mut Sink) -> R<Option<Compliance>> {
    if !is_object(r, path, sink)? {
        return Ok(None);
    }
    let mut compliant = Slot::default();
    let mut violations = Slot::default();
    let mut unknown = Unknown::default();
    let count = r.object(|r, key| match key.as_ref() {
        "compliant" => compliant.read(r, &path.field("compliant"), boolean),
        "violations" => violations.read(r, &path.field("violations"), nullable(array(violation))),
        _ => unknown.skip(r, key),
    })?;
    if !unknown.check(count, path, sink)? {
        return Ok(None);
    }
    let compliant = compliant.required("compliant", path, sink);
    let violations = violations.optional(sink);
    unknown.report(&["compliant", "violations"], path, sink);
    Ok(match (compliant, violations) {
        (Some(compliant), Ok(violations)) => Some(Compliance {
            compliant,
            violations: violations.unwrap_or_default(),
        }),
        _ => None,
    })
}

fn violation(r: &mut Reader<'_>, path: &Path<'_>, sink: &mut Sink) -> R<Option<Violation>> {
    if !is_object(r, path, sink)? {
        return Ok(None);
    }
    let mut policy = Slot::default();
    let mut actions = Slot::default();
    let mut unknown = Unknown::default();
    let count = r.object(|r, key| match key.as_ref() {
        "policy" => policy.read(r, &path.field("policy"), owned_string),
        "actions" => actions.read(r, &path.field("actions"), nullable(array(action))),
        _ => unknown.skip(r, key),
    })?;
    if !unknown.check(count, path, sink)? {
        return Ok(None);
    }
    let policy = policy.required("policy", path, sink);
    let actions = actions.optional(sink);
    unknown.report(&["policy", "actions"], path, sink);
    Ok(match (policy, actions) {
        (Some(policy), Ok(actions)) => Some(Violation { policy, actions }),
        _ => None,
    })
}

/// As `schema::action`: a name, or an action-tier object.
fn action(r: &mut Reader<'_>, path: &Path<'_>, sink: &mut Sink) -> R<Option<Action>> {
    match r.kind()? {
        Kind::String => Ok(string(r, path, sink)?.map(|name| Action::Name(name.into_owned()))),
        Kind::Object => tier(r, path, sink),
        other => {
            wrong_kind(
                other.name(),
                "an action name or an action-tier object",
                path,
                sink,
            );
            r.skip()?;
            Ok(None)
        }
    }
}

fn tier(r: &mut Reader<'_>, path: &Path<'_>, sink: &mut Sink) -> R<Option<Action>> {
    const FLAGS: [&str; 4] = ["alert", "block", "quarantine", "wipe"];
    let mut flags: [Slot<Option<bool>>; 4] = Default::default();
    let mut unknown = Unknown::default();
    let count = r.object(|r, key| {
        match FLAGS
            .iter()
            .zip(flags.iter_mut())
            .find(|(name, _)| **name == key.as_ref())
        {
            Some((name, slot)) => slot.read(r, &path.field(name), nullable(boolean)),
            None => unknown.skip(r, key),
        }
    })?;
    if !unknown.check(count, path, sink)? {
        return Ok(None);
    }
    let [alert, block, quarantine, wipe] = flags.map(|flag| flag.optional(sink));
    unknown.report(&FLAGS, path, sink);
    Ok(match (alert, block, quarantine, wipe) {
        (Ok(alert), Ok(block), Ok(quarantine), Ok(wipe)) => Some(Action::Tier(Tier {
            alert: alert.unwrap_or(false),
            block: block.unwrap_or(false),
            quarantine: quarantine.unwrap_or(false),
            wipe: wipe.unwrap_or(false),
        })),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The common-case reader keeps every field the single-pass reader
    /// builds, `platform` too (which no answer shows); it gives up on what
    /// is not the common case, an escaped string too.
    #[test]
    fn plain_event_reads_what_the_single_pass_reader_builds() {
        let texts = [
            r#"{"id":"e1","time":"2026-11-27T08:01:00Z","device":{"id":"d","state":"active","platform":"ios"},"user":{"upn":"a@x","email":"b@y"},"compliance":{"compliant":true}}"#,
            r#"{"id":"e2","time":null,"device":{"id":"d","state":"retired","platform":null},"user":{"email":"b@y"},"compliance":{"compliant":false,"violations":[{"policy":"p","actions":["Block",{"alert":true,"wipe":null}]},{"policy":"q","actions":null}]}}"#,
            r#" { "user" : { "upn" : "u" } , "compliance" : { "violations" : [ { "policy" : "p" } ] , "compliant" : false } , "device" : { "state" : "wiped" , "id" : "d" } , "id" : "e" } "#,
        ];
        for text in texts {
            let plain = plain_event(text.as_bytes()).expect("the common case");
            let mut sink = Sink::default();
            let full = event(text.as_bytes(), &mut sink).map(|parts| parts.complete().ok());
            assert!(sink.errors.is_empty(), "{text}: {:?}", sink.errors);
            assert_eq!(Ok(Some(plain.to_event())), full, "{text}");
            // An escape anywhere, even one that decodes to the same text,
            // is left to the reader that decodes it.
            let escaped = text.replacen(r#""d""#, r#""\u0064""#, 1);
            assert_ne!(escaped, text);
            assert_eq!(plain_event(escaped.as_bytes()), None, "{escaped}");
        }
        let platform = |p: &str| {
            let text = format!(
                r#"{{"id":"e","device":{{"id":"d","state":"active","platform":{p}}},"user":{{"upn":"u"}},"compliance":{{"compliant":true}}}}"#
            );
            plain_event(text.as_bytes()).map(|e| e.device.platform.map(str::to_owned))
        };
        assert_eq!(platform(r#""android""#), Some(Some("android".to_owned())));
        assert_eq!(platform("null"), Some(None));
        assert_eq!(platform("7"), None);
        assert_eq!(platform(r#""a","platform":"b""#), None);
    }

    /// Keys are compared with the names the common case knows, not read:
    /// a key that only starts or ends like one, an unknown key, and a known
    /// key spelt with an escape are all left to the single-pass reader.
    #[test]
    fn plain_event_knows_a_key_only_by_its_exact_bytes() {
        let text = r#"{"id":"e","device":{"id":"d","state":"active"},"user":{"upn":"u"},"compliance":{"compliant":true}}"#;
        assert!(plain_event(text.as_bytes()).is_some());
        for key in [
            r#""i""#,
            r#""ids""#,
            r#""xd""#,
            r#""ID""#,
            r#""\u0069d""#,
            r#""""#,
            r#""i"#,
            // Not JSON: the key `idx:` with no colon after it.
            r#""idx"#,
        ] {
            let changed = text.replacen(r#""id""#, key, 1);
            assert_eq!(plain_event(changed.as_bytes()), None, "{changed}");
        }
        let unknown = text.replacen(r#""upn":"u""#, r#""upn":"u","nickname":"v""#, 1);
        assert_eq!(plain_event(unknown.as_bytes()), None, "{unknown}");
        let flag = text.replacen(
            r#""compliant":true"#,
            r#""compliant":false,"violations":[{"policy":"p","actions":[{"blocks":true}]}]"#,
            1,
        );
        assert_eq!(plain_event(flag.as_bytes()), None, "{flag}");
        // Keys within 16 bytes of the end of the text (compared padded).
        let late = r#"{"id":"e","device":{"id":"d","state":"active"},"compliance":{"compliant":true},"user":{"upn":"u"}}"#;
        assert_eq!(
            plain_event(late.as_bytes()).map(|e| e.user.upn),
            Some(Some("u"))
        );
        for cut in 0..late.len() {
            let head = late.get(..cut).unwrap_or_default();
            assert_eq!(plain_event(head.as_bytes()), None, "{head}");
        }
        for key in [r#""up""#, r#""upnx""#, r#""UPN""#] {
            let changed = late.replacen(r#""upn""#, key, 1);
            assert_eq!(plain_event(changed.as_bytes()), None, "{changed}");
        }
    }
}
