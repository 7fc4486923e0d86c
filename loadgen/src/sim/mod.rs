//! An embedded, in-memory, wire-compatible Kubernetes API server.
//!
//! There is no cluster on the build machines, so kcache's tests, benches and
//! `loadgen run` talk to this server instead. It is faithful enough that
//! kube-client's `Api<Pod>` and `kube::runtime::watcher` work against it
//! unchanged, and fast enough not to be the bottleneck at 10k pods and 2,000
//! writes/s on 2 cores. It binds to loopback addresses only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kcache_loadgen::sim::SimError> {
//! use kcache_loadgen::{podgen, sim::SimServer};
//! let sim = SimServer::builder().history(10_000).start().await?;
//! podgen::load_pods(&sim, "default", 1_000, 42)?;
//! let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(sim.client()?, "default");
//! sim.expire_history(); // the next watch from an older resourceVersion gets 410
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What it serves
//! * Paths `/api/v1/...` and `/apis/{group}/{version}/...`, namespaced and
//!   cluster-scoped; pods, nodes, namespaces and configmaps by default, more via
//!   [`SimServer::resource`]. Minimal discovery (`/version`, `/api`, `/api/v1`,
//!   `/apis`, `/apis/{g}/{v}`) and the `status` subresource.
//! * GET, LIST, WATCH, POST (201), PUT (409 on a stale resourceVersion), PATCH
//!   (merge and JSON patch, and server-side apply with `managedFields` and
//!   conflicts, see `store/apply.rs`; strategic-merge answers 415), DELETE and
//!   DELETE of a collection with the real server's deletion semantics: graceful
//!   deletion of pods bound to a node (the simulated kubelet removes them when
//!   the grace period ends, on a clock tests can speed up), finalizers,
//!   `propagationPolicy`, preconditions, and namespaces that terminate (their
//!   content is deleted by a simulated namespace controller; creates in them
//!   answer 403). See [`DeleteOptions`].
//! * LIST: `limit`/`continue` (tokens in the real server's format), exact and
//!   not-older-than `resourceVersion` reads (exact reads are answered from the
//!   event history; 410 once compacted), label and field selectors, and
//!   `PartialObjectMetadataList` via the `Accept` header. `limit` is honoured
//!   for lists the watch cache serves too (`resourceVersion=0`, NotOlderThan),
//!   with continue tokens at the cache's resourceVersion, as a 1.36 server
//!   paginates from its cache snapshots.
//! * WATCH: see [`watch`](self#watch-semantics) below.
//! * `shardSelector` (KEP-5866, Kubernetes 1.36 alpha) on LIST and WATCH when
//!   the `ShardedListAndWatch` gate is on ([`SimServer::sharded_list_and_watch`],
//!   off by default as on the real server, which then ignores the parameter):
//!   only objects whose 64-bit FNV-1a hash of `metadata.uid` or
//!   `metadata.namespace` lies in the ranges, `metadata.shardInfo` on lists, and
//!   500 `invalid shard selector: …` for one that does not parse
//!   ([`ShardSelector`]).
//! * Errors are `Status` bodies shaped like fixtures/real-apiserver/status-*.json.
//!
//! # Watch semantics
//! * `resourceVersion` unset or `"0"`: synthetic ADDED for the current state
//!   (the watch cache's, when it lags: see [below](self#watch-cache)), then
//!   live events (Kubernetes API concepts, "Semantics for watch"); an explicit RV
//!   replays history after it, or sends one ERROR event with a 410 Expired
//!   Status and closes when the RV is older than the history.
//! * `sendInitialEvents=true` (requires `resourceVersionMatch=NotOlderThan` and
//!   `allowWatchBookmarks=true`): ADDED for every object, then a BOOKMARK annotated
//!   `k8s.io/initial-events-end: "true"`.
//! * `allowWatchBookmarks=true`: a BOOKMARK every
//!   [`SimServer::bookmark_interval`]; `timeoutSeconds` ends the stream cleanly.
//! * Slow watchers never block writers: a watcher more than
//!   [`SimServer::watch_buffer`] events behind is closed cleanly (the client
//!   re-watches from its last resourceVersion), as the real apiserver does.
//!
//! # Watch cache
//! A real server answers `resourceVersion=0` and not-older-than LISTs, and
//! watches from `resourceVersion=0`, from its watch cache, which can lag etcd:
//! such a read may be older than what a client has already seen.
//! [`SimServer::watch_cache_lag`] (or [`SimHandle::set_watch_cache_lag`]) makes
//! the simulator's cache trail the writes by a duration on its clock:
//! * LIST `resourceVersion=0`: the state at the cache's resourceVersion
//!   ([`SimHandle::watch_cache_resource_version`]), old values and deleted
//!   objects included.
//! * LIST `resourceVersionMatch=NotOlderThan` (or a legacy `resourceVersion=N`
//!   without `limit`): waits up to [`WATCH_CACHE_BLOCK_TIMEOUT`] (3 s of the
//!   simulator's clock) for the cache to reach `N`, then answers 504 Timeout
//!   with the `ResourceVersionTooLarge` cause.
//! * LIST `resourceVersion=""`, `Exact` reads and continue tokens: exact, as
//!   without a cache (a real server answers them consistently, from etcd or a
//!   cache snapshot).
//! * WATCH from `resourceVersion="0"`, or unset without `sendInitialEvents`:
//!   synthetic ADDED for the cache's state, then every event after it.
//!
//! Events reach watchers without the lag, and compacting history catches the
//! cache up (its state is an exact read from history). A watch-list
//! (`sendInitialEvents=true`) starts from the current state even from `"0"`,
//! where a real server may start from its cache. Without a lag (the default)
//! every read is current.
//!
//! # Faults
//! [`SimHandle`] methods, or `POST /_sim/faults` with a [`FaultRequest`] JSON
//! body; `GET /_sim/stats` returns [`Stats`].

mod client;
mod discovery;
mod error;
mod faults;
mod handle;
mod lazy;
mod resource;
mod selector;
mod server;
mod status;
mod store;
mod time;
mod token;
mod watch;

pub use client::{Line, RawClient, RawResponse, RawStream};
pub use error::{Result, SimError};
pub use faults::{FaultRequest, Stats};
pub use handle::{SimHandle, SimServer};
pub use resource::ResourceDef;
pub use selector::{FieldSelector, LabelSelector, ShardField, ShardRange, ShardSelector, fnv1a64};
pub use server::MAX_BODY;
pub use status::ApiError;
pub use store::{
    Collector, DEFAULT_POD_GRACE_SECONDS, DeleteOptions, FINALIZER_FOREGROUND, FINALIZER_ORPHAN,
    WATCH_CACHE_BLOCK_TIMEOUT,
};
pub use time::{Clock, parse_rfc3339, rfc3339, uuid_from};
