//! Watcher, reflector and shared informers: keeping a store in sync with the API server.
//!
//! * [`source`]: where bytes come from — [`source::KubeSource`] (kube-client, raw
//!   streaming) or [`memory::MemorySource`] (tests), behind one [`source::Source`] trait.
//! * [`watcher`]: list then watch with bookmarks, rewatch, relist on 410, backoff.
//! * [`informer`]: watcher -> fifo -> store + handlers; [`informer::SharedInformerFactory`].
//! * [`controller`]: workqueue-driven reconcile loop.

pub mod backoff;
pub mod controller;
pub mod informer;
pub mod memory;
pub mod metrics;
pub mod source;
pub mod watcher;

pub use informer::{Informer, InformerConfig, InformerKey, SharedInformerFactory};
pub use watcher::{Event, Watcher, WatcherConfig};
