//! Member names and scalar values at the scanner's cursor, read into Rust values.

use std::borrow::Cow;

use super::error::DecodeError;
use super::scan::{R, Scanner, Str, invalid, unescape};

/// A member name as bytes: borrowed from the document unless it had escapes.
#[inline]
pub(super) fn key_bytes<'a>(sc: &Scanner<'a>, k: Str) -> Cow<'a, [u8]> {
    let raw = sc.raw(k);
    if !k.escaped {
        return Cow::Borrowed(raw);
    }
    let mut s = String::new();
    if unescape(raw, &mut s) { Cow::Owned(s.into_bytes()) } else { Cow::Borrowed(raw) }
}

/// A string value as an owned `String`.
pub(super) fn owned(sc: &Scanner<'_>, s: Str) -> R<String> {
    let raw = sc.raw(s);
    if s.escaped {
        let mut out = String::with_capacity(raw.len());
        if !unescape(raw, &mut out) {
            return Err(invalid(s.start, "lone surrogate escape in string"));
        }
        Ok(out)
    } else {
        std::str::from_utf8(raw).map(str::to_owned).map_err(|_| invalid(s.start, "invalid utf-8 in string"))
    }
}

/// A string or `null` value at the cursor as an owned string (`null` -> empty).
pub(super) fn owned_or_null(sc: &mut Scanner<'_>, shape: &'static str) -> R<String> {
    match sc.peek() {
        Some(b'"') => {
            let s = sc.string()?;
            owned(sc, s)
        }
        Some(b'n') => {
            null(sc, shape)?;
            Ok(String::new())
        }
        _ => Err(DecodeError::WrongShape(shape)),
    }
}

pub(super) fn null(sc: &mut Scanner<'_>, shape: &'static str) -> R<()> {
    match sc.literal()? {
        b"null" => Ok(()),
        _ => Err(DecodeError::WrongShape(shape)),
    }
}

/// An integer value at the cursor (`null` -> `None`).
pub(super) fn int_or_null(sc: &mut Scanner<'_>, shape: &'static str) -> R<Option<i64>> {
    match sc.peek() {
        Some(b'-' | b'0'..=b'9') => {
            let (a, b) = sc.number()?;
            let raw = sc.buf.get(a..b).unwrap_or_default();
            std::str::from_utf8(raw).ok().and_then(|s| s.parse::<i64>().ok()).map(Some).ok_or(DecodeError::WrongShape(shape))
        }
        Some(b'n') => null(sc, shape).map(|()| None),
        _ => Err(DecodeError::WrongShape(shape)),
    }
}
