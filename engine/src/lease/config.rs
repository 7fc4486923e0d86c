//! [`LeaderElectionConfig`]: the lease to elect on, who we are, and client-go's three
//! durations with its defaults and its validation.

use std::time::Duration;

/// client-go's `JitterFactor` (tools/leaderelection/leaderelection.go): the acquire
/// loop waits `retry_period` plus up to this factor of it, and `renew_deadline` must
/// exceed `retry_period` times it.
pub const JITTER_FACTOR: f64 = 1.2;

/// Where and how to elect a leader.
///
/// The defaults are client-go's (and controller-runtime's): a 15 s lease, a 10 s
/// renew deadline, a 2 s retry period, and the lease released on graceful shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease (one per election: e.g. the controller's name).
    pub name: String,
    /// This process's identity, unique among the candidates (e.g. the pod name).
    pub identity: String,
    /// How long others wait, after seeing the lease change, before they may take it.
    pub lease_duration: Duration,
    /// How long the leader keeps acting after the start of its last successful renew.
    pub renew_deadline: Duration,
    /// How long to wait between attempts to acquire or renew.
    pub retry_period: Duration,
    /// Whether a graceful shutdown gives the lease up (client-go's `ReleaseOnCancel`;
    /// kcache's default is `true`, so a successor takes over without waiting).
    pub release_on_cancel: bool,
}

/// A configuration client-go's `NewLeaderElector` would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `lease_duration` must be greater than `renew_deadline`.
    #[error("leaseDuration ({lease_duration:?}) must be greater than renewDeadline ({renew_deadline:?})")]
    LeaseNotLongerThanRenewDeadline {
        /// The configured lease duration.
        lease_duration: Duration,
        /// The configured renew deadline.
        renew_deadline: Duration,
    },
    /// `renew_deadline` must be greater than `retry_period` × [`JITTER_FACTOR`].
    #[error("renewDeadline ({renew_deadline:?}) must be greater than retryPeriod*JitterFactor ({retry_period:?} * 1.2)")]
    RenewDeadlineTooShort {
        /// The configured renew deadline.
        renew_deadline: Duration,
        /// The configured retry period.
        retry_period: Duration,
    },
    /// A duration is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The identity, namespace or lease name is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
}

impl LeaderElectionConfig {
    /// client-go's default lease duration.
    pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
    /// client-go's default renew deadline.
    pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
    /// client-go's default retry period.
    pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

    /// An election on the Lease `namespace/name` as `identity`, with the defaults.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaderElectionConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Self::DEFAULT_LEASE_DURATION,
            renew_deadline: Self::DEFAULT_RENEW_DEADLINE,
            retry_period: Self::DEFAULT_RETRY_PERIOD,
            release_on_cancel: true,
        }
    }

    /// Sets [`LeaderElectionConfig::lease_duration`].
    #[must_use]
    pub fn lease_duration(mut self, d: Duration) -> Self {
        self.lease_duration = d;
        self
    }

    /// Sets [`LeaderElectionConfig::renew_deadline`].
    #[must_use]
    pub fn renew_deadline(mut self, d: Duration) -> Self {
        self.renew_deadline = d;
        self
    }

    /// Sets [`LeaderElectionConfig::retry_period`].
    #[must_use]
    pub fn retry_period(mut self, d: Duration) -> Self {
        self.retry_period = d;
        self
    }

    /// Sets [`LeaderElectionConfig::release_on_cancel`].
    #[must_use]
    pub fn release_on_cancel(mut self, release: bool) -> Self {
        self.release_on_cancel = release;
        self
    }

    /// Checks what client-go's `NewLeaderElector` checks
    /// (tools/leaderelection/leaderelection.go).
    ///
    /// # Errors
    /// The first rule the configuration breaks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.lease_duration <= self.renew_deadline {
            return Err(ConfigError::LeaseNotLongerThanRenewDeadline {
                lease_duration: self.lease_duration,
                renew_deadline: self.renew_deadline,
            });
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return Err(ConfigError::RenewDeadlineTooShort { renew_deadline: self.renew_deadline, retry_period: self.retry_period });
        }
        for (d, what) in [(self.lease_duration, "leaseDuration"), (self.renew_deadline, "renewDeadline"), (self.retry_period, "retryPeriod")] {
            if d.is_zero() {
                return Err(ConfigError::Zero(what));
            }
        }
        for (s, what) in [(&self.identity, "identity"), (&self.namespace, "namespace"), (&self.name, "lease name")] {
            if s.is_empty() {
                return Err(ConfigError::Empty(what));
            }
        }
        Ok(())
    }

    /// `leaseDurationSeconds` to write: whole seconds rounded UP (client-go
    /// truncates), so an observer that reads only the record never waits less than
    /// this process's lease duration.
    pub(crate) fn lease_duration_seconds(&self) -> i32 {
        let secs = self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_client_gos_and_valid() {
        let c = LeaderElectionConfig::new("ns", "lease", "me");
        assert_eq!((c.lease_duration, c.renew_deadline, c.retry_period), (
            Duration::from_secs(15),
            Duration::from_secs(10),
            Duration::from_secs(2)
        ));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.lease_duration_seconds(), 15);
    }

    #[test]
    fn the_rules_of_new_leader_elector_are_enforced() {
        let c = LeaderElectionConfig::new("ns", "lease", "me");
        let e = c.clone().renew_deadline(Duration::from_secs(15)).validate().unwrap_err();
        assert!(matches!(e, ConfigError::LeaseNotLongerThanRenewDeadline { .. }));
        assert!(e.to_string().contains("must be greater than renewDeadline"), "{e}");
        // 10 s is not more than 1.2 × 9 s.
        let e = c.clone().retry_period(Duration::from_secs(9)).validate().unwrap_err();
        assert!(matches!(e, ConfigError::RenewDeadlineTooShort { .. }), "{e}");
        assert_eq!(c.clone().retry_period(Duration::from_secs(8)).validate(), Ok(()));
        assert_eq!(c.clone().retry_period(Duration::ZERO).validate(), Err(ConfigError::Zero("retryPeriod")));
        assert_eq!(LeaderElectionConfig::new("ns", "lease", "").validate(), Err(ConfigError::Empty("identity")));
    }

    #[test]
    fn fractional_lease_durations_are_written_rounded_up() {
        let c = LeaderElectionConfig::new("ns", "l", "me").lease_duration(Duration::from_millis(1500));
        assert_eq!(c.lease_duration_seconds(), 2);
    }
}
