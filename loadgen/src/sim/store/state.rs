//! The [`Store`] itself: its state under one lock, the registered resources,
//! reads of the current objects, and the commit every write ends with.
//!
//! # Guarantees
//! * [`Store::commit`] bumps the one global resourceVersion, updates the map,
//!   appends to history and broadcasts under the caller's lock, so history and
//!   live watchers see writes in resourceVersion order.
//! * [`Store::commit_if_unchanged`] commits only if the key still holds the
//!   version the write was prepared against (optimistic concurrency).

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::object::{Event, EventType, ResourceId, Stored, frame, key_of};
use super::prepare::Prepared;
use super::watch_cache::WatchCache;
use crate::sim::resource::ResourceDef;
use crate::sim::status::ApiError;
use crate::sim::time::Clock;

/// Everything behind the store's lock.
pub(super) struct State {
    pub(super) rv: u64,
    pub(super) resources: Vec<Arc<ResourceDef>>,
    pub(super) objects: Vec<BTreeMap<String, Arc<Stored>>>,
    pub(super) history: VecDeque<Arc<Event>>,
    /// Every event with `rv <= compacted` may be gone from history: reads and
    /// watches at an older resourceVersion answer 410 Expired.
    pub(super) compacted: u64,
    /// How far the simulated watch cache trails the writes (off by default).
    pub(super) watch_cache: WatchCache,
}

/// The in-memory API state. See the [module docs](super) for its guarantees.
pub struct Store {
    pub(super) state: Mutex<State>,
    pub(super) history_cap: usize,
    pub(super) tx: broadcast::Sender<Arc<Event>>,
    /// What timestamps and grace periods are measured in.
    pub(super) clock: Clock,
    /// Objects a deletion has marked but not removed (grace period running,
    /// finalizers pending, namespace terminating), each with the second of the
    /// clock at which it may next need work: what the simulated kubelet,
    /// namespace controller and garbage collector look at.
    pub(super) terminating: Mutex<BTreeMap<(ResourceId, String), i64>>,
}

/// The objects of `map` under `prefix` (all of them without one), in key order.
pub(super) fn under_prefix(
    map: &BTreeMap<String, Arc<Stored>>,
    prefix: Option<&str>,
) -> Vec<Arc<Stored>> {
    match prefix {
        Some(p) => map
            .range::<str, _>((Bound::Included(p), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(p))
            .map(|(_, v)| v.clone())
            .collect(),
        None => map.values().cloned().collect(),
    }
}

impl Store {
    /// A store serving `resources`, keeping the last `history_cap` events and a
    /// live fan-out buffer of `watch_buffer` events per watcher.
    pub fn new(resources: Vec<ResourceDef>, history_cap: usize, watch_buffer: usize) -> Self {
        let n = resources.len();
        let (tx, _) = broadcast::channel(watch_buffer.max(16));
        Store {
            state: Mutex::new(State {
                rv: 1,
                resources: resources.into_iter().map(Arc::new).collect(),
                objects: (0..n).map(|_| BTreeMap::new()).collect(),
                history: VecDeque::with_capacity(history_cap.min(1 << 16)),
                compacted: 0,
                watch_cache: WatchCache::default(),
            }),
            history_cap: history_cap.max(1),
            tx,
            clock: Clock::default(),
            terminating: Mutex::new(BTreeMap::new()),
        }
    }

    /// The same store measuring time with `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The store's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Remembers that `key` was marked for deletion and needs another look
    /// when the clock reaches second `due`.
    pub(super) fn track_terminating(&self, res: ResourceId, key: &str, due: i64) {
        self.terminating
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((res, key.to_owned()), due);
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a
        // way later reads would trip over (each write is one insert), so keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The definition of a registered resource.
    pub(super) fn def(&self, res: ResourceId) -> Arc<ResourceDef> {
        self.lock().resources[res].clone()
    }

    /// Registers one more resource type; a type already served is left as it is.
    pub fn register(&self, def: ResourceDef) -> ResourceId {
        let mut st = self.lock();
        if let Some(i) = st.resources.iter().position(|r| {
            r.group == def.group && r.version == def.version && r.plural == def.plural
        }) {
            return i;
        }
        st.resources.push(Arc::new(def));
        st.objects.push(BTreeMap::new());
        st.resources.len() - 1
    }

    /// Looks a resource up by group, version and plural.
    pub(crate) fn lookup(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<(ResourceId, Arc<ResourceDef>)> {
        let st = self.lock();
        st.resources
            .iter()
            .position(|r| r.group == group && r.version == version && r.plural == plural)
            .map(|i| (i, st.resources[i].clone()))
    }

    /// Looks a resource up by kubectl-style name (`pods`, `deployments.apps`).
    pub(crate) fn lookup_name(&self, name: &str) -> Option<(ResourceId, Arc<ResourceDef>)> {
        let st = self.lock();
        st.resources
            .iter()
            .position(|r| r.name() == name)
            .map(|i| (i, st.resources[i].clone()))
    }

    /// All served resource types.
    pub fn resources(&self) -> Vec<Arc<ResourceDef>> {
        self.lock().resources.clone()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Number of objects of one resource.
    pub(crate) fn count(&self, res: ResourceId) -> usize {
        self.lock().objects.get(res).map_or(0, BTreeMap::len)
    }

    /// Total number of objects.
    pub fn total_objects(&self) -> usize {
        self.lock().objects.iter().map(BTreeMap::len).sum()
    }

    /// The current objects of one resource (optionally one namespace), in key order.
    pub(crate) fn snapshot(&self, res: ResourceId, ns: Option<&str>) -> Vec<Arc<Stored>> {
        let st = self.lock();
        let Some(map) = st.objects.get(res) else {
            return Vec::new();
        };
        under_prefix(map, ns.map(|ns| format!("{ns}/")).as_deref())
    }

    /// One object.
    pub(crate) fn get(&self, res: ResourceId, ns: &str, name: &str) -> Option<Arc<Stored>> {
        self.lock()
            .objects
            .get(res)?
            .get(&key_of(ns, name))
            .cloned()
    }

    /// The current version of `key`, under a brief lock.
    pub(super) fn current(&self, res: ResourceId, key: &str) -> Option<Arc<Stored>> {
        self.lock().objects[res].get(key).cloned()
    }

    /// Stamps `prepared` with the next resourceVersion, stores it (or removes it
    /// for a delete), appends the event to history and broadcasts it.
    pub(super) fn commit(
        &self,
        st: &mut State,
        res: ResourceId,
        prepared: Prepared,
        ty: EventType,
        prev: Option<Arc<Stored>>,
    ) -> Arc<Stored> {
        st.rv += 1;
        let rv = st.rv;
        if st.watch_cache.is_on() {
            st.watch_cache.record(rv, self.clock.now_ms());
        }
        let stored = Arc::new(prepared.finish(rv));
        if ty == EventType::Deleted {
            st.objects[res].remove(&stored.key);
        } else {
            st.objects[res].insert(stored.key.clone(), stored.clone());
        }
        let ev = Arc::new(Event {
            rv,
            resource: res,
            ty,
            obj: stored.clone(),
            prev,
            frame: frame(ty.as_str(), &stored.body),
        });
        st.history.push_back(ev.clone());
        while st.history.len() > self.history_cap {
            if let Some(old) = st.history.pop_front() {
                st.compacted = old.rv;
            }
        }
        // No receivers is not an error: nobody is watching.
        let _ = self.tx.send(ev);
        stored
    }

    /// Commits `prepared` if `key` still holds `expected`; `Ok(None)` means it
    /// changed meanwhile and the caller must retry against the new version.
    pub(super) fn commit_if_unchanged(
        &self,
        res: ResourceId,
        def: &ResourceDef,
        name: &str,
        expected: &Arc<Stored>,
        prepared: Prepared,
        ty: EventType,
    ) -> Result<Option<Arc<Stored>>, ApiError> {
        let mut st = self.lock();
        match st.objects[res].get(&prepared.key) {
            Some(now) if Arc::ptr_eq(now, expected) => Ok(Some(self.commit(
                &mut st,
                res,
                prepared,
                ty,
                Some(expected.clone()),
            ))),
            Some(_) => Ok(None),
            None => Err(ApiError::not_found(def, name)),
        }
    }
}
