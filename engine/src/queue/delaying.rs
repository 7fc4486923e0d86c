//! Delayed adds: a min-heap of deadlines served by one timer thread per queue.
//!
//! # Guarantees
//! * A key waits at most once: a second `add_after` of a waiting key keeps the
//!   earlier deadline (client-go `waitingForQueue`: "if the entry is already in
//!   the queue, update the time only if it is earlier").
//! * A zero delay adds immediately, on the caller's thread.
//! * The timer thread starts on the first non-zero delay, holds only a weak
//!   reference to the queue, and exits on shutdown or when the last handle drops.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::workqueue::{Inner, QueueKey, WorkQueue};
use crate::sync::atomic::Ordering;
use crate::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Far enough to mean "never" while still being a valid `Instant` (a rate
/// limiter answering `Duration::MAX`).
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

struct Waiting<K> {
    ready_at: Instant,
    /// Tie-break by insertion, so equal deadlines come out in add order; also
    /// identifies the live heap entry of a key (older ones are skipped).
    seq: u64,
    key: K,
}

impl<K> PartialEq for Waiting<K> {
    fn eq(&self, other: &Self) -> bool {
        self.ready_at == other.ready_at && self.seq == other.seq
    }
}
impl<K> Eq for Waiting<K> {}
impl<K> PartialOrd for Waiting<K> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Waiting<K> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest deadline on top.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.ready_at, other.seq).cmp(&(self.ready_at, self.seq))
    }
}

struct TimerState<K> {
    /// May hold stale entries (a key whose deadline was moved earlier): an entry
    /// is live iff `deadlines[key] == (ready_at, seq)`.
    heap: BinaryHeap<Waiting<K>>,
    /// The live deadline of every waiting key.
    deadlines: HashMap<K, (Instant, u64), hashbrown::DefaultHashBuilder>,
    seq: u64,
    stopped: bool,
}

/// The delayed-add scheduler of one queue.
pub(crate) struct Timer<K> {
    state: Mutex<TimerState<K>>,
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Heap and map updates complete before any user code (K's Hash/Eq/Clone) can
    // panic in a later call, so a poisoned lock still guards consistent data.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K> Timer<K> {
    pub(crate) fn stop(&self) {
        let mut st = lock(&self.state);
        st.stopped = true;
        st.heap.clear();
        st.deadlines.clear();
        drop(st);
        self.wake.notify_one();
    }
}

impl<K: QueueKey> Timer<K> {
    fn start(queue: Weak<Inner<K>>, name: &str) -> Option<Arc<Timer<K>>> {
        let timer = Arc::new(Timer {
            state: Mutex::new(TimerState {
                heap: BinaryHeap::new(),
                deadlines: HashMap::default(),
                seq: 0,
                stopped: false,
            }),
            wake: Condvar::new(),
        });
        let thread_timer = Arc::clone(&timer);
        let thread_name = if name.is_empty() { "kcache-wq-timer".to_owned() } else { format!("kcache-wq-timer-{name}") };
        match std::thread::Builder::new().name(thread_name).spawn(move || thread_timer.run(&queue)) {
            Ok(_) => Some(timer),
            Err(error) => {
                tracing::error!(%error, queue = name, "cannot start the work queue timer thread; delayed adds become immediate");
                None
            }
        }
    }

    fn schedule(&self, key: K, ready_at: Instant) {
        let mut st = lock(&self.state);
        if st.stopped {
            return;
        }
        if let Some(&(current, _)) = st.deadlines.get(&key)
            && current <= ready_at
        {
            return;
        }
        st.seq += 1;
        let seq = st.seq;
        st.deadlines.insert(key.clone(), (ready_at, seq));
        st.heap.push(Waiting { ready_at, seq, key });
        let new_head = st.heap.peek().is_some_and(|w| w.seq == seq);
        drop(st);
        if new_head {
            self.wake.notify_one();
        }
    }

    fn run(&self, queue: &Weak<Inner<K>>) {
        let mut ready = Vec::new();
        let mut st = lock(&self.state);
        loop {
            if st.stopped {
                return;
            }
            let now = Instant::now();
            while st.heap.peek().is_some_and(|w| w.ready_at <= now) {
                let Some(w) = st.heap.pop() else { break };
                if st.deadlines.get(&w.key) == Some(&(w.ready_at, w.seq)) {
                    st.deadlines.remove(&w.key);
                    ready.push(w.key);
                }
            }
            if !ready.is_empty() {
                // Add outside our lock: the queue's shard locks and wake-ups
                // must not nest inside it.
                drop(st);
                let Some(q) = queue.upgrade() else { return };
                for key in ready.drain(..) {
                    let _ = q.add(key);
                }
                drop(q);
                st = lock(&self.state);
                continue;
            }
            st = match st.heap.peek().map(|w| w.ready_at) {
                Some(at) => self.wake.wait_timeout(st, at.saturating_duration_since(now)).unwrap_or_else(PoisonError::into_inner).0,
                None => self.wake.wait(st).unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

impl<K: QueueKey> WorkQueue<K> {
    /// Adds `key` once `delay` has passed (client-go `AddAfter`).
    ///
    /// A zero delay adds now. If the key is already waiting, the earlier of the
    /// two deadlines wins. Ignored after shutdown; waiting keys are dropped on
    /// shutdown. Counts one `workqueue_retries_total`, as client-go does.
    /// Deadlines are on the real monotonic clock, met to within the OS timer
    /// slack (typically tens of microseconds).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use kcache::queue::WorkQueue;
    ///
    /// let q: WorkQueue<&str> = WorkQueue::new();
    /// let start = Instant::now();
    /// q.add_after("later", Duration::from_millis(20));
    /// assert_eq!(q.len(), 0);
    /// assert_eq!(q.get(), Some("later"));
    /// assert!(start.elapsed() >= Duration::from_millis(20));
    /// ```
    pub fn add_after(&self, key: K, delay: Duration) {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        if let Some(m) = &inner.metrics {
            m.retries.inc();
        }
        if delay.is_zero() {
            let _ = inner.add(key);
            return;
        }
        let now = Instant::now();
        let Some(ready_at) = now.checked_add(delay).or_else(|| now.checked_add(NEVER)) else {
            // Not representable at all: the key could never become ready.
            return;
        };
        let timer = inner.timer.get_or_init(|| Timer::start(Arc::downgrade(inner), &inner.name));
        match timer {
            Some(timer) => timer.schedule(key, ready_at),
            // No timer thread: adding now is better than losing the key.
            None => {
                let _ = inner.add(key);
            }
        }
    }
}
