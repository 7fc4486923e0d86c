//! Label and field selectors, parsed with the grammar and error messages of
//! k8s.io/apimachinery: pkg/labels (`labels.Parse`, selector.go) and pkg/fields.
//!
//! # Guarantees
//! * The label selector parser is the simulator's own, written after
//!   apimachinery's lexer and recursive-descent parser (tokens, the `in`/`notin`
//!   keywords read as identifiers wherever a value or key is expected, the
//!   `()` set holding the empty value) and its key and value validation (a key
//!   is an optional lowercase DNS-subdomain prefix and `/` plus a name of at
//!   most 63 bytes; a value is empty or such a name). It shares no code with
//!   the engine it serves, so the two check each other
//!   (`loadgen/tests/sim_selector_agrees.rs`).
//! * A selector that does not parse is a 400 BadRequest whose message is the
//!   real server's: `unable to parse requirement: …` for a requirement that
//!   fails, the parser's bare message for a misplaced `,`.
//! * `!=` and `notin` match objects without the key; `>` and `<` match only
//!   labels whose value is a decimal integer.

use super::status::ApiError;

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// How one requirement relates its key to its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    Exists,
    DoesNotExist,
    /// `=` and `==`.
    Equals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

/// One comma-separated clause: a key, an operator and its values, kept sorted
/// and without duplicates as apimachinery's string set keeps them.
#[derive(Clone, Debug, PartialEq)]
struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl LabelSelector {
    /// Parses a `labelSelector` query value; errors are 400 BadRequest Status bodies
    /// with the real server's message.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Parser::new(s)
            .selector()
            .map(|requirements| LabelSelector { requirements })
            .map_err(ApiError::bad_request)
    }

    /// Whether the selector is empty (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a label set matches.
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        let lookup = |key: &str| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        self.requirements.iter().all(|r| r.matches(lookup(&r.key)))
    }
}

impl Requirement {
    /// Whether the requirement holds for the label's value (`None`: no such label).
    fn matches(&self, value: Option<&str>) -> bool {
        let listed = |v: &str| self.values.iter().any(|x| x == v);
        match (self.operator, value) {
            (Operator::Exists, v) => v.is_some(),
            (Operator::DoesNotExist, v) => v.is_none(),
            (Operator::Equals | Operator::In, Some(v)) => listed(v),
            (Operator::NotEquals | Operator::NotIn, Some(v)) => !listed(v),
            (Operator::Equals | Operator::In, None) => false,
            (Operator::NotEquals | Operator::NotIn, None) => true,
            (Operator::GreaterThan | Operator::LessThan, v) => {
                let (Some(have), [want]) = (v.and_then(parse_int), self.values.as_slice()) else {
                    return false;
                };
                let Some(want) = parse_int(want) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// A decimal 64-bit integer with an optional sign, as Go's `strconv.ParseInt(s, 10, 64)` reads one.
fn parse_int(s: &str) -> Option<i64> {
    s.parse().ok()
}

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
struct Parser {
    items: Vec<Scanned>,
    position: usize,
}

/// A parse failure, in the server's words.
type Parsed<T> = Result<T, String>;

impl Parser {
    fn new(input: &str) -> Self {
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
    fn selector(&mut self) -> Parsed<Vec<Requirement>> {
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

/// How apimachinery describes a label key's name part, with its examples and regex.
const NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character \
     (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
/// How apimachinery describes a label value.
const VALUE_RULE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character \
     (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
/// How apimachinery describes a key's prefix.
const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character \
     (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const MAX_NAME: usize = 63;
const MAX_PREFIX: usize = 253;

/// A label key's name part, or a non-empty label value: `[A-Za-z0-9]`, then
/// `[-A-Za-z0-9_.]*`, ending in `[A-Za-z0-9]`.
fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    let end_ok = |c: Option<&u8>| c.is_some_and(u8::is_ascii_alphanumeric);
    end_ok(b.first())
        && end_ok(b.last())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A lowercase RFC 1123 subdomain: dot-separated labels of `[a-z0-9-]` that
/// start and end with `[a-z0-9]`.
fn is_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let end_ok = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        end_ok(b.first())
            && end_ok(b.last())
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    })
}

fn validate_key(key: &str) -> Parsed<()> {
    let problems = key_problems(key);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("key: Invalid value: {}: {}", go_quote(key), problems.join("; ")))
    }
}

/// What is wrong with a label key (apimachinery's `IsLabelKey`), if anything.
fn key_problems(key: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".to_owned());
            } else if prefix.len() > MAX_PREFIX {
                problems.push(format!("prefix part must be no more than {MAX_PREFIX} bytes"));
            } else if !is_subdomain(prefix) {
                problems.push(format!("prefix part {SUBDOMAIN_RULE}"));
            }
            *name
        }
        _ => {
            problems.push(format!(
                "a valid label key {NAME_RULE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return problems;
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".to_owned());
    } else if name.len() > MAX_NAME {
        problems.push(format!("name part must be no more than {MAX_NAME} bytes"));
    }
    if !is_name(name) {
        problems.push(format!("name part {NAME_RULE}"));
    }
    problems
}

/// What is wrong with a label value (apimachinery's `IsValidLabelValue`), if anything.
fn value_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > MAX_NAME {
        problems.push(format!("must be no more than {MAX_NAME} bytes"));
    }
    if !value.is_empty() && !is_name(value) {
        problems.push(VALUE_RULE.to_owned());
    }
    problems
}

/// A string quoted the way Go's `%q` (`strconv.Quote`) quotes it in the server's messages.
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
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            // Go prints only graphic runes and the ASCII space as they are.
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The object fields a field selector may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `metadata.name`
    Name,
    /// `metadata.namespace`
    Namespace,
    /// `spec.nodeName`
    NodeName,
    /// `status.phase`
    Phase,
}

/// A parsed field selector (`a=b,c!=d`); the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector {
    terms: Vec<(Field, bool, String)>,
}

/// The field values of one object a field selector can test.
#[derive(Clone, Copy, Debug, Default)]
pub struct FieldValues<'a> {
    /// `metadata.name`
    pub name: &'a str,
    /// `metadata.namespace` (empty when cluster-scoped)
    pub namespace: &'a str,
    /// `spec.nodeName` (empty when unset)
    pub node_name: &'a str,
    /// `status.phase` (empty when unset)
    pub phase: &'a str,
}

impl FieldSelector {
    /// Parses a `fieldSelector` query value (`=`, `==`, `!=` terms separated by commas).
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, neg, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let field = match key.trim() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                "spec.nodeName" => Field::NodeName,
                "status.phase" => Field::Phase,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "field label not supported: {other}"
                    )));
                }
            };
            terms.push((field, neg, value.trim().to_owned()));
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the selector is empty (matches everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether an object's fields match.
    pub fn matches(&self, f: &FieldValues<'_>) -> bool {
        self.terms.iter().all(|(field, neg, want)| {
            let have = match field {
                Field::Name => f.name,
                Field::Namespace => f.namespace,
                Field::NodeName => f.node_name,
                Field::Phase => f.phase,
            };
            (have == want) != *neg
        })
    }

    /// The name an `metadata.name=X` term pins, if any (lets GET-like watches skip work).
    pub fn pinned_name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|(f, neg, _)| *f == Field::Name && !neg)
            .map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn equality_set_and_existence_requirements_match_like_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, api)", true),
            ("app notin (web)", false),
            ("app,tier", true),
            ("!app", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=web,tier=back", false),
            ("tier in (front),app notin (db)", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).expect(sel).matches(&l),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn a_malformed_selector_gives_the_real_servers_message() {
        let e = LabelSelector::parse("app in (web,").expect_err("malformed");
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "unable to parse requirement: found '', expected: ',', ')' or identifier"
        );
        assert!(LabelSelector::parse("app=").is_ok());
        assert!(LabelSelector::parse("=x").is_err());
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b").is_err());
    }

    fn reason(s: &str) -> String {
        let e = LabelSelector::parse(s).expect_err(s);
        assert_eq!(e.code, 400, "{s}");
        e.message
    }

    #[test]
    fn set_based_and_integer_requirements_match_like_kubernetes() {
        let l = labels(&[("app", "web"), ("replicas", "3"), ("gen", "x"), ("empty", "")]);
        for (sel, want) in [
            ("replicas>2", true),
            ("replicas>3", false),
            ("replicas<4", true),
            ("replicas<007", true),
            ("replicas<1", false),
            ("gen>0", false),
            ("missing<9", false),
            ("app in (api,web,web)", true),
            ("app in (,)", false),
            ("empty in ()", true),
            ("empty notin ()", false),
            ("app notin ()", true),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("empty=", true),
            ("empty==", true),
            ("app!=", true),
            ("example.com/app!=web", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).expect(sel).matches(&l), want, "{sel}");
        }
    }

    /// apimachinery reads `in` and `notin` as identifiers wherever a key or a
    /// value is expected.
    #[test]
    fn keywords_are_identifiers_outside_the_operator_position() {
        let l = labels(&[("in", "notin"), ("k", "in")]);
        for (sel, want) in [
            ("in", true),
            ("!in", false),
            ("!notin", true),
            ("in=notin", true),
            ("k in (in, notin)", true),
            ("k notin (in)", false),
            ("k=in,in", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).expect(sel).matches(&l), want, "{sel}");
        }
        assert_eq!(
            reason("k in in"),
            "unable to parse requirement: found 'in' expected: '('"
        );
    }

    /// Only space, tab, CR and LF separate tokens; a NUL where a token starts
    /// ends the input and one after a token is dropped, as in Go's lexer.
    #[test]
    fn whitespace_and_nul_bytes_are_read_like_the_go_lexer() {
        let l = labels(&[("app", "web")]);
        for sel in ["app\t=\r\nweb", "app=web\0", "app=\0web", "app \0 !!! garbage"] {
            assert!(LabelSelector::parse(sel).expect(sel).matches(&l), "{sel:?}");
        }
        assert!(reason("app=\u{b}web").contains("Invalid value: \"\\vweb\""));
        assert!(reason("app=\u{1}web").contains("Invalid value: \"\\x01web\""));
        assert!(reason("app=web\u{a0}").starts_with("unable to parse requirement: values[0][app]: Invalid value: \"web\\u00a0\""));
    }

    #[test]
    fn grammar_errors_carry_the_api_servers_messages() {
        for (sel, want) in [
            ("a,,b", "found ',', expected: identifier after ','"),
            ("a,", "found '', expected: identifier after ','"),
            ("=x", "found '=', expected: !, identifier, or 'end of string'"),
            (",", "found ',', expected: !, identifier, or 'end of string'"),
            ("a=b)", "found ')', expected: ',' or 'end of string'"),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            ("app foo", "unable to parse requirement: found 'foo', expected: in, notin, =, ==, !=, gt, lt"),
            ("app in web", "unable to parse requirement: found 'web' expected: '('"),
            ("app in", "unable to parse requirement: found '' expected: '('"),
            ("app in (", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
            ("app in (web,", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
            ("app in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
            ("app=(", "unable to parse requirement: found '(', expected: identifier"),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            ("!!a", "unable to parse requirement: found '!', expected: identifier"),
            (
                "x>y",
                "unable to parse requirement: values[0]: Invalid value: \"y\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ] {
            assert_eq!(reason(sel), want, "{sel}");
        }
    }

    #[test]
    fn keys_and_values_are_validated_like_label_keys_and_values() {
        let name63 = "a".repeat(63);
        for ok in [
            name63.clone(),
            format!("{name63}=b"),
            format!("a={name63}"),
            "example.com/App_x.y-z=V.1_-a".to_owned(),
            "a-b.c/d".to_owned(),
            "x>5".to_owned(),
        ] {
            assert!(LabelSelector::parse(&ok).is_ok(), "{ok}");
        }
        let name64 = "a".repeat(64);
        assert_eq!(
            reason(&name64),
            format!("unable to parse requirement: key: Invalid value: \"{name64}\": name part must be no more than 63 bytes")
        );
        assert_eq!(
            reason(&format!("a={name64}")),
            format!("unable to parse requirement: values[0][a]: Invalid value: \"{name64}\": must be no more than 63 bytes")
        );
        let name_rule = NAME_RULE;
        let value_rule = VALUE_RULE;
        assert_eq!(
            reason("-a"),
            format!("unable to parse requirement: key: Invalid value: \"-a\": name part {name_rule}")
        );
        assert!(reason("Example.com/a").contains("prefix part a lowercase RFC 1123 subdomain"));
        assert!(reason("/a").contains("prefix part must be non-empty"));
        assert!(reason("a/").contains("name part must be non-empty"));
        assert!(reason("a/b/c").contains("a valid label key must consist of"));
        assert!(reason("a_/b").contains("prefix part"));
        assert_eq!(
            reason("a in (x-, -y)"),
            format!(
                "unable to parse requirement: [values[0][a]: Invalid value: \"-y\": {value_rule}, \
                 values[1][a]: Invalid value: \"x-\": {value_rule}]"
            )
        );
        assert_eq!(
            reason("x>+5"),
            format!("unable to parse requirement: values[0][x]: Invalid value: \"+5\": {value_rule}")
        );
    }

    #[test]
    fn field_selectors_support_the_four_fields_and_reject_others() {
        let f = FieldValues {
            name: "p",
            namespace: "ns",
            node_name: "node-001",
            phase: "Running",
        };
        assert!(
            FieldSelector::parse("spec.nodeName=node-001,status.phase==Running")
                .expect("ok")
                .matches(&f)
        );
        assert!(
            !FieldSelector::parse("metadata.namespace!=ns")
                .expect("ok")
                .matches(&f)
        );
        assert_eq!(
            FieldSelector::parse("spec.foo=x")
                .expect_err("unsupported")
                .code,
            400
        );
        assert_eq!(
            FieldSelector::parse("metadata.name")
                .expect_err("no op")
                .code,
            400
        );
    }
}
