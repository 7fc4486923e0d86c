//! The field selector: `=`, `==` and `!=` terms over the four fields the
//! simulator indexes, with the real server's errors for anything else.

use crate::sim::status::ApiError;

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
