//! The work queue itself: dirty/processing sets, FIFO shards, blocking and async get.

use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::pin::pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use crossbeam::utils::CachePadded;
use hashbrown::hash_table::{Entry, HashTable};
use tokio::sync::Notify;

use super::delaying::Timer;
use super::error::AddError;
use super::metrics::{QueueMetrics, UnfinishedWork, WorkQueueMetrics};
use super::rate_limiter::{RateLimiter, default_controller_rate_limiter};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Mutex, MutexGuard, PoisonError};

/// What a work queue key must be: hashable, comparable, cheap to clone (an
/// `Arc<str>`, an [`ObjectRef`](crate::ObjectRef), an integer) and shareable
/// across threads. Implemented for every such type.
pub trait QueueKey: Hash + Eq + Clone + Send + Sync + 'static {}

impl<T: Hash + Eq + Clone + Send + Sync + 'static> QueueKey for T {}

/// A client-go work queue: a deduplicating, fair queue of keys that never hands
/// one key to two workers at once, with delayed and rate-limited adds.
///
/// # Rules (client-go `util/workqueue`)
/// * **Stingy**: a key waiting in the queue is there once, however many times it
///   is [`add`](Self::add)ed (the *dirty* set).
/// * **One worker per key**: a key handed out by [`get`](Self::get) is
///   *processing* until [`done`](Self::done); it is not handed out again before.
///   An add while it is processing is remembered, and the key goes back in the
///   queue when `done` is called. So a worker never misses a change, and two
///   workers never reconcile the same object concurrently.
/// * **Fair**: keys come out in the order they were first added (FIFO) — within
///   a shard; see *Shards* below.
/// * **Shutdown**: after [`shutdown`](Self::shutdown), adds are ignored, `get`
///   still hands out what is queued and then returns `None`, waking every
///   blocked getter. [`shutdown_with_drain`](Self::shutdown_with_drain) also
///   waits until every processing key is `done`.
///
/// # Caller duties
/// Every key returned by `get`/`get_async`/`try_get` must be passed to `done`
/// exactly once, or it stays processing forever (and is never handed out again).
/// After success call [`forget`](Self::forget) so its backoff starts over.
///
/// # Threads and tasks
/// The handle is an `Arc` inside: clone it freely to producers and workers.
/// [`get`](Self::get) blocks the calling thread (use it from plain threads);
/// [`get_async`](Self::get_async) is its async twin and works on any executor
/// (no Tokio runtime is needed; it only uses `tokio::sync::Notify`). Delayed adds
/// use one timer thread per queue, started on the first delayed add.
///
/// # Shards
/// With [`WorkQueueBuilder::shards`] > 1 the keys are spread over shards by
/// hash, each with its own lock, FIFO and dirty/processing sets (a key always
/// lives in the same shard, so the per-key rules above hold exactly). Workers
/// start at a per-thread home shard and steal from the others when it is empty.
/// Order is then FIFO per shard only, not global. The default is one shard,
/// exactly client-go's global FIFO.
///
/// # Example
/// ```
/// use kcache::queue::WorkQueue;
///
/// let q: WorkQueue<&str> = WorkQueue::new();
/// q.add("default/web");
/// q.add("default/web"); // collapses with the waiting one
/// q.add("default/db");
/// assert_eq!(q.len(), 2);
///
/// let key = q.get().unwrap();
/// assert_eq!(key, "default/web");
/// q.add("default/web"); // changed while processing: kept, not handed out yet
/// assert_eq!(q.try_get(), Some("default/db"));
/// assert_eq!(q.try_get(), None);
/// q.done(&"default/web"); // now it is queued again
/// assert_eq!(q.try_get(), Some("default/web"));
/// ```
pub struct WorkQueue<K> {
    pub(super) inner: Arc<Inner<K>>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue { inner: Arc::clone(&self.inner) }
    }
}

impl<K> fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkQueue")
            .field("name", &self.inner.name)
            .field("shards", &self.inner.shards.len())
            .field("len", &self.inner.total_queued())
            .field("shutting_down", &self.inner.shutting_down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Where a key is. A key is in a shard's table iff it is queued or processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the shard's FIFO, not handed out (client-go: dirty, not processing).
    Queued,
    /// Handed out, not added since (processing, not dirty).
    Processing,
    /// Handed out and added again since: goes back in the FIFO on `done`
    /// (processing and dirty).
    ProcessingDirty,
}

struct Slot<K> {
    key: K,
    hash: u64,
    state: State,
    /// Nanoseconds since the queue's epoch, plus one, of the add that made the key
    /// dirty; 0 = unknown. Only kept when the queue has metrics.
    added_at: u64,
    /// Same clock: when the current processing started; 0 = not processing or
    /// no metrics.
    started_at: u64,
}

struct ShardState<K> {
    /// Keys in FIFO order, with their hash. Every key here has a table slot in
    /// state `Queued`, and every `Queued` slot has exactly one entry here.
    fifo: VecDeque<(K, u64)>,
    table: HashTable<Slot<K>>,
}

struct Shard<K> {
    state: Mutex<ShardState<K>>,
    /// `fifo.len()`, readable without the lock (getters skip empty shards, and
    /// sleeping getters re-check it). Written only under the lock.
    queued: AtomicUsize,
    /// Number of slots processing (dirty or not); written only under the lock.
    processing: AtomicUsize,
}

pub(super) struct Inner<K> {
    pub(super) name: String,
    shards: Box<[CachePadded<Shard<K>>]>,
    hasher: hashbrown::DefaultHashBuilder,
    pub(super) shutting_down: AtomicBool,
    /// A `shutdown_with_drain` is waiting (cleared by a plain `shutdown`, as in
    /// client-go, which cuts the wait short).
    draining: AtomicBool,
    /// Getters registered on `ready` (or about to sleep on it). Adders only pay
    /// for a wake-up when this is non-zero.
    sleepers: AtomicUsize,
    ready: Notify,
    drained: Notify,
    pub(super) timer: OnceLock<Option<Arc<Timer<K>>>>,
    pub(super) limiter: Box<dyn RateLimiter<K>>,
    pub(super) metrics: Option<QueueMetrics>,
    epoch: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing user-supplied runs under these locks except K's Hash/Eq/Clone; if
    // one of those panics, the shard state is still consistent (every mutation
    // is completed before the next user call), so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stable small number per thread, used to give each worker a home shard.
fn home_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    HOME.with(|h| *h)
}

/// Wakes the thread parked in [`block_on`].
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `f` to completion on this thread, parking between polls.
///
/// Our own instead of `futures::executor::block_on`, which panics when called
/// from inside another futures executor; a blocking `get` there is a design
/// smell but must not be a crash.
fn block_on<F: Future>(f: F) -> F::Output {
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    }
    let mut f = pin!(f);
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
                return out;
            }
            // Spurious unparks just poll again.
            std::thread::park();
        }
    })
}

/// Decrements the sleeper count when a getter stops waiting, even if its future
/// is dropped mid-wait.
struct SleepGuard<'a>(&'a AtomicUsize);

impl Drop for SleepGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<K> Inner<K> {
    pub(super) fn total_queued(&self) -> usize {
        self.shards.iter().map(|s| s.queued.load(Ordering::SeqCst)).sum()
    }

}

impl<K: QueueKey> Inner<K> {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// `now_ns` when the queue keeps metrics, else 0 (and no clock read).
    #[inline]
    fn metrics_now(&self) -> u64 {
        if self.metrics.is_some() { self.now_ns() } else { 0 }
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard<K> {
        let n = self.shards.len();
        // The table uses the low bits and the top 7 bits of the hash; take the
        // shard from the middle so the two do not correlate.
        let i = if n == 1 { 0 } else { ((hash >> 32) as usize) % n };
        &self.shards[i]
    }

    fn total_processing(&self) -> usize {
        self.shards.iter().map(|s| s.processing.load(Ordering::SeqCst)).sum()
    }

    /// client-go `Add`. `Err(key)` when shutting down.
    pub(super) fn add(&self, key: K) -> Result<(), K> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(key);
        }
        let hash = self.hasher.hash_one(&key);
        let shard = self.shard(hash);
        {
            let mut guard = lock(&shard.state);
            let st = &mut *guard;
            match st.table.entry(hash, |s| s.key == key, |s| s.hash) {
                Entry::Occupied(mut e) => {
                    let slot = e.get_mut();
                    if slot.state != State::Processing {
                        // Already dirty: collapses with the pending add.
                        return Ok(());
                    }
                    // Dirty while processing: `done` puts it back in the FIFO.
                    slot.state = State::ProcessingDirty;
                    slot.added_at = self.metrics_now();
                    drop(guard);
                    self.count_add();
                    return Ok(());
                }
                Entry::Vacant(e) => {
                    st.fifo.push_back((key.clone(), hash));
                    e.insert(Slot { key, hash, state: State::Queued, added_at: self.metrics_now(), started_at: 0 });
                    // SeqCst pairs with the getter's sleepers/queued check: either
                    // it sees this key, or we see it asleep.
                    shard.queued.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        self.count_add();
        self.wake_one();
        Ok(())
    }

    #[inline]
    fn count_add(&self) {
        if let Some(m) = &self.metrics {
            m.adds.inc();
            m.depth.inc();
        }
    }

    #[inline]
    fn wake_one(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.ready.notify_one();
        }
    }

    /// Takes the oldest key of the first non-empty shard, starting at this
    /// thread's home shard, and marks it processing.
    pub(super) fn try_pop(&self) -> Option<K> {
        let n = self.shards.len();
        let mut i = if n == 1 { 0 } else { home_index() % n };
        for _ in 0..n {
            let shard = &self.shards[i];
            i += 1;
            if i == n {
                i = 0;
            }
            if shard.queued.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut guard = lock(&shard.state);
            let st = &mut *guard;
            let Some((key, hash)) = st.fifo.pop_front() else { continue };
            shard.queued.fetch_sub(1, Ordering::Relaxed);
            shard.processing.fetch_add(1, Ordering::SeqCst);
            let mut waited = None;
            let slot = st.table.find_mut(hash, |s| s.key == key);
            // Invariant of ShardState: every FIFO entry has a `Queued` slot.
            debug_assert!(slot.as_ref().is_some_and(|s| s.state == State::Queued));
            if let Some(slot) = slot {
                slot.state = State::Processing;
                if self.metrics.is_some() {
                    let now = self.now_ns();
                    if slot.added_at != 0 {
                        waited = Some(now.saturating_sub(slot.added_at));
                    }
                    slot.added_at = 0;
                    slot.started_at = now;
                }
            }
            drop(guard);
            if let Some(m) = &self.metrics {
                m.depth.dec();
                if let Some(ns) = waited {
                    m.queue_duration.observe(ns as f64 / 1e9);
                }
            }
            return Some(key);
        }
        None
    }

    /// Waits until a key may be available or the queue is shutting down.
    async fn wait_ready(&self) {
        let mut notified = pin!(self.ready.notified());
        notified.as_mut().enable();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let _guard = SleepGuard(&self.sleepers);
        if self.total_queued() == 0 && !self.shutting_down.load(Ordering::SeqCst) {
            notified.await;
        }
    }

    /// The shared loop of `get` and `get_async`; `wait` sleeps once.
    async fn get_async(&self) -> Option<K> {
        loop {
            if let Some(key) = self.try_pop() {
                return Some(key);
            }
            if self.shutting_down.load(Ordering::SeqCst) && self.total_queued() == 0 {
                return None;
            }
            self.wait_ready().await;
        }
    }

    fn get(&self) -> Option<K> {
        loop {
            if let Some(key) = self.try_pop() {
                return Some(key);
            }
            if self.shutting_down.load(Ordering::SeqCst) && self.total_queued() == 0 {
                return None;
            }
            block_on(self.wait_ready());
        }
    }

    pub(super) fn done(&self, key: &K) {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        let now = self.metrics_now();
        let mut worked = None;
        let requeued;
        {
            let mut guard = lock(&shard.state);
            let st = &mut *guard;
            let Ok(mut e) = st.table.find_entry(hash, |s| s.key == *key) else {
                // Not queued nor processing: a stray done, nothing to undo.
                return;
            };
            let slot = e.get_mut();
            if slot.started_at != 0 {
                worked = Some(now.saturating_sub(slot.started_at));
            }
            match slot.state {
                // Not handed out: client-go would push a duplicate into its queue
                // here; ignoring the misuse keeps the stingy rule.
                State::Queued => return,
                State::Processing => {
                    e.remove();
                    requeued = false;
                }
                State::ProcessingDirty => {
                    slot.state = State::Queued;
                    slot.started_at = 0;
                    st.fifo.push_back((slot.key.clone(), hash));
                    shard.queued.fetch_add(1, Ordering::SeqCst);
                    requeued = true;
                }
            }
            shard.processing.fetch_sub(1, Ordering::SeqCst);
        }
        if let (Some(m), Some(ns)) = (&self.metrics, worked) {
            m.work_duration.observe(ns as f64 / 1e9);
        }
        if requeued {
            self.wake_one();
        }
        // SeqCst pairs with shutdown_with_drain: it sets `draining` then reads the
        // processing counts; we decremented then read `draining`.
        if self.draining.load(Ordering::SeqCst) {
            self.drained.notify_waiters();
        }
    }

    pub(super) fn shutdown(&self, drain: bool) {
        self.draining.store(drain, Ordering::SeqCst);
        self.shutting_down.store(true, Ordering::SeqCst);
        self.ready.notify_waiters();
        self.drained.notify_waiters();
        if let Some(Some(timer)) = self.timer.get() {
            timer.stop();
        }
    }

    async fn wait_drained(&self) {
        loop {
            let mut notified = pin!(self.drained.notified());
            notified.as_mut().enable();
            if !self.draining.load(Ordering::SeqCst) || self.total_processing() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl<K: QueueKey> UnfinishedWork for Inner<K> {
    fn unfinished_work(&self) -> (f64, f64) {
        let now = self.now_ns();
        let (mut total, mut oldest) = (0u64, 0u64);
        for shard in self.shards.iter() {
            let st = lock(&shard.state);
            for slot in st.table.iter() {
                if slot.state != State::Queued && slot.started_at != 0 {
                    let age = now.saturating_sub(slot.started_at);
                    total = total.saturating_add(age);
                    oldest = oldest.max(age);
                }
            }
        }
        (total as f64 / 1e9, oldest as f64 / 1e9)
    }
}

impl<K> Drop for Inner<K> {
    fn drop(&mut self) {
        // The timer thread holds only a Weak to us; tell it to exit.
        if let Some(Some(timer)) = self.timer.get() {
            timer.stop();
        }
    }
}

impl<K: QueueKey> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue::new()
    }
}

impl<K: QueueKey> WorkQueue<K> {
    /// An unnamed queue without metrics, one shard, and
    /// [`default_controller_rate_limiter`].
    pub fn new() -> Self {
        WorkQueue::builder().build()
    }

    /// A builder to set the name, metrics, shards and rate limiter.
    pub fn builder() -> WorkQueueBuilder<K> {
        WorkQueueBuilder { name: String::new(), shards: 1, limiter: None, metrics: None }
    }

    /// The queue's name (the `name` label of its metrics).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Marks `key` as needing processing (client-go `Add`).
    ///
    /// Collapses with a waiting add of the same key; if the key is processing it
    /// is kept and queued again on [`done`](Self::done). Ignored after shutdown.
    /// Never blocks (beyond a short shard lock).
    pub fn add(&self, key: K) {
        let _ = self.inner.add(key);
    }

    /// Like [`add`](Self::add), but hands the key back if the queue is shutting
    /// down.
    ///
    /// ```
    /// use kcache::queue::{AddError, WorkQueue};
    ///
    /// let q: WorkQueue<u32> = WorkQueue::new();
    /// q.shutdown();
    /// assert_eq!(q.try_add(7), Err(AddError::ShuttingDown(7)));
    /// ```
    pub fn try_add(&self, key: K) -> Result<(), AddError<K>> {
        self.inner.add(key).map_err(AddError::ShuttingDown)
    }

    /// Blocks until a key is available and returns it, marking it processing;
    /// `None` once the queue is shut down and empty (client-go `Get`).
    ///
    /// Blocks the thread: from async code use [`get_async`](Self::get_async).
    pub fn get(&self) -> Option<K> {
        self.inner.get()
    }

    /// Async [`get`](Self::get): waits without blocking the thread. Cancel-safe:
    /// dropping the future before it completes takes no key.
    pub async fn get_async(&self) -> Option<K> {
        self.inner.get_async().await
    }

    /// Takes a key if one is queued right now, without waiting.
    pub fn try_get(&self) -> Option<K> {
        self.inner.try_pop()
    }

    /// Marks `key` as no longer processing (client-go `Done`). If it was added
    /// while processing it goes back in the queue now. A `done` for a key that was
    /// not handed out is ignored.
    pub fn done(&self, key: &K) {
        self.inner.done(key);
    }

    /// Number of keys waiting to be handed out (not counting processing keys,
    /// dirty or not, nor delayed adds still waiting for their time).
    pub fn len(&self) -> usize {
        self.inner.total_queued()
    }

    /// Whether no key is waiting to be handed out.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops accepting adds and wakes every blocked getter (client-go `ShutDown`).
    ///
    /// Keys already queued are still handed out; `get` returns `None` once the
    /// queue is empty. Delayed adds still waiting are dropped. Cuts short a
    /// concurrent [`shutdown_with_drain`](Self::shutdown_with_drain).
    pub fn shutdown(&self) {
        self.inner.shutdown(false);
    }

    /// [`shutdown`](Self::shutdown), then blocks until every processing key is
    /// [`done`](Self::done) (client-go `ShutDownWithDrain`).
    ///
    /// Workers must keep calling `get`/`done` meanwhile, or this never returns.
    /// Keys still queued are not waited for.
    pub fn shutdown_with_drain(&self) {
        self.inner.shutdown(true);
        block_on(self.inner.wait_drained());
    }

    /// Async [`shutdown_with_drain`](Self::shutdown_with_drain).
    pub async fn shutdown_with_drain_async(&self) {
        self.inner.shutdown(true);
        self.inner.wait_drained().await;
    }

    /// Whether [`shutdown`](Self::shutdown) or
    /// [`shutdown_with_drain`](Self::shutdown_with_drain) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Adds `key` after `limiter.when(key)` (client-go `AddRateLimited`): the
    /// retry path for a key whose processing failed.
    pub fn add_rate_limited(&self, key: K) {
        if self.is_shutting_down() {
            return;
        }
        let delay = self.inner.limiter.when(&key);
        self.add_after(key, delay);
    }

    /// Tells the rate limiter to stop tracking `key` (client-go `Forget`): call it
    /// when the key was processed successfully, so its next failure starts the
    /// backoff over. It does not remove the key from the queue.
    pub fn forget(&self, key: &K) {
        self.inner.limiter.forget(key);
    }

    /// How many times `key` was rate limited since it was last forgotten.
    pub fn num_requeues(&self, key: &K) -> u32 {
        self.inner.limiter.num_requeues(key)
    }
}

/// Configures a [`WorkQueue`]: name, metrics, shards, rate limiter.
///
/// ```
/// use std::time::Duration;
/// use prometheus_client::registry::Registry;
/// use kcache::queue::{ItemExponentialFailureRateLimiter, WorkQueue};
///
/// let mut registry = Registry::default();
/// let q: WorkQueue<String> = WorkQueue::builder()
///     .name("pods")
///     .metrics(&mut registry)
///     .shards(4)
///     .rate_limiter(ItemExponentialFailureRateLimiter::new(
///         Duration::from_millis(10),
///         Duration::from_secs(60),
///     ))
///     .build();
/// assert_eq!(q.name(), "pods");
/// ```
#[must_use = "a builder does nothing until `build`"]
pub struct WorkQueueBuilder<K> {
    name: String,
    shards: usize,
    limiter: Option<Box<dyn RateLimiter<K>>>,
    metrics: Option<WorkQueueMetrics>,
}

impl<K> fmt::Debug for WorkQueueBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkQueueBuilder")
            .field("name", &self.name)
            .field("shards", &self.shards)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl<K: QueueKey> WorkQueueBuilder<K> {
    /// The queue's name: the `name` label of its metrics, and the timer thread's
    /// name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Reports metrics into a registry: pass `&mut Registry` (registers the
    /// families there; one queue per registry) or `&WorkQueueMetrics` (shared by
    /// several queues). Without this call the queue keeps no metrics and pays
    /// nothing for them.
    pub fn metrics(mut self, metrics: impl Into<WorkQueueMetrics>) -> Self {
        self.metrics = Some(metrics.into());
        self
    }

    /// Number of shards (at least 1; default 1, exact global FIFO). More shards
    /// spread lock contention when many workers share the queue, at the price of
    /// FIFO order holding per shard only.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// The rate limiter behind [`WorkQueue::add_rate_limited`]; default
    /// [`default_controller_rate_limiter`].
    pub fn rate_limiter(mut self, limiter: impl RateLimiter<K>) -> Self {
        self.limiter = Some(Box::new(limiter));
        self
    }

    /// Builds the queue.
    pub fn build(self) -> WorkQueue<K> {
        let shards = (0..self.shards)
            .map(|_| {
                CachePadded::new(Shard {
                    state: Mutex::new(ShardState { fifo: VecDeque::new(), table: HashTable::new() }),
                    queued: AtomicUsize::new(0),
                    processing: AtomicUsize::new(0),
                })
            })
            .collect();
        let metrics = self.metrics.as_ref().map(|m| m.for_queue(&self.name));
        let inner = Arc::new(Inner {
            name: self.name,
            shards,
            hasher: hashbrown::DefaultHashBuilder::default(),
            shutting_down: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            ready: Notify::new(),
            drained: Notify::new(),
            timer: OnceLock::new(),
            limiter: self.limiter.unwrap_or_else(|| Box::new(default_controller_rate_limiter())),
            metrics,
            epoch: Instant::now(),
        });
        if let (Some(shared), Some(m)) = (&self.metrics, &inner.metrics) {
            let weak: std::sync::Weak<dyn UnfinishedWork> = Arc::downgrade(&inner) as std::sync::Weak<Inner<K>>;
            shared.watch_unfinished(m, weak);
        }
        WorkQueue { inner }
    }
}
