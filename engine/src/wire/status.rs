//! `meta/v1` Status bodies: API error responses and ERROR watch events' objects.

use super::error::DecodeError;
use super::scan::{R, Scanner};
use super::values::{int_or_null, key_bytes, owned_or_null};

/// A `meta/v1` Status: an API error body or an ERROR watch event's object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiStatus {
    /// `status`: `"Success"` or `"Failure"`.
    pub status: String,
    /// `code`: the HTTP status code (0 when absent).
    pub code: u16,
    /// `reason`: machine-readable, e.g. `"Expired"`, `"NotFound"`, `"Conflict"`.
    pub reason: String,
    /// `message`: human-readable description.
    pub message: String,
    /// `metadata.continue`, when non-empty (a 410 on a LIST may carry a fresh token).
    pub continue_token: Option<String>,
}

impl ApiStatus {
    /// A 410 Gone / `Expired` status: the requested resourceVersion is too old; relist.
    pub fn is_expired(&self) -> bool {
        self.code == 410 || self.reason == "Expired" || self.reason == "Gone"
    }
}

/// A Status object at the cursor.
pub(super) fn status(sc: &mut Scanner<'_>, depth: usize) -> R<ApiStatus> {
    let mut st = ApiStatus::default();
    if sc.peek() != Some(b'{') {
        sc.skip_value(depth)?;
        return Err(DecodeError::WrongShape("status is not a json object"));
    }
    if sc.object_begin(depth)? {
        loop {
            let k = sc.key()?;
            match &*key_bytes(sc, k) {
                b"kind" => {
                    let kind = owned_or_null(sc, "status kind is not a string")?;
                    if !kind.is_empty() && kind != "Status" {
                        return Err(DecodeError::WrongShape("document is not a Status"));
                    }
                }
                b"status" => st.status = owned_or_null(sc, "status.status is not a string")?,
                b"reason" => st.reason = owned_or_null(sc, "status.reason is not a string")?,
                b"message" => st.message = owned_or_null(sc, "status.message is not a string")?,
                b"code" => {
                    let code = int_or_null(sc, "status.code is not an integer")?.unwrap_or(0);
                    st.code = u16::try_from(code).map_err(|_| DecodeError::WrongShape("status.code is out of range"))?;
                }
                b"metadata" if sc.peek() == Some(b'{') => {
                    if sc.object_begin(depth + 1)? {
                        loop {
                            let k = sc.key()?;
                            if *key_bytes(sc, k) == *b"continue" {
                                let c = owned_or_null(sc, "status metadata.continue is not a string")?;
                                st.continue_token = (!c.is_empty()).then_some(c);
                            } else {
                                sc.skip_value(depth + 2)?;
                            }
                            if !sc.object_next()? {
                                break;
                            }
                        }
                    }
                }
                _ => sc.skip_value(depth + 1)?,
            }
            if !sc.object_next()? {
                break;
            }
        }
    }
    Ok(st)
}

/// Decodes a `meta/v1` Status body (an API error response).
///
/// ```
/// let st = kcache::wire::decode_status(br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#).unwrap();
/// assert_eq!((st.code, st.reason.as_str()), (404, "NotFound"));
/// ```
pub fn decode_status(doc: &[u8]) -> Result<ApiStatus, DecodeError> {
    let mut sc = Scanner::new(doc);
    sc.ws();
    let st = status(&mut sc, 0)?;
    sc.end()?;
    Ok(st)
}
