//! The settings of a watcher.

use std::time::Duration;

use super::{Backoff, ErrorCallback};

/// Settings of a [`Watcher`](super::Watcher).
#[derive(Clone)]
pub struct WatcherConfig {
    /// `labelSelector` for list and watch.
    pub label_selector: Option<String>,
    /// `fieldSelector` for list and watch.
    pub field_selector: Option<String>,
    /// LIST page size (`limit`); `None` lists in one request. Default 500, as client-go.
    pub page_size: Option<u32>,
    /// resourceVersion of the first LIST: `"0"` (default) lets the server answer
    /// from its watch cache; `""` asks for a quorum read. Later lists ask for
    /// the last synced resourceVersion with `resourceVersionMatch=NotOlderThan`,
    /// or `""` after a LIST was answered 410 (as client-go's reflector).
    pub list_resource_version: String,
    /// Use a streaming list (`sendInitialEvents=true`) instead of LIST.
    pub streaming_list: bool,
    /// How long a streaming list may go without its `k8s.io/initial-events-end`
    /// bookmark before the watcher concludes the server ignores
    /// `sendInitialEvents` and lists with LIST instead. Default 30 s: a server
    /// that supports it streams a large collection (100k objects) well within
    /// that, and one that does not costs at most that much delay once.
    pub initial_events_timeout: Duration,
    /// Watch timeouts are drawn from `[min_watch_timeout, 2 * min_watch_timeout)`. Default 5 min.
    pub min_watch_timeout: Duration,
    /// Backoff between failed requests.
    pub backoff: Backoff,
    /// Called with every recovered error (they are also logged and counted).
    pub on_error: Option<ErrorCallback>,
    /// Largest watch frame accepted, in bytes. Default 16 MiB.
    pub max_frame_bytes: usize,
    /// Most objects the collection may hold; `None` (default) for no limit.
    ///
    /// A LIST is read no further than `limit + 1` objects (page sizes are cut
    /// to what is left, and a page whose `remainingItemCount` already says the
    /// total is too big ends the list), a streaming list stops at the first
    /// initial event over the limit, and a watch stops at the ADDED event that
    /// would take the count over it (the count follows ADDED and DELETED events).
    /// Each time, [`WatcherError::TooManyObjects`](super::WatcherError::TooManyObjects) is reported, the cache keeps
    /// its last complete state, and the watcher relists after backoff until the
    /// collection is small enough again. Never a silent truncation.
    pub max_objects: Option<usize>,
    /// Lets its owner make the watcher relist at once, without backoff
    /// ([`RelistTrigger`](super::RelistTrigger)); `None` (default) for none.
    pub relist_trigger: Option<super::RelistTrigger>,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            label_selector: None,
            field_selector: None,
            page_size: Some(500),
            list_resource_version: "0".to_owned(),
            streaming_list: false,
            initial_events_timeout: Duration::from_secs(30),
            min_watch_timeout: Duration::from_secs(300),
            backoff: Backoff::default(),
            on_error: None,
            max_frame_bytes: 16 << 20,
            max_objects: None,
            relist_trigger: None,
        }
    }
}

impl std::fmt::Debug for WatcherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatcherConfig")
            .field("label_selector", &self.label_selector)
            .field("field_selector", &self.field_selector)
            .field("page_size", &self.page_size)
            .field("list_resource_version", &self.list_resource_version)
            .field("streaming_list", &self.streaming_list)
            .field("initial_events_timeout", &self.initial_events_timeout)
            .field("min_watch_timeout", &self.min_watch_timeout)
            .field("max_objects", &self.max_objects)
            .finish_non_exhaustive()
    }
}
