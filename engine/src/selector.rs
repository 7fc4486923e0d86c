//! Label selectors: parse the API server's text syntax and match objects.
//!
//! The grammar, the key and value rules and the error messages are those of
//! `k8s.io/apimachinery/pkg/labels.Parse`: requirements separated by commas,
//! all of which must hold — `key`, `!key`, `key=value`, `key==value`,
//! `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`, `key>n`, `key<n`.
//! The empty selector matches everything. `!=` and `notin` also match objects
//! without the key, as on the server; `>` and `<` match only labels whose
//! value is an integer. The simulated API server parses its `labelSelector`
//! parameter with this module too, so the cache and the server it stands in
//! for cannot disagree on what a selector means.

use crate::Obj;

/// One clause of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `key`: the label exists.
    Exists(String),
    /// `!key`: the label does not exist.
    DoesNotExist(String),
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value`.
    NotEquals(String, String),
    /// `key in (…)`.
    In(String, Vec<String>),
    /// `key notin (…)`.
    NotIn(String, Vec<String>),
    /// `key>n`: the label's value is an integer greater than `n`.
    GreaterThan(String, i64),
    /// `key<n`: the label's value is an integer less than `n`.
    LessThan(String, i64),
}

/// A parsed label selector.
///
/// ```
/// use kcache::selector::LabelSelector;
/// let sel: LabelSelector = "app=web,tier in (front,back),!canary".parse().unwrap();
/// let pod = kcache::object::testing::pod("ns", "a", "1", &[("app", "web"), ("tier", "front")]);
/// assert!(sel.matches(&pod));
/// assert!("app=db".parse::<LabelSelector>().unwrap().matches(&pod) == false);
/// let err = "app in (web".parse::<LabelSelector>().unwrap_err();
/// assert_eq!(err.reason, "found '', expected: ',', ')' or identifier");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The clauses; all must hold.
    pub requirements: Vec<Requirement>,
}

/// A selector that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {reason}")]
pub struct SelectorError {
    /// The selector text.
    pub selector: String,
    /// What is wrong with it, in the API server's words (the text that follows
    /// `unable to parse requirement: ` in its 400 response).
    pub reason: String,
}

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parser = Parser { toks: lex(s), pos: 0 };
        parser
            .selector()
            .map(|requirements| LabelSelector { requirements })
            .map_err(|reason| SelectorError { selector: s.to_owned(), reason })
    }
}

impl LabelSelector {
    /// Whether the selector is empty (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether every requirement holds for `obj`'s labels.
    pub fn matches(&self, obj: &Obj) -> bool {
        self.matches_labels(|k| obj.label(k))
    }

    /// Whether every requirement holds for labels looked up through `label`.
    pub fn matches_labels<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        let int = |k: &str| label(k).and_then(|v| v.parse::<i64>().ok());
        self.requirements.iter().all(|r| match r {
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::DoesNotExist(k) => label(k).is_none(),
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::GreaterThan(k, n) => int(k).is_some_and(|x| x > *n),
            Requirement::LessThan(k, n) => int(k).is_some_and(|x| x < *n),
        })
    }

    /// The `key=value` pairs that every match must carry; a store can answer
    /// from its label index with the first and filter by the rest.
    pub fn equalities(&self) -> impl Iterator<Item = (&str, &str)> {
        self.requirements.iter().filter_map(|r| match r {
            Requirement::Equals(k, v) => Some((k.as_str(), v.as_str())),
            Requirement::In(k, vs) if vs.len() == 1 => Some((k.as_str(), vs[0].as_str())),
            _ => None,
        })
    }
}

/// A token of apimachinery's selector lexer.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    Gt,
    Lt,
    End,
}

impl Tok {
    /// The token as the server's messages quote it.
    fn text(&self) -> &str {
        match self {
            Tok::Ident(s) => s,
            Tok::Not => "!",
            Tok::Eq => "=",
            Tok::DoubleEq => "==",
            Tok::NotEq => "!=",
            Tok::In => "in",
            Tok::NotIn => "notin",
            Tok::Open => "(",
            Tok::Close => ")",
            Tok::Comma => ",",
            Tok::Gt => ">",
            Tok::Lt => "<",
            Tok::End => "",
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// apimachinery's lexer separates on these bytes only, not on every Unicode space.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn lex(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    // apimachinery's lexer reads a NUL byte as the end of the string.
    let mut rest = s.split('\0').next().unwrap_or("");
    while let Some(c) = rest.chars().next() {
        if is_blank(c) {
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if is_special(c) {
            let (tok, len) = match (c, rest.as_bytes().get(1)) {
                ('=', Some(b'=')) => (Tok::DoubleEq, 2),
                ('!', Some(b'=')) => (Tok::NotEq, 2),
                ('=', _) => (Tok::Eq, 1),
                ('!', _) => (Tok::Not, 1),
                ('(', _) => (Tok::Open, 1),
                (')', _) => (Tok::Close, 1),
                (',', _) => (Tok::Comma, 1),
                ('>', _) => (Tok::Gt, 1),
                _ => (Tok::Lt, 1),
            };
            out.push(tok);
            rest = &rest[len..];
            continue;
        }
        let end = rest.find(|c: char| is_blank(c) || is_special(c)).unwrap_or(rest.len());
        out.push(match &rest[..end] {
            "in" => Tok::In,
            "notin" => Tok::NotIn,
            word => Tok::Ident(word.to_owned()),
        });
        rest = &rest[end..];
    }
    out.push(Tok::End);
    out
}

/// apimachinery's recursive-descent parser over the tokens; errors are the
/// server's messages.
struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

type Parsed<T> = Result<T, String>;

fn found(t: &Tok, expected: &str) -> String {
    format!("found '{}', expected: {expected}", t.text())
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).unwrap_or(&Tok::End)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    /// The next token as apimachinery's parser sees it where a key or a value
    /// is expected (its `Values` context): `in` and `notin` are identifiers there.
    fn peek_value(&self) -> Tok {
        match self.peek() {
            Tok::In => Tok::Ident("in".to_owned()),
            Tok::NotIn => Tok::Ident("notin".to_owned()),
            t => t.clone(),
        }
    }

    fn next_value(&mut self) -> Tok {
        let t = self.peek_value();
        self.next();
        t
    }

    fn selector(&mut self) -> Parsed<Vec<Requirement>> {
        let mut reqs = Vec::new();
        loop {
            match self.peek_value() {
                Tok::Ident(_) | Tok::Not => {
                    reqs.push(self.requirement()?);
                    match self.next_value() {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => match self.peek_value() {
                            Tok::Ident(_) | Tok::Not => {}
                            t => return Err(found(&t, "identifier after ','")),
                        },
                        t => return Err(found(&t, "',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                t => return Err(found(&t, "!, identifier, or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Parsed<Requirement> {
        if *self.peek() == Tok::Not {
            self.next();
            return Ok(Requirement::DoesNotExist(self.key()?));
        }
        let key = self.key()?;
        Ok(match self.peek() {
            Tok::End | Tok::Comma => Requirement::Exists(key),
            Tok::Eq | Tok::DoubleEq => {
                self.next();
                Requirement::Equals(key, self.value()?)
            }
            Tok::NotEq => {
                self.next();
                Requirement::NotEquals(key, self.value()?)
            }
            Tok::In | Tok::NotIn => {
                let negate = self.next() == Tok::NotIn;
                let set = self.set()?;
                if negate { Requirement::NotIn(key, set) } else { Requirement::In(key, set) }
            }
            Tok::Gt | Tok::Lt => {
                let greater = self.next() == Tok::Gt;
                let v = self.value()?;
                let n: i64 = v.parse().map_err(|_| format!("for 'Gt', 'Lt' operators, the value must be an integer: {v:?}"))?;
                if greater { Requirement::GreaterThan(key, n) } else { Requirement::LessThan(key, n) }
            }
            t => return Err(found(t, "in, notin, =, ==, !=, gt, lt")),
        })
    }

    fn key(&mut self) -> Parsed<String> {
        match self.next_value() {
            Tok::Ident(k) => validate_key(&k).map(|()| k),
            t => Err(found(&t, "identifier")),
        }
    }

    fn value(&mut self) -> Parsed<String> {
        match self.peek_value() {
            Tok::Ident(v) => {
                self.next();
                validate_value(&v).map(|()| v)
            }
            Tok::End | Tok::Comma => Ok(String::new()),
            t => Err(found(&t, "identifier")),
        }
    }

    fn set(&mut self) -> Parsed<Vec<String>> {
        match self.next() {
            Tok::Open => {}
            t => return Err(found(&t, "'('")),
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next_value() {
                Tok::Ident(v) if expect_value => {
                    validate_value(&v)?;
                    values.push(v);
                    expect_value = false;
                }
                Tok::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Tok::Close => {
                    // `()` is the set holding the empty value, as `(a,)` holds
                    // `a` and the empty value (apimachinery's parseValues).
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                t => return Err(found(&t, "',', ')' or identifier")),
            }
        }
    }
}

/// A qualified name's name part (and a label value when not empty).
fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn validate_key(k: &str) -> Parsed<()> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    // The prefix is a DNS-1123 subdomain: lower-case labels of letters, digits
    // and '-', starting and ending alphanumeric, at most 253 bytes in all.
    let dns_label = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(dns_label));
    if prefix_ok && is_name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "key: Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn validate_value(v: &str) -> Parsed<()> {
    if v.is_empty() || is_name_part(v) {
        Ok(())
    } else {
        Err(format!(
            "values[0]: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::testing::pod;

    fn sel(s: &str) -> LabelSelector {
        s.parse().unwrap()
    }

    #[test]
    fn every_operator_matches_as_the_api_server_does() {
        let p = pod("ns", "a", "1", &[("app", "web"), ("tier", "front"), ("replicas", "3"), ("gen", "x")]);
        for (s, want) in [
            ("", true),
            ("app", true),
            ("app,tier", true),
            ("!app", false),
            ("!canary", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("canary!=true", true),
            ("tier in (front, back)", true),
            ("tier in (back)", false),
            ("tier notin (back)", true),
            ("app notin (web)", false),
            ("canary notin (x)", true),
            ("app=web,tier=back", false),
            ("app=web, tier in (front)", true),
            ("tier in (front),app notin (db)", true),
            ("replicas>2", true),
            ("replicas>3", false),
            ("replicas<4", true),
            ("replicas<1", false),
            ("gen>0", false),
            ("canary<9", false),
            ("example.com/app!=web", true),
        ] {
            assert_eq!(sel(s).matches(&p), want, "{s}");
        }
    }

    #[test]
    fn malformed_selectors_are_errors_naming_the_input() {
        for s in ["app in (web", "app=we b", "=x", "app foo (x)", "a,,b", "!", "app=web)", "app in web", "a b", "x>y", "-app", "a_/b=c"] {
            let e = s.parse::<LabelSelector>().unwrap_err();
            assert_eq!(e.selector, s);
        }
        assert!(sel("app=").matches_labels(|k| (k == "app").then_some("")));
    }

    #[test]
    fn errors_carry_the_api_servers_messages() {
        let reason = |s: &str| s.parse::<LabelSelector>().unwrap_err().reason;
        assert_eq!(reason("app in (web,"), "found '', expected: ',', ')' or identifier");
        assert_eq!(reason("a,,b"), "found ',', expected: identifier after ','");
        assert_eq!(reason("app foo"), "found 'foo', expected: in, notin, =, ==, !=, gt, lt");
        assert_eq!(reason("x>y"), "for 'Gt', 'Lt' operators, the value must be an integer: \"y\"");
        assert!(reason("=x").starts_with("found '=', expected: !, identifier"));
        assert!(reason("-a").starts_with("key: Invalid value: \"-a\""));
    }

    proptest::proptest! {
        /// Any text parses or fails with a reason; none panics, and a parsed
        /// selector matches without panicking too.
        #[test]
        fn any_text_parses_or_names_its_fault(s in "[a-z0-9=!(),<> ._/-]{0,40}|\\PC{0,40}") {
            match s.parse::<LabelSelector>() {
                Ok(sel) => {
                    let _ = sel.matches_labels(|k| (k.len() % 2 == 0).then_some("7"));
                }
                Err(e) => proptest::prop_assert!(!e.reason.is_empty() && e.selector == s),
            }
        }
    }

    #[test]
    fn equalities_feed_index_lookups() {
        let s = sel("app=web,tier in (front),x notin (y)");
        assert_eq!(s.equalities().collect::<Vec<_>>(), vec![("app", "web"), ("tier", "front")]);
    }
}
