//! Label selectors: parse the API server's text syntax and match objects.
//!
//! Grammar (as `k8s.io/apimachinery/pkg/labels.Parse`): requirements separated by
//! commas, all of which must hold —
//! `key`, `!key`, `key=value`, `key==value`, `key!=value`,
//! `key in (v1,v2)`, `key notin (v1,v2)`. The empty selector matches everything.
//! `!=` and `notin` also match objects without the key, as on the server.

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
}

/// A parsed label selector.
///
/// ```
/// use kcache::selector::LabelSelector;
/// let sel: LabelSelector = "app=web,tier in (front,back),!canary".parse().unwrap();
/// let pod = kcache::object::testing::pod("ns", "a", "1", &[("app", "web"), ("tier", "front")]);
/// assert!(sel.matches(&pod));
/// assert!("app=db".parse::<LabelSelector>().unwrap().matches(&pod) == false);
/// assert!("app in (web".parse::<LabelSelector>().is_err());
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
    /// What is wrong with it.
    pub reason: String,
}

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| SelectorError { selector: s.to_owned(), reason: reason.to_owned() };
        let mut requirements = Vec::new();
        let mut rest = s.trim();
        while !rest.is_empty() {
            // A clause ends at the first comma outside parentheses.
            let mut depth = 0i32;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            if depth != 0 {
                return Err(err("unbalanced parentheses"));
            }
            let clause = rest[..end].trim();
            rest = rest.get(end + 1..).unwrap_or("").trim();
            if clause.is_empty() {
                return Err(err("empty requirement"));
            }
            requirements.push(parse_clause(clause).map_err(|r| err(&r))?);
        }
        Ok(LabelSelector { requirements })
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_clause(clause: &str) -> Result<Requirement, String> {
    if let Some(key) = clause.strip_prefix('!') {
        let key = key.trim();
        return if valid_key(key) { Ok(Requirement::DoesNotExist(key.to_owned())) } else { Err(format!("invalid key {key:?}")) };
    }
    for (op, ne) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = clause.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            if !valid_key(k) {
                return Err(format!("invalid key {k:?}"));
            }
            if !valid_value(v) {
                return Err(format!("invalid value {v:?}"));
            }
            return Ok(if ne { Requirement::NotEquals(k.into(), v.into()) } else { Requirement::Equals(k.into(), v.into()) });
        }
    }
    let mut words = clause.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or("").trim();
    let tail = words.next().unwrap_or("").trim();
    if tail.is_empty() {
        return if valid_key(key) { Ok(Requirement::Exists(key.to_owned())) } else { Err(format!("invalid key {key:?}")) };
    }
    if !valid_key(key) {
        return Err(format!("invalid key {key:?}"));
    }
    let (notin, list) = if let Some(l) = tail.strip_prefix("notin") {
        (true, l)
    } else if let Some(l) = tail.strip_prefix("in") {
        (false, l)
    } else {
        return Err(format!("unknown operator in {clause:?}"));
    };
    let list = list.trim();
    let inner = list
        .strip_prefix('(')
        .and_then(|l| l.strip_suffix(')'))
        .ok_or_else(|| format!("expected (values) in {clause:?}"))?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
    if values.is_empty() {
        return Err(format!("empty value set in {clause:?}"));
    }
    if let Some(bad) = values.iter().find(|v| !valid_value(v)) {
        return Err(format!("invalid value {bad:?}"));
    }
    Ok(if notin { Requirement::NotIn(key.into(), values) } else { Requirement::In(key.into(), values) })
}

impl LabelSelector {
    /// Whether every requirement holds for `obj`'s labels.
    pub fn matches(&self, obj: &Obj) -> bool {
        self.matches_labels(|k| obj.label(k))
    }

    /// Whether every requirement holds for labels looked up through `label`.
    pub fn matches_labels<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::DoesNotExist(k) => label(k).is_none(),
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|x| vs.iter().all(|v| v != x)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::testing::pod;

    fn sel(s: &str) -> LabelSelector {
        s.parse().unwrap()
    }

    #[test]
    fn every_operator_matches_as_the_api_server_does() {
        let p = pod("ns", "a", "1", &[("app", "web"), ("tier", "front")]);
        for (s, want) in [
            ("", true),
            ("app", true),
            ("!app", false),
            ("!canary", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("canary!=true", true),
            ("tier in (front, back)", true),
            ("tier in (back)", false),
            ("tier notin (back)", true),
            ("canary notin (x)", true),
            ("app=web,tier=back", false),
            ("app=web, tier in (front)", true),
        ] {
            assert_eq!(sel(s).matches(&p), want, "{s}");
        }
    }

    #[test]
    fn malformed_selectors_are_errors_naming_the_input() {
        for s in ["app in (web", "app=we b", "=x", "app in ()", "app foo (x)", "a,,b", "!", "app=web)"] {
            let e = s.parse::<LabelSelector>().unwrap_err();
            assert_eq!(e.selector, s);
        }
    }

    #[test]
    fn equalities_feed_index_lookups() {
        let s = sel("app=web,tier in (front),x notin (y)");
        assert_eq!(s.equalities().collect::<Vec<_>>(), vec![("app", "web"), ("tier", "front")]);
    }
}
