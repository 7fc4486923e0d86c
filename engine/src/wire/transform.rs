//! From scanned bytes to stored bytes: the `managedFields` cut, the user
//! [`Transform`], and the span shift that keeps [`Meta`] pointing at what is stored.

use std::sync::Arc;

use super::decoder::Decoder;
use super::error::DecodeError;
use super::metadata::Work;
use super::scan::R;
use crate::object::{Meta, Obj, OwnerSpans, Span};

/// A user hook run on each object's bytes (after `managedFields` stripping),
/// before they are stored. If it changes the bytes, the object is scanned again.
pub type Transform = Arc<dyn Fn(&mut Vec<u8>) + Send + Sync>;

impl Decoder {
    /// Stores the object at `doc[a..b]` (just scanned into `work`) in the arena.
    pub(super) fn store(&mut self, doc: &[u8], a: usize, b: usize, transform: bool) -> R<Obj> {
        let w = &self.work;
        if !w.has_metadata {
            return Err(DecodeError::MissingMetadata);
        }
        if w.name.is_none_or(Span::is_empty) {
            return Err(DecodeError::MissingName);
        }
        let obj = doc.get(a..b).unwrap_or_default();
        let (parts, cut) = match w.cut {
            Some((cs, ce)) if a <= cs && cs <= ce && ce <= b => {
                ([&doc[a..cs], &doc[ce..b]], Some((cs - a, ce - a)))
            }
            _ => ([obj, &[][..]], None),
        };
        let size = parts[0].len() + parts[1].len();
        if size > self.dc.max_object_bytes {
            return Err(DecodeError::ObjectTooLarge { size, limit: self.dc.max_object_bytes });
        }
        if transform && let Some(t) = self.dc.config.transform.clone() {
            let mut v = Vec::with_capacity(size);
            v.extend_from_slice(parts[0]);
            v.extend_from_slice(parts[1]);
            t(&mut v);
            let same = v.len() == size && v[..parts[0].len()] == *parts[0] && v[parts[0].len()..] == *parts[1];
            if !same {
                return self.decode_object_with(&v, false);
            }
        }
        let meta = w.meta(cut);
        Ok(self.arena.store_parts(&parts, meta))
    }
}

impl Work {
    /// Builds the [`Meta`], shifting spans past the cut range (relative) left.
    fn meta(&self, cut: Option<(usize, usize)>) -> Meta {
        let shift = |s: Span| -> Option<Span> {
            match cut {
                Some((cs, ce)) if !s.is_spill() && !s.is_empty() => {
                    let off = s.offset() as usize;
                    if off >= ce {
                        Some(Span::new((off - (ce - cs)) as u32, s.len()))
                    } else if off >= cs {
                        None
                    } else {
                        Some(s)
                    }
                }
                _ => Some(s),
            }
        };
        let sh = |s: Span| shift(s).unwrap_or_default();
        Meta {
            namespace: sh(self.namespace),
            name: sh(self.name.unwrap_or_default()),
            uid: sh(self.uid),
            resource_version: sh(self.resource_version),
            generation: self.generation,
            deletion_timestamp: self.deletion_timestamp.and_then(shift),
            labels: self.labels.iter().map(|&(k, v)| (sh(k), sh(v))).collect(),
            owners: self
                .owners
                .iter()
                .map(|o| OwnerSpans {
                    api_version: sh(o.api_version),
                    kind: sh(o.kind),
                    name: sh(o.name),
                    uid: sh(o.uid),
                    controller: o.controller,
                })
                .collect(),
            fields: self.fields.iter().map(|f| f.and_then(shift)).collect(),
            spill: self.spill.as_str().into(),
            shared: None,
        }
    }
}
