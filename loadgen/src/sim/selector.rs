//! Label and field selectors, parsed with the grammar and error messages of
//! k8s.io/apimachinery/pkg/labels (selector.go) and pkg/fields.

use super::status::ApiError;

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Exists,
    NotExists,
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<(String, Op)>,
}

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
    fn text(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::Not => "!".into(),
            Tok::Eq => "=".into(),
            Tok::DoubleEq => "==".into(),
            Tok::NotEq => "!=".into(),
            Tok::In => "in".into(),
            Tok::NotIn => "notin".into(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
            Tok::Comma => ",".into(),
            Tok::Gt => ">".into(),
            Tok::Lt => "<".into(),
            Tok::End => String::new(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (tok, len) = match (c, next) {
                ('=', Some('=')) => (Tok::DoubleEq, 2),
                ('!', Some('=')) => (Tok::NotEq, 2),
                ('=', _) => (Tok::Eq, 1),
                ('!', _) => (Tok::Not, 1),
                ('(', _) => (Tok::Open, 1),
                (')', _) => (Tok::Close, 1),
                (',', _) => (Tok::Comma, 1),
                ('>', _) => (Tok::Gt, 1),
                _ => (Tok::Lt, 1),
            };
            out.push(tok);
            i += len;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        out.push(match word.as_str() {
            "in" => Tok::In,
            "notin" => Tok::NotIn,
            _ => Tok::Ident(word),
        });
    }
    out.push(Tok::End);
    out
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

type PResult<T> = Result<T, String>;

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

    fn selector(&mut self) -> PResult<Vec<(String, Op)>> {
        let mut reqs = Vec::new();
        loop {
            match self.peek() {
                Tok::Ident(_) | Tok::Not => {
                    reqs.push(self.requirement()?);
                    match self.next() {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => match self.peek() {
                            Tok::Ident(_) | Tok::Not => {}
                            t => {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.text()
                                ));
                            }
                        },
                        t => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.text()
                            ));
                        }
                    }
                }
                Tok::End => return Ok(reqs),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.text()
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> PResult<(String, Op)> {
        if *self.peek() == Tok::Not {
            self.next();
            let key = self.key()?;
            return Ok((key, Op::NotExists));
        }
        let key = self.key()?;
        let op = match self.peek() {
            Tok::End | Tok::Comma => return Ok((key, Op::Exists)),
            Tok::Eq | Tok::DoubleEq => {
                self.next();
                Op::Eq(self.value()?)
            }
            Tok::NotEq => {
                self.next();
                Op::NotEq(self.value()?)
            }
            Tok::In | Tok::NotIn => {
                let negate = self.next() == Tok::NotIn;
                let set = self.set()?;
                if negate { Op::NotIn(set) } else { Op::In(set) }
            }
            Tok::Gt | Tok::Lt => {
                let gt = self.next() == Tok::Gt;
                let v = self.value()?;
                let n: i64 = v.parse().map_err(|_| {
                    format!("for 'Gt', 'Lt' operators, the value must be an integer: {v:?}")
                })?;
                if gt { Op::Gt(n) } else { Op::Lt(n) }
            }
            t => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.text()
                ));
            }
        };
        Ok((key, op))
    }

    fn key(&mut self) -> PResult<String> {
        match self.next() {
            Tok::Ident(k) => {
                validate_key(&k)?;
                Ok(k)
            }
            t => Err(format!("found '{}', expected: identifier", t.text())),
        }
    }

    fn value(&mut self) -> PResult<String> {
        match self.peek().clone() {
            Tok::Ident(v) => {
                self.next();
                validate_value(&v)?;
                Ok(v)
            }
            Tok::End | Tok::Comma => Ok(String::new()),
            t => Err(format!("found '{}', expected: identifier", t.text())),
        }
    }

    fn set(&mut self) -> PResult<Vec<String>> {
        match self.next() {
            Tok::Open => {}
            t => return Err(format!("found '{}', expected: '('", t.text())),
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
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
                    if expect_value && !values.is_empty() {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        t.text()
                    ));
                }
            }
        }
    }
}

fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn validate_key(k: &str) -> PResult<()> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.')
                .all(|l| is_name_part(l) && !l.contains(['_', '.']))
    });
    if prefix_ok && is_name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "key: Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn validate_value(v: &str) -> PResult<()> {
    if v.is_empty() || is_name_part(v) {
        Ok(())
    } else {
        Err(format!(
            "values[0]: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

impl LabelSelector {
    /// Parses a `labelSelector` query value; errors are 400 BadRequest Status bodies
    /// with the real server's message.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut p = Parser {
            toks: lex(s),
            pos: 0,
        };
        p.selector()
            .map(|reqs| LabelSelector { reqs })
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))
    }

    /// Whether the selector is empty (matches everything).
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Whether a label set matches.
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        let get = |k: &str| {
            labels
                .iter()
                .find(|(lk, _)| lk == k)
                .map(|(_, v)| v.as_str())
        };
        self.reqs.iter().all(|(k, op)| {
            let v = get(k);
            match op {
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Eq(want) => v == Some(want.as_str()),
                Op::NotEq(want) => v != Some(want.as_str()),
                Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                Op::NotIn(set) => v.is_none_or(|v| set.iter().all(|s| s != v)),
                Op::Gt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|x| x > *n),
                Op::Lt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|x| x < *n),
            }
        })
    }
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
