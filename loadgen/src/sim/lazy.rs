//! JSON merge patches (RFC 7386) applied to a stored object without parsing
//! the parts the patch does not reach.
//!
//! A write that patches one annotation of a 4 KiB pod used to parse the whole
//! pod into a `serde_json::Value`, clone it, patch it and serialise it again;
//! that was most of the simulator's CPU per write, and so most of the floor
//! under every event-latency figure. Here an object is a list of fields whose
//! values stay raw JSON until the patch descends into them: patching
//! `metadata.annotations` parses the top level, the top level of `metadata`
//! and the annotations, and copies `spec`, `status` and `managedFields` byte
//! for byte.
//!
//! # Invariant
//! Stored objects are compact JSON the simulator wrote itself, with the keys of
//! every nested object in ascending byte order (serde_json's `Map` is a
//! `BTreeMap`). A raw value copied through is therefore exactly what parsing and
//! re-serialising it would write, and keys this module adds go in at their
//! sorted place, so the output equals the full parse-patch-serialise path's
//! byte for byte (the store's tests hold the two paths equal).

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::status::write_json;

/// One field's value: untouched bytes, an object the patch descended into, or a
/// value the patch wrote.
#[derive(Debug)]
pub(crate) enum Field<'a> {
    /// The stored bytes, as they were.
    Raw(&'a RawValue),
    /// A stored object the patch reached into.
    Object(LazyObject<'a>),
    /// A value written by the patch (or by the server).
    Value(Value),
}

impl Field<'_> {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Field::Raw(r) => out.extend_from_slice(r.get().as_bytes()),
            Field::Object(o) => o.write(out),
            Field::Value(v) => write_json(out, v),
        }
    }

    /// The value as a string, when it is one.
    pub(crate) fn as_string(&self) -> Option<String> {
        match self {
            Field::Raw(r) => serde_json::from_str::<String>(r.get()).ok(),
            Field::Object(_) => None,
            Field::Value(v) => v.as_str().map(str::to_owned),
        }
    }

    /// The value parsed (a copy of what the field holds).
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Field::Raw(r) => serde_json::from_str(r.get()).unwrap_or(Value::Null),
            Field::Object(o) => {
                let mut out = Vec::new();
                o.write(&mut out);
                serde_json::from_slice(&out).unwrap_or(Value::Null)
            }
            Field::Value(v) => v.clone(),
        }
    }
}

/// A JSON object whose field values are parsed only where a patch reaches.
/// Fields keep the order they were stored in.
#[derive(Debug, Default)]
pub(crate) struct LazyObject<'a> {
    fields: Vec<(Cow<'a, str>, Field<'a>)>,
}

/// Why the lazy path cannot take an object; the caller then parses it whole.
#[derive(Debug)]
pub(crate) struct NotLazy;

/// The top-level fields of a JSON object, values unparsed. Keys must be free of
/// escapes (they are borrowed); anything else is an error.
struct RawFields<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for RawFields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = RawFields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<&'de str, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(RawFields(fields))
            }
        }
        d.deserialize_map(FieldsVisitor)
    }
}

impl<'a> LazyObject<'a> {
    /// The object `json` holds, its field values unparsed.
    ///
    /// # Errors
    /// [`NotLazy`] when `json` is not an object or a key holds an escape.
    pub(crate) fn parse(json: &'a str) -> Result<Self, NotLazy> {
        let RawFields(raw) = serde_json::from_str(json).map_err(|_| NotLazy)?;
        Ok(LazyObject { fields: raw.into_iter().map(|(k, v)| (Cow::Borrowed(k), Field::Raw(v))).collect() })
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Field<'a>> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The nested object at `key`, parsed one level down (created empty when
    /// missing; replaced by an empty object when it is not one, as RFC 7386 does).
    ///
    /// # Errors
    /// [`NotLazy`] when a key of the nested object holds an escape.
    pub(crate) fn object_mut(&mut self, key: &'a str) -> Result<&mut LazyObject<'a>, NotLazy> {
        let i = match self.fields.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => self.insert_sorted(key, Field::Object(LazyObject::default())),
        };
        let field = &mut self.fields[i].1;
        let nested = match field {
            Field::Object(_) => None,
            Field::Raw(r) if r.get().starts_with('{') => Some(LazyObject::parse(r.get())?),
            Field::Value(Value::Object(m)) => Some(LazyObject::from_map(std::mem::take(m))),
            Field::Raw(_) | Field::Value(_) => Some(LazyObject::default()),
        };
        if let Some(o) = nested {
            *field = Field::Object(o);
        }
        match field {
            Field::Object(o) => Ok(o),
            _ => unreachable!("the field was just made an object"),
        }
    }

    fn from_map(m: Map<String, Value>) -> Self {
        LazyObject { fields: m.into_iter().map(|(k, v)| (Cow::Owned(k), Field::Value(v))).collect() }
    }

    /// Sets `key` to `value`, keeping sorted order for a new key.
    pub(crate) fn set(&mut self, key: &'a str, value: Field<'a>) {
        match self.fields.iter().position(|(k, _)| k == key) {
            Some(i) => self.fields[i].1 = value,
            None => {
                self.insert_sorted(key, value);
            }
        }
    }

    fn insert_sorted(&mut self, key: &'a str, value: Field<'a>) -> usize {
        let i = self.fields.iter().position(|(k, _)| &**k > key).unwrap_or(self.fields.len());
        self.fields.insert(i, (Cow::Borrowed(key), value));
        i
    }

    /// Removes `key`.
    pub(crate) fn remove(&mut self, key: &str) {
        self.fields.retain(|(k, _)| k != key);
    }

    /// Applies the merge patch `patch` (RFC 7386) to this object.
    ///
    /// # Errors
    /// [`NotLazy`] when the patch descends into an object with an escaped key;
    /// the object is then partly patched and must be dropped.
    pub(crate) fn merge(&mut self, patch: &'a Map<String, Value>) -> Result<(), NotLazy> {
        for (key, value) in patch {
            match value {
                Value::Null => self.remove(key),
                Value::Object(p) => self.object_mut(key)?.merge(p)?,
                v => self.set(key, Field::Value(v.clone())),
            }
        }
        Ok(())
    }

    /// Writes the object as compact JSON.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_key(out, k);
            v.write(out);
        }
        out.push(b'}');
    }

    /// The fields, in order.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&str, &Field<'a>)> {
        self.fields.iter().map(|(k, v)| (&**k, v))
    }
}

/// Writes `"key":`.
pub(crate) fn write_key(out: &mut Vec<u8>, key: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(doc: &Value, patch: &Value) -> Value {
        let stored = serde_json::to_string(doc).unwrap();
        let mut o = LazyObject::parse(&stored).unwrap();
        o.merge(patch.as_object().unwrap()).unwrap();
        let mut out = Vec::new();
        o.write(&mut out);
        let mut want = doc.clone();
        json_patch::merge(&mut want, patch);
        // Byte equality with serde_json's own serialisation of the full merge.
        assert_eq!(String::from_utf8(out.clone()).unwrap(), serde_json::to_string(&want).unwrap());
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn merges_like_rfc7386_byte_for_byte() {
        let doc = json!({
            "metadata": {"name": "a", "annotations": {"x": "1", "y": "2"}, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": "n1"},
            "status": {"phase": "Running"},
            "z": 1.5,
        });
        merged(&doc, &json!({"metadata": {"annotations": {"y": null, "w": "3", "a": "0"}}}));
        merged(&doc, &json!({"metadata": {"labels": null, "finalizers": ["f"]}}));
        merged(&doc, &json!({"status": {"phase": "Failed", "reason": {"deep": {"er": true}}}}));
        merged(&doc, &json!({"spec": "not an object", "a": {"b": null, "c": 2}}));
        merged(&doc, &json!({"z": null, "metadata": {"name": {"now": "object"}}}));
        merged(&doc, &json!({}));
    }

    #[test]
    fn escaped_keys_are_not_taken_lazily() {
        assert!(LazyObject::parse(r#"{"a\"b":1}"#).is_err());
        assert!(LazyObject::parse("[1]").is_err());
        let stored = r#"{"m":{"q\u0041":1}}"#;
        let mut o = LazyObject::parse(stored).unwrap();
        let patch = json!({"m": {"x": 1}});
        assert!(o.merge(patch.as_object().unwrap()).is_err());
    }

    #[test]
    fn fields_read_back_as_strings_and_values() {
        let o = LazyObject::parse(r#"{"s":"a\"b","n":3,"o":{"k":"v"}}"#).unwrap();
        assert_eq!(o.get("s").and_then(Field::as_string).as_deref(), Some("a\"b"));
        assert_eq!(o.get("n").and_then(Field::as_string), None);
        assert_eq!(o.get("o").map(Field::to_value), Some(json!({"k": "v"})));
        assert!(o.get("missing").is_none());
    }
}
