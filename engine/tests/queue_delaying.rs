//! Delayed and rate-limited adds (client-go delaying_queue.go, rate_limiting_queue.go).

use std::time::{Duration, Instant};

use kcache::queue::{ItemExponentialFailureRateLimiter, ItemFastSlowRateLimiter, WorkQueue};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn add_after_hands_out_keys_in_deadline_order() {
    let q: WorkQueue<&str> = WorkQueue::new();
    q.add_after("c", ms(90));
    q.add_after("a", ms(30));
    q.add_after("b", ms(60));
    assert_eq!(q.len(), 0, "nothing is ready before its deadline");
    let order: Vec<_> = (0..3).map(|_| q.get().unwrap()).collect();
    assert_eq!(order, vec!["a", "b", "c"]);
}

#[test]
fn a_key_is_not_handed_out_before_its_delay() {
    let q: WorkQueue<u8> = WorkQueue::new();
    let start = Instant::now();
    q.add_after(1, ms(50));
    assert_eq!(q.get(), Some(1));
    assert!(start.elapsed() >= ms(50));
}

#[test]
fn the_earliest_deadline_wins_for_the_same_key() {
    let q: WorkQueue<&str> = WorkQueue::new();
    let start = Instant::now();
    q.add_after("k", ms(2_000));
    q.add_after("k", ms(40));
    q.add_after("k", ms(1_000)); // later: ignored
    assert_eq!(q.get(), Some("k"));
    let waited = start.elapsed();
    assert!(waited >= ms(40) && waited < ms(900), "waited {waited:?}");
    q.done(&"k");
    // The later deadlines were merged into the earliest one: no second delivery.
    std::thread::sleep(ms(60));
    assert_eq!(q.try_get(), None);
}

#[test]
fn a_zero_delay_adds_immediately() {
    let q: WorkQueue<u8> = WorkQueue::new();
    q.add_after(1, Duration::ZERO);
    assert_eq!(q.len(), 1);
}

#[test]
fn shutdown_drops_keys_still_waiting() {
    let q: WorkQueue<u8> = WorkQueue::new();
    q.add_after(1, ms(30));
    q.shutdown();
    std::thread::sleep(ms(60));
    assert_eq!(q.get(), None);
}

#[test]
fn add_rate_limited_waits_for_the_limiter_delay() {
    let q: WorkQueue<&str> = WorkQueue::builder()
        .rate_limiter(ItemFastSlowRateLimiter::new(ms(20), ms(5_000), 1))
        .build();
    let start = Instant::now();
    q.add_rate_limited("k");
    assert_eq!(q.len(), 0);
    assert_eq!(q.get(), Some("k"));
    assert!(start.elapsed() >= ms(20));
    assert_eq!(q.num_requeues(&"k"), 1);
}

#[test]
fn forget_resets_the_requeue_count_of_the_queue() {
    let q: WorkQueue<&str> = WorkQueue::builder()
        .rate_limiter(ItemExponentialFailureRateLimiter::new(ms(1), ms(10)))
        .build();
    q.add_rate_limited("k");
    q.add_rate_limited("k");
    assert_eq!(q.num_requeues(&"k"), 2);
    q.forget(&"k");
    assert_eq!(q.num_requeues(&"k"), 0);
}

#[test]
fn the_default_rate_limiter_backs_off_per_key() {
    let q: WorkQueue<String> = WorkQueue::new();
    for _ in 0..3 {
        q.add_rate_limited("a".to_string());
    }
    assert_eq!(q.num_requeues(&"a".to_string()), 3);
    assert_eq!(q.num_requeues(&"b".to_string()), 0);
}
