//! kcache keeps a Kubernetes controller's view of the cluster in memory.
//!
//! The data path runs in one direction:
//!
//! ```text
//! HTTP body -> wire::Framer -> wire::Decoder -> arena -> fifo (per-shard thread)
//!           -> store + indexes -> handlers / workqueue -> controller reconcile
//! ```
//!
//! | layer | module | what it owns |
//! |---|---|---|
//! | data path | [`wire`] | a streaming HTTP body turned into documents; each object's metadata decoded in one pass, without a DOM or a typed struct |
//! | | [`arena`] | object bytes in segments; [`Obj`] is the cheap, immutable handle readers keep |
//! | | [`store`] | the lock-free readable cache, copy-on-write indexes, arena compaction by the shard writers |
//! | | [`fifo`] | deltas applied on one owner thread per shard, in per-key order, coalesced under backlog |
//! | above it | [`reflector`] | list then watch one collection, recovering from every failure |
//! | | [`informer`] | reflector -> fifo -> store + handlers, and the shared factory |
//! | | [`controller`] | workqueue-driven reconcile loop |
//! | | [`queue`] | client-go compatible workqueue with rate limiters (knows nothing of objects) |
//! | | [`typed`] | typed views (`Store<K>` of `Arc<K>`) over an informer's store, decoding lazily with a bounded cache of decoded objects |
//! | | [`client`] | reads from the cache, writes to the API server |
//! | support | [`testing`] | an in-memory source and object builders for tests and examples |
//!
//! The names a controller author needs are re-exported here: [`Informer`],
//! [`SharedInformerFactory`], [`Store`], [`Handler`], [`Controller`], [`WorkQueue`],
//! [`CachedClient`] and their error types.
//!
//! # Example
//!
//! An informer over an in-memory collection (against a cluster, the source is a
//! [`KubeSource`] built from a `kube::Client`), a handler and a controller:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use k8s_openapi::api::core::v1::Pod;
//! use kcache::{Action, Controller, Informer, InformerConfig};
//! use kcache::testing::MemorySource;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let pods = MemorySource::new("Pod");
//! pods.apply(serde_json::json!({"metadata": {"namespace": "default", "name": "web-0"}}));
//! let informer = Informer::spawn(pods.clone(), InformerConfig::default()).unwrap();
//!
//! let (seen, mut reconciled) = tokio::sync::mpsc::unbounded_channel::<Arc<Pod>>();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let run = tokio::spawn(
//!     Controller::<Pod>::new(&informer)
//!         .graceful_shutdown_on(async move { let _ = stopped.await; })
//!         .run(
//!             |pod: Arc<Pod>, seen: Arc<tokio::sync::mpsc::UnboundedSender<Arc<Pod>>>| async move {
//!                 seen.send(pod).unwrap(); // read from memory, no API call
//!                 Ok::<_, std::io::Error>(Action::await_change())
//!             },
//!             |_pod, _error, _ctx| Action::requeue(Duration::from_secs(1)),
//!             Arc::new(seen),
//!         ),
//! );
//! let pod = reconciled.recv().await.unwrap();
//! assert_eq!(pod.metadata.name.as_deref(), Some("web-0"));
//! stop.send(()).unwrap();
//! run.await.unwrap();
//! # });
//! ```
#![deny(missing_docs, unsafe_op_in_unsafe_fn)]

pub mod arena;
pub mod client;
pub mod compress;
pub mod controller;
pub mod fifo;
pub mod informer;
pub mod lease;
pub mod metrics;
pub mod object;
pub mod queue;
pub mod reflector;
pub mod selector;
pub mod shard;
pub mod store;
pub(crate) mod sync;
pub mod testing;
pub mod typed;
pub mod wire;

/// The README's examples, compiled by `cargo test --doc` so that they keep up
/// with the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use client::{CachedClient, ClientError};
pub use controller::{Action, Controller};
pub use informer::{Handler, HandlerId, Informer, InformerConfig, InformerError, InformerKey, SharedInformerFactory};
pub use object::{Obj, ObjectRef};
pub use queue::WorkQueue;
pub use reflector::{KubeSource, WatcherConfig};
pub use store::{Store, StoreConfig, StoreError};
pub use typed::Store as TypedStore;
