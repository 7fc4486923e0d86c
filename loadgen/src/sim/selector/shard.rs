//! KEP-5866 shard selectors (`shardSelector`, feature gate `ShardedListAndWatch`):
//! the CEL expression a LIST or WATCH names its slice of the hash space with,
//! parsed, echoed and matched as kube-apiserver v1.36 does.
//!
//! # Guarantees
//! * The grammar is CEL's (k8s.io/apiserver/pkg/sharding/parser.go parses the
//!   expression with cel-go and walks the tree without evaluating it): only
//!   `shardRange(field, 'start', 'end')` calls joined by `||` are accepted,
//!   every other CEL expression is refused with the walk's message.
//! * `field` is `object.metadata.uid` or `object.metadata.namespace`, the same
//!   in every range; `start` and `end` are string literals of `0x` and exactly
//!   16 lowercase hex digits, or `'0x10000000000000000'` (2^64) as an end,
//!   with `start < end`.
//! * An object matches when the 64-bit FNV-1a hash of the field's bytes lies in
//!   one of the ranges, `start` inclusive and `end` exclusive
//!   (k8s.io/apimachinery/pkg/sharding/{hash.go,selector.go}).
//! * [`ShardSelector::canonical`] is what a list echoes in
//!   `metadata.shardInfo.selector` (`selector.go` `String`).
//! * Errors carry the real server's text: the registry wraps the parser's as
//!   `invalid shard selector: …` and, as it is not an API status, the answer is
//!   500 with no reason (`responsewriters.ErrorToAPIStatus`). CEL syntax errors
//!   are reproduced for the mistakes recorded from a real server (see
//!   [`super::shard_cel`]); others keep the `CEL parse error: Syntax error: `
//!   prefix in ANTLR's style.

use super::shard_cel as cel;
use crate::sim::status::ApiError;

/// The field a shard selector hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardField {
    /// `object.metadata.uid`
    Uid,
    /// `object.metadata.namespace`
    Namespace,
}

impl ShardField {
    /// The CEL path.
    pub fn path(self) -> &'static str {
        match self {
            ShardField::Uid => "object.metadata.uid",
            ShardField::Namespace => "object.metadata.namespace",
        }
    }
}

/// One `[start, end)` range of the hash space; `end` is at most 2^64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardRange {
    /// Inclusive lower bound.
    pub start: u64,
    /// Exclusive upper bound (2^64 for the top of the space).
    pub end: u128,
}

/// A parsed `shardSelector`: one field and the ranges OR'd together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSelector {
    field: ShardField,
    ranges: Vec<ShardRange>,
}

/// 64-bit FNV-1a (Go's `hash/fnv` `New64a`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn hex_bound(v: u128) -> String {
    format!("0x{v:016x}")
}

impl ShardSelector {
    /// Parses a `shardSelector` value; the error is the parser's message
    /// (without the registry's `invalid shard selector: ` prefix).
    ///
    /// # Errors
    /// The message k8s.io/apiserver/pkg/sharding `Parse` returns.
    pub fn parse(expr: &str) -> Result<ShardSelector, String> {
        let expr = expr.trim_matches(|c: char| c.is_whitespace());
        if expr.is_empty() {
            return Err("empty shard selector is not allowed; omit the parameter for unfiltered lists".into());
        }
        let tree = cel::parse(expr).map_err(|e| format!("CEL parse error: {e}"))?;
        let mut reqs = Vec::new();
        walk(&tree, &mut reqs)?;
        let field = reqs[0].0;
        if let Some((other, _)) = reqs.iter().find(|(f, _)| *f != field) {
            return Err(format!(
                "all shard ranges must use the same field, got {} and {}",
                go_quote(field.path()),
                go_quote(other.path())
            ));
        }
        Ok(ShardSelector { field, ranges: reqs.into_iter().map(|(_, r)| r).collect() })
    }

    /// The `shardSelector` query parameter of a LIST or WATCH: `None` when the
    /// gate is off or the parameter is absent or empty (the registry only
    /// parses a non-empty value, and only with the gate on:
    /// k8s.io/apiserver/pkg/registry/generic/registry/store.go `ListPredicate`, `Watch`).
    ///
    /// # Errors
    /// 500 `invalid shard selector: …` for a value that does not parse.
    pub fn from_param(gate: bool, param: Option<&str>) -> Result<Option<ShardSelector>, ApiError> {
        match param {
            Some(p) if gate && !p.is_empty() => ShardSelector::parse(p)
                .map(Some)
                .map_err(|e| ApiError::internal(format!("invalid shard selector: {e}"))),
            _ => Ok(None),
        }
    }

    /// The hashed field.
    pub fn field(&self) -> ShardField {
        self.field
    }

    /// The ranges, in the order written.
    pub fn ranges(&self) -> &[ShardRange] {
        &self.ranges
    }

    /// Whether a field value's hash lies in one of the ranges.
    pub fn matches_value(&self, value: &str) -> bool {
        let h = u128::from(fnv1a64(value.as_bytes()));
        self.ranges.iter().any(|r| u128::from(r.start) <= h && h < r.end)
    }

    /// The selector as the server writes it back (`shardInfo.selector`).
    pub fn canonical(&self) -> String {
        let path = self.field.path();
        self.ranges
            .iter()
            .map(|r| format!("shardRange({path}, '{}', '{}')", hex_bound(u128::from(r.start)), hex_bound(r.end)))
            .collect::<Vec<_>>()
            .join(" || ")
    }
}

/// CEL `ExprKind` numbers, as `%v` prints them (cel-go common/ast/expr.go).
fn kind_number(e: &cel::Expr) -> u8 {
    match e {
        cel::Expr::Call { .. } => 1,
        cel::Expr::Ident(_) => 3,
        cel::Expr::List => 4,
        cel::Expr::Literal(_) => 5,
        cel::Expr::Map => 6,
        cel::Expr::Select(..) => 7,
        cel::Expr::Struct => 8,
    }
}

/// parser.go `walkExpr`: `_||_` recurses, `shardRange` yields a range, anything else fails.
fn walk(e: &cel::Expr, out: &mut Vec<(ShardField, ShardRange)>) -> Result<(), String> {
    let cel::Expr::Call { function, args } = e else {
        return Err(format!(
            "unexpected expression kind {}; expected shardRange() call or || operator",
            kind_number(e)
        ));
    };
    match function.as_str() {
        "_||_" => {
            for a in args {
                walk(a, out)?;
            }
            Ok(())
        }
        "shardRange" => {
            out.push(shard_range(args)?);
            Ok(())
        }
        other => Err(format!(
            "unsupported function {}; only shardRange() and || are allowed",
            go_quote(other)
        )),
    }
}

/// parser.go `parseShardRangeCall`.
fn shard_range(args: &[cel::Expr]) -> Result<(ShardField, ShardRange), String> {
    if args.len() != 3 {
        return Err(format!("shardRange() requires exactly 3 arguments, got {}", args.len()));
    }
    let path = field_path(&args[0]).map_err(|e| format!("shardRange() first argument: {e}"))?;
    let field = match path.as_str() {
        "object.metadata.uid" => ShardField::Uid,
        "object.metadata.namespace" => ShardField::Namespace,
        _ => {
            return Err(format!(
                "unsupported field path {}; supported: object.metadata.uid, object.metadata.namespace",
                go_quote(&path)
            ));
        }
    };
    let start = hex_literal(&args[1], "hexStart")?;
    let end = hex_literal(&args[2], "hexEnd")?;
    // selector.go `HexLess`: both are canonical, so numeric order is the order.
    if start >= end {
        return Err(format!("shard range start {} must be less than end {}", hex_bound(start), hex_bound(end)));
    }
    let start = u64::try_from(start).map_err(|_| "shard range start out of range".to_owned())?;
    Ok((field, ShardRange { start, end }))
}

/// parser.go `extractFieldPath`: identifiers joined by selections.
fn field_path(e: &cel::Expr) -> Result<String, String> {
    match e {
        cel::Expr::Ident(name) => Ok(name.clone()),
        cel::Expr::Select(operand, field) => Ok(format!("{}.{field}", field_path(operand)?)),
        other => Err(format!(
            "expected field path (e.g. object.metadata.uid), got expression kind {}",
            kind_number(other)
        )),
    }
}

/// parser.go `extractHexLiteral`.
fn hex_literal(e: &cel::Expr, name: &str) -> Result<u128, String> {
    let cel::Expr::Literal(lit) = e else {
        return Err(format!(
            "{name} must be a string literal (e.g. '0xff'), got expression kind {}",
            kind_number(e)
        ));
    };
    let s = match lit {
        cel::Literal::Str(s) => s,
        other => return Err(format!("{name} must be a string literal, got {}", other.go_type())),
    };
    let Some(hex) = s.strip_prefix("0x") else {
        return Err(format!("{name} must have '0x' prefix, got {}", go_quote(s)));
    };
    if hex.is_empty() {
        return Err(format!("{name}: hex value is required after '0x'"));
    }
    if hex.len() > 17 {
        return Err(format!("{name}: hex value too long ({} chars, max 17): {}", hex.len(), go_quote(hex)));
    }
    if let Some(c) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!("{name}: invalid hex character {} in {}", go_quote(&c.to_string()), go_quote(s)));
    }
    if hex.len() == 17 {
        if s != "0x10000000000000000" {
            return Err(format!(
                "{name}: 17-digit hex value must be '0x10000000000000000' (2^64), got {}",
                go_quote(s)
            ));
        }
    } else if hex.len() != 16 {
        let padded = format!("0x{}{hex}", "0".repeat(16 - hex.len()));
        return Err(format!(
            "{name} must be a 0x-prefixed 16-digit hex value, got {} (did you mean {}?)",
            go_quote(s),
            go_quote(&padded)
        ));
    }
    u128::from_str_radix(hex, 16).map_err(|e| e.to_string())
}

/// Go's `%q` of a string (`strconv.Quote`).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || c == '\u{ad}' => {
                if (c as u32) > 0xffff {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                } else {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO: &str = "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')";

    #[test]
    fn fnv1a64_is_gos_new64a() {
        // Go: fnv.New64a() of "" and of "a".
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        // Recorded from kube-apiserver v1.36: a uid and the hash its range was chosen by.
        assert_eq!(fnv1a64(b"15009c9e-01d7-4a81-bfbb-d19beab2bb8a"), 0x6ee8_35bf_e0e8_e42a);
    }

    #[test]
    fn ranges_are_start_inclusive_end_exclusive() {
        let s = ShardSelector::parse(LO).expect("parses");
        let h = fnv1a64(b"x");
        let at = |start: u64, end: u128| ShardSelector { field: ShardField::Uid, ranges: vec![ShardRange { start, end }] };
        assert!(at(h, u128::from(h) + 1).matches_value("x"));
        assert!(!at(h + 1, 1 << 64).matches_value("x"));
        assert!(!at(0, u128::from(h)).matches_value("x"));
        assert_eq!(s.canonical(), LO);
    }

    #[test]
    fn ors_keep_their_order_and_quotes_are_canonical() {
        let s = ShardSelector::parse(
            " shardRange(object.metadata.namespace,\"0x8000000000000000\", '0x10000000000000000') || (shardRange(object.metadata.namespace, '0x0000000000000000', '0x0000000000000010'))\n",
        )
        .expect("parses");
        assert_eq!(s.field(), ShardField::Namespace);
        assert_eq!(
            s.canonical(),
            "shardRange(object.metadata.namespace, '0x8000000000000000', '0x10000000000000000') || shardRange(object.metadata.namespace, '0x0000000000000000', '0x0000000000000010')"
        );
    }

    #[test]
    fn bad_selectors_get_the_parsers_messages() {
        let err = |s: &str| ShardSelector::parse(s).expect_err(s);
        assert_eq!(err(" \t"), "empty shard selector is not allowed; omit the parameter for unfiltered lists");
        assert_eq!(err("foo"), "unexpected expression kind 3; expected shardRange() call or || operator");
        assert_eq!(err(&format!("{LO} && {LO}")), "unsupported function \"_&&_\"; only shardRange() and || are allowed");
        assert_eq!(
            err("shardRange(object.metadata.uid, 0x0, '0x8000000000000000')"),
            "hexStart must be a string literal, got int64"
        );
        assert_eq!(
            err("shardRange(object.metadata.uid, b'0x0000000000000000', '0x8000000000000000')"),
            "hexStart must be a string literal, got []uint8"
        );
    }
}
