//! JSON text to a `serde_json::Value`, read as serde_json 1 reads it into a
//! `Value` (no float round-trip, no arbitrary precision), with its error
//! messages, lines and columns, and refusing a duplicate object key as
//! [`json::read`](crate::json::read) always has. serde_json's own parser
//! was most of the code the wasm builds carried only to word a
//! `malformed-json` error and read a policy; this is a fraction of it.
//!
//! What must stay the same is what the conformance vectors, the hostile-input
//! tests and every answer show: which texts are refused, with which message
//! at which position, and each number's value. So each step below follows
//! serde_json's: where it reports at the byte it consumed (`err`) or one past
//! the byte it peeked at (`peek_err`), its nesting limit, how a number that
//! overflows `u64` loses digits, and its decimal-to-`f64` arithmetic (which
//! is not always correctly rounded: it must round the same way). The tests
//! compare it with serde_json on generated and mutated texts, and the
//! differential fuzz target on every input it makes.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::write::string_stop;

/// Why a text is refused, as serde_json's `ErrorCode` words it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Code {
    EofList,
    EofObject,
    EofString,
    EofValue,
    Colon,
    ListCommaOrEnd,
    ObjectCommaOrEnd,
    Ident,
    Value,
    Escape,
    Number,
    OutOfRange,
    Control,
    KeyNotString,
    LoneLeadingSurrogate,
    TrailingComma,
    TrailingCharacters,
    HexEscapeEnd,
    Depth,
    DuplicateKey(String),
}

impl Code {
    fn write(&self, out: &mut String) {
        let text = match self {
            Self::EofList => "EOF while parsing a list",
            Self::EofObject => "EOF while parsing an object",
            Self::EofString => "EOF while parsing a string",
            Self::EofValue => "EOF while parsing a value",
            Self::Colon => "expected `:`",
            Self::ListCommaOrEnd => "expected `,` or `]`",
            Self::ObjectCommaOrEnd => "expected `,` or `}`",
            Self::Ident => "expected ident",
            Self::Value => "expected value",
            Self::Escape => "invalid escape",
            Self::Number => "invalid number",
            Self::OutOfRange => "number out of range",
            Self::Control => "control character (\\u0000-\\u001F) found while parsing a string",
            Self::KeyNotString => "key must be a string",
            Self::LoneLeadingSurrogate => "lone leading surrogate in hex escape",
            Self::TrailingComma => "trailing comma",
            Self::TrailingCharacters => "trailing characters",
            Self::HexEscapeEnd => "unexpected end of hex escape",
            Self::Depth => "recursion limit exceeded",
            Self::DuplicateKey(key) => {
                out.push_str("duplicate key `");
                out.push_str(key);
                "`"
            }
        };
        out.push_str(text);
    }
}

/// A refusal: its code and the byte index its line and column are counted
/// to; `None` until the object that found a duplicate key has been closed,
/// as serde_json places a visitor's error.
#[derive(Debug)]
struct Error {
    code: Code,
    at: Option<usize>,
}

type R<T> = Result<T, Error>;

/// serde_json's nesting limit: it refuses its 128th nested array or object.
pub const MAX_DEPTH: u32 = 127;

/// Parses `text` as one JSON value with nothing but whitespace after it; the
/// refusal is serde_json's message, "… at line L column C".
pub fn value(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        text,
        at: 0,
        depth: 0,
    };
    let parsed = p.any().and_then(|v| match p.whitespace() {
        Some(_) => Err(p.peek_err(Code::TrailingCharacters)),
        None => Ok(v),
    });
    parsed.map_err(|e| {
        let at = e.at.unwrap_or(p.at);
        let (line, column) = position(text.as_bytes(), at);
        let mut out = String::new();
        e.code.write(&mut out);
        let _ = write!(out, " at line {line} column {column}");
        out
    })
}

/// serde_json's position of byte index `i`: lines from 1, the column the
/// number of bytes between the line's start and `i`.
fn position(bytes: &[u8], i: usize) -> (usize, usize) {
    let before = bytes.get(..i).unwrap_or(bytes);
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |nl| nl + 1);
    let lines = before.iter().take(start).filter(|&&b| b == b'\n').count();
    (1 + lines, i.saturating_sub(start))
}

struct Parser<'t> {
    text: &'t str,
    at: usize,
    depth: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    /// An error at the byte just consumed.
    fn err(&self, code: Code) -> Error {
        Error {
            code,
            at: Some(self.at),
        }
    }

    /// An error at the byte peeked at (one past it, as serde_json counts).
    fn peek_err(&self, code: Code) -> Error {
        Error {
            code,
            at: Some(self.text.len().min(self.at + 1)),
        }
    }

    /// Skips whitespace; the next byte, not consumed.
    fn whitespace(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
        self.peek()
    }

    fn any(&mut self) -> R<Value> {
        let Some(first) = self.whitespace() else {
            return Err(self.peek_err(Code::EofValue));
        };
        match first {
            b'n' => self.ident(b"null").map(|()| Value::Null),
            b't' => self.ident(b"true").map(|()| Value::Bool(true)),
            b'f' => self.ident(b"false").map(|()| Value::Bool(false)),
            b'-' => {
                self.at += 1;
                self.number(false)
            }
            b'0'..=b'9' => self.number(true),
            b'"' => {
                self.at += 1;
                self.string().map(Value::String)
            }
            b'[' | b'{' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.peek_err(Code::Depth));
                }
                self.at += 1;
                let parsed = if first == b'[' {
                    self.array()
                } else {
                    self.object()
                };
                self.depth -= 1;
                parsed
            }
            _ => Err(self.peek_err(Code::Value)),
        }
    }

    /// `word`, its first byte already peeked at.
    fn ident(&mut self, word: &[u8]) -> R<()> {
        for &expected in word {
            match self.next() {
                None => return Err(self.err(Code::EofValue)),
                Some(b) if b != expected => return Err(self.err(Code::Ident)),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The items after `[`, and the `]`.
    fn array(&mut self) -> R<Value> {
        let mut items = Vec::new();
        loop {
            let Some(b) = self.whitespace() else {
                return Err(self.peek_err(Code::EofList));
            };
            if b == b']' {
                self.at += 1;
                return Ok(Value::Array(items));
            }
            if !items.is_empty() {
                if b != b',' {
                    return Err(self.peek_err(Code::ListCommaOrEnd));
                }
                self.at += 1;
                match self.whitespace() {
                    Some(b']') => return Err(self.peek_err(Code::TrailingComma)),
                    Some(_) => {}
                    None => return Err(self.peek_err(Code::EofValue)),
                }
            }
            items.push(self.any()?);
        }
    }

    /// The members after `{`, and the `}`.
    fn object(&mut self) -> R<Value> {
        let members = self.members();
        match members {
            Ok(map) => {
                // `members` stopped at the `}`.
                self.at += 1;
                Ok(Value::Object(map))
            }
            Err(Error { code, at: None }) => {
                // serde_json closes the object before it places the
                // duplicate key's error: past whitespace, and past a `}`.
                if self.whitespace() == Some(b'}') {
                    self.at += 1;
                }
                Err(self.err(code))
            }
            Err(e) => Err(e),
        }
    }

    fn members(&mut self) -> R<Map<String, Value>> {
        let mut map = Map::new();
        let mut first = true;
        loop {
            let Some(b) = self.whitespace() else {
                return Err(self.peek_err(Code::EofObject));
            };
            if b == b'}' {
                return Ok(map);
            }
            if first {
                first = false;
                if b != b'"' {
                    return Err(self.peek_err(Code::KeyNotString));
                }
            } else if b == b',' {
                self.at += 1;
                match self.whitespace() {
                    Some(b'"') => {}
                    Some(b'}') => return Err(self.peek_err(Code::TrailingComma)),
                    Some(_) => return Err(self.peek_err(Code::KeyNotString)),
                    None => return Err(self.peek_err(Code::EofValue)),
                }
            } else {
                return Err(self.peek_err(Code::ObjectCommaOrEnd));
            }
            self.at += 1;
            let key = self.string()?;
            if map.contains_key(&key) {
                return Err(Error {
                    code: Code::DuplicateKey(key),
                    at: None,
                });
            }
            match self.whitespace() {
                Some(b':') => self.at += 1,
                Some(_) => return Err(self.peek_err(Code::Colon)),
                None => return Err(self.peek_err(Code::EofObject)),
            }
            let value = self.any()?;
            map.insert(key, value);
        }
    }

    /// A string's contents after its `"`, and the closing `"`.
    fn string(&mut self) -> R<String> {
        let mut out = String::new();
        loop {
            let start = self.at;
            let rest = self.text.as_bytes().get(start..).unwrap_or_default();
            let Some(stop) = string_stop(rest) else {
                self.at = self.text.len();
                return Err(self.err(Code::EofString));
            };
            self.at += stop;
            // `"`, `\` and control bytes are ASCII: char boundaries.
            out.push_str(self.text.get(start..self.at).unwrap_or_default());
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => self.escape(&mut out)?,
                _ => return Err(self.err(Code::Control)),
            }
        }
    }

    /// An escape after its `\`.
    fn escape(&mut self, out: &mut String) -> R<()> {
        let c = match self.next() {
            None => return Err(self.err(Code::EofString)),
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\x08',
            Some(b'f') => '\x0c',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => self.unicode()?,
            Some(_) => return Err(self.err(Code::Escape)),
        };
        out.push(c);
        Ok(())
    }

    /// A `\u` escape after its `u`: one code unit, or a surrogate pair.
    fn unicode(&mut self) -> R<char> {
        let high = self.hex()?;
        if (0xDC00..=0xDFFF).contains(&high) {
            return Err(self.err(Code::LoneLeadingSurrogate));
        }
        let code = if (0xD800..=0xDBFF).contains(&high) {
            for expected in [b'\\', b'u'] {
                match self.peek() {
                    None => return Err(self.err(Code::EofString)),
                    Some(b) => {
                        self.at += 1;
                        if b != expected {
                            return Err(self.err(Code::HexEscapeEnd));
                        }
                    }
                }
            }
            let low = self.hex()?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return Err(self.err(Code::LoneLeadingSurrogate));
            }
            0x1_0000 + ((high - 0xD800) << 10 | (low - 0xDC00))
        } else {
            high
        };
        // Every code point outside the surrogates is a char.
        Ok(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    /// Four hex digits.
    fn hex(&mut self) -> R<u32> {
        let Some(digits) = self.text.as_bytes().get(self.at..self.at + 4) else {
            self.at = self.text.len();
            return Err(self.err(Code::EofString));
        };
        self.at += 4;
        digits
            .iter()
            .try_fold(0, |n, &d| Some(n << 4 | char::from(d).to_digit(16)?))
            .ok_or_else(|| self.err(Code::Escape))
    }

    /// A number after its sign (`positive` if it had none).
    fn number(&mut self, positive: bool) -> R<Value> {
        let significand = match self.next() {
            None => return Err(self.err(Code::EofValue)),
            Some(b'0') => {
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.peek_err(Code::Number));
                }
                0
            }
            Some(c @ b'1'..=b'9') => {
                let mut significand = u64::from(c - b'0');
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    let digit = u64::from(c - b'0');
                    if overflows(significand, digit) {
                        return self.long_integer(positive, significand).map(Value::from);
                    }
                    self.at += 1;
                    significand = significand * 10 + digit;
                }
                significand
            }
            Some(_) => return Err(self.err(Code::Number)),
        };
        Ok(match self.peek() {
            Some(b'.') => Value::from(self.fraction(positive, significand, 0)?),
            Some(b'e' | b'E') => Value::from(self.exponent(positive, significand, 0)?),
            _ if positive => Value::from(significand),
            _ => {
                #[expect(clippy::cast_possible_wrap, reason = "as serde_json negates it")]
                let negated = (significand as i64).wrapping_neg();
                // Beyond i64, and `-0`, are floats.
                if negated >= 0 {
                    #[expect(clippy::cast_precision_loss, reason = "as serde_json converts it")]
                    Value::from(-(significand as f64))
                } else {
                    Value::from(negated)
                }
            }
        })
    }

    /// The digits past those `u64` holds are dropped, each a power of ten.
    fn long_integer(&mut self, positive: bool, significand: u64) -> R<f64> {
        let mut exponent: i32 = 0;
        loop {
            match self.peek() {
                Some(b'0'..=b'9') => {
                    self.at += 1;
                    exponent = exponent.wrapping_add(1);
                }
                Some(b'.') => return self.fraction(positive, significand, exponent),
                Some(b'e' | b'E') => return self.exponent(positive, significand, exponent),
                _ => return self.float(positive, significand, exponent),
            }
        }
    }

    /// The `.` and the digits after it.
    fn fraction(&mut self, positive: bool, mut significand: u64, before: i32) -> R<f64> {
        self.at += 1;
        let mut after: i32 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            let digit = u64::from(c - b'0');
            if overflows(significand, digit) {
                // The digits past those `u64` holds are ignored.
                while let Some(b'0'..=b'9') = self.peek() {
                    self.at += 1;
                }
                return self.maybe_exponent(positive, significand, before.wrapping_add(after));
            }
            self.at += 1;
            significand = significand * 10 + digit;
            after -= 1;
        }
        if after == 0 {
            return Err(match self.peek() {
                Some(_) => self.peek_err(Code::Number),
                None => self.peek_err(Code::EofValue),
            });
        }
        self.maybe_exponent(positive, significand, before.wrapping_add(after))
    }

    fn maybe_exponent(&mut self, positive: bool, significand: u64, exponent: i32) -> R<f64> {
        match self.peek() {
            Some(b'e' | b'E') => self.exponent(positive, significand, exponent),
            _ => self.float(positive, significand, exponent),
        }
    }

    /// The `e` and the exponent after it.
    fn exponent(&mut self, positive: bool, significand: u64, start: i32) -> R<f64> {
        self.at += 1;
        let positive_exp = match self.peek() {
            Some(b'+') => {
                self.at += 1;
                true
            }
            Some(b'-') => {
                self.at += 1;
                false
            }
            _ => true,
        };
        let mut exp = match self.next() {
            None => return Err(self.err(Code::EofValue)),
            Some(c @ b'0'..=b'9') => i32::from(c - b'0'),
            Some(_) => return Err(self.err(Code::Number)),
        };
        while let Some(c @ b'0'..=b'9') = self.peek() {
            self.at += 1;
            let digit = i32::from(c - b'0');
            if exp >= i32::MAX / 10 && (exp > i32::MAX / 10 || digit > i32::MAX % 10) {
                // An exponent past i32: zero, or out of range.
                if significand != 0 && positive_exp {
                    return Err(self.err(Code::OutOfRange));
                }
                while let Some(b'0'..=b'9') = self.peek() {
                    self.at += 1;
                }
                return Ok(if positive { 0.0 } else { -0.0 });
            }
            exp = exp * 10 + digit;
        }
        let exponent = if positive_exp {
            start.saturating_add(exp)
        } else {
            start.saturating_sub(exp)
        };
        self.float(positive, significand, exponent)
    }

    /// `significand` × 10^`exponent` as serde_json computes it: one multiply
    /// or divide by an exact power of ten (in steps of 10^308 for tiny ones).
    fn float(&self, positive: bool, significand: u64, mut exponent: i32) -> R<f64> {
        #[expect(clippy::cast_precision_loss, reason = "as serde_json converts it")]
        let mut f = significand as f64;
        loop {
            match POW10.get(exponent.unsigned_abs() as usize) {
                Some(&pow) => {
                    if exponent >= 0 {
                        f *= pow;
                        if f.is_infinite() {
                            return Err(self.err(Code::OutOfRange));
                        }
                    } else {
                        f /= pow;
                    }
                    break;
                }
                None => {
                    if f == 0.0 {
                        break;
                    }
                    if exponent >= 0 {
                        return Err(self.err(Code::OutOfRange));
                    }
                    f /= 1e308;
                    exponent += 308;
                }
            }
        }
        Ok(if positive { f } else { -f })
    }
}

/// Whether `n * 10 + digit` overflows `u64`.
fn overflows(n: u64, digit: u64) -> bool {
    n >= u64::MAX / 10 && (n > u64::MAX / 10 || digit > u64::MAX % 10)
}

/// 10^0 ..= 10^308, each the `f64` nearest to it.
#[rustfmt::skip]
static POW10: [f64; 309] = [
    1e000, 1e001, 1e002, 1e003, 1e004, 1e005, 1e006, 1e007, 1e008, 1e009,
    1e010, 1e011, 1e012, 1e013, 1e014, 1e015, 1e016, 1e017, 1e018, 1e019,
    1e020, 1e021, 1e022, 1e023, 1e024, 1e025, 1e026, 1e027, 1e028, 1e029,
    1e030, 1e031, 1e032, 1e033, 1e034, 1e035, 1e036, 1e037, 1e038, 1e039,
    1e040, 1e041, 1e042, 1e043, 1e044, 1e045, 1e046, 1e047, 1e048, 1e049,
    1e050, 1e051, 1e052, 1e053, 1e054, 1e055, 1e056, 1e057, 1e058, 1e059,
    1e060, 1e061, 1e062, 1e063, 1e064, 1e065, 1e066, 1e067, 1e068, 1e069,
    1e070, 1e071, 1e072, 1e073, 1e074, 1e075, 1e076, 1e077, 1e078, 1e079,
    1e080, 1e081, 1e082, 1e083, 1e084, 1e085, 1e086, 1e087, 1e088, 1e089,
    1e090, 1e091, 1e092, 1e093, 1e094, 1e095, 1e096, 1e097, 1e098, 1e099,
    1e100, 1e101, 1e102, 1e103, 1e104, 1e105, 1e106, 1e107, 1e108, 1e109,
    1e110, 1e111, 1e112, 1e113, 1e114, 1e115, 1e116, 1e117, 1e118, 1e119,
    1e120, 1e121, 1e122, 1e123, 1e124, 1e125, 1e126, 1e127, 1e128, 1e129,
    1e130, 1e131, 1e132, 1e133, 1e134, 1e135, 1e136, 1e137, 1e138, 1e139,
    1e140, 1e141, 1e142, 1e143, 1e144, 1e145, 1e146, 1e147, 1e148, 1e149,
    1e150, 1e151, 1e152, 1e153, 1e154, 1e155, 1e156, 1e157, 1e158, 1e159,
    1e160, 1e161, 1e162, 1e163, 1e164, 1e165, 1e166, 1e167, 1e168, 1e169,
    1e170, 1e171, 1e172, 1e173, 1e174, 1e175, 1e176, 1e177, 1e178, 1e179,
    1e180, 1e181, 1e182, 1e183, 1e184, 1e185, 1e186, 1e187, 1e188, 1e189,
    1e190, 1e191, 1e192, 1e193, 1e194, 1e195, 1e196, 1e197, 1e198, 1e199,
    1e200, 1e201, 1e202, 1e203, 1e204, 1e205, 1e206, 1e207, 1e208, 1e209,
    1e210, 1e211, 1e212, 1e213, 1e214, 1e215, 1e216, 1e217, 1e218, 1e219,
    1e220, 1e221, 1e222, 1e223, 1e224, 1e225, 1e226, 1e227, 1e228, 1e229,
    1e230, 1e231, 1e232, 1e233, 1e234, 1e235, 1e236, 1e237, 1e238, 1e239,
    1e240, 1e241, 1e242, 1e243, 1e244, 1e245, 1e246, 1e247, 1e248, 1e249,
    1e250, 1e251, 1e252, 1e253, 1e254, 1e255, 1e256, 1e257, 1e258, 1e259,
    1e260, 1e261, 1e262, 1e263, 1e264, 1e265, 1e266, 1e267, 1e268, 1e269,
    1e270, 1e271, 1e272, 1e273, 1e274, 1e275, 1e276, 1e277, 1e278, 1e279,
    1e280, 1e281, 1e282, 1e283, 1e284, 1e285, 1e286, 1e287, 1e288, 1e289,
    1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299,
    1e300, 1e301, 1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308,
];

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::value;
    use crate::json::serde_value;

    /// Both parsers' results, values as text (so `-0.0` is not `0.0`).
    fn both(text: &str) -> (Result<String, String>, Result<String, String>) {
        (
            value(text).map(|v| v.to_string()),
            serde_value(text).map(|v| v.to_string()),
        )
    }

    fn assert_same(text: &str) {
        let (ours, serde) = both(text);
        assert_eq!(ours, serde, "{text:?}");
    }

    #[test]
    fn every_refusal_as_serde_json_words_and_places_it() {
        let texts = [
            // Values, whitespace, trailing text.
            "",
            " ",
            "\n\n  ",
            "null",
            " true ",
            "false",
            "nul",
            "nulx",
            "tru",
            "fals",
            "x",
            "@",
            "1 2",
            "{} x",
            "[]]",
            "\t\r\n[\n1\n,\n2\n]\n",
            "\u{e9}",
            "\"\u{e9}\" \u{e9}",
            // Arrays.
            "[",
            "[1",
            "[1,",
            "[1,]",
            "[1 2]",
            "[,1]",
            "[1,,2]",
            "[]",
            "[[[]]]",
            "[1]x",
            "[\n1,\n]",
            "[null, [true, {\"a\": [1, 2, {}]}], \"x\"]",
            // Objects and keys.
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1",
            "{\"a\":1,",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "{\"a\":1 \"b\":2}",
            "{,}",
            "{\"a\":1,2}",
            "{\"a\":1}}",
            "{\"\":0}",
            "{\"a\":1,\"a\":2}",
            "{\"a\":1,\"a\"}",
            "{\"a\":1,\"a\"  }",
            "{\"a\":1,\"a\"\n:2}",
            "{\"a\":1,\"a\":",
            "{\"x\":{\"a\":1,\"a\":2},\"y\":3}",
            "[{\"a\":[],\"a\":{}}]",
            "{\"a\\u0062\":1,\"ab\":2}",
            "{\"a\":1,\"b\":2,\"a\":3}",
            // Strings and escapes.
            "\"",
            "\"abc",
            "\"a\\",
            "\"\\x\"",
            "\"\\u\"",
            "\"\\u12\"",
            "\"\\u12",
            "\"\\u00zz\"",
            "\"\\uD800\"",
            "\"\\uD800\\\"",
            "\"\\uD800\\u\"",
            "\"\\uD800\\uD800\"",
            "\"\\uDC00\"",
            "\"\\uD83D\\uDE00\"",
            "\"\\uD83D\\",
            "\"\\uD83D",
            "\"\\uD83Dx\"",
            "\"\\u00e9\\n\\t\\r\\b\\f\\/\\\\\\\"\"",
            "\"a\tb\"",
            "\"a\u{1}\"",
            "\"\u{7f}\"",
            "\"\u{e9}\u{4e2d}\u{1f600}\"",
            "\"\\u0000\"",
            "\"\n\"",
            // Numbers.
            "0",
            "-0",
            "-",
            "-x",
            "01",
            "-01",
            "1.",
            "1.x",
            "1.e5",
            ".5",
            "1e",
            "1e+",
            "1e-",
            "1ex",
            "1E5",
            "1e-5",
            "-1.5e+3",
            "0.1",
            "1.7976931348623157e308",
            "1e309",
            "-1e309",
            "2e308",
            "1e-400",
            "-1e-400",
            "4.9e-324",
            "2.2250738585072014e-308",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "1.23456789012345678901234567890",
            "184467440737095516150.5",
            "0.000000000000000000000000000000000000001",
            "1e2147483647",
            "1e2147483648",
            "0e99999999999",
            "-0e99999999999",
            "1e-99999999999",
            "1e99999999999",
            "0.0e99999999999",
            "[1.5x]",
            "[-]",
            "{\"a\":-}",
            "1.0",
            "100e-2",
            "9007199254740993",
        ];
        for text in texts {
            assert_same(text);
        }
    }

    #[test]
    fn nesting_to_serde_jsons_limit() {
        for depth in [126, 127, 128, 129, 200] {
            assert_same(&"[".repeat(depth));
            assert_same(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
            assert_same(&format!(
                "{}1{}",
                "{\"a\":".repeat(depth),
                "}".repeat(depth)
            ));
        }
    }

    /// Texts made of JSON's own pieces, valid and not.
    fn jsonish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("{"),
            Just("}"),
            Just("["),
            Just("]"),
            Just(","),
            Just(":"),
            Just("\""),
            Just("\\"),
            Just("\\u"),
            Just("\\uD83D"),
            Just("\\uDE00"),
            Just("\\n"),
            Just("a"),
            Just("\"a\""),
            Just("\"b\":"),
            Just("0"),
            Just("1"),
            Just("9"),
            Just("-"),
            Just("."),
            Just("e"),
            Just("E"),
            Just("+"),
            Just("null"),
            Just("true"),
            Just("f"),
            Just(" "),
            Just("\n"),
            Just("\t"),
            Just("\u{1}"),
            Just("\u{e9}"),
            Just("\u{1f600}"),
            Just("12345678901234567890"),
            Just("e308"),
            Just("e-330"),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    /// Valid documents, then one byte-level edit of them.
    fn edited() -> impl Strategy<Value = String> {
        let docs = prop_oneof![
            Just(
                r#"{"id":"evt-1","device":{"id":"d","state":"active"},"user":{"upn":"a@b"},"compliance":{"compliant":false,"violations":[{"policy":"p","actions":["Block",{"tier":2}]}]}}"#
            ),
            Just(
                r#"{"uem":"epmm","deployment":"access","providers":["office365"],"grace_seconds":3600,"actions":{"Lock":"blocking"}}"#
            ),
            Just(
                "[1, -2.5e-3, 0, -0, 1e22, 18446744073709551616, \"\\u00e9\\uD83D\\uDE00\", null, true]"
            ),
        ];
        let edit = (any::<prop::sample::Index>(), 0u8..3, any::<u8>());
        (docs, edit).prop_map(|(doc, (at, kind, byte))| {
            let mut bytes = doc.as_bytes().to_vec();
            let i = at.index(bytes.len() + 1);
            match kind {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ if i < bytes.len() => bytes[i] = byte,
                _ => {}
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }

    /// Decimal numbers: long significands, fractions and exponents.
    fn number() -> impl Strategy<Value = String> {
        (
            "-?(0|[1-9][0-9]{0,30})",
            prop::option::of("[0-9]{1,30}"),
            prop::option::of("[eE][+-]?[0-9]{1,4}"),
        )
            .prop_map(|(int, frac, exp)| {
                let mut s = int;
                if let Some(frac) = frac {
                    s.push('.');
                    s.push_str(&frac);
                }
                s.push_str(&exp.unwrap_or_default());
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn jsonish_text_as_serde_json_reads_it(text in jsonish()) {
            let (ours, serde) = both(&text);
            prop_assert_eq!(ours, serde);
        }

        #[test]
        fn edited_documents_as_serde_json_reads_them(text in edited()) {
            let (ours, serde) = both(&text);
            prop_assert_eq!(ours, serde);
        }

        #[test]
        fn numbers_as_serde_json_reads_them(text in number()) {
            let (ours, serde) = both(&text);
            prop_assert_eq!(ours, serde);
        }

        #[test]
        fn any_text_as_serde_json_reads_it(text in any::<String>()) {
            let (ours, serde) = both(&text);
            prop_assert_eq!(ours, serde);
        }
    }
}
