//! [`LeaderElector`]: client-go's leader election on a Lease
//! (tools/leaderelection/leaderelection.go), with leadership bounded by the
//! renew deadline on the local monotonic clock.
//!
//! # Guarantees
//! * Coordination is the API server's optimistic concurrency only: every write of the
//!   lease carries the resourceVersion it read, so of two candidates one gets 409.
//! * Another holder's lease is taken only when it is free (no holder) or when its
//!   record went unchanged, as observed by this process, for its lease duration
//!   ([`ObservedLease`]); timestamps in the lease are never compared with the
//!   local clock.
//! * This process leads only until the START of its last successful acquire or renew
//!   plus `renew_deadline` ([`Leadership::is_leading`]). As `renew_deadline <
//!   lease_duration`, it stops before any other candidate may take over, whatever
//!   the network does and however long the process was paused.
//! * On a graceful shutdown while leading, it first stops leading (callbacks, the
//!   [`Leadership`] handles), waits for work held with [`Leadership::hold`] (at most
//!   `renew_deadline`), then releases the lease as client-go does: holder `""`,
//!   `leaseDurationSeconds: 1`.
//! * After losing the lease it goes back to candidate (client-go's `Run` returns
//!   instead; controller-runtime then exits the process).
//! * A candidate that sees another holder polls every retry period and tries again
//!   the moment that holder's lease expires on its own clock: it sees the holder's
//!   last renew within one retry period, so it takes over at most a lease duration
//!   plus a retry period (plus its API calls) after the holder's last renew, and so
//!   after the holder's death. client-go polls with up to 1.2x upward jitter, both
//!   before it sees the last renew and after the expiry: a lease duration plus 4.4
//!   retry periods at worst. The jitter stays where candidates contend (a free or
//!   expired lease, a conflict, an error).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::sync::watch;

use super::client::{LeaseClient, LeaseError};
use super::config::{ConfigError, JITTER_FACTOR, LeaderElectionConfig};
use super::leadership::{Held, Leadership, State};
use super::observed::ObservedLease;

type Callback = Box<dyn Fn() + Send + Sync>;
type LeaderCallback = Box<dyn Fn(Option<&str>) + Send + Sync>;

/// Elects one leader among the processes that run it on the same Lease.
///
/// ```no_run
/// use std::time::Duration;
/// use kcache::lease::{LeaderElectionConfig, LeaderElector};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = kube::Client::try_default().await?;
/// let identity = std::env::var("POD_NAME").unwrap_or_else(|_| "dev".into());
/// let config = LeaderElectionConfig::new("default", "my-controller", identity);
/// let elector = LeaderElector::new(client, config)?
///     .on_started_leading(|| tracing::info!("leading"))
///     .on_stopped_leading(|| tracing::info!("not leading"))
///     .on_new_leader(|leader| tracing::info!(?leader, "new leader"));
/// let leadership = elector.leadership();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let election = tokio::spawn(elector.run(async move { let _ = stopped.await; }));
/// // Hand `leadership` to `Controller::leader_election`, or check it yourself:
/// leadership.leading().await;
/// assert!(leadership.is_leading());
/// stop.send(()).ok(); // stops leading, then releases the lease
/// election.await?;
/// # Ok(()) }
/// ```
pub struct LeaderElector {
    config: LeaderElectionConfig,
    client: LeaseClient,
    observed: Option<ObservedLease>,
    state: watch::Sender<State>,
    held: Arc<Held>,
    leadership: Leadership,
    reported_leader: Option<Option<String>>,
    on_started: Option<Callback>,
    on_stopped: Option<Callback>,
    on_new_leader: Option<LeaderCallback>,
    master_status: Option<prometheus_client::metrics::gauge::Gauge>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector").field("config", &self.config).field("observed", &self.observed).finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// An elector over `client` for `config` (validated as client-go's `NewLeaderElector`).
    ///
    /// # Errors
    /// The rule of [`LeaderElectionConfig::validate`] the configuration breaks.
    pub fn new(client: kube::Client, config: LeaderElectionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let (state, held, leadership) = Leadership::channel();
        Ok(LeaderElector {
            client: LeaseClient::new(client, config.namespace.clone()),
            config,
            observed: None,
            state,
            held,
            leadership,
            reported_leader: None,
            on_started: None,
            on_stopped: None,
            on_new_leader: None,
            master_status: None,
        })
    }

    /// Called when this process starts leading (client-go's `OnStartedLeading`). Runs
    /// on the elector's task: keep it short, spawn long work.
    #[must_use]
    pub fn on_started_leading(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_started = Some(Box::new(f));
        self
    }

    /// Called when this process stops leading: renew deadline passed, or shutdown
    /// (client-go's `OnStoppedLeading`).
    #[must_use]
    pub fn on_stopped_leading(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_stopped = Some(Box::new(f));
        self
    }

    /// Called when the observed holder changes, this process included; `None` when
    /// the lease became free (client-go's `OnNewLeader`, which passes `""`).
    #[must_use]
    pub fn on_new_leader(mut self, f: impl Fn(Option<&str>) + Send + Sync + 'static) -> Self {
        self.on_new_leader = Some(Box::new(f));
        self
    }

    /// Reports leadership in `metrics` as client-go does:
    /// `leader_election_master_status{name="<lease name>"}`, 1 while leading.
    #[must_use]
    pub fn metrics(mut self, metrics: &super::LeaderElectionMetrics) -> Self {
        self.master_status = Some(metrics.master_status(&self.config.name));
        self
    }

    /// A handle that tells whether this process leads.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &LeaderElectionConfig {
        &self.config
    }

    /// Campaigns, leads, renews, and campaigns again after a loss, until `shutdown`
    /// resolves; then stops leading and (with `release_on_cancel`) releases the lease.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        let shutdown = std::pin::pin!(shutdown);
        let mut shutdown = futures::FutureExt::fuse(shutdown);
        loop {
            // Acquire (client-go's `acquire`): retry every retry period, jittered.
            loop {
                let start = Instant::now();
                let acquired = self.attempt(start, self.config.renew_deadline).await;
                self.report_leader();
                if acquired {
                    self.lead_until(start + self.config.renew_deadline);
                    break;
                }
                let pause = self.acquire_pause(Instant::now());
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = &mut shutdown => return self.finish().await,
                }
            }
            tracing::info!(lease = %self.describe(), identity = %self.config.identity, "started leading");
            if let Some(g) = &self.master_status {
                g.set(1);
            }
            if let Some(f) = &self.on_started {
                f();
            }
            // Renew (client-go's `renew`): every retry period; leadership ends at the
            // deadline of the last success, checked before each attempt, which is
            // itself cut off at that deadline.
            let by_shutdown = loop {
                tokio::select! {
                    () = tokio::time::sleep(self.config.retry_period) => {}
                    () = &mut shutdown => break true,
                }
                let start = Instant::now();
                let Some(until) = self.leadership.leading_until().filter(|u| start < *u) else { break false };
                let renewed = self.attempt(start, until - start).await;
                self.report_leader();
                if renewed {
                    self.lead_until(start + self.config.renew_deadline);
                } else if Instant::now() >= until {
                    break false;
                }
            };
            self.step_down();
            if by_shutdown {
                return self.finish().await;
            }
            tracing::warn!(lease = %self.describe(), identity = %self.config.identity,
                renew_deadline = ?self.config.renew_deadline, "failed to renew the lease in time; stopped leading");
        }
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }

    fn lead_until(&self, until: Instant) {
        self.state.send_modify(|s| s.leading_until = Some(until));
    }

    fn step_down(&self) {
        let was = self.state.borrow().leading_until.is_some();
        self.state.send_modify(|s| s.leading_until = None);
        if let Some(g) = &self.master_status {
            g.set(0);
        }
        if was {
            tracing::info!(lease = %self.describe(), identity = %self.config.identity, "stopped leading");
            if let Some(f) = &self.on_stopped {
                f();
            }
        }
    }

    /// Stops leading, waits for held work, releases (client-go's `release`).
    async fn finish(mut self) {
        self.step_down();
        let ours = self.observed.as_ref().is_some_and(|o| o.holder() == Some(self.config.identity.as_str()));
        if !self.config.release_on_cancel || !ours {
            return;
        }
        if tokio::time::timeout(self.config.renew_deadline, self.held.idle()).await.is_err() {
            tracing::warn!(lease = %self.describe(), "work held under leadership outlived the renew deadline; releasing anyway");
        }
        match tokio::time::timeout(self.config.renew_deadline, self.release()).await {
            Ok(Ok(true)) => tracing::info!(lease = %self.describe(), identity = %self.config.identity, "released the lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not release the lease; it expires after its duration"),
            Err(_) => tracing::warn!(lease = %self.describe(), "releasing the lease timed out; it expires after its duration"),
        }
    }

    /// client-go's `tryRelease`: holder `""`, `leaseDurationSeconds: 1`, the
    /// transitions kept. A lease someone else took meanwhile is left alone (its
    /// resourceVersion moved: 409, then a read shows the other holder).
    async fn release(&mut self) -> Result<bool, LeaseError> {
        for _ in 0..2 {
            let Some(observed) = &self.observed else { return Ok(false) };
            if observed.holder() != Some(self.config.identity.as_str()) {
                return Ok(false);
            }
            let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
            let mut lease = observed.lease().clone();
            let old = lease.spec.take().unwrap_or_default();
            lease.spec = Some(LeaseSpec {
                holder_identity: Some(String::new()),
                lease_duration_seconds: Some(1),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(observed.record().transitions),
                ..old
            });
            match self.client.replace(&lease).await {
                Ok(written) => {
                    self.observe(written);
                    self.report_leader();
                    return Ok(true);
                }
                Err(LeaseError::Conflict { .. }) => match self.client.get(&self.config.name).await? {
                    Some(current) => self.observe(current),
                    None => return Ok(false),
                },
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    fn observe(&mut self, lease: Lease) {
        let now = Instant::now();
        match &mut self.observed {
            Some(o) => {
                o.observe(lease, now);
            }
            None => self.observed = Some(ObservedLease::new(lease, now, self.config.lease_duration)),
        }
    }

    fn report_leader(&mut self) {
        let holder = self.observed.as_ref().and_then(|o| o.holder().map(str::to_owned));
        if self.reported_leader.as_ref() == Some(&holder) {
            return;
        }
        self.state.send_modify(|s| s.leader.clone_from(&holder));
        if let Some(f) = &self.on_new_leader {
            f(holder.as_deref());
        }
        self.reported_leader = Some(holder);
    }

    /// One `tryAcquireOrRenew`, cut off after `limit`.
    async fn attempt(&mut self, start: Instant, limit: Duration) -> bool {
        match tokio::time::timeout(limit, self.try_acquire_or_renew(start)).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, identity = %self.config.identity, "lease acquire/renew failed");
                false
            }
            Err(_) => {
                tracing::debug!(lease = %self.describe(), ?limit, "lease acquire/renew timed out");
                false
            }
        }
    }

    /// How long a candidate waits after an attempt that did not acquire: see the
    /// module's guarantees.
    fn acquire_pause(&self, now: Instant) -> Duration {
        match &self.observed {
            Some(o) if o.holder().is_some_and(|h| h != self.config.identity) && !o.is_free(now) => {
                follow_pause(now, o.expires_at(), self.config.retry_period)
            }
            _ => jittered(self.config.retry_period),
        }
    }

    /// client-go's `tryAcquireOrRenew` (tools/leaderelection/leaderelection.go):
    /// a fast path for a leader whose last write is still current, then read, check
    /// holder and expiry, write with the read resourceVersion.
    async fn try_acquire_or_renew(&mut self, start: Instant) -> Result<bool, LeaseError> {
        let identity = self.config.identity.clone();
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());

        // 1. Fast path: still leading, write over our own last record.
        if self.leadership.leading_until().is_some_and(|u| start < u)
            && let Some(observed) = &self.observed
            && observed.holder() == Some(identity.as_str())
        {
            let lease = self.desired(observed.lease().clone(), true, observed.record().transitions, now.clone());
            match self.client.replace(&lease).await {
                Ok(written) => {
                    self.observe(written);
                    return Ok(true);
                }
                Err(e) => tracing::debug!(error = %e, "optimistic renew failed; reading the lease"),
            }
        }

        // 2. Read, or create when missing.
        let Some(current) = self.client.get(&self.config.name).await? else {
            let mut lease = Lease::default();
            lease.metadata.name = Some(self.config.name.clone());
            lease.metadata.namespace = Some(self.config.namespace.clone());
            let lease = self.desired(lease, false, -1, now);
            return match self.client.create(&lease).await {
                Ok(created) => {
                    self.observe(created);
                    Ok(true)
                }
                Err(LeaseError::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(e),
            };
        };

        // 3. Held by someone else and not expired on our clock: wait.
        self.observe(current);
        let Some(observed) = self.observed.as_ref() else { return Ok(false) };
        let ours = observed.holder() == Some(identity.as_str());
        if !ours && !observed.is_free(Instant::now()) {
            return Ok(false);
        }

        // 4. Take or keep it, with the resourceVersion just read.
        let lease = self.desired(observed.lease().clone(), ours, observed.record().transitions, now);
        match self.client.replace(&lease).await {
            Ok(written) => {
                self.observe(written);
                Ok(true)
            }
            Err(LeaseError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The lease with this process as holder. `keep` (renewing our own record) keeps
    /// `acquireTime` and the transitions; otherwise it counts one more transition.
    fn desired(&self, mut lease: Lease, keep: bool, transitions: i32, now: MicroTime) -> Lease {
        let old = lease.spec.take().unwrap_or_default();
        let (acquire_time, transitions) = if keep {
            (old.acquire_time.clone().or_else(|| Some(now.clone())), transitions)
        } else {
            (Some(now.clone()), transitions.saturating_add(1))
        };
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration_seconds()),
            acquire_time,
            renew_time: Some(now),
            lease_transitions: Some(transitions.max(0)),
            ..old
        });
        lease
    }
}

/// A candidate's wait while another holds the lease until `expires_at`: one retry
/// period, or until the expiry when that comes first.
fn follow_pause(now: Instant, expires_at: Instant, retry_period: Duration) -> Duration {
    retry_period.min(expires_at.saturating_duration_since(now))
}

/// client-go's `wait.Jitter(period, JitterFactor)`: `period` plus up to 1.2 × `period`.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + rand::random::<f64>() * JITTER_FACTOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_polls_every_retry_period_and_wakes_at_the_expiry() {
        let now = Instant::now();
        let retry = Duration::from_secs(2);
        assert_eq!(follow_pause(now, now + Duration::from_secs(9), retry), retry, "no upward jitter while following");
        assert_eq!(follow_pause(now, now + Duration::from_millis(300), retry), Duration::from_millis(300));
        assert_eq!(follow_pause(now + Duration::from_secs(1), now, retry), Duration::ZERO, "already expired: try now");
    }

    #[test]
    fn contention_keeps_client_gos_jitter() {
        let retry = Duration::from_millis(100);
        for _ in 0..100 {
            let p = jittered(retry);
            assert!(p >= retry && p <= retry.mul_f64(1.0 + JITTER_FACTOR), "{p:?}");
        }
    }
}
