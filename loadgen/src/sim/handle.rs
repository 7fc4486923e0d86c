//! Starting the simulator ([`SimServer`]) and driving it from Rust ([`SimHandle`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::error::{Result, SimError};
use super::faults::{Counters, FaultRequest, Faults, Stats};
use super::resource::ResourceDef;
use super::server::{self, Config, Shared};
use super::selector::LabelSelector;
use super::store::{Collector, Controllers, DeleteOptions, PatchKind, ResourceId, Store};
use super::time::Clock;

/// How often the simulated controllers (kubelet, namespace controller, garbage
/// collector, [`Collector`], status writer) take a pass, in real time.
const CONTROLLER_TICK: Duration = Duration::from_millis(10);

/// Builder for a simulated API server. See the [module docs](super) for what it serves.
#[derive(Clone, Debug)]
pub struct SimServer {
    addr: SocketAddr,
    history: usize,
    watch_buffer: usize,
    bookmark_interval: Duration,
    resources: Vec<ResourceDef>,
    clock_scale: f64,
    controllers: Controllers,
    watch_cache_lag: Option<Duration>,
    sharded_list_and_watch: bool,
}

impl SimServer {
    /// Defaults: `127.0.0.1:0` (an ephemeral port), 10,000 events of history, a
    /// 4,096-event fan-out buffer per watcher, bookmarks every second, and the
    /// resources pods, nodes, namespaces and configmaps.
    pub fn builder() -> Self {
        SimServer {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            history: 10_000,
            watch_buffer: 4096,
            bookmark_interval: Duration::from_secs(1),
            resources: ResourceDef::defaults(),
            clock_scale: 1.0,
            controllers: Controllers::default(),
            watch_cache_lag: None,
            sharded_list_and_watch: false,
        }
    }

    /// The address to bind; must be a loopback address (`start` refuses others).
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Binds `127.0.0.1:port` (0: ephemeral).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        self
    }

    /// How many events the watch history keeps: a watch from an older
    /// resourceVersion gets 410 Expired.
    #[must_use]
    pub fn history(mut self, events: usize) -> Self {
        self.history = events.max(1);
        self
    }

    /// How many live events a watcher may fall behind before it is closed.
    #[must_use]
    pub fn watch_buffer(mut self, events: usize) -> Self {
        self.watch_buffer = events.max(16);
        self
    }

    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK (a real
    /// server sends one about every minute).
    #[must_use]
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every.max(Duration::from_millis(1));
        self
    }

    /// Serves one more resource type.
    #[must_use]
    pub fn resource(mut self, def: ResourceDef) -> Self {
        self.resources.push(def);
        self
    }

    /// How fast the simulator's clock runs: `100.0` makes a pod's 30 s grace
    /// period pass in 0.3 s of real time (deletion timestamps are in the sped-up
    /// time). Default 1.0. See also [`SimHandle::advance_clock`].
    #[must_use]
    pub fn clock_scale(mut self, scale: f64) -> Self {
        self.clock_scale = scale;
        self
    }

    /// Makes the simulated watch cache trail the writes by `lag` on the
    /// simulator's clock: `resourceVersion=0` and not-older-than LISTs and
    /// watches from `resourceVersion=0` see only the writes made at least
    /// `lag` ago, as on a real server whose watch cache lags etcd (see the
    /// [module docs](super#watch-cache)). Off by default: every read is current.
    #[must_use]
    pub fn watch_cache_lag(mut self, lag: Duration) -> Self {
        self.watch_cache_lag = Some(lag);
        self
    }

    /// Turns the `ShardedListAndWatch` feature gate on or off (off by default,
    /// as on kube-apiserver v1.36, where it is alpha). On, a LIST or WATCH with
    /// `shardSelector=shardRange(object.metadata.uid, '0x…', '0x…')` (KEP-5866)
    /// gets only the objects whose field hash lies in the ranges, and a list
    /// says so in `metadata.shardInfo`; off, the parameter is ignored.
    #[must_use]
    pub fn sharded_list_and_watch(mut self, on: bool) -> Self {
        self.sharded_list_and_watch = on;
        self
    }

    /// Adds another writer: a [`Collector`] that deletes objects of a label at
    /// a rate (off by default).
    #[must_use]
    pub fn collector(mut self, collector: Collector) -> Self {
        self.controllers.collector = Some(collector);
        self
    }

    /// Adds another writer: updates the status of up to `per_second` objects
    /// of `resource` matching `label_selector` a second, in turn, as kubelets
    /// report their pods' status (off by default). Each update is a MODIFIED
    /// event that keeps the object's labels and annotations.
    #[must_use]
    pub fn status_writer(mut self, resource: &str, label_selector: &str, per_second: f64) -> Self {
        self.controllers.set_status_writer(resource, label_selector, per_second);
        self
    }

    /// Binds and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// [`SimError::NonLoopback`] for a non-loopback address, [`SimError::Bind`] when
    /// the port cannot be bound.
    pub async fn start(self) -> Result<SimHandle> {
        if !self.addr.ip().is_loopback() {
            return Err(SimError::NonLoopback(self.addr));
        }
        let listener = TcpListener::bind(self.addr)
            .await
            .map_err(|source| SimError::Bind {
                addr: self.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: self.addr,
            source,
        })?;
        let store = Store::new(self.resources, self.history, self.watch_buffer)
            .with_clock(Clock::scaled(self.clock_scale));
        store.set_watch_cache_lag(self.watch_cache_lag);
        let collector = match &self.controllers.collector {
            Some(c) => Some((
                store
                    .lookup_name(&c.resource)
                    .map(|(id, _)| id)
                    .ok_or_else(|| SimError::UnknownResource(c.resource.clone()))?,
                LabelSelector::parse(&c.label_selector)?,
                c.clone(),
            )),
            None => None,
        };
        let status_writer = match &self.controllers.status_writer {
            Some(w) => Some((
                store
                    .lookup_name(&w.resource)
                    .map(|(id, _)| id)
                    .ok_or_else(|| SimError::UnknownResource(w.resource.clone()))?,
                LabelSelector::parse(&w.label_selector)?,
                w.per_second,
            )),
            None => None,
        };
        let shared = Arc::new(Shared {
            store,
            faults: Faults::new(),
            counters: Counters::default(),
            config: Config {
                bookmark_interval: self.bookmark_interval,
            },
            sharded_list_and_watch: self.sharded_list_and_watch.into(),
        });
        let shutdown = CancellationToken::new();
        tokio::spawn(run_controllers(shared.clone(), collector, status_writer, shutdown.clone()));
        let task = tokio::spawn(server::accept_loop(
            listener,
            shared.clone(),
            shutdown.clone(),
        ));
        Ok(SimHandle {
            shared,
            addr,
            shutdown,
            task: Some(task),
        })
    }
}

/// The simulated controllers' loop: a pass every [`CONTROLLER_TICK`] until
/// shutdown; the collector and the status writer each write as many objects
/// as their rate allows for the simulator-clock time since their last pass.
async fn run_controllers(
    shared: Arc<Shared>,
    collector: Option<(ResourceId, LabelSelector, Collector)>,
    status_writer: Option<(ResourceId, LabelSelector, f64)>,
    shutdown: CancellationToken,
) {
    let mut last_ms = shared.store.clock().now_ms();
    let mut budget = 0.0_f64;
    let mut status_last_ms = last_ms;
    let mut status_budget = 0.0_f64;
    let mut status_cursor = String::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(CONTROLLER_TICK) => {}
        }
        shared.store.reconcile();
        if let Some((res, selector, c)) = &collector {
            let now_ms = shared.store.clock().now_ms();
            budget += c.per_second.max(0.0) * (now_ms - last_ms) as f64 / 1000.0;
            last_ms = now_ms;
            let n = budget.floor();
            if n >= 1.0 {
                budget -= n;
                shared.store.collect(*res, selector, &c.options, n as usize);
            }
        }
        if let Some((res, selector, per_second)) = &status_writer {
            let now_ms = shared.store.clock().now_ms();
            status_budget += per_second.max(0.0) * (now_ms - status_last_ms) as f64 / 1000.0;
            status_last_ms = now_ms;
            let n = status_budget.floor();
            if n >= 1.0 {
                status_budget -= n;
                status_cursor = shared.store.write_statuses(*res, selector, &status_cursor, n as usize).0;
            }
        }
    }
}

/// A running simulator. Dropping it stops the server (as [`SimHandle::shutdown`]
/// does, without waiting).
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A `kube::Client` for the simulator (plain HTTP, no auth).
    ///
    /// # Errors
    /// [`SimError::Client`] if kube-client refuses the config.
    pub fn client(&self) -> Result<kube::Client> {
        let url = self.url();
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| SimError::Http {
                addr: self.addr,
                what: e.to_string(),
            })?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".to_owned();
        kube::Client::try_from(config).map_err(|source| SimError::Client { url, source })
    }

    fn resource(&self, name: &str) -> Result<ResourceId> {
        self.shared
            .store
            .lookup_name(name)
            .map(|(id, _)| id)
            .ok_or_else(|| SimError::UnknownResource(name.to_owned()))
    }

    /// Serves one more resource type from now on.
    pub fn register(&self, def: ResourceDef) {
        self.shared.store.register(def);
    }

    /// Number of stored objects of a resource (`"pods"`, `"deployments.apps"`).
    ///
    /// # Errors
    /// [`SimError::UnknownResource`].
    pub fn object_count(&self, resource: &str) -> Result<usize> {
        Ok(self.shared.store.count(self.resource(resource)?))
    }

    /// The stored objects of a resource, optionally one namespace, in key order
    /// (each with kind and apiVersion).
    ///
    /// # Errors
    /// [`SimError::UnknownResource`].
    pub fn objects(&self, resource: &str, namespace: Option<&str>) -> Result<Vec<Value>> {
        Ok(self
            .shared
            .store
            .snapshot(self.resource(resource)?, namespace)
            .iter()
            .map(|o| o.to_value())
            .collect())
    }

    /// One stored object.
    ///
    /// # Errors
    /// [`SimError::UnknownResource`].
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Result<Option<Value>> {
        Ok(self
            .shared
            .store
            .get(self.resource(resource)?, namespace, name)
            .map(|o| o.to_value()))
    }

    /// Creates an object without HTTP (its namespace comes from
    /// `metadata.namespace`, else `default`); returns the stored object.
    ///
    /// # Errors
    /// [`SimError::Api`] with the Status the HTTP API would answer.
    pub fn create(&self, resource: &str, obj: Value) -> Result<Value> {
        let id = self.resource(resource)?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_owned();
        let namespaced = self
            .shared
            .store
            .resources()
            .get(id)
            .is_some_and(|d| d.namespaced);
        Ok(self
            .shared
            .store
            .create(id, if namespaced { &ns } else { "" }, obj)?
            .to_value())
    }

    /// Creates many objects under one lock (the bulk-load fast path); objects whose
    /// key exists are skipped. Returns how many were created.
    ///
    /// # Errors
    /// [`SimError::Api`] if an object is invalid (nothing is created then).
    pub fn create_many(
        &self,
        resource: &str,
        objs: impl IntoIterator<Item = Value>,
    ) -> Result<usize> {
        Ok(self
            .shared
            .store
            .create_many(self.resource(resource)?, objs)?)
    }

    /// Replaces an object (like PUT); returns the stored object.
    ///
    /// # Errors
    /// [`SimError::Api`]: 404, 409 on a stale resourceVersion, ...
    pub fn replace(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        obj: Value,
    ) -> Result<Value> {
        Ok(self
            .shared
            .store
            .update(self.resource(resource)?, namespace, name, obj, false)?
            .to_value())
    }

    /// Merge-patches an object (like PATCH with `application/merge-patch+json`).
    ///
    /// # Errors
    /// [`SimError::Api`].
    pub fn merge_patch(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value> {
        let body = serde_json::to_vec(patch).unwrap_or_default();
        Ok(self
            .shared
            .store
            .patch(
                self.resource(resource)?,
                namespace,
                name,
                PatchKind::Merge,
                &body,
                false,
            )?
            .to_value())
    }

    /// Removes an object at once: one DELETED event, whatever its grace period
    /// or finalizers (as if it vanished from etcd). Returns its last version,
    /// with `deletionTimestamp`. For the API server's deletion rules (graceful
    /// deletion, finalizers, preconditions) use [`SimHandle::delete_with`].
    ///
    /// # Errors
    /// [`SimError::Api`] (404 when missing).
    pub fn delete(&self, resource: &str, namespace: &str, name: &str) -> Result<Value> {
        Ok(self
            .shared
            .store
            .remove_now(self.resource(resource)?, namespace, name)?
            .to_value())
    }

    /// Deletes an object as a DELETE request with `options` does: a pod bound
    /// to a node is only marked (graceful deletion; the simulated kubelet
    /// removes it when the grace period ends), an object with finalizers waits
    /// for them, anything else is removed. Returns the object's version after
    /// the delete (its last version when removed).
    ///
    /// # Errors
    /// [`SimError::Api`] with the Status the HTTP API would answer.
    pub fn delete_with(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value> {
        Ok(self
            .shared
            .store
            .delete(self.resource(resource)?, namespace, name, options)?
            .object()
            .to_value())
    }

    /// Moves the simulator's clock forward by `by` and lets the controllers
    /// act at once (pods whose grace period ended are removed, ...).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.store.clock().advance(by);
        self.reconcile();
    }

    /// Runs one pass of the simulated controllers now (they also run on their
    /// own every few milliseconds).
    pub fn reconcile(&self) {
        self.shared.store.reconcile();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.resource_version()
    }

    /// Sets how far the watch cache trails the writes from now on (`None`:
    /// not at all); writes made before count as old. See
    /// [`SimServer::watch_cache_lag`].
    pub fn set_watch_cache_lag(&self, lag: Option<Duration>) {
        self.shared.store.set_watch_cache_lag(lag);
    }

    /// Turns the `ShardedListAndWatch` feature gate on or off for the
    /// requests that come next (see [`SimServer::sharded_list_and_watch`]).
    pub fn set_sharded_list_and_watch(&self, on: bool) {
        self.shared.sharded_list_and_watch.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The resourceVersion the watch cache has reached: what a
    /// `resourceVersion=0` LIST answers at (the current one without a lag).
    pub fn watch_cache_resource_version(&self) -> u64 {
        self.shared.store.watch_cache_resource_version()
    }

    /// The oldest resourceVersion history still serves (watches from older ones get 410).
    pub fn compacted_resource_version(&self) -> u64 {
        self.shared.store.compacted()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot(
            self.shared.store.resource_version(),
            self.shared.store.total_objects() as u64,
        )
    }

    /// Applies a fault request (what `POST /_sim/faults` does).
    pub fn faults(&self, f: &FaultRequest) {
        server::apply_faults(&self.shared, f);
    }

    /// Closes every watch cleanly once it has sent `n` events (0 turns it off).
    pub fn close_watches_every(&self, n: u64) {
        self.faults(&FaultRequest {
            close_watches_every: Some(n),
            ..FaultRequest::default()
        });
    }

    /// Expires every resourceVersion older than now: the next watch or exact read
    /// from an older one answers 410 Expired.
    pub fn expire_history(&self) {
        self.faults(&FaultRequest {
            expire_history: true,
            ..FaultRequest::default()
        });
    }

    /// While `on`, answers every WATCH with a 410 Expired ERROR event, so that
    /// clients relist each time (a relist storm); `false` turns it off.
    pub fn expire_every_watch(&self, on: bool) {
        self.faults(&FaultRequest {
            expire_every_watch: Some(on),
            ..FaultRequest::default()
        });
    }

    /// Sends one malformed frame (a cut-off event line) on every open watch.
    pub fn inject_malformed_frame(&self) {
        self.faults(&FaultRequest {
            inject_malformed_frame: true,
            ..FaultRequest::default()
        });
    }

    /// Delays every response by `latency` (zero turns it off).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults.set_latency(latency);
    }

    /// Drops every open connection and watch at once; the data is kept and new
    /// connections are accepted.
    pub fn restart(&self) {
        self.faults(&FaultRequest {
            restart: true,
            ..FaultRequest::default()
        });
    }

    /// Stops accepting, drops every connection and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    fn stop(&self) {
        self.shutdown.cancel();
        self.shared.faults.restart();
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
