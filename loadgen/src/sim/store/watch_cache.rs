//! The simulated watch cache: the state a real kube-apiserver serves
//! `resourceVersion=0` and not-older-than reads and `resourceVersion=0` watches
//! from, which trails etcd by however long the cache takes to catch up.
//!
//! A real server fills its watch cache from an etcd watch
//! (k8s.io/apiserver/pkg/storage/cacher/cacher.go, watch_cache.go); the cache
//! can lag etcd, and reads it serves may then be older than what a client has
//! already seen from a watch or a consistent read. Here the lag is a duration
//! on the simulator's [`Clock`](crate::sim::Clock): the cache holds every
//! write made at least that long ago. Its state is not a copy: it is an exact
//! read at the cache's resourceVersion, from the history the store keeps
//! anyway (`list.rs`).
//!
//! Which requests the cache answers follows
//! storage/cacher/delegator.go (`shouldDelegateList`, `Watch`) and
//! storage/cacher/delegator/interface.go (`ShouldDelegateList`) of 1.36:
//! * LIST `resourceVersion=0`, `resourceVersionMatch=NotOlderThan` at any
//!   resourceVersion, and a legacy `resourceVersion=N` without `limit`: the
//!   cache, after waiting up to [`WATCH_CACHE_BLOCK_TIMEOUT`] for it to reach `N`
//!   (watch_cache.go `waitUntilFreshAndBlock`), else 504 with the
//!   `ResourceVersionTooLarge` cause (storage/errors.go
//!   `NewTooLargeResourceVersionError`).
//! * LIST `resourceVersion=""` (a consistent read: the cache waits for etcd's
//!   current revision, or the request falls back to etcd), `Exact` reads and
//!   continue tokens (exact at the token's resourceVersion, from a cache
//!   snapshot or etcd): the same answer either way, so the store's own state
//!   or history answers them, as without a cache.
//! * WATCH from `resourceVersion="0"`, or unset without `sendInitialEvents`
//!   (cacher.go `getWatchCacheResourceVersion`): the initial state is the
//!   cache's, then every event after it. A watch-list (`sendInitialEvents=true`)
//!   from `"0"` still starts from the current state here (its end bookmark
//!   would otherwise come before the events the cache missed).
//!
//! # Guarantees
//! * The cache's resourceVersion never goes backwards, and is never older than
//!   the history's compaction point (a compacted history cannot be undone, so
//!   compaction catches the cache up: the lag is bounded by the history).
//! * Without a lag (the default) every read is answered exactly as before:
//!   the cache's resourceVersion is the store's and nothing waits.
//! * Writes made before the lag was switched on count as old: the cache starts
//!   from the state at that moment and trails the writes that follow.

use std::collections::VecDeque;
use std::time::Duration;

use super::history::WatchSeed;
use super::list::{ListQuery, cache_read_min, objects_at};
use super::object::ResourceId;
use super::state::{State, Store};
use crate::sim::status::ApiError;

/// How long a read waits for the cache to reach the resourceVersion it asked
/// for, on the simulator's clock (watch_cache.go `blockTimeout`).
pub const WATCH_CACHE_BLOCK_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a waiting read looks at the cache again, in real time.
const WAIT_POLL: Duration = Duration::from_millis(5);

/// What the watch cache has not received yet; lives under the store's lock.
#[derive(Debug, Default)]
pub(super) struct WatchCache {
    /// The lag in milliseconds of the simulator's clock; `None`: no cache lag.
    lag_ms: Option<i64>,
    /// Writes the cache does not hold yet, oldest first: resourceVersion and
    /// when it was committed (milliseconds since the Unix epoch).
    behind: VecDeque<(u64, i64)>,
}

impl WatchCache {
    /// Whether the cache lags at all.
    pub(super) fn is_on(&self) -> bool {
        self.lag_ms.is_some()
    }

    /// Notes a write committed at `now_ms`; the cache gets it `lag` later.
    pub(super) fn record(&mut self, rv: u64, now_ms: i64) {
        self.behind.push_back((rv, now_ms));
    }

    /// The cache's resourceVersion at `now_ms`: the newest write it holds
    /// (every write up to just before the oldest one it is still behind on),
    /// or the store's when it holds them all.
    fn resource_version(&mut self, store_rv: u64, compacted: u64, now_ms: i64) -> u64 {
        let Some(lag) = self.lag_ms else {
            return store_rv;
        };
        let arrived_before = now_ms.saturating_sub(lag);
        while self
            .behind
            .front()
            .is_some_and(|&(rv, at)| at <= arrived_before || rv <= compacted)
        {
            self.behind.pop_front();
        }
        match self.behind.front() {
            Some(&(rv, _)) => (rv - 1).max(compacted),
            None => store_rv,
        }
    }
}

impl Store {
    /// Makes the watch cache trail the writes by `lag` on the simulator's
    /// clock from now on; `None` turns the lag off (reads are current again).
    pub(crate) fn set_watch_cache_lag(&self, lag: Option<Duration>) {
        let mut st = self.lock();
        st.watch_cache.lag_ms = lag.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4));
        st.watch_cache.behind.clear();
    }

    /// Whether the watch cache lags.
    pub(crate) fn watch_cache_lags(&self) -> bool {
        self.lock().watch_cache.is_on()
    }

    /// The watch cache's resourceVersion now (the store's without a lag).
    pub(crate) fn watch_cache_resource_version(&self) -> u64 {
        let mut st = self.lock();
        self.cache_resource_version(&mut st)
    }

    /// The watch cache's resourceVersion, under the caller's lock.
    pub(super) fn cache_resource_version(&self, st: &mut State) -> u64 {
        if !st.watch_cache.is_on() {
            return st.rv;
        }
        let now_ms = self.clock.now_ms();
        let (rv, compacted) = (st.rv, st.compacted);
        st.watch_cache.resource_version(rv, compacted, now_ms)
    }

    /// Serves a LIST as the real server does: a read the watch cache answers
    /// waits up to [`WATCH_CACHE_BLOCK_TIMEOUT`] (simulator clock) for the cache to reach
    /// the resourceVersion asked for, then answers 504 "Too large resource
    /// version" (watch_cache.go `waitUntilFreshAndBlock`). Without a lag
    /// nothing waits, as before the cache was modelled.
    pub(crate) async fn serve_list(&self, res: ResourceId, q: &ListQuery) -> Result<Vec<u8>, ApiError> {
        let waits = cache_read_min(q).is_some_and(|min| min > 0) && self.watch_cache_lags();
        let started_ms = self.clock.now_ms();
        let timeout_ms = i64::try_from(WATCH_CACHE_BLOCK_TIMEOUT.as_millis()).unwrap_or(i64::MAX);
        loop {
            match self.list(res, q) {
                // Freshness first, then the deadline, as the real loop checks:
                // a clock jump that both catches the cache up and passes the
                // deadline answers the list.
                Err(e) if waits && e.code == 504 && self.clock.now_ms() - started_ms < timeout_ms => {
                    tokio::time::sleep(WAIT_POLL).await;
                }
                other => return other,
            }
        }
    }

    /// What a WATCH from `resourceVersion` unset or `"0"` starts with when the
    /// cache lags: the cache's state (if `initial_state`), then every event
    /// after the cache's resourceVersion from history, then live events.
    pub(crate) fn seed_watch_from_cache(
        &self,
        res: ResourceId,
        ns: Option<&str>,
        initial_state: bool,
    ) -> WatchSeed {
        let mut st = self.lock();
        let rx = self.tx.subscribe();
        let cache_rv = self.cache_resource_version(&mut st);
        let prefix = ns.map(|n| format!("{n}/")).unwrap_or_default();
        let initial = if initial_state {
            objects_at(&st, res, cache_rv, &prefix)
        } else {
            Vec::new()
        };
        let skip = st.history.partition_point(|e| e.rv <= cache_rv);
        let backlog = st
            .history
            .iter()
            .skip(skip)
            .filter(|e| e.resource == res)
            .cloned()
            .collect();
        WatchSeed {
            initial,
            backlog,
            rx,
            rv: st.rv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WatchCache;

    #[test]
    fn the_cache_holds_writes_once_they_are_lag_old_and_never_goes_back() {
        let mut c = WatchCache { lag_ms: Some(1_000), ..WatchCache::default() };
        assert_eq!(c.resource_version(10, 0, 5_000), 10, "nothing behind: the store's");
        c.record(11, 5_000);
        c.record(12, 5_500);
        assert_eq!(c.resource_version(12, 0, 5_999), 10);
        assert_eq!(c.resource_version(12, 0, 6_000), 11);
        assert_eq!(c.resource_version(12, 0, 6_400), 11);
        assert_eq!(c.resource_version(12, 0, 6_500), 12);
        c.record(13, 7_000);
        assert_eq!(c.resource_version(13, 0, 7_100), 12);
        assert_eq!(c.resource_version(13, 13, 7_100), 13, "compaction catches the cache up");
    }

    #[test]
    fn without_a_lag_the_cache_is_the_store() {
        let mut c = WatchCache::default();
        assert!(!c.is_on());
        assert_eq!(c.resource_version(42, 7, 0), 42);
    }
}
