//! A CEL expression parser, enough of cel-go's (parser/gen/CEL.g4 and
//! parser/parser.go) for a shard selector's walk: the full operator grammar,
//! literals, calls, selections, lists, maps and messages, with the tree shapes
//! and function names cel-go gives them (`_||_`, `_&&_`, `!_`, `_[_]`, ...).
//!
//! # Guarantees
//! * An expression cel-go accepts parses to the node kinds cel-go gives it;
//!   its arguments keep their order, so the walk meets errors in the same order.
//! * Syntax errors reproduce ANTLR's recovery messages where the recordings
//!   in loadgen/tests/data/shard-selector/ pin them: an early end, a missing
//!   `)`, an extra or missing argument separator, a stray token before or
//!   after the expression, a dangling `.`, unknown characters and unterminated
//!   strings, and cel-go's `reserved identifier`. Errors elsewhere in a larger
//!   CEL expression keep ANTLR's style but not necessarily its expected-token set.

/// A parsed CEL expression, as far as the shard-selector walk looks.
#[derive(Debug, PartialEq)]
pub(super) enum Expr {
    /// A function or operator call (a member call drops its target: the walk
    /// reads only `Args()`).
    Call { function: String, args: Vec<Expr> },
    /// `name`
    Ident(String),
    /// `operand.field`
    Select(Box<Expr>, String),
    /// A literal.
    Literal(Literal),
    /// `[...]`
    List,
    /// `{...}`
    Map,
    /// `Name{...}`
    Struct,
}

/// A CEL literal; only strings are kept.
#[derive(Debug, PartialEq)]
pub(super) enum Literal {
    Str(String),
    Int,
    Uint,
    Double,
    Bool,
    Null,
    Bytes,
}

impl Literal {
    /// The Go type of the literal's value (`%T` of `ref.Val.Value()`).
    pub(super) fn go_type(&self) -> &'static str {
        match self {
            Literal::Str(_) => "string",
            Literal::Int => "int64",
            Literal::Uint => "uint64",
            Literal::Double => "float64",
            Literal::Bool => "bool",
            Literal::Null => "structpb.NullValue",
            Literal::Bytes => "[]uint8",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Punct(&'static str),
    Ident(String),
    Str(String),
    Bytes,
    Int,
    Uint,
    Double,
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    /// The source text, as ANTLR shows it in messages.
    text: String,
}

/// What ANTLR expects where a primary expression may start.
const PRIMARY_START: &str =
    "'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER";
/// The same, right after a call's `(` (an empty argument list is allowed).
const ARG_START: &str =
    "'[', '{', '(', ')', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER";

const PUNCTS: [&str; 25] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "?", ":", "(", ")", "[", "]", "{", "}", ",", ".", "+", "-",
    "*", "/", "%", "in",
];

/// ANTLR's `GetTokenErrorDisplay`: control characters spelled out (the
/// lexer's messages show the text as it is).
fn display(s: &str) -> String {
    s.replace('\n', "\\n").replace('\r', "\\r").replace('\t', "\\t")
}

/// The lexer: the tokens, and the first token recognition error.
fn lex(src: &str) -> (Vec<Token>, Option<String>) {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut err: Option<String> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') {
            i += 1;
            continue;
        }
        if src[i..].starts_with("//") {
            i = src[i..].find('\n').map_or(b.len(), |n| i + n + 1);
            continue;
        }
        let start = i;
        let mut push = |tok: Tok, end: usize| {
            toks.push(Token { tok, text: src[start..end].to_owned() });
        };
        // String and bytes literals, with the r/b prefixes in either order and case.
        let prefix_len = src[i..]
            .bytes()
            .take(2)
            .take_while(|c| matches!(c, b'r' | b'R' | b'b' | b'B'))
            .count();
        let after = i + prefix_len;
        if after < b.len() && matches!(b[after], b'\'' | b'"') {
            let prefix = &src[i..after].to_ascii_lowercase();
            if prefix.is_empty() || prefix == "r" || prefix == "b" || prefix == "rb" || prefix == "br" {
                match string_literal(src, after, prefix.contains('r')) {
                    Ok((value, end)) => {
                        push(if prefix.contains('b') { Tok::Bytes } else { Tok::Str(value) }, end);
                        i = end;
                    }
                    Err(end) => {
                        err.get_or_insert(format!("token recognition error at: '{}'", &src[start..end]));
                        i = end;
                    }
                }
                continue;
            }
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let end = src[i..]
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .map_or(b.len(), |n| i + n);
            let word = &src[i..end];
            push(if word == "in" { Tok::Punct("in") } else { Tok::Ident(word.to_owned()) }, end);
            i = end;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let (tok, end) = number(b, i);
            push(tok, end);
            i = end;
            continue;
        }
        if let Some(p) = PUNCTS.iter().find(|p| **p != "in" && src[i..].starts_with(**p)) {
            push(Tok::Punct(p), i + p.len());
            i += p.len();
            continue;
        }
        // `&` and `|` start a two-character token: ANTLR shows both characters.
        let bad_end = if matches!(c, b'&' | b'|' | b'=') && i + 1 < b.len() {
            i + 1 + src[i + 1..].chars().next().map_or(0, char::len_utf8)
        } else {
            i + src[i..].chars().next().map_or(1, char::len_utf8)
        };
        err.get_or_insert(format!("token recognition error at: '{}'", &src[start..bad_end]));
        i = bad_end;
    }
    toks.push(Token { tok: Tok::Eof, text: "<EOF>".into() });
    (toks, err)
}

/// A number literal from `i`: decimal or hex integers, `u`-suffixed unsigned, floats.
fn number(b: &[u8], mut i: usize) -> (Tok, usize) {
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit) {
        i += 2;
        while b.get(i).is_some_and(u8::is_ascii_hexdigit) {
            i += 1;
        }
    } else {
        let mut float = false;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            float = true;
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if b.get(j).is_some_and(u8::is_ascii_digit) {
                float = true;
                i = j;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
        }
        if float {
            return (Tok::Double, i);
        }
    }
    if matches!(b.get(i), Some(b'u' | b'U')) {
        return (Tok::Uint, i + 1);
    }
    (Tok::Int, i)
}

/// A quoted literal from its opening quote at `q`: its value and end, or the
/// end of the text ANTLR's lexer consumed before it failed.
fn string_literal(src: &str, q: usize, raw: bool) -> Result<(String, usize), usize> {
    let quote = &src[q..=q];
    let triple = src[q..].starts_with(&quote.repeat(3));
    let close = if triple { quote.repeat(3) } else { quote.to_owned() };
    let mut i = q + close.len();
    let mut out = String::new();
    loop {
        let Some(c) = src[i..].chars().next() else { return Err(src.len()) };
        if src[i..].starts_with(&close) {
            return Ok((out, i + close.len()));
        }
        if !triple && (c == '\n' || c == '\r') {
            return Err(i + 1);
        }
        if c == '\\' && !raw {
            let (ch, len) = escape(&src[i..]).ok_or(i + 1 + src[i + 1..].chars().next().map_or(0, char::len_utf8))?;
            out.extend(ch);
            i += len;
            continue;
        }
        if c == '\\' {
            // A raw string keeps the backslash, and the character after it.
            out.push(c);
            i += 1;
            if let Some(n) = src[i..].chars().next() {
                out.push(n);
                i += n.len_utf8();
            }
            continue;
        }
        out.push(c);
        i += c.len_utf8();
    }
}

/// One escape sequence at the start of `s` (which begins with `\`).
fn escape(s: &str) -> Option<(Option<char>, usize)> {
    let b = s.as_bytes();
    let simple = |c: char| Some((Some(c), 2));
    match *b.get(1)? {
        b'\\' => simple('\\'),
        b'\'' => simple('\''),
        b'"' => simple('"'),
        b'`' => simple('`'),
        b'?' => simple('?'),
        b'a' => simple('\u{7}'),
        b'b' => simple('\u{8}'),
        b'f' => simple('\u{c}'),
        b'n' => simple('\n'),
        b'r' => simple('\r'),
        b't' => simple('\t'),
        b'v' => simple('\u{b}'),
        b'x' | b'X' => hex_escape(s, 2),
        b'u' => hex_escape(s, 4),
        b'U' => hex_escape(s, 8),
        b'0'..=b'3' => {
            let digits = s.get(1..4)?;
            let v = u32::from_str_radix(digits, 8).ok()?;
            Some((char::from_u32(v), 4))
        }
        _ => None,
    }
}

fn hex_escape(s: &str, n: usize) -> Option<(Option<char>, usize)> {
    let digits = s.get(2..2 + n)?;
    let v = u32::from_str_radix(digits, 16).ok()?;
    Some((Some(char::from_u32(v)?), 2 + n))
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// The first reserved word used as a name (cel-go reports it after the syntax).
    reserved: Option<String>,
}

/// Words CEL reserves (cel-go parser/parser.go `reservedIds`).
const RESERVED: [&str; 17] = [
    "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop", "package",
    "namespace", "return", "var", "void", "while",
];

/// Whether a token can start a primary expression.
fn starts_primary(t: &Tok) -> bool {
    matches!(t, Tok::Ident(_) | Tok::Str(_) | Tok::Bytes | Tok::Int | Tok::Uint | Tok::Double)
        || matches!(t, Tok::Punct(p) if ["[", "{", "(", ".", "-", "!"].contains(p))
}

type Parsed = Result<Expr, String>;

fn call(function: &str, args: Vec<Expr>) -> Expr {
    Expr::Call { function: function.to_owned(), args }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)]
    }

    fn is(&self, p: &str) -> bool {
        self.peek().tok == Tok::Punct(match PUNCTS.iter().find(|q| **q == p) {
            Some(q) => q,
            None => return false,
        })
    }

    fn eat(&mut self, p: &str) -> bool {
        let yes = self.is(p);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn mismatched(&self, expecting: &str) -> String {
        format!("mismatched input '{}' expecting {expecting}", display(&self.peek().text))
    }

    fn expect(&mut self, p: &str) -> Result<(), String> {
        if self.eat(p) {
            Ok(())
        } else {
            Err(self.mismatched(&format!("'{p}'")))
        }
    }

    /// expr: conditionalOr ('?' conditionalOr ':' expr)?
    fn expr(&mut self) -> Parsed {
        let cond = self.binary(0)?;
        if !self.eat("?") {
            return Ok(cond);
        }
        let yes = self.binary(0)?;
        self.expect(":")?;
        let no = self.expr()?;
        Ok(call("_?_:_", vec![cond, yes, no]))
    }

    /// The binary operators by precedence, loosest first.
    fn binary(&mut self, level: usize) -> Parsed {
        const LEVELS: [&[(&str, &str)]; 5] = [
            &[("||", "_||_")],
            &[("&&", "_&&_")],
            &[("==", "_==_"), ("!=", "_!=_"), ("<=", "_<=_"), (">=", "_>=_"), ("<", "_<_"), (">", "_>_"), ("in", "@in")],
            &[("+", "_+_"), ("-", "_-_")],
            &[("*", "_*_"), ("/", "_/_"), ("%", "_%_")],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        loop {
            let Some((_, function)) = LEVELS[level].iter().find(|(op, _)| self.is(op)) else {
                return Ok(left);
            };
            self.pos += 1;
            let right = self.binary(level + 1)?;
            left = call(function, vec![left, right]);
        }
    }

    /// unary: member | '!'+ member | '-'+ member (cel-go folds `-` into a number).
    fn unary(&mut self) -> Parsed {
        for (op, function) in [("!", "!_"), ("-", "-_")] {
            let mut n = 0;
            while self.eat(op) {
                n += 1;
            }
            if n == 0 {
                continue;
            }
            if op == "-" && matches!(self.peek().tok, Tok::Int | Tok::Double) && n == 1 {
                return self.member();
            }
            let operand = self.member()?;
            return Ok(if n % 2 == 0 { operand } else { call(function, vec![operand]) });
        }
        self.member()
    }

    /// member: primary, then `.field`, `.f(args)`, `[index]` and `{fields}` suffixes.
    fn member(&mut self) -> Parsed {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                let Tok::Ident(name) = self.peek().tok.clone() else {
                    return Err(format!("no viable alternative at input '.{}'", display(&self.peek().text)));
                };
                self.pos += 1;
                if self.eat("(") {
                    let args = self.args()?;
                    e = call(&name, args);
                } else {
                    e = Expr::Select(Box::new(e), name);
                }
            } else if self.eat("[") {
                let index = self.expr()?;
                self.expect("]")?;
                e = call("_[_]", vec![e, index]);
            } else if self.is("{") && matches!(e, Expr::Ident(_) | Expr::Select(..)) {
                self.pos += 1;
                self.entries("}")?;
                e = Expr::Struct;
            } else {
                return Ok(e);
            }
        }
    }

    /// The arguments of a call after its `(`, through the `)`.
    fn args(&mut self) -> Result<Vec<Expr>, String> {
        let mut args = Vec::new();
        if self.eat(")") {
            return Ok(args);
        }
        if self.peek().tok == Tok::Eof {
            return Err(self.mismatched(&format!("{{{ARG_START}}}")));
        }
        loop {
            args.push(self.expr()?);
            if self.eat(")") {
                return Ok(args);
            }
            if self.eat(",") {
                continue;
            }
            // ANTLR inserts a missing `)` at the end, and deletes one
            // extraneous token when the next one closes the call.
            if self.peek().tok == Tok::Eof {
                return Err("missing ')' at '<EOF>'".to_owned());
            }
            if self.peek_at(1).tok == Tok::Punct(")") {
                return Err(format!("extraneous input '{}' expecting ')'", display(&self.peek().text)));
            }
            return Err(self.mismatched("')'"));
        }
    }

    /// Comma-separated entries up to `close` (list items, or `k: v` pairs).
    fn entries(&mut self, close: &str) -> Result<(), String> {
        while !self.eat(close) {
            self.expr()?;
            if close == "}" {
                self.expect(":")?;
                self.expr()?;
            }
            if !self.eat(",") {
                self.expect(close)?;
                return Ok(());
            }
        }
        Ok(())
    }

    fn primary(&mut self) -> Parsed {
        let t = self.peek().clone();
        self.pos += 1;
        match t.tok {
            Tok::Ident(name) => match name.as_str() {
                "true" | "false" => Ok(Expr::Literal(Literal::Bool)),
                "null" => Ok(Expr::Literal(Literal::Null)),
                _ => {
                    if RESERVED.contains(&name.as_str()) {
                        self.reserved.get_or_insert_with(|| name.clone());
                    }
                    if self.eat("(") { Ok(call(&name, self.args()?)) } else { Ok(Expr::Ident(name)) }
                }
            },
            Tok::Str(s) => Ok(Expr::Literal(Literal::Str(s))),
            Tok::Bytes => Ok(Expr::Literal(Literal::Bytes)),
            Tok::Int => Ok(Expr::Literal(Literal::Int)),
            Tok::Uint => Ok(Expr::Literal(Literal::Uint)),
            Tok::Double => Ok(Expr::Literal(Literal::Double)),
            Tok::Punct("(") => {
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Punct("[") => {
                self.entries("]")?;
                Ok(Expr::List)
            }
            Tok::Punct("{") => {
                self.entries("}")?;
                Ok(Expr::Map)
            }
            // cel-go keeps the leading dot in the name (`.object`).
            Tok::Punct(".") => match self.peek().tok.clone() {
                Tok::Ident(name) => {
                    self.pos += 1;
                    let name = format!(".{name}");
                    if self.eat("(") { Ok(call(&name, self.args()?)) } else { Ok(Expr::Ident(name)) }
                }
                _ => Err(format!("no viable alternative at input '.{}'", display(&self.peek().text))),
            },
            _ => {
                self.pos -= 1;
                // ANTLR deletes one extraneous token when the next one can start the expression.
                if self.peek().tok != Tok::Eof && starts_primary(&self.peek_at(1).tok) {
                    return Err(format!("extraneous input '{}' expecting {{{PRIMARY_START}}}", display(&self.peek().text)));
                }
                Err(self.mismatched(&format!("{{{PRIMARY_START}}}")))
            }
        }
    }
}

/// Parses `src`; the error is cel-go's first error message (`Syntax error: …`,
/// or `reserved identifier: …`).
pub(super) fn parse(src: &str) -> Result<Expr, String> {
    let (toks, lex_err) = lex(src);
    let mut p = Parser { toks, pos: 0, reserved: None };
    let parsed = p.expr().and_then(|e| {
        if p.peek().tok == Tok::Eof {
            Ok(e)
        } else if p.peek_at(1).tok == Tok::Eof {
            Err(format!("extraneous input '{}' expecting <EOF>", display(&p.peek().text)))
        } else {
            Err(format!("mismatched input '{}' expecting <EOF>", display(&p.peek().text)))
        }
    });
    // ANTLR's parser reads tokens ahead of where it fails, so the lexer's
    // error is reported first (recorded: a string left open after a token the
    // parser would refuse); cel-go's own checks come after ANTLR's.
    match (lex_err, parsed, p.reserved) {
        (Some(msg), _, _) | (None, Err(msg), _) => Err(format!("Syntax error: {msg}")),
        (None, Ok(_), Some(word)) => Err(format!("reserved identifier: {word}")),
        (None, Ok(e), None) => Ok(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(e: &Expr) -> &str {
        match e {
            Expr::Call { function, .. } => function,
            other => panic!("not a call: {other:?}"),
        }
    }

    #[test]
    fn operators_get_cel_gos_names_and_precedence() {
        let e = parse("a || b && !c").expect("parses");
        assert_eq!(function(&e), "_||_");
        let Expr::Call { args, .. } = &e else { unreachable!() };
        assert_eq!(args[0], Expr::Ident("a".into()));
        assert_eq!(function(&args[1]), "_&&_");
        assert_eq!(function(&parse("x[1] == -y").expect("parses")), "_==_");
        assert_eq!(function(&parse("!!x.f(1)").expect("parses")), "f");
        assert_eq!(parse("-1").expect("parses"), Expr::Literal(Literal::Int));
    }

    #[test]
    fn literals_keep_string_values() {
        assert_eq!(parse(r#""a\x41\n""#).expect("parses"), Expr::Literal(Literal::Str("aA\n".into())));
        assert_eq!(parse(r"r'a\n'").expect("parses"), Expr::Literal(Literal::Str("a\\n".into())));
        assert_eq!(parse("'''a\nb'''").expect("parses"), Expr::Literal(Literal::Str("a\nb".into())));
        assert_eq!(parse("0x8000000000000000u").expect("parses"), Expr::Literal(Literal::Uint));
        assert_eq!(parse("1.5e3").expect("parses"), Expr::Literal(Literal::Double));
        assert_eq!(parse("b'x'").expect("parses"), Expr::Literal(Literal::Bytes));
    }

    #[test]
    fn lexer_errors_read_like_antlrs() {
        assert_eq!(parse("a | b").expect_err("pipe"), "Syntax error: token recognition error at: '| '");
        assert_eq!(parse("f('a, '0x8')").expect_err("quote"), "Syntax error: token recognition error at: '')'");
        assert_eq!(parse("a # b").expect_err("hash"), "Syntax error: token recognition error at: '#'");
        assert_eq!(parse("a || if").expect_err("reserved"), "reserved identifier: if");
    }
}
