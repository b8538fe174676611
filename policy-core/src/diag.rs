//! The diagnostics base every layer above reports through: a [`Path`] into
//! the input, a [`Sink`] of errors and warnings, and the size limits.

use std::borrow::Cow;
use std::fmt;

use crate::answer::{Diagnostic, ErrorCode};
use crate::write::quoted;

/// Requests, policies and events larger than this are `too-large`.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Lists (violations, actions, ...) and objects with more items than this are
/// `too-large`; so are more actions than this in all violations together, or
/// in all compliance policies together.
pub const MAX_ITEMS: usize = 1024;
/// Strings longer than this many bytes are `too-large`: no identifier, name or
/// address is longer, and it bounds how much an answer can echo.
pub const MAX_STRING: usize = 256;
/// At most this many errors (and warnings) are listed; one more `too-large`
/// entry says the rest were left out.
pub const MAX_DIAGNOSTICS: usize = 100;

/// A user-chosen text as messages and paths show it: at most 64 characters.
pub fn clip(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", s.get(..end).unwrap_or_default()).into(),
        None => s.into(),
    }
}

/// A path into the input, built on the stack and printed only for an error.
#[derive(Debug, Clone, Copy)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Root(&'static str),
    Field(&'a str),
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    /// The start of a path: `policy`, `event`, or `""` for a whole request.
    pub const fn root(name: &'static str) -> Self {
        Self {
            parent: None,
            seg: Seg::Root(name),
        }
    }
    /// A field of an object, printed `.name`.
    pub fn field(&'a self, name: &'a str) -> Path<'a> {
        self.child(Seg::Field(name))
    }
    /// A user-chosen map key, printed `["key"]`.
    pub fn key(&'a self, key: &'a str) -> Path<'a> {
        self.child(Seg::Key(key))
    }
    /// An array item, printed `[i]`.
    pub fn index(&'a self, i: usize) -> Path<'a> {
        self.child(Seg::Index(i))
    }
    fn child(&'a self, seg: Seg<'a>) -> Path<'a> {
        Path {
            parent: Some(self),
            seg,
        }
    }
    /// Whether this is the root of a whole request.
    pub fn is_request(&self) -> bool {
        matches!(self.seg, Seg::Root(""))
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            parent.fmt(f)?;
        }
        match self.seg {
            Seg::Root(name) => f.write_str(name),
            Seg::Field(name) if self.parent.is_some_and(|p| !p.is_request()) => {
                write!(f, ".{}", clip(name))
            }
            Seg::Field(name) => f.write_str(&clip(name)),
            Seg::Key(key) => {
                // As serde_json writes the key as a string, without its `Value`'s `Display`.
                let mut q = String::new();
                quoted(&mut q, &clip(key));
                write!(f, "[{q}]")
            }
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Errors and warnings, in the order they were found.
#[derive(Debug, Default)]
pub struct Sink {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Sink {
    pub fn error(&mut self, code: ErrorCode, path: &Path<'_>, message: impl Into<String>) {
        push(&mut self.errors, || diagnostic(code, path, message));
    }
    pub fn warning(&mut self, code: ErrorCode, path: &Path<'_>, message: impl Into<String>) {
        push(&mut self.warnings, || diagnostic(code, path, message));
    }
    /// Moves the errors and warnings of `other` into this sink, keeping the cap.
    pub fn append(&mut self, other: Sink) {
        if other.errors.is_empty() && other.warnings.is_empty() {
            return;
        }
        self.append_errors(other.errors);
        for warning in other.warnings {
            push(&mut self.warnings, || warning);
        }
    }
    /// Moves `errors` found elsewhere into this sink, keeping the cap.
    pub fn append_errors(&mut self, errors: Vec<Diagnostic>) {
        for error in errors {
            push(&mut self.errors, || error);
        }
    }
}

fn diagnostic(code: ErrorCode, path: &Path<'_>, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        code,
        path: path.to_string(),
        message: message.into(),
    }
}

/// Adds a diagnostic unless [`MAX_DIAGNOSTICS`] are listed already; the first
/// one over the cap becomes a `too-large` note, the rest are dropped.
fn push(list: &mut Vec<Diagnostic>, make: impl FnOnce() -> Diagnostic) {
    match list.len() {
        n if n < MAX_DIAGNOSTICS => list.push(make()),
        n if n == MAX_DIAGNOSTICS => list.push(Diagnostic {
            code: ErrorCode::TooLarge,
            path: String::new(),
            message: format!(
                "more than {MAX_DIAGNOSTICS} found; only the first {MAX_DIAGNOSTICS} are listed"
            ),
        }),
        _ => {}
    }
}

/// Reports a list or object of `len` items as `too-large`.
pub fn too_many(len: usize, path: &Path<'_>, sink: &mut Sink) {
    sink.error(
        ErrorCode::TooLarge,
        path,
        format!("{len} items; the limit is {MAX_ITEMS}"),
    );
}

/// Reports a string over [`MAX_STRING`] bytes as `too-large`; true if it was.
pub fn too_long(s: &str, path: &Path<'_>, sink: &mut Sink) -> bool {
    let long = s.len() > MAX_STRING;
    if long {
        let message = format!("{} bytes; the limit is {MAX_STRING}", s.len());
        sink.error(ErrorCode::TooLarge, path, message);
    }
    long
}
