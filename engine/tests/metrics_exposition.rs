//! The exposition of a registry shared by several informers, work queues and
//! controllers: each family described once, every reporter told apart by its
//! labels, and controller-runtime's reconcile metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use kcache::informer::{Informer, InformerConfig};
use kcache::metrics::{Metrics, ReconcileResult, render};
use kcache::queue::WorkQueue;
use kcache::testing::MemorySource;
use prometheus_client::registry::Registry;
use serde_json::json;

/// Every family kcache registers, with its type.
const FAMILIES: &[(&str, &str)] = &[
    ("kcache_informer_events", "counter"),
    ("kcache_informer_relists", "counter"),
    ("kcache_informer_watch_restarts", "counter"),
    ("kcache_informer_decode_errors", "counter"),
    ("kcache_informer_errors", "counter"),
    ("kcache_informer_received_bytes", "counter"),
    ("kcache_informer_handler_panics", "counter"),
    ("kcache_informer_store_objects", "gauge"),
    ("kcache_informer_store_bytes", "gauge"),
    ("kcache_informer_arena_segment_bytes", "gauge"),
    ("kcache_informer_fifo_backlog_keys", "gauge"),
    ("kcache_informer_synced", "gauge"),
    ("kcache_informer_sync_duration_seconds", "gauge"),
    ("workqueue_depth", "gauge"),
    ("workqueue_adds", "counter"),
    ("workqueue_queue_duration_seconds", "histogram"),
    ("workqueue_work_duration_seconds", "histogram"),
    ("workqueue_retries", "counter"),
    ("workqueue_unfinished_work_seconds", "gauge"),
    ("workqueue_longest_running_processor_seconds", "gauge"),
    ("controller_runtime_reconcile", "counter"),
    ("controller_runtime_reconcile_errors", "counter"),
    ("controller_runtime_reconcile_panics", "counter"),
    ("controller_runtime_reconcile_time_seconds", "histogram"),
    ("controller_runtime_max_concurrent_reconciles", "gauge"),
    ("controller_runtime_active_workers", "gauge"),
];

/// `# TYPE` lines by family name: how many, and the last type seen.
fn described(text: &str, kind: &str) -> BTreeMap<String, (usize, String)> {
    let mut out: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(kind) else { continue };
        let mut parts = rest.splitn(2, ' ');
        let name = parts.next().unwrap().to_owned();
        let entry = out.entry(name).or_default();
        entry.0 += 1;
        entry.1 = parts.next().unwrap_or("").to_owned();
    }
    out
}

/// The sample lines of `family` (`family{...}`, `family_total{...}`, `family_bucket{...}`, ...).
fn samples<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            name == family || ["_total", "_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s) == Some(family))
        })
        .collect()
}

/// The value of the sample line that starts with `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

async fn synced_informer(kind: &str, names: &[&str]) -> (MemorySource, Informer) {
    let src = MemorySource::new(kind);
    for name in names {
        src.apply(json!({"metadata": {"namespace": "default", "name": name}}));
    }
    let informer = Informer::spawn(src.clone(), InformerConfig::default()).unwrap();
    assert!(informer.wait_for_sync(Duration::from_secs(60)).await, "{kind} informer did not sync");
    (src, informer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_informers_queues_and_controllers_describe_each_family_once() {
    let (_pods_src, pods) = synced_informer("Pod", &["a", "b"]).await;
    let (_nodes_src, nodes) = synced_informer("Node", &["n"]).await;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    metrics.informer("pods", &pods);
    metrics.informer("nodes", &nodes);
    let qa: WorkQueue<u8> = WorkQueue::builder().name("queue-a").metrics(&metrics).build();
    let qb: WorkQueue<u8> = WorkQueue::builder().name("queue-b").metrics(metrics.queues()).build();
    qa.add(1);
    qb.add(1);
    qb.add(2);
    let _busy = qb.get().unwrap();
    let ca = metrics.controller("ctrl-a");
    let cb = metrics.controller("ctrl-b");
    ca.reconcile_started().finish(ReconcileResult::Success);
    cb.set_max_concurrent_reconciles(3);

    let text = render(&registry);
    let types = described(&text, "# TYPE ");
    let helps = described(&text, "# HELP ");
    let expected: BTreeMap<String, (usize, String)> =
        FAMILIES.iter().map(|(name, kind)| (name.to_string(), (1, kind.to_string()))).collect();
    assert_eq!(types, expected, "one # TYPE line per family, with its type, in\n{text}");
    assert_eq!(helps.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{text}");
    assert!(helps.values().all(|(n, _)| *n == 1), "one # HELP line per family in\n{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");

    let reporters: [(&str, [&str; 2]); 3] = [
        ("kcache_informer_", [r#"informer="pods""#, r#"informer="nodes""#]),
        ("workqueue_", [r#"name="queue-a""#, r#"name="queue-b""#]),
        ("controller_runtime_", [r#"controller="ctrl-a""#, r#"controller="ctrl-b""#]),
    ];
    for (family, _) in FAMILIES {
        let (_, labels) = reporters.iter().find(|(prefix, _)| family.starts_with(prefix)).unwrap();
        let lines = samples(&text, family);
        for label in labels {
            assert!(lines.iter().any(|l| l.contains(label)), "{family} has no sample with {label} in\n{text}");
        }
    }

    assert_eq!(value(&text, r#"kcache_informer_store_objects{informer="pods"}"#), Some(2.0));
    assert_eq!(value(&text, r#"kcache_informer_store_objects{informer="nodes"}"#), Some(1.0));
    assert_eq!(value(&text, r#"kcache_informer_synced{informer="nodes"}"#), Some(1.0));
    assert_eq!(value(&text, r#"workqueue_depth{name="queue-a"}"#), Some(1.0));
    assert_eq!(value(&text, r#"workqueue_depth{name="queue-b"}"#), Some(1.0));
    assert_eq!(value(&text, r#"workqueue_adds_total{name="queue-b"}"#), Some(2.0));
    assert_eq!(value(&text, r#"controller_runtime_reconcile_total{controller="ctrl-a",result="success"}"#), Some(1.0));
    assert_eq!(value(&text, r#"controller_runtime_reconcile_total{controller="ctrl-b",result="success"}"#), Some(0.0));
    assert_eq!(value(&text, r#"controller_runtime_max_concurrent_reconciles{controller="ctrl-b"}"#), Some(3.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informers_added_after_the_first_scrape_and_dropped_ones_leave() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let text = render(&registry);
    // No informer yet: the families are described, without samples.
    assert_eq!(described(&text, "# TYPE ").get("kcache_informer_events").map(|e| e.0), Some(1), "{text}");
    assert!(samples(&text, "kcache_informer_events").is_empty(), "{text}");

    let (_pods_src, pods) = synced_informer("Pod", &["a"]).await;
    let (_nodes_src, nodes) = synced_informer("Node", &[]).await;
    metrics.informer("pods", &pods);
    metrics.informer("nodes", &nodes);
    let text = render(&registry);
    assert_eq!(value(&text, r#"kcache_informer_store_objects{informer="pods"}"#), Some(1.0), "{text}");
    assert_eq!(value(&text, r#"kcache_informer_store_objects{informer="nodes"}"#), Some(0.0), "{text}");

    nodes.shutdown();
    drop(nodes);
    let text = render(&registry);
    assert!(value(&text, r#"kcache_informer_store_objects{informer="nodes"}"#).is_none(), "{text}");
    assert_eq!(value(&text, r#"kcache_informer_store_objects{informer="pods"}"#), Some(1.0), "{text}");
    assert_eq!(described(&text, "# TYPE ").get("kcache_informer_store_objects").map(|e| e.0), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informers_under_one_name_are_reported_as_one() {
    let (_a_src, a) = synced_informer("Pod", &["a", "b"]).await;
    let (_b_src, b) = synced_informer("Pod", &["c"]).await;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    metrics.informer("pods", &a);
    metrics.informer("pods", &b);
    let text = render(&registry);
    assert_eq!(samples(&text, "kcache_informer_store_objects").len(), 1, "{text}");
    assert_eq!(value(&text, r#"kcache_informer_store_objects{informer="pods"}"#), Some(3.0), "{text}");
    assert_eq!(value(&text, r#"kcache_informer_synced{informer="pods"}"#), Some(1.0), "{text}");
    let events = value(&text, r#"kcache_informer_events_total{informer="pods"}"#).unwrap();
    assert!(events >= 3.0, "{events} events for 3 listed objects\n{text}");
}

#[test]
fn controller_metrics_count_results_errors_panics_and_active_workers() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let c = metrics.controller("pods");
    c.set_max_concurrent_reconciles(4);
    let l = r#"controller="pods""#;

    // Before any reconcile every series is there, at zero (controller-runtime's initMetrics).
    let text = render(&registry);
    for result in ["success", "error", "requeue", "requeue_after"] {
        let series = format!("controller_runtime_reconcile_total{{{l},result=\"{result}\"}}");
        assert_eq!(value(&text, &series), Some(0.0), "{series} in\n{text}");
    }
    for family in ["controller_runtime_reconcile_errors_total", "controller_runtime_reconcile_panics_total"] {
        assert_eq!(value(&text, &format!("{family}{{{l}}}")), Some(0.0), "{family} in\n{text}");
    }
    assert_eq!(value(&text, &format!("controller_runtime_active_workers{{{l}}}")), Some(0.0));
    assert_eq!(value(&text, &format!("controller_runtime_max_concurrent_reconciles{{{l}}}")), Some(4.0));

    let first = c.reconcile_started();
    let second = c.clone().reconcile_started();
    let text = render(&registry);
    assert_eq!(value(&text, &format!("controller_runtime_active_workers{{{l}}}")), Some(2.0), "{text}");
    std::thread::sleep(Duration::from_millis(20));
    let took = first.finish(ReconcileResult::Success);
    assert!(took >= Duration::from_millis(20), "{took:?}");
    second.finish(ReconcileResult::Error);
    c.reconcile_started().finish(ReconcileResult::Panic);
    c.reconcile_started().finish(ReconcileResult::Requeue);
    c.reconcile_started().finish(ReconcileResult::RequeueAfter);
    c.reconcile_finished(ReconcileResult::RequeueAfter, Duration::from_secs(2));
    // Cancelled: the worker is free again, and nothing is counted.
    drop(c.reconcile_started());

    let text = render(&registry);
    let total = |result: &str| value(&text, &format!("controller_runtime_reconcile_total{{{l},result=\"{result}\"}}"));
    assert_eq!(total("success"), Some(1.0), "{text}");
    // The error and the caught panic.
    assert_eq!(total("error"), Some(2.0), "{text}");
    assert_eq!(total("requeue"), Some(1.0), "{text}");
    assert_eq!(total("requeue_after"), Some(2.0), "{text}");
    assert_eq!(value(&text, &format!("controller_runtime_reconcile_errors_total{{{l}}}")), Some(2.0));
    assert_eq!(value(&text, &format!("controller_runtime_reconcile_panics_total{{{l}}}")), Some(1.0));
    assert_eq!(value(&text, &format!("controller_runtime_active_workers{{{l}}}")), Some(0.0));
    assert_eq!(value(&text, &format!("controller_runtime_reconcile_time_seconds_count{{{l}}}")), Some(6.0));
    let sum = value(&text, &format!("controller_runtime_reconcile_time_seconds_sum{{{l}}}")).unwrap();
    assert!(sum >= 2.02, "time sum {sum}");
    // controller-runtime's 40 buckets (5 ms .. 60 s), plus +Inf.
    let buckets: Vec<&str> =
        text.lines().filter(|s| s.starts_with("controller_runtime_reconcile_time_seconds_bucket{")).collect();
    assert_eq!(buckets.len(), 41, "{text}");
    assert!(buckets[0].starts_with(r#"controller_runtime_reconcile_time_seconds_bucket{le="0.005",controller="pods"}"#), "{}", buckets[0]);
    assert_eq!(value(&text, r#"controller_runtime_reconcile_time_seconds_bucket{le="+Inf",controller="pods"}"#), Some(6.0));
    assert_eq!(ReconcileResult::Panic.label(), "error");
    assert_eq!(c.name(), "pods");
}

#[test]
fn reconcile_times_fall_into_controller_runtime_buckets() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let c = metrics.controller("timed");
    for seconds in [0.3, 2.0, 2.2, 90.0] {
        c.reconcile_finished(ReconcileResult::Success, Duration::from_secs_f64(seconds));
    }
    let text = render(&registry);
    let bucket = |le: &str| {
        value(&text, &format!("controller_runtime_reconcile_time_seconds_bucket{{le=\"{le}\",controller=\"timed\"}}"))
    };
    assert_eq!(bucket("0.25"), Some(0.0), "{text}");
    assert_eq!(bucket("0.3"), Some(1.0), "{text}");
    assert_eq!(bucket("2.0"), Some(2.0), "{text}");
    assert_eq!(bucket("2.5"), Some(3.0), "{text}");
    assert_eq!(bucket("60.0"), Some(3.0), "{text}");
    assert_eq!(bucket("+Inf"), Some(4.0), "{text}");
}

#[test]
fn handles_are_shared_across_threads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Metrics>();
    shared::<kcache::metrics::ControllerMetrics>();
    shared::<kcache::metrics::Reconciling>();
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let c = metrics.controller("threads");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    c.reconcile_started().finish(ReconcileResult::Success);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let text = render(&registry);
    assert_eq!(value(&text, r#"controller_runtime_reconcile_total{controller="threads",result="success"}"#), Some(400.0));
    assert_eq!(value(&text, r#"controller_runtime_active_workers{controller="threads"}"#), Some(0.0));
}

#[test]
fn two_handles_of_one_controller_update_the_same_series() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    metrics.controller("pods").reconcile_started().finish(ReconcileResult::Success);
    metrics.controller("pods").reconcile_started().finish(ReconcileResult::Success);
    let text = render(&registry);
    let series = r#"controller_runtime_reconcile_total{controller="pods",result="success"}"#;
    assert_eq!(text.matches(series).count(), 1, "{text}");
    assert_eq!(value(&text, series), Some(2.0), "{text}");
}
