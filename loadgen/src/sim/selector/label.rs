//! The label selector: its requirements and how they match a label set.

use super::parse::Parser;
use crate::sim::status::ApiError;

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// How one requirement relates its key to its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Operator {
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
pub(super) struct Requirement {
    pub(super) key: String,
    pub(super) operator: Operator,
    pub(super) values: Vec<String>,
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
pub(super) fn parse_int(s: &str) -> Option<i64> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::selector::validate::{NAME_RULE, VALUE_RULE};

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
}
