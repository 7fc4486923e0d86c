//! Checking a run's result while other writers may still write: the cache
//! against the server at a resourceVersion the cache has reached, each of the
//! run's own writes against what the handlers saw, and the handlers' events
//! split into the run's own and other writers'.
//!
//! # The comparison rule
//! The server's state is read with `LIST ?resourceVersion=R&resourceVersionMatch=Exact`
//! where R is the highest resourceVersion a handler has seen, so the cache has
//! reached R. The cache is then read, and per key:
//! * same version in both: agrees;
//! * the cache holds a version newer than R: agrees (another writer, or the
//!   run, changed or created the key after R and the cache already has it);
//! * the server had the key at R and the cache has not: agrees only if the key
//!   is gone from the server now (deleted after R);
//! * anything else (the cache holds a version at or below R that is not the
//!   server's, or holds a key the server had deleted by R): disagrees.
//!
//! When the exact read answers 410 (R compacted away), a plain LIST is read
//! instead and its own resourceVersion is R; the report says so. A key that
//! disagrees may be one the cache is still applying: the run repeats the
//! check until it agrees or its convergence time is up.

use std::collections::{HashMap, HashSet};

use hdrhistogram::Histogram;
use kube::api::{ListParams, VersionMatch};

use super::error::RunError;
use super::recorder::Seen;
use super::write_mix::WriteStats;

/// One object's key and resourceVersion: a LIST item, or the answer to a write
/// ([`super::write_mix`], which must not decode 2,000 typed pods a second either). `name`
/// may be absent because a DELETE may answer with a Status.
#[derive(serde::Deserialize)]
pub(crate) struct KeyItem {
    pub(crate) metadata: KeyMeta,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyMeta {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    pub(crate) resource_version: String,
}

/// The server's pods as the verification reads them.
pub struct ServerSnapshot {
    /// `(namespace/name, resourceVersion)`, sorted.
    pub keys: Vec<(String, String)>,
    /// The resourceVersion the LIST answered at.
    pub at: u64,
    /// Bytes of the LIST pages (the pods' wire bytes plus a ~100-byte envelope a page).
    pub wire_bytes: u64,
    /// The exact read at the requested version was refused as compacted (410)
    /// and this is a plain LIST.
    pub fell_back: bool,
}

/// Items per page of the verification's LIST: one unpaginated LIST of a million
/// pods is a 4.5 GB body, held as text beside its keys.
const VERIFY_PAGE: u32 = 5_000;

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageMeta {
    #[serde(default)]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

/// Key and resourceVersion of every item of a LIST page, and nothing else: the
/// verification must not decode 100,000 typed pods to compare two key sets.
#[derive(serde::Deserialize)]
struct KeyPage {
    #[serde(default)]
    metadata: PageMeta,
    items: Vec<KeyItem>,
}

/// LISTs the pods `lp` selects, at exactly `at` when given, page by page: the first
/// page carries `lp`'s version, the next ones only the continue token (the server
/// serves them from the first page's snapshot and refuses a version beside a token).
async fn list_keys(client: &kube::Client, lp: &ListParams) -> Result<ServerSnapshot, kube::Error> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut wire_bytes = 0u64;
    let mut at = 0u64;
    let mut page = lp.clone().limit(VERIFY_PAGE);
    loop {
        let req = kube::core::Request::new("/api/v1/pods").list(&page).map_err(kube::Error::BuildRequest)?;
        let body = client.request_text(req).await?;
        wire_bytes += body.len() as u64;
        let list: KeyPage = serde_json::from_str(&body).map_err(kube::Error::SerdeError)?;
        drop(body);
        if at == 0 {
            at = list.metadata.resource_version.parse().unwrap_or(0);
        }
        keys.extend(
            list.items
                .into_iter()
                .map(|i| (format!("{}/{}", i.metadata.namespace.as_deref().unwrap_or(""), i.metadata.name), i.metadata.resource_version)),
        );
        match list.metadata.continue_token.filter(|t| !t.is_empty()) {
            Some(token) => {
                page = ListParams { label_selector: lp.label_selector.clone(), field_selector: lp.field_selector.clone(), ..ListParams::default() }
                    .limit(VERIFY_PAGE)
                    .continue_token(&token);
            }
            None => break,
        }
    }
    keys.sort();
    Ok(ServerSnapshot { keys, at, wire_bytes, fell_back: false })
}

/// The server's pods matching `selector` at resourceVersion `at` (0: the
/// latest), falling back to the latest when `at` was compacted (410).
pub async fn server_snapshot(client: &kube::Client, selector: &str, at: u64) -> Result<ServerSnapshot, RunError> {
    let latest = ListParams::default().labels(selector);
    if at > 0 {
        let exact = latest.clone().at(&at.to_string()).matching(VersionMatch::Exact);
        match list_keys(client, &exact).await {
            Ok(s) => return Ok(s),
            Err(kube::Error::Api(s)) if s.code == 410 => {
                tracing::info!("the exact LIST at {at} was compacted (410); verifying against a plain LIST");
                let mut s = list_keys(client, &latest)
                    .await
                    .map_err(|e| RunError::api("listing pods to verify the cache", e))?;
                s.fell_back = true;
                return Ok(s);
            }
            Err(e) => return Err(RunError::api(format!("listing pods at resourceVersion {at} to verify the cache"), e)),
        }
    }
    list_keys(client, &latest).await.map_err(|e| RunError::api("listing pods to verify the cache", e))
}

/// How the cache compared with the server ([module docs](self) for the rule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Keys at the same version in both.
    pub same: u64,
    /// Keys the cache holds at a version newer than the snapshot's.
    pub newer_in_cache: u64,
    /// Keys the snapshot has that were deleted after it (gone from the cache and the server).
    pub deleted_after: u64,
    /// Keys that disagree, `key: cache rv vs server rv` (at most a few).
    pub disagreeing: Vec<String>,
    /// How many keys disagree.
    pub disagree: u64,
}

impl Verdict {
    /// Every key agrees.
    pub fn matches(&self) -> bool {
        self.disagree == 0
    }
}

fn rv(s: &str) -> u64 {
    s.parse().unwrap_or(0)
}

/// Keys the server had at `at` and the cache lacks: those whose presence on
/// the server now decides the comparison.
pub fn missing_from_cache(server: &[(String, String)], cached: &[(String, String)]) -> Vec<String> {
    let cached: HashSet<&str> = cached.iter().map(|(k, _)| k.as_str()).collect();
    server.iter().filter(|(k, _)| !cached.contains(k.as_str())).map(|(k, _)| k.clone()).collect()
}

/// Compares the cache with the server's state at `at` by the [module's
/// rule](self); `exists_now` says whether a key is on the server now.
pub fn compare(at: u64, server: &[(String, String)], cached: &[(String, String)], exists_now: &dyn Fn(&str) -> bool) -> Verdict {
    let server_map: HashMap<&str, &str> = server.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let cached_map: HashMap<&str, &str> = cached.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut v = Verdict::default();
    let disagree = |v: &mut Verdict, line: String| {
        v.disagree += 1;
        if v.disagreeing.len() < 5 {
            v.disagreeing.push(line);
        }
    };
    for (key, c) in &cached_map {
        match server_map.get(key) {
            Some(s) if s == c => v.same += 1,
            _ if rv(c) > at => v.newer_in_cache += 1,
            Some(s) => disagree(&mut v, format!("{key}: cache {c} vs server {s} at {at}")),
            None => disagree(&mut v, format!("{key}: cache {c}, not on the server at {at}")),
        }
    }
    for (key, s) in &server_map {
        if !cached_map.contains_key(key) {
            if exists_now(key) {
                disagree(&mut v, format!("{key}: not in the cache, server {s} at {at}"));
            } else {
                v.deleted_after += 1;
            }
        }
    }
    v
}

/// Per key, what the handlers saw of it during the write phase: the highest
/// resourceVersion of an add or update, and whether a delete was seen.
fn seen_by_key(log: &[Seen]) -> HashMap<&str, (u64, bool)> {
    let mut out: HashMap<&str, (u64, bool)> = HashMap::new();
    for s in log {
        let e = out.entry(s.key.as_str()).or_default();
        if s.deleted {
            e.1 = true;
        } else {
            e.0 = e.0.max(s.rv);
        }
    }
    out
}

/// The run's own writes whose effect never reached the handlers: for each key,
/// the last acknowledged write. An update or create at version W reached them
/// if they saw the key at W or later (coalescing may skip W, not the key's
/// later state) or saw it deleted; a delete, if they saw it, or saw nothing of
/// the key during the writes and the cache no longer holds it (an engine may
/// coalesce a short-lived key's add and delete away). Other writers' changes
/// after the run's last write are thus never counted as lost. What the
/// handlers saw decides, not the cache alone: a handler behind its cache (a
/// channel or a workqueue) has not seen a write the cache already holds.
pub fn lost_writes(stats: &WriteStats, log: &[Seen], cached: &[(String, String)]) -> u64 {
    let cached: HashSet<&str> = cached.iter().map(|(k, _)| k.as_str()).collect();
    let seen = seen_by_key(log);
    stats
        .last_write
        .iter()
        .filter(|(key, last)| match last {
            Some(w) => {
                let (seen_rv, deleted) = seen.get(key.as_str()).copied().unwrap_or_default();
                !(seen_rv >= rv(w) || deleted)
            }
            None => match seen.get(key.as_str()) {
                Some((_, deleted)) => !deleted,
                None => cached.contains(key.as_str()),
            },
        })
        .count() as u64
}

/// The handlers' events of the write phase, split by who caused them.
#[derive(Debug)]
pub struct Accounting {
    /// Events of the run's own updates and creates (resourceVersion = a write's answer).
    pub own_upsert_events: u64,
    /// Events of the run's own deletes: DELETED, and the MODIFIED that marks the deletion.
    pub own_delete_events: u64,
    /// Events other writers caused.
    pub other_events: u64,
    /// Late deliveries of the initial list (see [`account`]).
    pub initial_events: u64,
    /// The run's own writes at least one of whose events reached the handlers.
    pub writes_seen: u64,
    /// Latency of the own updates' and creates' events, microseconds.
    pub latency_us: Histogram<u64>,
}

/// Splits `log` into the run's own events and other writers'. An add or update
/// is the run's own when its resourceVersion is one a write of the run was
/// answered with (`stats.upsert_rvs`); only those are timed, since another
/// writer's update keeps the pod's last stamp. A delete is the run's own when
/// the run deleted the key, and so is the key's last update before it, the
/// MODIFIED that marked it for deletion: a grace-0 DELETE is an update that
/// marks the object (`deletionTimestamp`), then its removal (`k8s.io/apiserver/pkg/registry/generic/registry/store.go`,
/// `Delete`), so it causes both events. (The real server answers the DELETE
/// with the mark's version, `storage/etcd3/store.go` `conditionalDelete`; the
/// simulator with the removal's, so the mark is found by its place, not its version.)
///
/// Adds and updates at or below `start_rv` (the cache's highest version when
/// the writes began) are the initial list delivered late, by a handler behind
/// its cache: neither the run's nor another writer's.
pub fn account(log: &[Seen], stats: &WriteStats, start_rv: u64) -> Accounting {
    let upserts: HashSet<u64> = stats.upsert_rvs.iter().copied().collect();
    let mut acc = Accounting {
        own_upsert_events: 0,
        own_delete_events: 0,
        other_events: 0,
        initial_events: 0,
        writes_seen: 0,
        latency_us: super::reads::histogram(),
    };
    // The run's delete marks: the version of a key's last update before its
    // DELETED, when the run deleted the key (and the version is not one of the
    // run's own updates). A workqueue's worker may read that version twice.
    let mut marks: HashMap<&str, u64> = HashMap::new();
    let mut last_update: HashMap<&str, u64> = HashMap::new();
    for s in log {
        if !s.deleted {
            last_update.insert(s.key.as_str(), s.rv);
        } else if stats.delete_rvs.contains_key(&s.key)
            && let Some(&rv) = last_update.get(s.key.as_str())
            && !upserts.contains(&rv)
        {
            marks.insert(s.key.as_str(), rv);
        }
    }
    let mut upserts_seen: HashSet<u64> = HashSet::new();
    let mut deletes_seen: HashSet<&str> = HashSet::new();
    for s in log {
        if s.deleted {
            if stats.delete_rvs.contains_key(&s.key) {
                acc.own_delete_events += 1;
                deletes_seen.insert(s.key.as_str());
            } else {
                acc.other_events += 1;
            }
        } else if upserts.contains(&s.rv) {
            acc.own_upsert_events += 1;
            upserts_seen.insert(s.rv);
            if let Some(us) = s.latency_us {
                let _ = acc.latency_us.record(us);
            }
        } else if marks.get(s.key.as_str()) == Some(&s.rv) {
            acc.own_delete_events += 1;
            deletes_seen.insert(s.key.as_str());
        } else if s.rv <= start_rv {
            acc.initial_events += 1;
        } else {
            acc.other_events += 1;
        }
    }
    acc.writes_seen = upserts_seen.len() as u64 + deletes_seen.len() as u64;
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, u64)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs.iter().map(|(k, r)| ((*k).to_owned(), r.to_string())).collect();
        v.sort();
        v
    }

    #[test]
    fn a_cache_newer_than_the_snapshot_agrees_and_an_older_one_does_not() {
        // The server at 100: a@50, b@90, gone@60. Since then another writer
        // updated b (120), created c (130) and deleted gone.
        let server = kv(&[("ns/a", 50), ("ns/b", 90), ("ns/gone", 60)]);
        let cached = kv(&[("ns/a", 50), ("ns/b", 120), ("ns/c", 130)]);
        let v = compare(100, &server, &cached, &|k| k != "ns/gone");
        assert!(v.matches(), "{v:?}");
        assert_eq!((v.same, v.newer_in_cache, v.deleted_after), (1, 2, 1));
        // The old check, equality with a LIST, fails on the same states.
        assert_ne!(server, cached);

        // Behind the snapshot: b at 70 < 90; a key the server deleted by 100 still
        // cached; a key missing from the cache that the server still has.
        let cached = kv(&[("ns/a", 50), ("ns/b", 70), ("ns/old", 40)]);
        let v = compare(100, &server, &cached, &|_| true);
        assert_eq!(v.disagree, 3, "{v:?}");
        assert!(!v.matches());
        assert!(v.disagreeing.iter().any(|l| l.starts_with("ns/b: cache 70 vs server 90")), "{v:?}");
        assert_eq!(missing_from_cache(&server, &cached), vec!["ns/gone".to_owned()]);
    }

    fn seen(key: &str, rv: u64, deleted: bool, latency: Option<u64>) -> Seen {
        Seen { key: key.into(), rv, deleted, latency_us: latency }
    }

    #[test]
    fn only_the_runs_own_writes_are_timed_and_counted() {
        // The run updated a (answered 10), b (11) and d (20), then deleted d (answered 21).
        let mut stats = WriteStats { upsert_rvs: vec![10, 11, 20], ..WriteStats::default() };
        stats.last_write.insert("ns/a".into(), Some("10".into()));
        stats.last_write.insert("ns/b".into(), Some("11".into()));
        stats.last_write.insert("ns/d".into(), None);
        stats.delete_rvs.insert("ns/d".into(), 21);
        let log = vec![
            seen("ns/a", 10, false, Some(500)),
            // Another writer's status update of a: same stamp, newer version.
            seen("ns/a", 12, false, Some(60_000_000)),
            seen("ns/b", 11, false, Some(700)),
            // Another writer deletes b gracefully, then for good.
            seen("ns/b", 13, false, Some(60_000_000)),
            seen("ns/b", 14, true, None),
            // The run's update of d (20), its delete's mark (21) and DELETED (22).
            seen("ns/d", 20, false, Some(900)),
            seen("ns/d", 21, false, Some(60_000_000)),
            // A workqueue's worker may read the marked version twice.
            seen("ns/d", 21, false, Some(60_000_000)),
            seen("ns/d", 22, true, None),
        ];
        let acc = account(&log, &stats, 0);
        assert_eq!((acc.own_upsert_events, acc.own_delete_events, acc.other_events), (3, 3, 3));
        // With the writes begun at 12, a's update at 12 was the initial list's.
        let acc = account(&log, &stats, 12);
        assert_eq!((acc.other_events, acc.initial_events), (2, 1));
        assert_eq!(acc.latency_us.len(), 3);
        assert!(acc.latency_us.max() < 1_000, "no other writer's stamp is timed");
        assert_eq!(acc.writes_seen, 4);
        // b was deleted by another writer after the run's last write: not lost,
        // though the cache no longer has it.
        let cached = kv(&[("ns/a", 12)]);
        assert_eq!(lost_writes(&stats, &log, &cached), 0);
        // Until the handlers have seen them, a's and b's writes are not counted
        // as reached, though the cache holds a's (a handler may lag its cache).
        // d's delete: nothing of d seen, and d is not cached.
        assert_eq!(lost_writes(&stats, &[], &cached), 2);
        // The mark of d's delete seen, its DELETED not yet: not reached.
        assert_eq!(lost_writes(&stats, &log[..8], &cached), 1);
    }
}
