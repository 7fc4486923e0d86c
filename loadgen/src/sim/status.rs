//! Kubernetes `Status` error bodies, shaped exactly like a real kube-apiserver's.

use bytes::Bytes;
use serde_json::Value;

use super::resource::ResourceDef;

/// An API error: an HTTP status code plus the `Status` body the server sends with it.
///
/// The body is `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
/// "message":…,"reason":…,"details":{…},"code":…}`, key for key what
/// fixtures/real-apiserver/status-*.json hold (`details` is left out when empty,
/// as the real server does for BadRequest and Expired).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code (404, 409, ...).
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Conflict`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// The `details` object, if any.
    pub details: Option<Value>,
    /// A `metadata.continue` token (410 on an expired continue token carries a fresh one).
    pub continue_token: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

fn details(name: &str, kind: &str) -> Option<Value> {
    Some(serde_json::json!({ "name": name, "kind": kind }))
}

/// `name`, `group` (when the resource has one) and `kind` (the plural), as
/// apimachinery's `NewNotFound`/`NewConflict`/`NewAlreadyExists` fill
/// `StatusDetails` from the qualified resource
/// (k8s.io/apimachinery/pkg/api/errors/errors.go).
fn qualified_details(name: &str, def: &ResourceDef) -> Option<Value> {
    let mut d = serde_json::Map::new();
    d.insert("name".into(), Value::from(name));
    if !def.group.is_empty() {
        d.insert("group".into(), Value::from(def.group.as_str()));
    }
    d.insert("kind".into(), Value::from(def.plural.as_str()));
    Some(Value::Object(d))
}

/// `plural.group` (`plural` in the core group): `GroupResource.String()`, how
/// the real server names a resource in its messages.
fn qualified(def: &ResourceDef) -> String {
    if def.group.is_empty() {
        def.plural.clone()
    } else {
        format!("{}.{}", def.plural, def.group)
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            continue_token: None,
        }
    }

    /// 404 NotFound for `name` of the resource `def`.
    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        ApiError {
            details: qualified_details(name, def),
            ..Self::new(404, "NotFound", format!("{} \"{name}\" not found", qualified(def)))
        }
    }

    /// 404 NotFound for a path that names no served resource.
    pub fn no_route() -> Self {
        ApiError {
            details: Some(serde_json::json!({})),
            ..Self::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    }

    /// 409 Conflict: a write carried a stale `metadata.resourceVersion`.
    pub fn conflict(def: &ResourceDef, name: &str) -> Self {
        ApiError {
            details: qualified_details(name, def),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    qualified(def)
                ),
            )
        }
    }

    /// 409 Conflict with the reason the real server gives (`resource` as it
    /// names it: `Pod` for a failed delete precondition, `namespaces` for a
    /// namespace still being emptied).
    pub fn conflict_because(resource: &str, name: &str, cause: &str) -> Self {
        ApiError {
            details: details(name, resource),
            ..Self::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {resource} \"{name}\": {cause}"),
            )
        }
    }

    /// 403 Forbidden from the NamespaceLifecycle admission plugin: a create in a
    /// namespace that is being deleted (k8s.io/apiserver/pkg/admission/plugin/
    /// namespace/lifecycle/admission.go, `admission.NewForbidden` plus the
    /// `NamespaceTerminating` cause).
    pub fn namespace_terminating(plural: &str, name: &str, namespace: &str) -> Self {
        let what = if name.is_empty() {
            format!("{plural} is forbidden")
        } else {
            format!("{plural} \"{name}\" is forbidden")
        };
        let mut d = serde_json::Map::new();
        if !name.is_empty() {
            d.insert("name".into(), Value::from(name));
        }
        d.insert("kind".into(), Value::from(plural));
        d.insert(
            "causes".into(),
            serde_json::json!([{
                "reason": "NamespaceTerminating",
                "message": format!("namespace {namespace} is being terminated"),
                "field": "metadata.namespace",
            }]),
        );
        ApiError {
            details: Some(Value::Object(d)),
            ..Self::new(
                403,
                "Forbidden",
                format!("{what}: unable to create new content in namespace {namespace} because it is being terminated"),
            )
        }
    }

    /// 422 Invalid for a `DeleteOptions` field (the delete handler's
    /// `errors.NewInvalid(GroupKind{meta.k8s.io, DeleteOptions}, "", errs)`).
    pub fn invalid_delete_options(field: &str, cause_reason: &str, detail: &str) -> Self {
        ApiError {
            details: Some(serde_json::json!({
                "group": "meta.k8s.io",
                "kind": "DeleteOptions",
                "causes": [{ "reason": cause_reason, "message": detail, "field": field }],
            })),
            ..Self::new(
                422,
                "Invalid",
                format!("DeleteOptions.meta.k8s.io \"\" is invalid: {field}: {detail}"),
            )
        }
    }

    /// 422 Invalid of `ListOptions` (the query of a LIST or WATCH), as
    /// apimachinery's validation words it.
    pub fn invalid_list_options(field: &str, cause_reason: &str, detail: &str) -> Self {
        ApiError {
            details: Some(serde_json::json!({
                "group": "meta.k8s.io",
                "kind": "ListOptions",
                "causes": [{ "reason": cause_reason, "message": detail, "field": field }],
            })),
            ..Self::new(
                422,
                "Invalid",
                format!("ListOptions.meta.k8s.io \"\" is invalid: {field}: {detail}"),
            )
        }
    }

    /// 409 AlreadyExists: a create named an existing object.
    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        ApiError {
            details: qualified_details(name, def),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(def)),
            )
        }
    }

    /// 410 Expired for a watch from a compacted resourceVersion.
    pub fn too_old_resource_version(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 410 Expired for a LIST continue token whose snapshot was compacted; carries
    /// a fresh token that continues from the same key at the latest state.
    pub fn continue_expired(fresh_token: String) -> Self {
        ApiError {
            continue_token: Some(fresh_token),
            ..Self::new(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            )
        }
    }

    /// 500 with no reason: an error that is not an API status, as
    /// k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/status.go
    /// `ErrorToAPIStatus` answers it (`reason` is empty and left out).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "", message)
    }

    /// 400 BadRequest with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        ApiError {
            details: Some(serde_json::json!({})),
            ..Self::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        }
    }

    /// 413 RequestEntityTooLarge for a body over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("the request is too large: limit is {limit}"),
        )
    }

    /// 415 UnsupportedMediaType for a PATCH content type the server does not
    /// take: kube-apiserver v1.36 answers this generic Status (empty details)
    /// whatever the type, as recorded in tests/data/real-apiserver-apply-transcript.txt.
    pub fn unsupported_patch() -> Self {
        ApiError { details: Some(serde_json::json!({})), ..Self::new(415, "UnsupportedMediaType", "415: Unsupported Media Type") }
    }

    /// 415 UnsupportedMediaType for a write body that is not JSON.
    pub fn unsupported_body(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json (got {content_type:?})"
            ),
        )
    }

    /// 422 Invalid for one field, with a `causes` entry like the real server's.
    pub fn invalid(kind: &str, name: &str, field: &str, cause_reason: &str, detail: &str) -> Self {
        Self::invalid_n(kind, name, field, cause_reason, detail, 1)
    }

    /// [`ApiError::invalid`] for an error that two validations of the real
    /// server both report: one message, the cause listed twice.
    pub fn invalid_twice(kind: &str, name: &str, field: &str, cause_reason: &str, detail: &str) -> Self {
        Self::invalid_n(kind, name, field, cause_reason, detail, 2)
    }

    fn invalid_n(kind: &str, name: &str, field: &str, cause_reason: &str, detail: &str, times: usize) -> Self {
        let cause = serde_json::json!({ "reason": cause_reason, "message": detail, "field": field });
        ApiError {
            details: Some(serde_json::json!({
                "name": name,
                "kind": kind,
                "causes": vec![cause; times],
            })),
            ..Self::new(
                422,
                "Invalid",
                format!("{kind} \"{name}\" is invalid: {field}: {detail}"),
            )
        }
    }

    /// 504 Timeout: a read asked for a resourceVersion the server has not reached.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        ApiError {
            details: Some(
                serde_json::json!({ "causes": [{ "reason": "ResourceVersionTooLarge", "message": "Too large resource version" }], "retryAfterSeconds": 1 }),
            ),
            ..Self::new(
                504,
                "Timeout",
                format!("Timeout: Too large resource version: {requested}, current: {current}"),
            )
        }
    }

    /// The Status JSON (no trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.message.len());
        out.extend_from_slice(br#"{"kind":"Status","apiVersion":"v1","metadata":{"#);
        if let Some(token) = &self.continue_token {
            out.extend_from_slice(br#""continue":"#);
            write_json(&mut out, &Value::String(token.clone()));
        }
        out.extend_from_slice(br#"},"status":"Failure","message":"#);
        write_go_string(&mut out, &self.message);
        if !self.reason.is_empty() {
            out.extend_from_slice(br#","reason":""#);
            out.extend_from_slice(self.reason.as_bytes());
            out.push(b'"');
        }
        if let Some(d) = &self.details {
            out.extend_from_slice(br#","details":"#);
            write_json(&mut out, d);
        }
        out.extend_from_slice(br#","code":"#);
        out.extend_from_slice(self.code.to_string().as_bytes());
        out.push(b'}');
        out
    }

    /// The Status JSON as shared bytes.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(self.to_json())
    }
}

/// Writes a JSON string as Go's encoding/json does: `<`, `>` and `&` escaped
/// as `\u003c`, `\u003e` and `\u0026` (its HTML-safe default), and U+2028 and
/// U+2029 as `\u2028` and `\u2029`.
fn write_go_string(out: &mut Vec<u8>, s: &str) {
    let mut quoted = Vec::with_capacity(s.len() + 2);
    write_json(&mut quoted, &Value::String(s.to_owned()));
    let quoted = String::from_utf8_lossy(&quoted);
    for c in quoted.chars() {
        match c {
            '<' => out.extend_from_slice(br"\u003c"),
            '>' => out.extend_from_slice(br"\u003e"),
            '&' => out.extend_from_slice(br"\u0026"),
            '\u{2028}' => out.extend_from_slice(br"\u2028"),
            '\u{2029}' => out.extend_from_slice(br"\u2029"),
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

/// Serialises a value into `out`; serialising a `Value` into a Vec cannot fail.
pub(crate) fn write_json(out: &mut Vec<u8>, v: &Value) {
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::ApiError;

    #[test]
    fn internal_errors_have_no_reason_and_messages_are_escaped_as_go_does() {
        let e = ApiError::internal("a <b> & c\u{2028}");
        assert_eq!(
            String::from_utf8(e.to_json()).expect("utf-8"),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"a \u003cb\u003e \u0026 c\u2028","code":500}"#
        );
    }
}
