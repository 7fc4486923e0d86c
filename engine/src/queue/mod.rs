//! A client-go compatible workqueue with rate limiters.
//!
//! Event handlers [`add`](WorkQueue::add) keys; workers [`get`](WorkQueue::get)
//! a key, reconcile it, and call [`done`](WorkQueue::done). A failed key goes
//! back through [`add_rate_limited`](WorkQueue::add_rate_limited) (per-key
//! exponential backoff, overall token bucket), a successful one is
//! [`forget`](WorkQueue::forget)ten.
//!
//! # Guarantees
//! The rules of client-go's `util/workqueue` (`queue.go`, `delaying_queue.go`,
//! `rate_limiting_queue.go`), on one type:
//! * **Stingy**: a key waiting in the queue is there once, however often it is added.
//! * **One worker per key**: a key is never handed to two workers at once; an add
//!   while it is processing is kept, and the key is queued again on `done`.
//! * **Fair**: FIFO in order of first add (per shard, when sharded).
//! * **Shutdown**: adds are ignored, queued keys are still handed out, then every
//!   getter gets `None`; `shutdown_with_drain` also waits for processing keys.
//! * **Delays**: `add_after` keeps the earliest deadline per waiting key.
//!
//! # Usage
//! ```
//! use std::thread;
//! use kcache::queue::WorkQueue;
//!
//! let queue: WorkQueue<String> = WorkQueue::builder().name("pods").build();
//! let worker = {
//!     let queue = queue.clone();
//!     thread::spawn(move || {
//!         let mut seen = Vec::new();
//!         while let Some(key) = queue.get() {
//!             // reconcile(&key) ... on error: queue.add_rate_limited(key.clone())
//!             queue.forget(&key);
//!             queue.done(&key);
//!             seen.push(key);
//!         }
//!         seen
//!     })
//! };
//! queue.add("default/web".to_string());
//! queue.shutdown_with_drain();
//! # // shutdown may win the race against the worker's first get; either way
//! # // the queued key is still handed out before get returns None.
//! assert_eq!(worker.join().unwrap(), vec!["default/web".to_string()]);
//! ```
//!
//! # Differences from client-go, and why
//! * One type does it all: client-go layers `Interface`, `DelayingInterface` and
//!   `RateLimitingInterface`; kcache's [`WorkQueue`] has every method, and the
//!   delay machinery (a timer thread) only starts on the first delayed add.
//! * `get` blocks a thread; [`WorkQueue::get_async`] is the async twin. Neither
//!   needs a Tokio runtime.
//! * `done` on a key that was never handed out is ignored; client-go would push a
//!   duplicate into its queue, breaking its own stingy rule.
//! * [`WorkQueue::try_add`] hands the key back when shutting down (client-go's
//!   `Add` drops it silently, as [`WorkQueue::add`] does).
//! * Optional sharding ([`WorkQueueBuilder::shards`]): per-shard locks by key
//!   hash with work stealing; the per-key rules stay exact, FIFO becomes per
//!   shard. One shard (the default) is client-go's global FIFO.
//! * The unfinished-work gauges are computed at scrape time rather than every
//!   500 ms by a goroutine (see [`WorkQueueMetrics`]).
//! * Delays use the real monotonic clock; the rate limiters take an injectable
//!   [`Clock`].

//! # Performance
//! `bench/benches/workqueue.rs` measures add+get+done with two worker threads
//! against a naive port of client-go (one `Mutex` over a `VecDeque` and std
//! `HashSet`s, a condvar signalled on every push). What makes the difference:
//! * adders skip the wake-up entirely unless a getter is asleep (a Dekker-style
//!   pair of `SeqCst` counters instead of a condvar signal per push);
//! * one hash table per shard holds the key's whole state (queued, processing,
//!   processing+dirty), hashed once with foldhash, instead of two `HashSet`s;
//! * `get` hands out the FIFO's own copy of the key: one clone per add, none per
//!   `get` or `done`;
//! * metrics are an `Option`: a queue without them reads no clock.
//!
//! Sharding did not pay off at two workers on two cores (1, 2 and 4 shards were
//! within the noise of each other), so the default stays one shard, which keeps
//! client-go's exact global FIFO; raise it for many workers on many cores.
//!
mod delaying;
pub mod error;
mod metrics;
mod rate_limiter;
mod workqueue;

pub use error::AddError;
pub use metrics::{WorkQueueMetrics, render};
pub use rate_limiter::{
    BucketRateLimiter, Clock, FakeClock, ItemExponentialFailureRateLimiter, ItemFastSlowRateLimiter,
    MaxOfRateLimiter, RateLimiter, SystemClock, default_controller_rate_limiter,
};
pub use workqueue::{QueueKey, WorkQueue, WorkQueueBuilder};
