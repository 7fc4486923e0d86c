//! Complete JSON documents out of a chunked HTTP body.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::error::FrameError;

/// Default cap on one watch event document: 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 << 20;

/// Default cap on a whole LIST body: 256 MiB (a page of `limit=500` big objects fits).
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 256 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Lines,
    Whole,
}

#[inline]
fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

fn trim(mut b: Bytes) -> Bytes {
    let start = b.iter().position(|&c| !is_ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|&c| !is_ws(c)).map_or(start, |i| i + 1);
    if start == 0 && end == b.len() {
        return b;
    }
    b.truncate(end);
    b.advance(start);
    b
}

/// Turns body chunks into complete documents.
///
/// Two modes:
/// * [`Framer::watch`]: newline-delimited documents, as a watch body sends them
///   (one compact JSON event per line). Documents may span chunks, several may
///   share one chunk, and blank lines or whitespace between them are skipped.
///   A document that lies inside one chunk is returned as a slice of it (no
///   copy); one split across chunks is copied once.
/// * [`Framer::document`]: a single document (a LIST or GET body) collected
///   from all chunks, returned by [`Framer::finish`]; zero-copy if the body came
///   in one chunk, one copy otherwise.
///
/// # Size limits
/// A watch document longer than the limit yields [`FrameError::TooLarge`] once;
/// the framer then discards bytes up to the next newline and goes on with the
/// next document (it is never poisoned). A whole document over its limit
/// poisons the framer: its buffered chunks are dropped at once, later chunks
/// are ignored, and [`Framer::finish`] reports the error until [`Framer::reset`].
///
/// The framer never inspects JSON beyond whitespace, so it cannot panic on any
/// bytes; validation is the decoder's job.
///
/// ```
/// use bytes::Bytes;
/// use kcache::wire::Framer;
/// let mut f = Framer::watch();
/// f.push(Bytes::from_static(b"{\"a\":1}\n{\"b\""));
/// f.push(Bytes::from_static(b":2}\n\n"));
/// assert_eq!(f.next_document().unwrap().unwrap(), &b"{\"a\":1}"[..]);
/// assert_eq!(f.next_document().unwrap().unwrap(), &b"{\"b\":2}"[..]);
/// assert!(f.next_document().is_none());
/// ```
#[derive(Debug)]
pub struct Framer {
    mode: Mode,
    limit: usize,
    /// Chunks pushed and not yet consumed.
    queue: VecDeque<Bytes>,
    /// Bytes queued in total (whole mode: the body so far).
    queued: usize,
    /// Start of a document that continues into later chunks (watch mode).
    partial: BytesMut,
    /// Watch mode: skipping the rest of an oversize line.
    discarding: bool,
    /// Whole mode: the body went over the limit (its size so far).
    overflow: Option<usize>,
}

impl Framer {
    /// A newline-delimited framer for watch bodies, with the default 16 MiB limit.
    pub fn watch() -> Self {
        Framer::watch_with_limit(DEFAULT_MAX_FRAME_BYTES)
    }

    /// A newline-delimited framer whose documents may be at most `limit` bytes.
    pub fn watch_with_limit(limit: usize) -> Self {
        Framer::new(Mode::Lines, limit)
    }

    /// A whole-document framer for LIST/GET bodies, with the default 256 MiB limit.
    pub fn document() -> Self {
        Framer::document_with_limit(DEFAULT_MAX_DOCUMENT_BYTES)
    }

    /// A whole-document framer whose body may be at most `limit` bytes.
    pub fn document_with_limit(limit: usize) -> Self {
        Framer::new(Mode::Whole, limit)
    }

    fn new(mode: Mode, limit: usize) -> Self {
        Framer {
            mode,
            limit,
            queue: VecDeque::new(),
            queued: 0,
            partial: BytesMut::new(),
            discarding: false,
            overflow: None,
        }
    }

    /// The size limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether a whole-document framer went over its limit (see [`Framer::reset`]).
    pub fn is_poisoned(&self) -> bool {
        self.overflow.is_some()
    }

    /// Forgets all buffered bytes and any poisoning, for a new body.
    pub fn reset(&mut self) {
        self.queue.clear();
        self.queued = 0;
        self.partial.clear();
        self.discarding = false;
        self.overflow = None;
    }

    /// Appends a body chunk. Cheap: the chunk is queued, not copied.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if self.mode == Mode::Whole {
            if let Some(seen) = &mut self.overflow {
                *seen = seen.saturating_add(chunk.len());
                return;
            }
            let total = self.queued.saturating_add(chunk.len());
            if total > self.limit {
                self.queue.clear();
                self.queued = 0;
                self.overflow = Some(total);
                return;
            }
        }
        self.queued += chunk.len();
        self.queue.push_back(chunk);
    }

    /// The next complete newline-terminated document, if one is buffered.
    ///
    /// Always `None` for a whole-document framer: use [`Framer::finish`].
    pub fn next_document(&mut self) -> Option<Result<Bytes, FrameError>> {
        if self.mode == Mode::Whole {
            return None;
        }
        loop {
            let cur = self.queue.front_mut()?;
            if cur.is_empty() {
                self.queue.pop_front();
                continue;
            }
            if self.discarding {
                match memchr::memchr(b'\n', cur) {
                    Some(nl) => {
                        self.queued -= nl + 1;
                        cur.advance(nl + 1);
                        self.discarding = false;
                    }
                    None => {
                        self.queued -= cur.len();
                        self.queue.pop_front();
                    }
                }
                continue;
            }
            if self.partial.is_empty() {
                let skip = cur.iter().position(|&c| !is_ws(c)).unwrap_or(cur.len());
                self.queued -= skip;
                cur.advance(skip);
                if cur.is_empty() {
                    continue;
                }
            }
            match memchr::memchr(b'\n', cur) {
                Some(nl) => {
                    let total = self.partial.len() + nl;
                    if total > self.limit {
                        self.queued -= nl + 1;
                        cur.advance(nl + 1);
                        self.partial.clear();
                        return Some(Err(FrameError::TooLarge { size: total, limit: self.limit }));
                    }
                    let line = cur.split_to(nl);
                    cur.advance(1);
                    self.queued -= nl + 1;
                    let doc = if self.partial.is_empty() {
                        line
                    } else {
                        self.partial.extend_from_slice(&line);
                        self.partial.split().freeze()
                    };
                    let doc = trim(doc);
                    if doc.is_empty() {
                        continue;
                    }
                    return Some(Ok(doc));
                }
                None => {
                    let total = self.partial.len() + cur.len();
                    let n = cur.len();
                    if total > self.limit {
                        self.partial.clear();
                        self.queued -= n;
                        self.queue.pop_front();
                        self.discarding = true;
                        return Some(Err(FrameError::TooLarge { size: total, limit: self.limit }));
                    }
                    self.partial.extend_from_slice(cur);
                    self.queued -= n;
                    self.queue.pop_front();
                }
            }
        }
    }

    /// Ends the body: returns the last document (watch mode: a final line without
    /// a newline; whole mode: the whole body), or `None` if only whitespace is left.
    ///
    /// In watch mode, drain [`Framer::next_document`] first: complete lines still
    /// queued are joined into what this returns. The framer is empty afterwards,
    /// except that a poisoned whole-document framer stays poisoned.
    pub fn finish(&mut self) -> Result<Option<Bytes>, FrameError> {
        if let Some(size) = self.overflow {
            return Err(FrameError::TooLarge { size, limit: self.limit });
        }
        let discarding = std::mem::take(&mut self.discarding);
        let doc = if self.partial.is_empty() && self.queue.len() == 1 {
            self.queue.pop_front().unwrap_or_default()
        } else {
            let mut buf = std::mem::take(&mut self.partial);
            buf.reserve(self.queued);
            for c in self.queue.drain(..) {
                buf.extend_from_slice(&c);
            }
            buf.freeze()
        };
        self.queue.clear();
        self.queued = 0;
        if discarding {
            return Ok(None);
        }
        let doc = trim(doc);
        if doc.len() > self.limit {
            return Err(FrameError::TooLarge { size: doc.len(), limit: self.limit });
        }
        Ok((!doc.is_empty()).then_some(doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(f: &mut Framer) -> Vec<Result<Bytes, FrameError>> {
        std::iter::from_fn(|| f.next_document()).collect()
    }

    #[test]
    fn a_document_inside_one_chunk_is_not_copied() {
        let chunk = Bytes::from_static(b"  {\"a\":1}\r\n");
        let mut f = Framer::watch();
        f.push(chunk.clone());
        let doc = f.next_document().unwrap().unwrap();
        assert_eq!(doc, &b"{\"a\":1}"[..]);
        assert_eq!(doc.as_ptr(), chunk[2..].as_ptr());
    }

    #[test]
    fn an_oversize_watch_line_is_reported_once_and_skipped() {
        let mut f = Framer::watch_with_limit(8);
        f.push(Bytes::from_static(b"{\"a\":\"0123"));
        f.push(Bytes::from_static(b"456789\"}\n{\"b\":1}\n"));
        let got = drain(&mut f);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(got[0], Err(FrameError::TooLarge { limit: 8, .. })));
        assert_eq!(got[1].as_ref().unwrap(), &b"{\"b\":1}"[..]);
    }

    #[test]
    fn a_final_line_without_newline_comes_from_finish() {
        let mut f = Framer::watch();
        f.push(Bytes::from_static(b"{\"a\":1}\n{\"b\""));
        f.push(Bytes::from_static(b":2}  "));
        assert_eq!(drain(&mut f).len(), 1);
        assert_eq!(f.finish().unwrap().unwrap(), &b"{\"b\":2}"[..]);
        assert_eq!(f.finish(), Ok(None));
    }

    #[test]
    fn a_whole_document_is_joined_from_chunks_once() {
        let mut f = Framer::document();
        f.push(Bytes::from_static(b"{\"items\""));
        f.push(Bytes::from_static(b":[]}\n"));
        assert!(f.next_document().is_none());
        assert_eq!(f.finish().unwrap().unwrap(), &b"{\"items\":[]}"[..]);
    }

    #[test]
    fn an_oversize_whole_document_poisons_until_reset() {
        let mut f = Framer::document_with_limit(10);
        f.push(Bytes::from_static(b"{\"items\":"));
        f.push(Bytes::from_static(b"[1,2,3]}"));
        assert!(f.is_poisoned());
        assert_eq!(f.finish(), Err(FrameError::TooLarge { size: 17, limit: 10 }));
        assert!(f.finish().is_err());
        f.reset();
        f.push(Bytes::from_static(b"{}"));
        assert_eq!(f.finish().unwrap().unwrap(), &b"{}"[..]);
    }
}
