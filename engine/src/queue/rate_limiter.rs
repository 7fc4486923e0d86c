//! Rate limiters that decide how long a failed key waits before it is retried.
//!
//! These are client-go's `util/workqueue/default_rate_limiters.go`, with the same
//! names, defaults and arithmetic:
//!
//! | kcache | client-go |
//! |---|---|
//! | [`ItemExponentialFailureRateLimiter`] | `ItemExponentialFailureRateLimiter` |
//! | [`BucketRateLimiter`] | `BucketRateLimiter` (`golang.org/x/time/rate.Limiter.Reserve`) |
//! | [`ItemFastSlowRateLimiter`] | `ItemFastSlowRateLimiter` |
//! | [`MaxOfRateLimiter`] | `MaxOfRateLimiter` |
//! | [`default_controller_rate_limiter`] | `DefaultTypedControllerRateLimiter` |
//!
//! # Guarantees
//! * No arithmetic overflows or panics, whatever the number of failures: the
//!   exponential limiter saturates at its maximum delay.
//! * Time comes from a [`Clock`], so tests can drive the token bucket with a
//!   [`FakeClock`] instead of sleeping.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Decides how long a key waits before it is retried, and counts its retries.
///
/// [`WorkQueue::add_rate_limited`](super::WorkQueue::add_rate_limited) calls
/// [`when`](RateLimiter::when) and schedules the key that far ahead;
/// [`WorkQueue::forget`](super::WorkQueue::forget) calls
/// [`forget`](RateLimiter::forget) once the key succeeded.
pub trait RateLimiter<K>: Send + Sync + 'static {
    /// How long `item` must wait now. Counts as one more failure for per-item
    /// limiters, and reserves a token for bucket limiters.
    fn when(&self, item: &K) -> Duration;

    /// Stops tracking `item`: its failure count goes back to zero. Call it when the
    /// key was processed successfully, whether or not it failed before.
    fn forget(&self, item: &K);

    /// How many times `item` has been rate limited since it was last forgotten.
    fn num_requeues(&self, item: &K) -> u32;
}

impl<K, R: RateLimiter<K> + ?Sized> RateLimiter<K> for Arc<R> {
    fn when(&self, item: &K) -> Duration {
        (**self).when(item)
    }
    fn forget(&self, item: &K) {
        (**self).forget(item);
    }
    fn num_requeues(&self, item: &K) -> u32 {
        (**self).num_requeues(item)
    }
}

impl<K, R: RateLimiter<K> + ?Sized> RateLimiter<K> for Box<R> {
    fn when(&self, item: &K) -> Duration {
        (**self).when(item)
    }
    fn forget(&self, item: &K) {
        (**self).forget(item);
    }
    fn num_requeues(&self, item: &K) -> u32 {
        (**self).num_requeues(item)
    }
}

/// A source of monotonic time, injectable so rate limiters are testable without
/// sleeping (client-go: `k8s.io/utils/clock`).
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock, [`Instant::now`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to; for deterministic tests.
///
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use kcache::queue::{Clock, FakeClock};
///
/// let clock = FakeClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now() - t0, Duration::from_millis(250));
/// ```
#[derive(Clone, Debug)]
pub struct FakeClock {
    now: Arc<Mutex<Instant>>,
}

impl FakeClock {
    /// A fake clock that starts at the real current instant.
    pub fn new() -> Self {
        FakeClock { now: Arc::new(Mutex::new(Instant::now())) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        // Saturate instead of panicking: a test that advances by Duration::MAX
        // simply parks the clock at the far future.
        if let Some(next) = now.checked_add(by) {
            *now = next;
        }
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        FakeClock::new()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the counters
    // half-updated (each update is a single store), so poisoning is ignored.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-item exponential backoff: `base * 2^failures`, capped at `max`.
///
/// The first [`when`](RateLimiter::when) for a key returns `base`, the next
/// `2 * base`, and so on; [`forget`](RateLimiter::forget) starts the key over.
/// Defaults (client-go): base 5 ms, max 1000 s.
///
/// ```
/// use std::time::Duration;
/// use kcache::queue::{ItemExponentialFailureRateLimiter, RateLimiter};
///
/// let rl = ItemExponentialFailureRateLimiter::new(Duration::from_millis(5), Duration::from_millis(30));
/// let ms = |d: Duration| d.as_millis();
/// assert_eq!(ms(rl.when(&"a")), 5);
/// assert_eq!(ms(rl.when(&"a")), 10);
/// assert_eq!(ms(rl.when(&"a")), 20);
/// assert_eq!(ms(rl.when(&"a")), 30); // capped
/// assert_eq!(rl.num_requeues(&"a"), 4);
/// rl.forget(&"a");
/// assert_eq!(ms(rl.when(&"a")), 5);
/// ```
pub struct ItemExponentialFailureRateLimiter<K> {
    failures: Mutex<HashMap<K, u32>>,
    base: Duration,
    max: Duration,
}

impl<K> ItemExponentialFailureRateLimiter<K> {
    /// A limiter that starts at `base` and doubles per failure up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        ItemExponentialFailureRateLimiter { failures: Mutex::new(HashMap::new()), base, max }
    }
}

impl<K> Default for ItemExponentialFailureRateLimiter<K> {
    /// client-go's defaults: 5 ms doubling up to 1000 s.
    fn default() -> Self {
        ItemExponentialFailureRateLimiter::new(Duration::from_millis(5), Duration::from_secs(1000))
    }
}

impl<K> fmt::Debug for ItemExponentialFailureRateLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemExponentialFailureRateLimiter")
            .field("base", &self.base)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// `base * 2^exp`, or `None` when it does not fit in a `Duration`.
fn exp_backoff(base: Duration, exp: u32) -> Option<Duration> {
    let nanos = base.as_nanos();
    if nanos == 0 {
        return Some(Duration::ZERO);
    }
    // The shift is exact only while it does not push a set bit out of the u128.
    if exp >= nanos.leading_zeros() {
        return None;
    }
    let nanos = nanos << exp;
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    // The remainder is below 1e9, so it always fits in u32.
    let sub = u32::try_from(nanos % 1_000_000_000).ok()?;
    Some(Duration::new(secs, sub))
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> RateLimiter<K> for ItemExponentialFailureRateLimiter<K> {
    fn when(&self, item: &K) -> Duration {
        let exp = {
            let mut failures = lock(&self.failures);
            let count = match failures.get_mut(item) {
                Some(count) => count,
                None => failures.entry(item.clone()).or_insert(0),
            };
            let exp = *count;
            *count = count.saturating_add(1);
            exp
        };
        // client-go: "The backoff is capped such that 'calculated' value never
        // overflows"; beyond the representable range the answer is max.
        match exp_backoff(self.base, exp) {
            Some(backoff) => backoff.min(self.max),
            None => self.max,
        }
    }

    fn forget(&self, item: &K) {
        lock(&self.failures).remove(item);
    }

    fn num_requeues(&self, item: &K) -> u32 {
        lock(&self.failures).get(item).copied().unwrap_or(0)
    }
}

/// `fast` delay for the first `max_fast_attempts` failures of a key, then `slow`.
///
/// ```
/// use std::time::Duration;
/// use kcache::queue::{ItemFastSlowRateLimiter, RateLimiter};
///
/// let rl = ItemFastSlowRateLimiter::new(Duration::from_millis(5), Duration::from_secs(10), 2);
/// assert_eq!(rl.when(&1), Duration::from_millis(5));
/// assert_eq!(rl.when(&1), Duration::from_millis(5));
/// assert_eq!(rl.when(&1), Duration::from_secs(10));
/// ```
pub struct ItemFastSlowRateLimiter<K> {
    attempts: Mutex<HashMap<K, u32>>,
    fast: Duration,
    slow: Duration,
    max_fast_attempts: u32,
}

impl<K> ItemFastSlowRateLimiter<K> {
    /// A limiter answering `fast` for the first `max_fast_attempts` calls per key,
    /// then `slow`.
    pub fn new(fast: Duration, slow: Duration, max_fast_attempts: u32) -> Self {
        ItemFastSlowRateLimiter { attempts: Mutex::new(HashMap::new()), fast, slow, max_fast_attempts }
    }
}

impl<K> fmt::Debug for ItemFastSlowRateLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemFastSlowRateLimiter")
            .field("fast", &self.fast)
            .field("slow", &self.slow)
            .field("max_fast_attempts", &self.max_fast_attempts)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> RateLimiter<K> for ItemFastSlowRateLimiter<K> {
    fn when(&self, item: &K) -> Duration {
        let attempts = {
            let mut attempts = lock(&self.attempts);
            let count = match attempts.get_mut(item) {
                Some(count) => count,
                None => attempts.entry(item.clone()).or_insert(0),
            };
            *count = count.saturating_add(1);
            *count
        };
        if attempts <= self.max_fast_attempts { self.fast } else { self.slow }
    }

    fn forget(&self, item: &K) {
        lock(&self.attempts).remove(item);
    }

    fn num_requeues(&self, item: &K) -> u32 {
        lock(&self.attempts).get(item).copied().unwrap_or(0)
    }
}

/// An overall token bucket shared by all keys: `qps` tokens per second, at most
/// `burst` saved up; the bucket starts full.
///
/// [`when`](RateLimiter::when) reserves one token and returns how long until that
/// token exists, exactly like `golang.org/x/time/rate.Limiter.Reserve().Delay()`:
/// the first `burst` calls return zero, later ones are spaced `1/qps` apart. It
/// does not track keys, so `num_requeues` is always 0 and `forget` does nothing.
///
/// Edge cases follow x/time/rate: an infinite `qps` never delays; a `qps` of zero
/// (or negative, or NaN) admits the burst and then answers [`Duration::MAX`],
/// which the queue treats as "never".
///
/// ```
/// use std::time::Duration;
/// use kcache::queue::{BucketRateLimiter, FakeClock, RateLimiter};
///
/// let clock = FakeClock::new();
/// let rl = BucketRateLimiter::with_clock(10.0, 2, clock.clone());
/// assert_eq!(RateLimiter::<u8>::when(&rl, &0), Duration::ZERO);
/// assert_eq!(RateLimiter::<u8>::when(&rl, &0), Duration::ZERO);
/// assert_eq!(RateLimiter::<u8>::when(&rl, &0), Duration::from_millis(100));
/// assert_eq!(RateLimiter::<u8>::when(&rl, &0), Duration::from_millis(200));
/// ```
pub struct BucketRateLimiter<C: Clock = SystemClock> {
    bucket: Mutex<Bucket>,
    qps: f64,
    burst: u32,
    clock: C,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens available at `last`; negative when reservations ran ahead.
    tokens: f64,
    last: Instant,
}

impl BucketRateLimiter<SystemClock> {
    /// A bucket of `qps` tokens per second with room for `burst`, on the real clock.
    pub fn new(qps: f64, burst: u32) -> Self {
        BucketRateLimiter::with_clock(qps, burst, SystemClock)
    }
}

impl Default for BucketRateLimiter<SystemClock> {
    /// client-go's default controller bucket: 10 qps, burst 100.
    fn default() -> Self {
        BucketRateLimiter::new(10.0, 100)
    }
}

impl<C: Clock> BucketRateLimiter<C> {
    /// A bucket of `qps` tokens per second with room for `burst`, on `clock`.
    pub fn with_clock(qps: f64, burst: u32, clock: C) -> Self {
        let qps = if qps.is_nan() || qps < 0.0 { 0.0 } else { qps };
        let last = clock.now();
        BucketRateLimiter { bucket: Mutex::new(Bucket { tokens: f64::from(burst), last }), qps, burst, clock }
    }

    /// Reserves one token and returns how long until it is available.
    pub fn reserve(&self) -> Duration {
        if self.qps == f64::INFINITY {
            return Duration::ZERO;
        }
        let now = self.clock.now();
        let mut b = lock(&self.bucket);
        // x/time/rate `advance`: a clock that went backwards adds nothing.
        let elapsed = now.saturating_duration_since(b.last);
        let burst = f64::from(self.burst);
        if self.qps > 0.0 {
            b.tokens = (b.tokens + elapsed.as_secs_f64() * self.qps).min(burst);
        }
        if now > b.last {
            b.last = now;
        }
        if self.qps == 0.0 {
            // x/time/rate: a zero limit allows only the burst, once.
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return Duration::ZERO;
            }
            return Duration::MAX;
        }
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(-b.tokens / self.qps).unwrap_or(Duration::MAX)
    }
}

impl<C: Clock> fmt::Debug for BucketRateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketRateLimiter").field("qps", &self.qps).field("burst", &self.burst).finish_non_exhaustive()
    }
}

impl<K, C: Clock> RateLimiter<K> for BucketRateLimiter<C> {
    fn when(&self, _item: &K) -> Duration {
        self.reserve()
    }
    fn forget(&self, _item: &K) {}
    fn num_requeues(&self, _item: &K) -> u32 {
        0
    }
}

/// The worst (longest) answer of several limiters.
///
/// Every inner limiter sees every call (so each one's state advances), and
/// `num_requeues` is the largest of theirs, as in client-go.
///
/// ```
/// use std::time::Duration;
/// use kcache::queue::{ItemFastSlowRateLimiter, MaxOfRateLimiter, RateLimiter};
///
/// let rl = MaxOfRateLimiter::new(vec![
///     Box::new(ItemFastSlowRateLimiter::new(Duration::from_millis(1), Duration::from_secs(1), 1)),
///     Box::new(ItemFastSlowRateLimiter::new(Duration::from_millis(7), Duration::from_millis(7), 1)),
/// ]);
/// assert_eq!(rl.when(&"k"), Duration::from_millis(7));
/// assert_eq!(rl.when(&"k"), Duration::from_secs(1));
/// ```
pub struct MaxOfRateLimiter<K> {
    limiters: Vec<Box<dyn RateLimiter<K>>>,
}

impl<K> MaxOfRateLimiter<K> {
    /// Combines `limiters`; with none, every delay is zero.
    pub fn new(limiters: Vec<Box<dyn RateLimiter<K>>>) -> Self {
        MaxOfRateLimiter { limiters }
    }
}

impl<K> fmt::Debug for MaxOfRateLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaxOfRateLimiter").field("limiters", &self.limiters.len()).finish()
    }
}

impl<K: 'static> RateLimiter<K> for MaxOfRateLimiter<K> {
    fn when(&self, item: &K) -> Duration {
        self.limiters.iter().map(|l| l.when(item)).max().unwrap_or(Duration::ZERO)
    }

    fn forget(&self, item: &K) {
        for l in &self.limiters {
            l.forget(item);
        }
    }

    fn num_requeues(&self, item: &K) -> u32 {
        self.limiters.iter().map(|l| l.num_requeues(item)).max().unwrap_or(0)
    }
}

/// client-go's `DefaultTypedControllerRateLimiter`: the max of per-item
/// exponential backoff (5 ms doubling to 1000 s) and an overall token bucket
/// (10 qps, burst 100).
///
/// The bucket only matters under mass failure: it keeps the retry rate of the
/// whole queue at 10/s once 100 retries have been spent.
///
/// ```
/// use std::time::Duration;
/// use kcache::queue::{default_controller_rate_limiter, RateLimiter};
///
/// let rl = default_controller_rate_limiter::<String>();
/// assert_eq!(rl.when(&"a".to_string()), Duration::from_millis(5));
/// assert_eq!(rl.when(&"a".to_string()), Duration::from_millis(10));
/// ```
pub fn default_controller_rate_limiter<K: Hash + Eq + Clone + Send + Sync + 'static>() -> MaxOfRateLimiter<K> {
    MaxOfRateLimiter::new(vec![
        Box::new(ItemExponentialFailureRateLimiter::<K>::default()),
        Box::new(BucketRateLimiter::default()),
    ])
}
