//! [`LeaderElectionMetrics`]: client-go's `leader_election_master_status` gauge
//! (tools/leaderelection/metrics.go), registered on its own so that a registry
//! without leader election does not describe it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `name` label: the Lease's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    name: String,
}

/// The leader election family of one registry: `leader_election_master_status{name}`,
/// 1 while this process leads the lease `name`, 0 otherwise.
///
/// ```
/// use prometheus_client::registry::Registry;
/// use kcache::lease::LeaderElectionMetrics;
/// let mut registry = Registry::default();
/// let metrics = LeaderElectionMetrics::register(&mut registry);
/// metrics.master_status("my-controller").set(1);
/// let text = kcache::metrics::render(&registry);
/// assert!(text.contains(r#"leader_election_master_status{name="my-controller"} 1"#), "{text}");
/// ```
///
/// `LeaderElectionMetrics::default()` is a family registered nowhere: its gauges
/// work but no registry renders them.
#[derive(Clone, Debug, Default)]
pub struct LeaderElectionMetrics {
    master_status: Family<LeaseLabels, Gauge>,
}

impl LeaderElectionMetrics {
    /// Registers the family in `registry` (once per registry).
    pub fn register(registry: &mut Registry) -> Self {
        let master_status = Family::<LeaseLabels, Gauge>::default();
        // client-go's help text.
        registry.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
            master_status.clone(),
        );
        LeaderElectionMetrics { master_status }
    }

    /// The gauge of the lease `name` (it appears at 0).
    pub fn master_status(&self, name: &str) -> Gauge {
        self.master_status.get_or_create(&LeaseLabels { name: name.to_owned() }).clone()
    }
}
