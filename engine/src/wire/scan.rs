//! A validating, allocation-free JSON scanner over a byte slice.
//!
//! It reports positions, never values: callers pick the members they want and
//! skip the rest with [`Scanner::skip_value`], which still validates the full
//! JSON grammar (RFC 8259) and UTF-8 of what it skips.
//!
//! # Guarantees
//! * Never panics and never reads out of bounds on any input: every access goes
//!   through `get` or a bounds check.
//! * Recursion is bounded by [`MAX_DEPTH`], so hostile nesting cannot overflow
//!   the stack.

use super::error::DecodeError;

/// Deepest nesting of objects/arrays accepted (serde_json's default limit too).
pub(crate) const MAX_DEPTH: usize = 128;

pub(crate) type R<T> = Result<T, DecodeError>;

#[cold]
#[inline(never)]
pub(crate) fn invalid(offset: usize, reason: &'static str) -> DecodeError {
    DecodeError::InvalidJson { offset, reason }
}

/// A string's contents (without quotes) as absolute positions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Str {
    pub start: usize,
    pub end: usize,
    /// The raw bytes contain a backslash escape: unescape before use.
    pub escaped: bool,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte of the result is set where `x` has a byte that ends or
/// interrupts a plain string run: `"`, `\`, a control character, or a non-ASCII
/// byte. Only the lowest set bit is exact (borrows may flag bytes above it),
/// which is all the caller uses.
#[inline(always)]
fn special(x: u64) -> u64 {
    let q = x ^ (LO * b'"' as u64);
    let b = x ^ (LO * b'\\' as u64);
    let zq = q.wrapping_sub(LO) & !q;
    let zb = b.wrapping_sub(LO) & !b;
    let ctl = x.wrapping_sub(LO * 0x20) & !x;
    (zq | zb | ctl | x) & HI
}

/// A cursor over one JSON document.
pub(crate) struct Scanner<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Scanner { buf, pos: 0 }
    }

    #[inline(always)]
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline(always)]
    pub fn ws(&mut self) {
        while let Some(&c) = self.buf.get(self.pos) {
            if c > b' ' || !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                return;
            }
            self.pos += 1;
        }
    }

    /// Consumes `c` (after optional whitespace) or fails with `reason`.
    #[inline(always)]
    pub fn expect(&mut self, c: u8, reason: &'static str) -> R<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(invalid(self.pos, reason))
        }
    }

    /// Requires that only whitespace is left.
    pub fn end(&mut self) -> R<()> {
        self.ws();
        if self.pos == self.buf.len() { Ok(()) } else { Err(invalid(self.pos, "trailing characters after the document")) }
    }

    /// Starts an object at the cursor (after whitespace). Returns whether it has
    /// a first member; if so the cursor is on that member's key.
    #[inline]
    pub fn object_begin(&mut self, depth: usize) -> R<bool> {
        self.container_begin(b'{', b'}', depth, "expected an object")
    }

    /// Reads a member key and the `:` after it; the cursor ends on the value.
    #[inline]
    pub fn key(&mut self) -> R<Str> {
        if self.peek() != Some(b'"') {
            return Err(invalid(self.pos, "expected a member name"));
        }
        let k = self.string()?;
        self.expect(b':', "expected ':' after a member name")?;
        self.ws();
        Ok(k)
    }

    /// After a member's value: returns whether another member follows (cursor on
    /// its key) or the object closed.
    #[inline]
    pub fn object_next(&mut self) -> R<bool> {
        self.container_next(b'}', "expected ',' or '}' in an object")
    }

    /// Starts an array at the cursor. Returns whether it has a first element
    /// (cursor on it).
    #[inline]
    pub fn array_begin(&mut self, depth: usize) -> R<bool> {
        self.container_begin(b'[', b']', depth, "expected an array")
    }

    /// After an element: returns whether another follows (cursor on it).
    #[inline]
    pub fn array_next(&mut self) -> R<bool> {
        self.container_next(b']', "expected ',' or ']' in an array")
    }

    /// Opens an object or array (`open` at the cursor, after whitespace) at nesting
    /// `depth`; whether it has a first member or element (cursor on it).
    #[inline(always)]
    fn container_begin(&mut self, open: u8, close: u8, depth: usize, expected: &'static str) -> R<bool> {
        self.ws();
        if self.peek() != Some(open) {
            return Err(invalid(self.pos, expected));
        }
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { offset: self.pos, limit: MAX_DEPTH });
        }
        self.pos += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// After a member or element: whether another follows (cursor on it) or the
    /// container closed with `close`.
    #[inline(always)]
    fn container_next(&mut self, close: u8, expected: &'static str) -> R<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.ws();
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(invalid(self.pos, expected)),
        }
    }

    /// Reads a string whose opening quote is at the cursor.
    #[inline]
    pub fn string(&mut self) -> R<Str> {
        let buf = self.buf;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            while let Some(chunk) = buf.get(i..i + 8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(chunk);
                let m = special(u64::from_le_bytes(w));
                if m != 0 {
                    i += (m.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            let Some(&c) = buf.get(i) else {
                return Err(invalid(i, "unterminated string"));
            };
            match c {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(Str { start, end: i, escaped });
                }
                b'\\' => {
                    escaped = true;
                    match buf.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            match buf.get(i + 2..i + 6) {
                                Some(h) if h.iter().all(u8::is_ascii_hexdigit) => {}
                                _ => return Err(invalid(i, "invalid \\u escape")),
                            }
                            i += 6;
                        }
                        _ => return Err(invalid(i, "invalid escape")),
                    }
                }
                0..=0x1f => return Err(invalid(i, "control character in string")),
                0x80.. => {
                    let n = match c {
                        0xC2..=0xDF => 2,
                        0xE0..=0xEF => 3,
                        0xF0..=0xF4 => 4,
                        _ => return Err(invalid(i, "invalid utf-8 in string")),
                    };
                    match buf.get(i..i + n) {
                        Some(seq) if std::str::from_utf8(seq).is_ok() => i += n,
                        _ => return Err(invalid(i, "invalid utf-8 in string")),
                    }
                }
                _ => i += 1,
            }
        }
    }

    /// Reads a number at the cursor; returns its absolute `[start, end)`.
    #[inline]
    pub fn number(&mut self) -> R<(usize, usize)> {
        let buf = self.buf;
        let start = self.pos;
        let mut i = start;
        if buf.get(i) == Some(&b'-') {
            i += 1;
        }
        match buf.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                i += 1;
                while buf.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return Err(invalid(i, "invalid number")),
        }
        if buf.get(i) == Some(&b'.') {
            i += 1;
            if !buf.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(invalid(i, "invalid number"));
            }
            while buf.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if matches!(buf.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(buf.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !buf.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(invalid(i, "invalid number"));
            }
            while buf.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        self.pos = i;
        Ok((start, i))
    }

    /// Reads `true`, `false` or `null` at the cursor.
    #[inline]
    pub fn literal(&mut self) -> R<&'static [u8]> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        for lit in [&b"true"[..], b"false", b"null"] {
            if rest.starts_with(lit) {
                self.pos += lit.len();
                return Ok(lit);
            }
        }
        Err(invalid(self.pos, "expected a value"))
    }

    /// Skips (and validates) one value at the cursor; `depth` counts the
    /// containers already open around it.
    pub fn skip_value(&mut self, depth: usize) -> R<()> {
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{') => {
                if self.object_begin(depth)? {
                    loop {
                        self.key()?;
                        self.skip_value(depth + 1)?;
                        if !self.object_next()? {
                            break;
                        }
                    }
                }
                Ok(())
            }
            Some(b'[') => {
                if self.array_begin(depth)? {
                    loop {
                        self.skip_value(depth + 1)?;
                        if !self.array_next()? {
                            break;
                        }
                    }
                }
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            _ => self.literal().map(drop),
        }
    }

    /// Raw bytes of a string's contents (still escaped if `s.escaped`).
    #[inline(always)]
    pub fn raw(&self, s: Str) -> &'a [u8] {
        self.buf.get(s.start..s.end).unwrap_or_default()
    }
}

/// Appends the unescaped contents of a scanned string to `out`.
///
/// The string was validated by [`Scanner::string`]. Returns `false` for a lone
/// surrogate escape (`\ud800` alone): serde_json rejects those too, so callers
/// report invalid JSON. Strings that are only skipped are not checked for this.
pub(crate) fn unescape(raw: &[u8], out: &mut String) -> bool {
    let mut i = 0;
    while i < raw.len() {
        let Some(off) = memchr::memchr(b'\\', &raw[i..]) else {
            return push_utf8(&raw[i..], out);
        };
        if !push_utf8(&raw[i..i + off], out) {
            return false;
        }
        i += off;
        let Some(&e) = raw.get(i + 1) else { return false };
        i += 2;
        let c = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let Some(hi) = hex4(raw.get(i..i + 4)) else { return false };
                i += 4;
                if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate must be followed by an escaped low one.
                    if raw.get(i..i + 2) != Some(b"\\u") {
                        return false;
                    }
                    let Some(lo) = hex4(raw.get(i + 2..i + 6)) else { return false };
                    if !(0xDC00..0xE000).contains(&lo) {
                        return false;
                    }
                    i += 6;
                    match char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)) {
                        Some(c) => c,
                        None => return false,
                    }
                } else {
                    match char::from_u32(hi) {
                        Some(c) => c,
                        None => return false,
                    }
                }
            }
            _ => return false,
        };
        out.push(c);
    }
    true
}

fn push_utf8(b: &[u8], out: &mut String) -> bool {
    match std::str::from_utf8(b) {
        Ok(s) => {
            out.push_str(s);
            true
        }
        Err(_) => false,
    }
}

fn hex4(h: Option<&[u8]>) -> Option<u32> {
    let h = h?;
    let s = std::str::from_utf8(h).ok()?;
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(s: &str) -> R<usize> {
        let mut sc = Scanner::new(s.as_bytes());
        sc.ws();
        sc.skip_value(0)?;
        sc.end()?;
        Ok(sc.pos)
    }

    #[test]
    fn skip_accepts_what_serde_json_accepts() {
        for doc in [
            r#"{"a":[1,-2.5e+3,true,false,null,"x\"y\u00e9\n"],"b":{}}"#,
            " [ ] ",
            r#""plain string longer than eight bytes, with é and 日本""#,
            "0",
            "-0.0E-1",
            "123456789012345678901234567890",
        ] {
            assert!(skip(doc).is_ok(), "{doc}");
            assert!(serde_json::from_str::<serde_json::Value>(doc).is_ok(), "{doc}");
        }
    }

    #[test]
    fn skip_rejects_what_serde_json_rejects() {
        for doc in [
            "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "-", "tru", "\"\u{1}\"", "\"\\x\"", "\"\\u12g4\"",
            "[1] x", "{a:1}", "\"abc", "1e", "nul",
        ] {
            assert!(skip(doc).is_err(), "{doc:?}");
            assert!(serde_json::from_str::<serde_json::Value>(doc).is_err(), "{doc:?}");
        }
    }

    #[test]
    fn invalid_utf8_inside_a_string_is_an_error_with_its_offset() {
        let doc = b"[\"abcdefghij\xff\"]";
        assert_eq!(skip(std::str::from_utf8(b"[1]").unwrap()).ok(), Some(3));
        let mut sc = Scanner::new(doc);
        assert_eq!(sc.skip_value(0), Err(DecodeError::InvalidJson { offset: 12, reason: "invalid utf-8 in string" }));
    }

    #[test]
    fn nesting_past_the_limit_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(matches!(skip(&deep), Err(DecodeError::TooDeep { limit: MAX_DEPTH, .. })));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(skip(&ok).is_ok());
    }

    #[test]
    fn unescape_decodes_surrogate_pairs_and_rejects_lone_ones() {
        let mut s = String::new();
        assert!(unescape(br"a\u00e9\ud83d\ude00\/\t", &mut s));
        assert_eq!(s, "a\u{e9}\u{1F600}/\t");
        assert!(!unescape(br"\ud83d", &mut String::new()));
    }
}
