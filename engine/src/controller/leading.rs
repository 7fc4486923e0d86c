//! Reconciles only while leading: the gate a worker passes before each reconcile,
//! and the abort of the reconciles in flight when leadership ends.
//!
//! # Guarantees
//! * Without a [`Leadership`] nothing changes.
//! * A reconcile starts only if [`Leadership::is_leading`] is true at that instant;
//!   otherwise its key goes back to the queue and the worker waits for leadership
//!   (or the queue's shutdown).
//! * A reconcile in flight when leadership ends (its deadline, at the latest) is
//!   dropped at its next `.await`, logged with its key, counted
//!   (`aborted_on_leadership_loss`) and its key queued again for when this process
//!   leads again. Code between two `.await`s cannot be interrupted.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::key::ReconcileKey;
use super::runner::ControllerStats;
use crate::lease::Leadership;
use crate::queue::WorkQueue;

/// How often a worker waiting for leadership looks whether the queue shut down.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

/// Whether `key` may be reconciled now. When not leading, queues `key` again (the
/// queue re-adds it once the worker marks it done) and waits until this process
/// leads or the queue shuts down, then answers `false`.
pub(crate) async fn admit(leadership: Option<&Leadership>, queue: &WorkQueue<ReconcileKey>, key: &ReconcileKey) -> bool {
    let Some(leadership) = leadership else { return true };
    if leadership.is_leading() {
        return true;
    }
    queue.add(key.clone());
    let shut_down = async {
        while !queue.is_shutting_down() {
            tokio::time::sleep(SHUTDOWN_POLL).await;
        }
    };
    tokio::select! {
        () = leadership.leading() => {}
        () = shut_down => {}
    }
    false
}

/// Runs `reconcile` (the runner's `reconcile_one` for `key`) until it finishes or
/// leadership ends, whichever comes first.
pub(crate) async fn while_leading(
    leadership: Option<&Leadership>,
    stats: &ControllerStats,
    queue: &WorkQueue<ReconcileKey>,
    key: &ReconcileKey,
    reconcile: impl Future<Output = ()>,
) {
    let Some(leadership) = leadership else { return reconcile.await };
    let _held = leadership.hold();
    let mut reconcile = std::pin::pin!(reconcile);
    // One poll first, so the reconcile has started (and counted itself active)
    // before a loss can drop it; after that a loss wins every race: a process
    // that wakes from a pause past its deadline drops the reconcile before any
    // more of it runs.
    if futures::poll!(reconcile.as_mut()).is_ready() {
        return;
    }
    tokio::select! {
        biased;
        () = leadership.lost() => {
            stats.aborted_on_leadership_loss.fetch_add(1, Ordering::Relaxed);
            stats.active.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(controller = stats.name(), key = %key, "leadership lost; reconcile aborted");
            queue.add(key.clone());
            // The worker's next `admit` waits for leadership; yield anyway, so a
            // worker can never spin without giving its thread back.
            tokio::task::yield_now().await;
        }
        () = reconcile => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::Pod;

    use crate::controller::{Action, KeyController, ReconcileKey};
    use crate::lease::Leadership;

    const T: Duration = Duration::from_secs(30);

    async fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < T, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_wait_for_leadership_and_a_loss_aborts_the_reconcile_in_flight() {
        let (state, _held, leadership) = Leadership::channel();
        let controller = KeyController::new().workers(2).leader_election(leadership);
        let (queue, stats) = (controller.queue(), controller.stats());
        let started = Arc::new(AtomicU64::new(0));
        let finished = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn({
            let (started, finished) = (Arc::clone(&started), Arc::clone(&finished));
            controller.run(
                move |key: ReconcileKey| {
                    let (started, finished) = (Arc::clone(&started), Arc::clone(&finished));
                    async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        if key.name == "slow" {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                        }
                        finished.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, std::io::Error>(Action::Done)
                    }
                },
                async move {
                    let _ = stopped.await;
                },
            )
        });
        queue.add(ReconcileKey::of::<Pod>(Some("ns"), "fast"));
        // Not leading: the key is held back, nothing runs.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(started.load(Ordering::SeqCst), 0);

        state.send_modify(|s| s.leading_until = Some(Instant::now() + Duration::from_secs(3600)));
        wait_for("the held-back key", || finished.load(Ordering::SeqCst) == 1).await;

        queue.add(ReconcileKey::of::<Pod>(Some("ns"), "slow"));
        wait_for("the slow reconcile", || started.load(Ordering::SeqCst) == 2).await;
        state.send_modify(|s| s.leading_until = Some(Instant::now()));
        wait_for("the abort", || stats.aborted_on_leadership_loss.load(Ordering::SeqCst) == 1).await;
        assert_eq!(stats.active.load(Ordering::SeqCst), 0);
        assert_eq!(finished.load(Ordering::SeqCst), 1);

        // Leading again, the aborted key comes back.
        state.send_modify(|s| s.leading_until = Some(Instant::now() + Duration::from_secs(3600)));
        wait_for("the aborted key again", || started.load(Ordering::SeqCst) == 3).await;
        state.send_modify(|s| s.leading_until = None);
        wait_for("the second abort", || stats.aborted_on_leadership_loss.load(Ordering::SeqCst) == 2).await;
        stop.send(()).expect("running");
        tokio::time::timeout(T, run).await.expect("stops while not leading").expect("task");
    }
}
