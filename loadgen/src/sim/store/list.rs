//! The LIST verb: which state a list reads (latest, exact or not-older-than a
//! resourceVersion, or a continue token's), the page it collects, and the list
//! body it writes.
//!
//! # Guarantees
//! * An exact read at a resourceVersion sees the state as of that version: the
//!   current objects with every later write undone from history; older than the
//!   history answers 410 (a continue token's 410 carries a fresh token, as the
//!   real server's does).
//! * A not-older-than read (`resourceVersion=0`, `resourceVersionMatch=NotOlderThan`,
//!   or a legacy unpaginated `resourceVersion=N`) is what the real server serves
//!   from its watch cache: an exact read at the cache's resourceVersion
//!   ([`super::watch_cache`]; the latest one while the cache does not lag), or
//!   504 "Too large resource version" when the cache has not reached `N`.
//! * Pages follow key order and a continue token resumes right after the last
//!   item sent, at the same resourceVersion, so paging never repeats or skips an
//!   object.
//! * `remainingItemCount` is sent only for unselective lists, as on the real
//!   server (counting would mean filtering the whole rest).
//! * A shard selector (KEP-5866) filters like the real server's, which leaves
//!   it out of the predicate's `Empty()` (k8s.io/apiserver/pkg/storage/
//!   selection_predicate.go; cacher.go `GetList`): a page ends with a continue
//!   token whenever an object (that passes the label and field selectors)
//!   follows it, in the shard or not, so the last page may be empty;
//!   `remainingItemCount` counts every object from the page's start minus the
//!   limit; and the list carries `metadata.shardInfo`.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use serde_json::Value;

use super::object::{ResourceId, Stored};
use super::state::{State, Store};
use crate::sim::selector::{FieldSelector, LabelSelector, ShardSelector};
use crate::sim::status::{ApiError, write_json};
use crate::sim::token;

/// LIST parameters, already parsed from the query.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Restrict to one namespace.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0 or None: no limit).
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
    /// Answer with a `PartialObjectMetadataList`.
    pub metadata_only: bool,
    /// `shardSelector`, when the feature gate is on.
    pub shards: Option<ShardSelector>,
}

impl ListQuery {
    /// Whether a selector filters objects (paging then cannot count what is left).
    fn selective(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}

/// Which state a LIST reads.
enum ReadAt {
    Latest,
    Exact(u64),
    NotOlderThan(u64),
}

/// Where a LIST starts: the state it reads and the first key it may return.
struct ListStart {
    at: ReadAt,
    /// Empty: from the start of the range.
    start_key: String,
    /// The exact read came from a continue token (its 410 carries a new token).
    from_token: bool,
}

fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

/// Reads the continue token, or else `resourceVersion` and
/// `resourceVersionMatch`, with the real server's rules and errors.
fn list_start(q: &ListQuery) -> Result<ListStart, ApiError> {
    let rv_param = q.resource_version.as_deref().unwrap_or("");
    let rv_match = q.resource_version_match.as_deref().unwrap_or("");
    if let Some(tok) = q.continue_token.as_deref().filter(|t| !t.is_empty()) {
        if !rv_param.is_empty() && rv_param != "0" {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (rv, start_key) = token::decode(tok).ok_or_else(|| {
            ApiError::bad_request(format!("continue key is not valid: {tok:?}"))
        })?;
        return Ok(match u64::try_from(rv) {
            Ok(rv) => ListStart { at: ReadAt::Exact(rv), start_key, from_token: true },
            Err(_) => ListStart { at: ReadAt::Latest, start_key, from_token: false },
        });
    }
    let at = match (rv_param, rv_match) {
        ("", "") => ReadAt::Latest,
        ("", _) => {
            return Err(ApiError::invalid_list_options(
                "resourceVersionMatch",
                "FieldValueForbidden",
                "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        // storage/cacher/delegator.go `shouldDelegateList`: "0" with no match or
        // NotOlderThan is served from the watch cache, whatever state it holds.
        ("0", "" | "NotOlderThan") => ReadAt::NotOlderThan(0),
        ("0", _) => ReadAt::Latest,
        (rv, "Exact") => ReadAt::Exact(parse_rv(rv)?),
        (rv, "NotOlderThan") => ReadAt::NotOlderThan(parse_rv(rv)?),
        (rv, "") => {
            let rv = parse_rv(rv)?;
            // Legacy semantics: a paginated list at an explicit RV is exact.
            if q.limit.unwrap_or(0) > 0 {
                ReadAt::Exact(rv)
            } else {
                ReadAt::NotOlderThan(rv)
            }
        }
        (_, other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported resourceVersionMatch: {other:?}"
            )));
        }
    };
    Ok(ListStart { at, start_key: String::new(), from_token: false })
}

/// Changes from the current state back to the state at a past resourceVersion:
/// for each key written since, its version then (`None`: it did not exist).
type Overlay = BTreeMap<String, Option<Arc<Stored>>>;

/// The minimum resourceVersion of a LIST the watch cache serves (`Some(0)`:
/// any state), or `None` for one read from the store itself (latest or exact).
pub(super) fn cache_read_min(q: &ListQuery) -> Option<u64> {
    match list_start(q).ok()?.at {
        ReadAt::NotOlderThan(rv) => Some(rv),
        ReadAt::Latest | ReadAt::Exact(_) => None,
    }
}

/// The resourceVersion a LIST answers at, and the overlay that turns the
/// current objects into the state at that version. `cache_rv` is the watch
/// cache's resourceVersion, never older than `st.compacted`.
fn snapshot_at(
    st: &State,
    res: ResourceId,
    start: &ListStart,
    cache_rv: u64,
) -> Result<(u64, Overlay), ApiError> {
    match start.at {
        ReadAt::Latest => Ok((st.rv, BTreeMap::new())),
        ReadAt::NotOlderThan(rv) => {
            // watch_cache.go `waitUntilFreshAndBlock`: the error names the
            // cache's resourceVersion as the current one.
            if rv > cache_rv {
                return Err(ApiError::too_large_resource_version(rv, cache_rv));
            }
            Ok((cache_rv, undo_since(st, res, cache_rv)))
        }
        ReadAt::Exact(rv) => {
            if rv > st.rv {
                return Err(ApiError::too_large_resource_version(rv, st.rv));
            }
            if rv < st.compacted {
                return Err(if start.from_token {
                    ApiError::continue_expired(token::encode(-1, &start.start_key))
                } else {
                    ApiError::too_old_resource_version(rv, st.compacted + 1)
                });
            }
            Ok((rv, undo_since(st, res, rv)))
        }
    }
}

/// State at `rv` = current state with every later write undone: for each key,
/// the version before the first write after `rv`.
fn undo_since(st: &State, res: ResourceId, rv: u64) -> Overlay {
    let mut overlay = Overlay::new();
    for ev in st
        .history
        .iter()
        .rev()
        .take_while(|e| e.rv > rv)
        .filter(|e| e.resource == res)
    {
        overlay.insert(ev.obj.key.clone(), ev.prev.clone());
    }
    overlay
}

/// One page of a LIST.
struct Page {
    items: Vec<Arc<Stored>>,
    /// More matching objects follow the page.
    more: bool,
    /// How many objects follow (exact only for an unselective list).
    remaining: usize,
}

/// Collects up to `limit` matching objects from `lower` on, within `prefix`,
/// merging the current objects with the overlay (which wins on equal keys).
fn collect_page(
    current: &BTreeMap<String, Arc<Stored>>,
    overlay: &Overlay,
    lower: &str,
    prefix: &str,
    q: &ListQuery,
    limit: usize,
) -> Page {
    let selective = q.selective();
    let from = (Bound::Included(lower), Bound::Unbounded);
    let mut cur = current
        .range::<str, _>(from)
        .take_while(|(k, _)| k.starts_with(prefix))
        .peekable();
    let mut ovl = overlay
        .range::<str, _>(from)
        .take_while(|(k, _)| k.starts_with(prefix))
        .peekable();
    let mut page = Page { items: Vec::new(), more: false, remaining: 0 };
    // Objects from `lower` on that pass the label and field selectors.
    let mut seen = 0usize;
    loop {
        // Merge the two sorted key streams; the overlay wins on equal keys.
        let next: Option<Option<&Arc<Stored>>> = match (cur.peek(), ovl.peek()) {
            (None, None) => None,
            (Some(_), None) => cur.next().map(|(_, v)| Some(v)),
            (None, Some(_)) => ovl.next().map(|(_, v)| v.as_ref()),
            (Some((ck, _)), Some((ok, _))) => {
                if ck < ok {
                    cur.next().map(|(_, v)| Some(v))
                } else {
                    if ck == ok {
                        cur.next();
                    }
                    ovl.next().map(|(_, v)| v.as_ref())
                }
            }
        };
        let Some(entry) = next else { break };
        let Some(obj) = entry else { continue };
        if selective && !obj.matches(&q.labels, &q.fields) {
            continue;
        }
        seen += 1;
        if page.items.len() < limit {
            if q.shards.as_ref().is_none_or(|s| obj.in_shard(s)) {
                page.items.push(obj.clone());
            }
        } else {
            page.more = true;
            if selective {
                break;
            }
        }
    }
    if page.more {
        page.remaining = seen.saturating_sub(limit);
    }
    page
}

/// Writes the list body: kind, metadata (resourceVersion, continue token and
/// remaining count) and the items, full or as `PartialObjectMetadata`.
fn write_list(list_kind: &str, api_version: &str, snapshot_rv: u64, page: &Page, q: &ListQuery) -> Vec<u8> {
    let est: usize = page.items.iter().map(|i| i.body.len() + 2).sum();
    let mut out = Vec::with_capacity(est + 256);
    if q.metadata_only {
        out.extend_from_slice(br#"{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":""#);
    } else {
        out.extend_from_slice(br#"{"kind":""#);
        out.extend_from_slice(list_kind.as_bytes());
        out.extend_from_slice(br#"","apiVersion":""#);
        out.extend_from_slice(api_version.as_bytes());
        out.extend_from_slice(br#"","metadata":{"resourceVersion":""#);
    }
    out.extend_from_slice(snapshot_rv.to_string().as_bytes());
    out.push(b'"');
    if page.more && let Some(last) = page.items.last() {
        let next_start = format!("{}\u{0}", last.key);
        out.extend_from_slice(br#","continue":"#);
        write_json(
            &mut out,
            &Value::String(token::encode(
                i64::try_from(snapshot_rv).unwrap_or(-1),
                &next_start,
            )),
        );
        if !q.selective() {
            out.extend_from_slice(br#","remainingItemCount":"#);
            out.extend_from_slice(page.remaining.to_string().as_bytes());
        }
    }
    if let Some(shards) = &q.shards {
        out.extend_from_slice(br#","shardInfo":{"selector":"#);
        write_json(&mut out, &Value::String(shards.canonical()));
        out.push(b'}');
    }
    out.extend_from_slice(br#"},"items":["#);
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if q.metadata_only {
            item.write_partial(&mut out)
        } else {
            item.write_item(&mut out)
        }
    }
    out.extend_from_slice(b"]}");
    out
}

/// The objects of `res` under `prefix` (all of them when empty) as of `rv`, in
/// key order; `rv` must not be older than `st.compacted`.
pub(super) fn objects_at(st: &State, res: ResourceId, rv: u64, prefix: &str) -> Vec<Arc<Stored>> {
    let overlay = undo_since(st, res, rv);
    collect_page(&st.objects[res], &overlay, prefix, prefix, &ListQuery::default(), usize::MAX).items
}

impl Store {
    /// Serves a LIST at once: returns the response body. A not-older-than read
    /// the watch cache has not caught up with answers 504 here; see
    /// [`Store::serve_list`] for the wait the real server does first.
    pub(crate) fn list(&self, res: ResourceId, q: &ListQuery) -> Result<Vec<u8>, ApiError> {
        let start = list_start(q)?;
        let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let prefix = q
            .namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        let lower = if start.start_key.is_empty() {
            prefix.clone()
        } else {
            start.start_key.clone().max(prefix.clone())
        };
        let mut st = self.lock();
        let cache_rv = self.cache_resource_version(&mut st);
        let (snapshot_rv, overlay) = snapshot_at(&st, res, &start, cache_rv)?;
        let page = collect_page(&st.objects[res], &overlay, &lower, &prefix, q, limit);
        let def = st.resources[res].clone();
        drop(st);
        Ok(write_list(&def.list_kind(), &def.api_version(), snapshot_rv, &page, q))
    }
}
