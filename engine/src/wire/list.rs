//! LIST bodies: a `{"kind":"…List","metadata":{…},"items":[…]}` page into an
//! [`ObjectList`], each item decoded and stored like a single object.

use super::decoder::Decoder;
use super::error::DecodeError;
use super::scan::Scanner;
use super::values::{int_or_null, key_bytes, null, owned_or_null};
use crate::object::Obj;

/// A decoded LIST response page.
#[derive(Clone, Debug, Default)]
pub struct ObjectList {
    /// The items, in order.
    pub items: Vec<Obj>,
    /// `metadata.resourceVersion` of the list (empty if the server sent none).
    pub resource_version: String,
    /// `metadata.continue`, when non-empty: fetch the next page with it.
    pub continue_token: Option<String>,
    /// `metadata.remainingItemCount`, when present.
    pub remaining_item_count: Option<i64>,
}

impl Decoder {
    /// Decodes a LIST response body (`{"kind":"…List","metadata":{…},"items":[…]}`).
    ///
    /// ```
    /// let mut dec = kcache::wire::Decoder::default();
    /// let list = dec.decode_list(br#"{"kind":"PodList","metadata":{"resourceVersion":"9","continue":"c1","remainingItemCount":3},"items":[{"metadata":{"name":"a"}}]}"#).unwrap();
    /// assert_eq!(list.items[0].name(), "a");
    /// assert_eq!((list.resource_version.as_str(), list.continue_token.as_deref(), list.remaining_item_count), ("9", Some("c1"), Some(3)));
    /// ```
    pub fn decode_list(&mut self, doc: &[u8]) -> Result<ObjectList, DecodeError> {
        let dc = self.dc.clone();
        let mut sc = Scanner::new(doc);
        let mut list = ObjectList::default();
        sc.ws();
        if sc.peek() != Some(b'{') {
            sc.skip_value(0)?;
            return Err(DecodeError::WrongShape("list is not a json object"));
        }
        if sc.object_begin(0)? {
            loop {
                let k = sc.key()?;
                match &*key_bytes(&sc, k) {
                    b"metadata" if sc.peek() == Some(b'{') => {
                        if sc.object_begin(1)? {
                            loop {
                                let k = sc.key()?;
                                match &*key_bytes(&sc, k) {
                                    b"resourceVersion" => {
                                        list.resource_version = owned_or_null(&mut sc, "list resourceVersion is not a string")?;
                                    }
                                    b"continue" => {
                                        let c = owned_or_null(&mut sc, "list continue is not a string")?;
                                        list.continue_token = (!c.is_empty()).then_some(c);
                                    }
                                    b"remainingItemCount" => {
                                        list.remaining_item_count =
                                            int_or_null(&mut sc, "list remainingItemCount is not an integer")?;
                                    }
                                    _ => sc.skip_value(2)?,
                                }
                                if !sc.object_next()? {
                                    break;
                                }
                            }
                        }
                    }
                    b"items" if sc.peek() == Some(b'n') => null(&mut sc, "list items is not an array")?,
                    b"items" => {
                        if sc.peek() != Some(b'[') {
                            return Err(DecodeError::WrongShape("list items is not an array"));
                        }
                        if sc.array_begin(1)? {
                            loop {
                                let (a, b) = self.work.object(&mut sc, &dc, 2)?;
                                list.items.push(self.store(doc, a, b, true)?);
                                if !sc.array_next()? {
                                    break;
                                }
                            }
                        }
                    }
                    _ => sc.skip_value(1)?,
                }
                if !sc.object_next()? {
                    break;
                }
            }
        }
        sc.end()?;
        Ok(list)
    }
}
