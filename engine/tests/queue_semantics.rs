//! client-go workqueue rules: stingy, one worker per key, fair, shutdown.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kcache::queue::{AddError, WorkQueue};

fn queue(shards: usize) -> WorkQueue<u32> {
    WorkQueue::builder().name("test").shards(shards).build()
}

#[test]
fn three_adds_of_the_same_key_are_processed_once() {
    let q = queue(1);
    q.add(1);
    q.add(1);
    q.add(1);
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_get(), Some(1));
    q.done(&1);
    assert_eq!(q.try_get(), None);
    assert!(q.is_empty());
}

#[test]
fn an_add_during_processing_is_handed_out_again_only_after_done() {
    let q = queue(1);
    q.add(7);
    assert_eq!(q.try_get(), Some(7));
    q.add(7);
    q.add(7);
    // Processing: the re-add is remembered but not handed out.
    assert_eq!(q.len(), 0);
    assert_eq!(q.try_get(), None);
    q.done(&7);
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_get(), Some(7));
    q.done(&7);
    assert_eq!(q.try_get(), None);
}

#[test]
fn keys_come_out_in_the_order_they_were_first_added() {
    let q = queue(1);
    for k in [5, 3, 9, 3, 5, 1] {
        q.add(k);
    }
    let order: Vec<u32> = std::iter::from_fn(|| q.try_get()).collect();
    assert_eq!(order, vec![5, 3, 9, 1]);
}

#[test]
fn a_sharded_queue_hands_out_every_key_once() {
    let q = queue(4);
    for k in 0..1000 {
        q.add(k);
        q.add(k);
    }
    assert_eq!(q.len(), 1000);
    let mut got: Vec<u32> = std::iter::from_fn(|| q.try_get()).collect();
    got.sort_unstable();
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
}

#[test]
fn done_on_a_key_that_was_never_handed_out_is_ignored() {
    let q = queue(1);
    q.done(&3);
    q.add(3);
    q.done(&3); // queued, not processing: must not duplicate it
    assert_eq!(q.len(), 1);
    assert_eq!(q.try_get(), Some(3));
    assert_eq!(q.try_get(), None);
}

/// Workers hammer a small key space while producers keep re-adding keys; a
/// per-key in-flight flag catches any key handed to two workers at once, and
/// every add made while a key was processing must lead to one more processing.
fn stress(shards: usize, workers: usize) {
    const KEYS: u32 = 16;
    const ADDS: u32 = 20_000;
    let q = queue(shards);
    let in_flight: Arc<Vec<AtomicBool>> = Arc::new((0..KEYS).map(|_| AtomicBool::new(false)).collect());
    let overlaps = Arc::new(AtomicUsize::new(0));
    let processed = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (q, in_flight, overlaps, processed) =
                (q.clone(), Arc::clone(&in_flight), Arc::clone(&overlaps), Arc::clone(&processed));
            thread::spawn(move || {
                while let Some(k) = q.get() {
                    if in_flight[k as usize].swap(true, Ordering::SeqCst) {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    for _ in 0..50 {
                        std::hint::spin_loop();
                    }
                    in_flight[k as usize].store(false, Ordering::SeqCst);
                    processed.fetch_add(1, Ordering::SeqCst);
                    q.done(&k);
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let q = q.clone();
            thread::spawn(move || {
                for i in 0..ADDS {
                    q.add((i * 7 + p) % KEYS);
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    // Wait until every key settled, then stop the workers.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !q.is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    q.shutdown_with_drain();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "a key was processed by two workers at once");
    assert!(q.is_empty());
    let n = processed.load(Ordering::SeqCst);
    // At least every key once, at most once per add.
    assert!(n >= KEYS as usize && n <= 2 * ADDS as usize, "processed {n}");
}

#[test]
fn a_key_is_never_processed_by_two_workers_at_once_with_one_shard() {
    stress(1, 4);
}

#[test]
fn a_key_is_never_processed_by_two_workers_at_once_with_four_shards() {
    stress(4, 3);
}

#[test]
fn an_add_racing_with_processing_is_never_lost() {
    // Each round: a worker holds key 0; the main thread adds it; after done
    // the key must come back exactly once.
    let q = queue(2);
    for round in 0..200 {
        q.add(0);
        let k = q.get().unwrap();
        let adder = {
            let q = q.clone();
            thread::spawn(move || q.add(0))
        };
        adder.join().unwrap();
        q.done(&k);
        let again = q.try_get();
        assert_eq!(again, Some(0), "round {round}");
        q.done(&0);
        assert!(q.try_get().is_none());
    }
}

#[test]
fn shutdown_returns_none_to_blocked_getters() {
    let q = queue(2);
    let getters: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            thread::spawn(move || q.get())
        })
        .collect();
    thread::sleep(Duration::from_millis(50));
    q.shutdown();
    for g in getters {
        assert_eq!(g.join().unwrap(), None);
    }
    assert!(q.is_shutting_down());
}

#[tokio::test]
async fn shutdown_returns_none_to_async_getters() {
    let q = queue(1);
    let getter = tokio::spawn({
        let q = q.clone();
        async move { q.get_async().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    q.shutdown();
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), getter).await.unwrap().unwrap(), None);
}

#[tokio::test]
async fn get_async_returns_a_key_added_later() {
    let q = queue(1);
    let getter = tokio::spawn({
        let q = q.clone();
        async move { q.get_async().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    q.add(42);
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), getter).await.unwrap().unwrap(), Some(42));
}

#[tokio::test]
async fn a_cancelled_get_async_takes_no_key() {
    let q = queue(1);
    let r = tokio::time::timeout(Duration::from_millis(10), q.get_async()).await;
    assert!(r.is_err());
    q.add(1);
    assert_eq!(q.len(), 1);
    assert_eq!(q.get_async().await, Some(1));
}

#[test]
fn shutdown_still_hands_out_queued_keys_then_none() {
    let q = queue(1);
    q.add(1);
    q.add(2);
    q.shutdown();
    assert_eq!(q.get(), Some(1));
    assert_eq!(q.get(), Some(2));
    assert_eq!(q.get(), None);
}

#[test]
fn adds_after_shutdown_are_ignored() {
    let q = queue(1);
    q.shutdown();
    q.add(1);
    q.add_after(2, Duration::from_millis(1));
    q.add_rate_limited(3);
    assert_eq!(q.len(), 0);
    assert_eq!(q.try_add(4), Err(AddError::ShuttingDown(4)));
    assert_eq!(q.get(), None);
}

#[test]
fn a_key_dirty_while_processing_is_requeued_by_done_even_after_shutdown() {
    // client-go: Done pushes a dirty key back even while shutting down, and Get
    // hands it out before reporting shutdown.
    let q = queue(1);
    q.add(1);
    let k = q.get().unwrap();
    q.add(1);
    q.shutdown();
    q.done(&k);
    assert_eq!(q.get(), Some(1));
    q.done(&1);
    assert_eq!(q.get(), None);
}

#[test]
fn shutdown_with_drain_waits_for_in_flight_items_to_be_done() {
    let q = queue(1);
    q.add(1);
    let k = q.get().unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    let worker = {
        let (q, finished) = (q.clone(), Arc::clone(&finished));
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            finished.store(true, Ordering::SeqCst);
            q.done(&k);
        })
    };
    let start = Instant::now();
    q.shutdown_with_drain();
    assert!(finished.load(Ordering::SeqCst), "drain returned before the item was done");
    assert!(start.elapsed() >= Duration::from_millis(90));
    worker.join().unwrap();
}

#[test]
fn shutdown_cuts_a_waiting_drain_short() {
    let q = queue(1);
    q.add(1);
    let _k = q.get().unwrap();
    let drainer = {
        let q = q.clone();
        thread::spawn(move || q.shutdown_with_drain())
    };
    thread::sleep(Duration::from_millis(30));
    assert!(!drainer.is_finished());
    q.shutdown();
    drainer.join().unwrap();
}

#[test]
fn shutdown_with_drain_returns_at_once_when_nothing_is_processing() {
    let q = queue(1);
    q.add(1); // queued, not processing: not waited for
    let start = Instant::now();
    q.shutdown_with_drain();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(q.get(), Some(1));
}

#[test]
fn a_blocking_get_inside_another_executor_does_not_panic() {
    let q = queue(1);
    let adder = {
        let q = q.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            q.add(5);
        })
    };
    // futures' own block_on would panic when nested; the queue's must not.
    let got = futures::executor::block_on(async { q.get() });
    assert_eq!(got, Some(5));
    adder.join().unwrap();
}
