//! The [`Recorder`]: a bounded queue in front of one background task that
//! filters, aggregates and writes Events.
//!
//! # Guarantees
//! * [`Recorder::publish`] is synchronous and never waits on the server.
//! * Writes for one Event are made in order by one task: its series is never
//!   patched before it was created.
//! * A write that fails on the way (no connection, a timeout) or with 429 is
//!   retried up to [`RecorderConfig::max_tries`] times, as client-go's
//!   `attemptRecording`; one the server answers with another error Status is
//!   counted in [`RecorderStats::failed`] and dropped, as client-go drops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::aggregate::{Aggregator, Limits, Outcome, Write};
use super::{Event, Reporter};

/// Settings of a [`Recorder`]; the defaults are client-go's where it has one.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// Events waiting for the background task; beyond it they are dropped
    /// (client-go's `maxQueuedEvents`, 1000).
    pub queue: usize,
    /// Events an object may have at once (client-go `defaultSpamBurst`, 25).
    pub spam_burst: u32,
    /// The time one more event's token takes to come back (client-go
    /// `defaultSpamQPS` = 1/300: 5 minutes).
    pub spam_refill: Duration,
    /// Objects whose spam buckets are remembered (client-go's LRU, 4096).
    pub spam_objects: usize,
    /// How often a series' changed count is written. client-go writes the
    /// count only every 30 minutes (`refreshTime`) and when the series ends;
    /// kcache writes a changed count at most this often (30 s), so that the
    /// server's count is current within it, at one PATCH per series per interval.
    pub series_flush: Duration,
    /// A series with no occurrence for this long ends: its final count is
    /// written and it is forgotten (client-go `finishTime`, 6 minutes).
    pub finish_after: Duration,
    /// Attempts per write that fails on the way (client-go `maxTriesPerEvent`, 12).
    pub max_tries: u32,
    /// The pause between attempts, ±25 % (client-go `defaultSleepDuration`, 10 s).
    pub retry_sleep: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            queue: 1000,
            spam_burst: 25,
            spam_refill: Duration::from_secs(300),
            spam_objects: 4096,
            series_flush: Duration::from_secs(30),
            finish_after: Duration::from_secs(360),
            max_tries: 12,
            retry_sleep: Duration::from_secs(10),
        }
    }
}

/// Counters of a [`Recorder`], shared by its clones.
#[derive(Debug, Default)]
pub struct RecorderStats {
    /// Calls to [`Recorder::publish`].
    pub published: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped_full: AtomicU64,
    /// Events dropped by the spam filter.
    pub dropped_spam: AtomicU64,
    /// Occurrences counted into a series without a write of their own.
    pub aggregated: AtomicU64,
    /// Events created on the server.
    pub created: AtomicU64,
    /// Series counts written (PATCH).
    pub series_patched: AtomicU64,
    /// Writes given up: refused by the server, or out of attempts.
    pub failed: AtomicU64,
}

enum Msg {
    Publish(Box<(Event, ObjectReference, Timestamp)>),
    Flush(oneshot::Sender<()>),
}

/// Writes `events.k8s.io/v1` Events for any object, without blocking.
///
/// Clones share the queue, the background task and the counters; the task
/// ends, after writing every pending series count, when the last clone is
/// dropped.
///
/// ```no_run
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kcache::controller::events::{Event, Recorder, Reporter};
/// use kube::Resource;
///
/// # async fn demo(client: kube::Client, cm: ConfigMap) {
/// let recorder = Recorder::new(client, Reporter::new("example.com/my-controller"));
/// recorder.publish(&Event::normal("Synced", "Reconcile").note("all replicas ready"), &cm.object_ref(&()));
/// recorder.flush().await; // only to wait for the write, e.g. before exiting
/// # }
/// ```
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
    stats: Arc<RecorderStats>,
}

impl Recorder {
    /// A recorder with the default [`RecorderConfig`]; spawns its task on the
    /// current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self::with_config(client, reporter, RecorderConfig::default())
    }

    /// A recorder with `config`; spawns its task on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn with_config(client: kube::Client, reporter: Reporter, config: RecorderConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let stats = Arc::new(RecorderStats::default());
        // Resolve the instance (the host name) once, not per event.
        let reporter = Reporter { instance: Some(reporter.instance()), ..reporter };
        let aggregator = Aggregator::new(Limits {
            burst: config.spam_burst,
            per_token: config.spam_refill,
            buckets: config.spam_objects.max(1),
            finish_after: config.finish_after,
        });
        let task = Task { client, reporter, config, aggregator, stats: stats.clone() };
        tokio::spawn(task.run(rx));
        Recorder { tx, stats }
    }

    /// Queues `event` about `regarding` (build it with `kube::Resource::object_ref`);
    /// returns `false` when the queue was full and the event was dropped.
    /// Never waits. The Event's time is the time of this call.
    pub fn publish(&self, event: &Event, regarding: &ObjectReference) -> bool {
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        let msg = Msg::Publish(Box::new((event.clone(), regarding.clone(), Timestamp::now())));
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(_) => {
                self.stats.dropped_full.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits until everything published before this call was handled and every
    /// changed series count was written (or given up).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// The counters.
    pub fn stats(&self) -> &RecorderStats {
        &self.stats
    }
}

struct Task {
    client: kube::Client,
    reporter: Reporter,
    config: RecorderConfig,
    aggregator: Aggregator,
    stats: Arc<RecorderStats>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let period = self.config.series_flush.max(Duration::from_millis(1));
        // Not `interval`: its first tick is immediate.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Publish(p)) => {
                        let (event, regarding, at) = *p;
                        self.observe(&event, &regarding, at).await;
                    }
                    Some(Msg::Flush(done)) => {
                        self.write_due().await;
                        let _ = done.send(());
                    }
                    None => break,
                },
                _ = tick.tick() => self.write_due().await,
            }
        }
        self.write_due().await;
    }

    async fn observe(&mut self, event: &Event, regarding: &ObjectReference, at: Timestamp) {
        match self.aggregator.observe(&self.reporter, event, regarding, at) {
            Outcome::Spam => {
                self.stats.dropped_spam.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Counted => {
                self.stats.aggregated.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Write(w) => self.write(w).await,
        }
    }

    async fn write_due(&mut self) {
        for w in self.aggregator.due(Timestamp::now()) {
            self.write(w).await;
        }
    }

    /// One write, retried as client-go's `attemptRecording`/`recordEvent`.
    async fn write(&self, w: Write) {
        let (event, series) = match w {
            Write::Create(e) => (e, false),
            Write::Series(e) => (e, true),
        };
        let ns = event.metadata.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        for attempt in 1..=self.config.max_tries.max(1) {
            let result = if series { self.patch_series(&api, &event).await } else { self.create(&api, &event).await };
            match result {
                Ok(()) => return,
                Err(e) if retriable(&e, series) && attempt < self.config.max_tries => {
                    tracing::debug!(error = %e, attempt, "event write failed; retrying");
                    let jitter = 0.75 + rand::random::<f64>() * 0.5;
                    tokio::time::sleep(self.config.retry_sleep.mul_f64(jitter)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, event = ?event.metadata.name, "event not written");
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    async fn create(&self, api: &Api<K8sEvent>, event: &K8sEvent) -> Result<(), kube::Error> {
        api.create(&PostParams::default(), event).await?;
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// PATCHes the series (a merge patch of `series` alone: what client-go's
    /// two-way strategic merge patch of the Event with and without it holds);
    /// creates the Event, series included, when the server no longer has it.
    async fn patch_series(&self, api: &Api<K8sEvent>, event: &K8sEvent) -> Result<(), kube::Error> {
        let name = event.metadata.name.as_deref().unwrap_or_default();
        let patch = json!({ "series": event.series });
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                self.stats.series_patched.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => self.create(api, event).await,
            Err(e) => Err(e),
        }
    }
}

/// Whether client-go's `recordEvent` would try again: failures on the way, and
/// an AlreadyExists for a series (the patch's Event appeared meanwhile). 429 too:
/// client-go's REST client retries it underneath, kube-client does not.
fn retriable(e: &kube::Error, series: bool) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || (series && s.code == 409),
        kube::Error::BuildRequest(_) | kube::Error::SerdeError(_) => false,
        _ => true,
    }
}
