//! Watch events: one `{"type":…,"object":…}` line into a [`WatchEvent`], with
//! bookmarks and ERROR statuses read without storing an object.

use super::decoder::Decoder;
use super::error::DecodeError;
use super::scan::{R, Scanner};
use super::status::{ApiStatus, status};
use super::values::{key_bytes, owned, owned_or_null};
use crate::object::Obj;

/// One decoded watch event (the body line `{"type":…,"object":…}`).
#[derive(Clone, Debug)]
pub enum WatchEvent {
    /// `ADDED`: the object was created (or is part of the initial events).
    Added(Obj),
    /// `MODIFIED`: the object's new state.
    Modified(Obj),
    /// `DELETED`: the object's last state.
    Deleted(Obj),
    /// `BOOKMARK`: the watch has seen everything up to `resource_version`.
    Bookmark {
        /// `object.metadata.resourceVersion`.
        resource_version: String,
        /// The bookmark carries `k8s.io/initial-events-end: "true"`: the initial
        /// events of a streaming list (`sendInitialEvents=true`) are complete.
        initial_events_end: bool,
    },
    /// `ERROR`: the server ended the watch with a Status (410 Expired: relist).
    Error(ApiStatus),
}

enum Pending {
    /// `work` holds the metadata of the object at this absolute span.
    Scanned(usize, usize),
    /// The object's span, seen before `type`.
    Raw(usize, usize),
    Bookmark(String, bool),
    Status(ApiStatus),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

impl Decoder {
    /// Decodes one watch event document (`{"type":…,"object":…}`, keys in any order).
    ///
    /// ```
    /// use kcache::wire::{Decoder, WatchEvent};
    /// let mut dec = Decoder::default();
    /// let ev = dec.decode_event(br#"{"type":"ADDED","object":{"metadata":{"name":"a","namespace":"ns","resourceVersion":"5"}}}"#).unwrap();
    /// let WatchEvent::Added(pod) = ev else { panic!() };
    /// assert_eq!((pod.key().as_str(), pod.resource_version()), ("ns/a", "5"));
    /// ```
    pub fn decode_event(&mut self, doc: &[u8]) -> Result<WatchEvent, DecodeError> {
        let dc = self.dc.clone();
        let mut sc = Scanner::new(doc);
        sc.ws();
        if sc.peek() != Some(b'{') {
            sc.skip_value(0)?;
            return Err(DecodeError::WrongShape("watch event is not a json object"));
        }
        let mut ty = None;
        let mut pending = None;
        if sc.object_begin(0)? {
            loop {
                let k = sc.key()?;
                match &*key_bytes(&sc, k) {
                    b"type" => {
                        // A second `type` would pair the object scanned under the
                        // first type with another one (a MODIFIED object returned as
                        // DELETED, a BOOKMARK as an object event): refuse it.
                        if ty.is_some() {
                            return Err(DecodeError::WrongShape("watch event has more than one type"));
                        }
                        if sc.peek() != Some(b'"') {
                            return Err(DecodeError::WrongShape("watch event type is not a string"));
                        }
                        let s = sc.string()?;
                        ty = Some(match &*key_bytes(&sc, s) {
                            b"ADDED" => EventType::Added,
                            b"MODIFIED" => EventType::Modified,
                            b"DELETED" => EventType::Deleted,
                            b"BOOKMARK" => EventType::Bookmark,
                            b"ERROR" => EventType::Error,
                            _ => return Err(DecodeError::UnknownEventType(owned(&sc, s)?)),
                        });
                    }
                    b"object" => {
                        sc.ws();
                        pending = Some(match ty {
                            Some(EventType::Bookmark) => {
                                let (rv, end) = bookmark(&mut sc, 1)?;
                                Pending::Bookmark(rv, end)
                            }
                            Some(EventType::Error) => Pending::Status(status(&mut sc, 1)?),
                            Some(_) => {
                                let (a, b) = self.work.object(&mut sc, &dc, 1)?;
                                Pending::Scanned(a, b)
                            }
                            None => {
                                let a = sc.pos;
                                sc.skip_value(1)?;
                                Pending::Raw(a, sc.pos)
                            }
                        });
                    }
                    _ => sc.skip_value(1)?,
                }
                if !sc.object_next()? {
                    break;
                }
            }
        }
        sc.end()?;
        let ty = ty.ok_or(DecodeError::WrongShape("watch event has no type"))?;
        let obj = match pending {
            None => return Err(DecodeError::WrongShape("watch event has no object")),
            Some(Pending::Bookmark(resource_version, initial_events_end)) => {
                return Ok(WatchEvent::Bookmark { resource_version, initial_events_end });
            }
            Some(Pending::Status(st)) => return Ok(WatchEvent::Error(st)),
            Some(Pending::Scanned(a, b)) => self.store(doc, a, b, true)?,
            Some(Pending::Raw(a, b)) => {
                // `object` came before `type`: scan it again now that we know what it is.
                let mut sc = Scanner { buf: doc, pos: a };
                match ty {
                    EventType::Bookmark => {
                        let (resource_version, initial_events_end) = bookmark(&mut sc, 1)?;
                        return Ok(WatchEvent::Bookmark { resource_version, initial_events_end });
                    }
                    EventType::Error => return Ok(WatchEvent::Error(status(&mut sc, 1)?)),
                    _ => {
                        self.work.object(&mut sc, &dc, 1)?;
                        self.store(doc, a, b, true)?
                    }
                }
            }
        };
        Ok(match ty {
            EventType::Added => WatchEvent::Added(obj),
            EventType::Modified => WatchEvent::Modified(obj),
            _ => WatchEvent::Deleted(obj),
        })
    }
}

/// A bookmark's object: only `metadata.resourceVersion` and the initial-events-end annotation.
fn bookmark(sc: &mut Scanner<'_>, depth: usize) -> R<(String, bool)> {
    let mut rv = String::new();
    let mut end = false;
    if sc.object_begin(depth)? {
        loop {
            let k = sc.key()?;
            if *key_bytes(sc, k) == *b"metadata" && sc.peek() == Some(b'{') {
                if sc.object_begin(depth + 1)? {
                    loop {
                        let k = sc.key()?;
                        match &*key_bytes(sc, k) {
                            b"resourceVersion" => rv = owned_or_null(sc, "bookmark resourceVersion is not a string")?,
                            b"annotations" if sc.peek() == Some(b'{') => {
                                if sc.object_begin(depth + 2)? {
                                    loop {
                                        let k = sc.key()?;
                                        if *key_bytes(sc, k) == *b"k8s.io/initial-events-end" && sc.peek() == Some(b'"') {
                                            let v = sc.string()?;
                                            end = sc.raw(v) == b"true";
                                        } else {
                                            sc.skip_value(depth + 3)?;
                                        }
                                        if !sc.object_next()? {
                                            break;
                                        }
                                    }
                                }
                            }
                            _ => sc.skip_value(depth + 2)?,
                        }
                        if !sc.object_next()? {
                            break;
                        }
                    }
                }
            } else {
                sc.skip_value(depth + 1)?;
            }
            if !sc.object_next()? {
                break;
            }
        }
    }
    Ok((rv, end))
}
