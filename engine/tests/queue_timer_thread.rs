//! The delayed-add timer thread lives only as long as the queue (its own binary,
//! so no other test's timer threads are counted).

use std::time::{Duration, Instant};

use kcache::queue::WorkQueue;

/// Threads of this process whose name starts like the queue's timer thread
/// (Linux truncates names to 15 bytes: "kcache-wq-timer").
fn timer_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("kcache-wq-timer"))
        .count()
}

/// Polls until `timer_threads() == n` (threads name themselves once running).
fn wait_for(n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    while timer_threads() != n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    timer_threads()
}

#[test]
fn the_timer_thread_starts_on_the_first_delay_and_exits_when_the_queue_is_dropped() {
    if !std::path::Path::new("/proc/self/task").exists() {
        return; // not Linux: nothing to observe
    }
    let q: WorkQueue<u8> = WorkQueue::new();
    q.add(0);
    assert_eq!(timer_threads(), 0, "no timer thread without a delayed add");
    q.add_after(1, Duration::from_secs(3600));
    assert_eq!(wait_for(1), 1);
    let clone = q.clone();
    drop(q);
    assert_eq!(timer_threads(), 1, "a live clone keeps the queue and its timer");
    drop(clone);
    assert_eq!(wait_for(0), 0, "the timer thread outlived its queue");
}
