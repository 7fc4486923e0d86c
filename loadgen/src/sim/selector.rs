//! Label and field selectors, parsed with the grammar and error messages of
//! k8s.io/apimachinery/pkg/labels (selector.go, through [`kcache::selector`])
//! and pkg/fields.

use super::status::ApiError;

/// A parsed label selector; the empty selector matches everything.
///
/// The grammar and its error messages are kcache's own
/// ([`kcache::selector`], apimachinery's `labels.Parse`): the simulator and the
/// cache it serves read a selector the same way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(kcache::selector::LabelSelector);

impl LabelSelector {
    /// Parses a `labelSelector` query value; errors are 400 BadRequest Status bodies
    /// with the real server's message.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        s.parse()
            .map(LabelSelector)
            .map_err(|e: kcache::selector::SelectorError| {
                ApiError::bad_request(format!("unable to parse requirement: {}", e.reason))
            })
    }

    /// Whether the selector is empty (matches everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a label set matches.
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        self.0.matches_labels(|k| {
            labels
                .iter()
                .find(|(lk, _)| lk == k)
                .map(|(_, v)| v.as_str())
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
