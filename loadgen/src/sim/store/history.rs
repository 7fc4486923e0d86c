//! The event history: compaction, and what a new watch starts from (current
//! state, history backlog and the live receiver, taken under one lock).
//!
//! # Guarantees
//! * A [`WatchSeed`] is taken under the state lock with the live receiver
//!   subscribed in the same critical section, so every event after
//!   [`WatchSeed::rv`] arrives on the receiver and none before it does.
//! * A watch from a resourceVersion older than the compacted one answers 410
//!   Expired instead of silently missing events.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::object::{Event, ResourceId, Stored};
use super::state::{Store, under_prefix};
use crate::sim::status::ApiError;

/// How a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchStart {
    /// From the current state, with no initial events.
    Now,
    /// Synthetic ADDED events for the current state, then live events.
    InitialState,
    /// Every event after this resourceVersion.
    From(u64),
}

/// What a new watch starts with.
pub(crate) struct WatchSeed {
    pub initial: Vec<Arc<Stored>>,
    pub backlog: Vec<Arc<Event>>,
    pub rx: broadcast::Receiver<Arc<Event>>,
    /// All events up to here are in `initial`/`backlog`; later ones arrive on `rx`.
    pub rv: u64,
}

impl Store {
    /// Forgets all history: every resourceVersion older than now is expired.
    pub(crate) fn expire_history(&self) {
        let mut st = self.lock();
        st.compacted = st.rv;
        st.history.clear();
    }

    /// Oldest resourceVersion still served from history.
    pub(crate) fn compacted(&self) -> u64 {
        self.lock().compacted
    }

    /// What a new watch sends first, and the live receiver for everything after.
    pub(crate) fn seed_watch(
        &self,
        res: ResourceId,
        ns: Option<&str>,
        start: WatchStart,
    ) -> Result<WatchSeed, ApiError> {
        let st = self.lock();
        let rx = self.tx.subscribe();
        let prefix = ns.map(|n| format!("{n}/"));
        let mut initial = Vec::new();
        let mut backlog = Vec::new();
        match start {
            WatchStart::Now => {}
            WatchStart::InitialState => {
                initial = under_prefix(&st.objects[res], prefix.as_deref());
            }
            WatchStart::From(rv) => {
                if rv < st.compacted {
                    return Err(ApiError::too_old_resource_version(rv, st.compacted + 1));
                }
                let skip = st.history.partition_point(|e| e.rv <= rv);
                backlog.extend(
                    st.history
                        .iter()
                        .skip(skip)
                        .filter(|e| e.resource == res)
                        .cloned(),
                );
            }
        }
        Ok(WatchSeed {
            initial,
            backlog,
            rx,
            rv: st.rv,
        })
    }
}
