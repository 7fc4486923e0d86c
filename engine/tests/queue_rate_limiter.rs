//! Rate limiters (client-go default_rate_limiters.go), on an injected clock.

use std::time::Duration;

use kcache::queue::{
    BucketRateLimiter, FakeClock, ItemExponentialFailureRateLimiter, ItemFastSlowRateLimiter, MaxOfRateLimiter,
    RateLimiter, default_controller_rate_limiter,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn exponential_backoff_doubles_from_5ms_and_caps_at_max() {
    let rl = ItemExponentialFailureRateLimiter::new(ms(5), ms(100));
    let got: Vec<_> = (0..8).map(|_| rl.when(&"k")).collect();
    assert_eq!(got, vec![ms(5), ms(10), ms(20), ms(40), ms(80), ms(100), ms(100), ms(100)]);
    assert_eq!(rl.num_requeues(&"k"), 8);
}

#[test]
fn exponential_backoff_is_tracked_per_key() {
    let rl = ItemExponentialFailureRateLimiter::new(ms(5), ms(1000));
    assert_eq!(rl.when(&"a"), ms(5));
    assert_eq!(rl.when(&"a"), ms(10));
    assert_eq!(rl.when(&"b"), ms(5));
    assert_eq!(rl.num_requeues(&"a"), 2);
    assert_eq!(rl.num_requeues(&"b"), 1);
}

#[test]
fn exponential_backoff_defaults_to_5ms_up_to_1000s() {
    let rl = ItemExponentialFailureRateLimiter::<u8>::default();
    assert_eq!(rl.when(&0), ms(5));
    for _ in 0..30 {
        rl.when(&0);
    }
    assert_eq!(rl.when(&0), Duration::from_secs(1000));
}

#[test]
fn exponential_backoff_saturates_instead_of_overflowing() {
    let rl = ItemExponentialFailureRateLimiter::new(Duration::from_secs(1), Duration::MAX);
    let mut last = Duration::ZERO;
    for _ in 0..300 {
        let d = rl.when(&1u32);
        assert!(d >= last, "backoff went down: {d:?} < {last:?}");
        last = d;
    }
    assert_eq!(last, Duration::MAX);
}

#[test]
fn forget_resets_the_backoff() {
    let rl = ItemExponentialFailureRateLimiter::new(ms(5), ms(1000));
    rl.when(&"k");
    rl.when(&"k");
    rl.forget(&"k");
    assert_eq!(rl.num_requeues(&"k"), 0);
    assert_eq!(rl.when(&"k"), ms(5));
}

#[test]
fn bucket_limiter_admits_the_burst_then_spaces_at_the_rate() {
    let clock = FakeClock::new();
    let rl = BucketRateLimiter::with_clock(10.0, 3, clock.clone());
    let when = |rl: &BucketRateLimiter<FakeClock>| RateLimiter::<u8>::when(rl, &0);
    assert_eq!(when(&rl), Duration::ZERO);
    assert_eq!(when(&rl), Duration::ZERO);
    assert_eq!(when(&rl), Duration::ZERO);
    // Reservations pile up 100 ms apart.
    assert_eq!(when(&rl), ms(100));
    assert_eq!(when(&rl), ms(200));
    // After 200 ms both reserved tokens exist; the next one is 100 ms away.
    clock.advance(ms(200));
    assert_eq!(when(&rl), ms(100));
    // After a long idle period the bucket is full again, but never above burst.
    clock.advance(Duration::from_secs(60));
    for _ in 0..3 {
        assert_eq!(when(&rl), Duration::ZERO);
    }
    assert_eq!(when(&rl), ms(100));
    assert_eq!(RateLimiter::<u8>::num_requeues(&rl, &0), 0);
}

#[test]
fn bucket_limiter_with_zero_rate_admits_only_the_burst() {
    let rl = BucketRateLimiter::with_clock(0.0, 1, FakeClock::new());
    assert_eq!(RateLimiter::<u8>::when(&rl, &0), Duration::ZERO);
    assert_eq!(RateLimiter::<u8>::when(&rl, &0), Duration::MAX);
}

#[test]
fn max_of_picks_the_larger_delay() {
    let clock = FakeClock::new();
    let rl: MaxOfRateLimiter<&str> = MaxOfRateLimiter::new(vec![
        Box::new(ItemExponentialFailureRateLimiter::new(ms(5), ms(1000))),
        Box::new(BucketRateLimiter::with_clock(10.0, 1, clock)),
    ]);
    // Bucket admits the first at once; exponential says 5 ms.
    assert_eq!(rl.when(&"a"), ms(5));
    // Bucket now says 100 ms, exponential 10 ms.
    assert_eq!(rl.when(&"a"), ms(100));
    assert_eq!(rl.num_requeues(&"a"), 2);
    rl.forget(&"a");
    assert_eq!(rl.num_requeues(&"a"), 0);
}

#[test]
fn fast_slow_switches_after_n_attempts() {
    let rl = ItemFastSlowRateLimiter::new(ms(5), Duration::from_secs(10), 3);
    let got: Vec<_> = (0..5).map(|_| rl.when(&"k")).collect();
    assert_eq!(got, vec![ms(5), ms(5), ms(5), Duration::from_secs(10), Duration::from_secs(10)]);
    assert_eq!(rl.num_requeues(&"k"), 5);
    rl.forget(&"k");
    assert_eq!(rl.when(&"k"), ms(5));
}

#[test]
fn default_controller_rate_limiter_backs_off_per_key_and_caps_the_overall_rate() {
    let rl = default_controller_rate_limiter::<u32>();
    assert_eq!(rl.when(&0), ms(5));
    assert_eq!(rl.when(&0), ms(10));
    // 98 more distinct keys spend the rest of the burst of 100 at 5 ms each...
    for k in 1..99 {
        assert_eq!(rl.when(&k), ms(5));
    }
    // ...and then the 10 qps bucket dominates for a fresh key (the real clock
    // moved a little, so allow some slack below 100 ms).
    let d = rl.when(&1000);
    assert!(d > ms(50) && d <= ms(100), "got {d:?}");
}
