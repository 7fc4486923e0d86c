//! [`Leadership`]: a cheap, cloneable view of whether this process leads, read
//! against the renew deadline on the local monotonic clock.
//!
//! # Guarantees
//! * [`Leadership::is_leading`] is true only while `now` is before the deadline the
//!   elector set at its last successful acquire or renew: the START of that request
//!   plus the renew deadline. A process paused past it is not leading when it wakes,
//!   whatever its elector task has not yet noticed, until it renews again.
//! * [`Leadership::lost`] resolves at that deadline at the latest.
//! * Work held with [`Leadership::hold`] is waited for (up to the renew deadline)
//!   before a graceful shutdown releases the lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::{Notify, watch};

/// What the elector publishes.
#[derive(Clone, Debug, Default)]
pub(crate) struct State {
    /// Leading until this instant (exclusive); `None` when not leading.
    pub(crate) leading_until: Option<Instant>,
    /// The holder last observed in the lease (this process's identity included).
    pub(crate) leader: Option<String>,
}

/// Work running under leadership, counted for a release that waits for it.
#[derive(Debug, Default)]
pub(crate) struct Held {
    count: AtomicUsize,
    idle: Notify,
}

impl Held {
    /// Waits until no [`LeadingWork`] is alive.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Whether this process leads: a handle on a [`LeaderElector`](super::LeaderElector)'s
/// state, cheap to clone and to ask.
#[derive(Clone, Debug)]
pub struct Leadership {
    state: watch::Receiver<State>,
    held: Arc<Held>,
}

impl Leadership {
    pub(crate) fn channel() -> (watch::Sender<State>, Arc<Held>, Leadership) {
        let (tx, rx) = watch::channel(State::default());
        let held = Arc::new(Held::default());
        (tx, Arc::clone(&held), Leadership { state: rx, held })
    }

    /// Whether this process leads now.
    pub fn is_leading(&self) -> bool {
        self.leading_until().is_some_and(|until| Instant::now() < until)
    }

    /// The instant leadership ends unless renewed before it (`None`: not leading).
    pub fn leading_until(&self) -> Option<Instant> {
        self.state.borrow().leading_until
    }

    /// The holder of the lease as last observed (client-go's `GetLeader`), this
    /// process's identity included; `None` when the lease is free or unknown.
    pub fn leader(&self) -> Option<String> {
        self.state.borrow().leader.clone()
    }

    /// Waits until this process leads.
    pub async fn leading(&self) {
        let mut rx = self.state.clone();
        loop {
            if self.is_leading() {
                return;
            }
            if rx.changed().await.is_err() {
                // The elector is gone: leadership never comes back.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until this process does not lead: at once when it does not, else at
    /// the deadline or when the elector steps down, whichever comes first.
    pub async fn lost(&self) {
        let mut rx = self.state.clone();
        loop {
            let Some(until) = rx.borrow_and_update().leading_until else { return };
            if Instant::now() >= until {
                return;
            }
            let deadline = tokio::time::sleep_until(tokio::time::Instant::from_std(until));
            tokio::select! {
                () = deadline => return,
                changed = rx.changed() => if changed.is_err() {
                    // The elector is gone (crashed or dropped): nobody renews, and
                    // the last deadline still holds.
                    tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
                    return;
                },
            }
        }
    }

    /// Marks work done under leadership until the guard drops; a graceful shutdown
    /// waits for it (at most the renew deadline) before releasing the lease.
    pub fn hold(&self) -> LeadingWork {
        self.held.count.fetch_add(1, Ordering::SeqCst);
        LeadingWork { held: Arc::clone(&self.held) }
    }
}

/// Work running under leadership (see [`Leadership::hold`]).
#[derive(Debug)]
pub struct LeadingWork {
    held: Arc<Held>,
}

impl Drop for LeadingWork {
    fn drop(&mut self) {
        if self.held.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.held.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn leading_ends_at_the_deadline_without_the_elector_saying_so() {
        let (tx, _held, leadership) = Leadership::channel();
        assert!(!leadership.is_leading());
        leadership.lost().await;
        tx.send_modify(|s| s.leading_until = Some(Instant::now() + Duration::from_millis(50)));
        assert!(leadership.is_leading());
        tokio::time::timeout(Duration::from_secs(30), leadership.lost()).await.expect("lost at the deadline");
        assert!(!leadership.is_leading());
    }

    #[tokio::test]
    async fn a_renew_moves_the_deadline_and_a_step_down_ends_it_at_once() {
        let (tx, _held, leadership) = Leadership::channel();
        tx.send_modify(|s| s.leading_until = Some(Instant::now() + Duration::from_secs(3600)));
        tokio::time::timeout(Duration::from_secs(30), leadership.leading()).await.expect("leading");
        let waiter = tokio::spawn({
            let l = leadership.clone();
            async move { l.lost().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        tx.send_modify(|s| s.leading_until = None);
        tokio::time::timeout(Duration::from_secs(30), waiter).await.expect("lost").expect("task");
    }

    #[tokio::test]
    async fn without_its_elector_leadership_still_ends_at_the_deadline_not_before() {
        let (tx, _held, leadership) = Leadership::channel();
        let until = Instant::now() + Duration::from_millis(100);
        tx.send_modify(|s| s.leading_until = Some(until));
        drop(tx);
        assert!(leadership.is_leading());
        tokio::time::timeout(Duration::from_secs(30), leadership.lost()).await.expect("lost at the deadline");
        assert!(Instant::now() >= until, "lost before the deadline");
        assert!(!leadership.is_leading());
    }

    #[tokio::test]
    async fn idle_waits_for_every_holder() {
        let (_tx, held, leadership) = Leadership::channel();
        held.idle().await;
        let (a, b) = (leadership.hold(), leadership.hold());
        let waiter = tokio::spawn({
            let held = Arc::clone(&held);
            async move { held.idle().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(30), waiter).await.expect("idle").expect("task");
    }
}
