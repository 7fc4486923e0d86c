//! apimachinery's label-selector lexer and recursive-descent parser
//! (`labels.Parse`), with `NewRequirement`'s checks of what it parsed.
//!
//! # Guarantees
//! * Tokens, keyword contexts, the empty places of a value set and every error
//!   message follow apimachinery's selector.go; the one message that differs
//!   from that source follows the real server's answer in
//!   fixtures/real-apiserver/status-400-selector.json.

use super::label::{Operator, Requirement, parse_int};
use super::validate::{go_quote, validate_key, value_problems};

/// A token of apimachinery's selector lexer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// The operator tokens; every one-byte operator is a token on its own.
fn symbol(text: &[u8]) -> Option<Token> {
    Some(match text {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

/// Go's lexer skips exactly these four as whitespace; any other byte that is
/// not an operator belongs to an identifier.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_operator(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// A scanned token and the text it was read from.
#[derive(Clone, Debug)]
struct Scanned {
    token: Token,
    text: String,
}

/// apimachinery's byte lexer. Its reader answers 0 both past the end and for a
/// NUL byte (which it consumes), so a NUL where a token starts ends the input
/// and one inside or right after a token is dropped.
struct Lexer<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        match self.input.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos -= 1;
    }

    fn next_token(&mut self) -> Scanned {
        let mut b = self.read();
        while is_blank(b) {
            b = self.read();
        }
        if b == 0 {
            return Scanned { token: Token::EndOfString, text: String::new() };
        }
        self.unread();
        if is_operator(b) {
            self.operator()
        } else {
            self.word()
        }
    }

    /// The longest operator token here (`==` and `!=` over `=` and `!`).
    fn operator(&mut self) -> Scanned {
        let mut text = vec![self.read()];
        let mut token = symbol(&text).expect("next_token calls this on an operator byte");
        loop {
            let b = self.read();
            if b == 0 {
                break;
            }
            let mut longer = text.clone();
            longer.push(b);
            let Some(t) = symbol(&longer) else {
                self.unread();
                break;
            };
            text = longer;
            token = t;
        }
        Scanned { token, text: String::from_utf8_lossy(&text).into_owned() }
    }

    /// An identifier, or the keyword `in` or `notin`.
    fn word(&mut self) -> Scanned {
        let mut text = Vec::new();
        loop {
            let b = self.read();
            if b == 0 {
                break;
            }
            if is_operator(b) || is_blank(b) {
                self.unread();
                break;
            }
            text.push(b);
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        let token = match text.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier,
        };
        Scanned { token, text }
    }
}

/// Where the parser is: `in` and `notin` are operators only where an operator
/// is expected; everywhere else they are identifiers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Operator,
    Value,
}

/// apimachinery's recursive-descent parser over the whole token list.
pub(super) struct Parser {
    items: Vec<Scanned>,
    position: usize,
}

/// A parse failure, in the server's words.
type Parsed<T> = Result<T, String>;

impl Parser {
    pub(super) fn new(input: &str) -> Self {
        let mut lexer = Lexer { input: input.as_bytes(), pos: 0 };
        let mut items = Vec::new();
        loop {
            let item = lexer.next_token();
            let end = item.token == Token::EndOfString;
            items.push(item);
            if end {
                break;
            }
        }
        Parser { items, position: 0 }
    }

    fn token_at(&self, at: usize, context: Context) -> (Token, &str) {
        // The lexer always ends the list with EndOfString, and nothing reads past it.
        let item = &self.items[at.min(self.items.len() - 1)];
        let token = match (item.token, context) {
            (Token::In | Token::NotIn, Context::Value) => Token::Identifier,
            (t, _) => t,
        };
        (token, item.text.as_str())
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        let (t, text) = self.token_at(self.position, context);
        (t, text.to_owned())
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.lookahead(context);
        self.position += 1;
        item
    }

    /// `requirement ("," requirement)*`, or nothing.
    pub(super) fn selector(&mut self) -> Parsed<Vec<Requirement>> {
        let mut requirements = Vec::new();
        loop {
            let (token, text) = self.lookahead(Context::Value);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (token, text) = self.consume(Context::Value);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (next, text) = self.lookahead(Context::Value);
                            if !matches!(next, Token::Identifier | Token::DoesNotExist) {
                                return Err(format!("found '{text}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{text}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => return Err(format!("found '{text}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Parsed<Requirement> {
        let (key, unary) = self.key_and_unary_operator()?;
        if let Some(operator) = unary {
            return new_requirement(key, operator, Vec::new());
        }
        let operator = self.binary_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        new_requirement(key, operator, values)
    }

    /// `["!"] key`; the operator is known already when it is unary (`!key`,
    /// or a key followed by `,` or the end).
    fn key_and_unary_operator(&mut self) -> Parsed<(String, Option<Operator>)> {
        let (mut token, mut text) = self.consume(Context::Value);
        let negated = token == Token::DoesNotExist;
        if negated {
            (token, text) = self.consume(Context::Value);
        }
        if token != Token::Identifier {
            return Err(format!("found '{text}', expected: identifier"));
        }
        validate_key(&text)?;
        if negated {
            return Ok((text, Some(Operator::DoesNotExist)));
        }
        let (next, _) = self.lookahead(Context::Value);
        let exists = matches!(next, Token::EndOfString | Token::Comma);
        Ok((text, exists.then_some(Operator::Exists)))
    }

    fn binary_operator(&mut self) -> Parsed<Operator> {
        let (token, text) = self.consume(Context::Operator);
        Ok(match token {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals | Token::DoubleEquals => Operator::Equals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            _ => return Err(format!("found '{text}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; empty when none follows.
    fn exact_value(&mut self) -> Parsed<String> {
        let (next, _) = self.lookahead(Context::Value);
        if matches!(next, Token::EndOfString | Token::Comma) {
            return Ok(String::new());
        }
        match self.consume(Context::Value) {
            (Token::Identifier, text) => Ok(text),
            (_, text) => Err(format!("found '{text}', expected: identifier")),
        }
    }

    /// `"(" values ")"`. An empty place in the list (`(,a)`, `(a,)`, `()`)
    /// is the empty value.
    fn value_set(&mut self) -> Parsed<Vec<String>> {
        let (token, text) = self.consume(Context::Value);
        if token != Token::OpenPar {
            return Err(format!("found '{text}' expected: '('"));
        }
        let (next, text) = self.lookahead(Context::Value);
        let mut values = match next {
            Token::Identifier | Token::Comma => self.value_list()?,
            Token::ClosedPar => vec![String::new()],
            _ => return Err(format!("found '{text}', expected: ',', ')' or identifier")),
        };
        // value_list stops in front of the ')'.
        self.consume(Context::Value);
        values.sort();
        values.dedup();
        Ok(values)
    }

    fn value_list(&mut self) -> Parsed<Vec<String>> {
        let mut values = Vec::new();
        loop {
            let (token, text) = self.consume(Context::Value);
            match token {
                Token::Identifier => {
                    values.push(text);
                    match self.lookahead(Context::Value) {
                        (Token::Comma, _) => {}
                        (Token::ClosedPar, _) => return Ok(values),
                        (_, next) => return Err(format!("found '{next}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.lookahead(Context::Value).0 {
                        Token::ClosedPar => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Token::Comma => values.push(String::new()),
                        _ => {}
                    }
                }
                // The real server's wording here is that of a set's first
                // place (fixtures/real-apiserver/status-400-selector.json).
                _ => return Err(format!("found '{text}', expected: ',', ')' or identifier")),
            }
        }
    }
}

/// Checks a parsed requirement as apimachinery's `NewRequirement` does, with
/// every fault in one message.
fn new_requirement(key: String, operator: Operator, values: Vec<String>) -> Parsed<Requirement> {
    let mut faults = Vec::new();
    if let Err(e) = validate_key(&key) {
        faults.push(e);
    }
    if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
        for (i, v) in values.iter().enumerate() {
            if parse_int(v).is_none() {
                faults.push(format!(
                    "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                    go_quote(v)
                ));
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        let problems = value_problems(v);
        if !problems.is_empty() {
            faults.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {}",
                go_quote(v),
                problems.join("; ")
            ));
        }
    }
    match faults.len() {
        0 => Ok(Requirement { key, operator, values }),
        1 => Err(faults.remove(0)),
        _ => Err(format!("[{}]", faults.join(", "))),
    }
}
