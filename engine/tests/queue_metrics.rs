//! Work queue metrics with client-go's names, labels and values.

use std::time::Duration;

use kcache::queue::{WorkQueue, WorkQueueMetrics, render};
use prometheus_client::registry::Registry;

/// The value of the first sample line starting with `series ` (name+labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

#[test]
fn metrics_appear_in_the_rendered_text_with_client_go_names_and_values() {
    let mut registry = Registry::default();
    let q: WorkQueue<&str> = WorkQueue::builder().name("pods").metrics(&mut registry).build();
    q.add("a");
    q.add("a"); // duplicate: not an add
    q.add("b");
    q.add("c");
    let k = q.get().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    q.done(&k);
    let busy = q.get().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    q.add_after("d", Duration::ZERO);
    q.add_rate_limited("e");

    let text = render(&registry);
    let l = r#"{name="pods"}"#;
    for name in [
        "workqueue_depth",
        "workqueue_adds_total",
        "workqueue_queue_duration_seconds_count",
        "workqueue_work_duration_seconds_count",
        "workqueue_unfinished_work_seconds",
        "workqueue_longest_running_processor_seconds",
        "workqueue_retries_total",
    ] {
        assert!(sample(&text, &format!("{name}{l}")).is_some(), "missing {name} in\n{text}");
    }
    // a, b, c, d were new adds ("e" is still waiting for its delay).
    assert_eq!(sample(&text, &format!("workqueue_adds_total{l}")), Some(4.0));
    // c and d are waiting.
    assert_eq!(sample(&text, &format!("workqueue_depth{l}")), Some(2.0));
    assert_eq!(sample(&text, &format!("workqueue_queue_duration_seconds_count{l}")), Some(2.0));
    assert_eq!(sample(&text, &format!("workqueue_work_duration_seconds_count{l}")), Some(1.0));
    let worked = sample(&text, &format!("workqueue_work_duration_seconds_sum{l}")).unwrap();
    assert!(worked >= 0.02, "work duration sum {worked}");
    assert_eq!(sample(&text, &format!("workqueue_retries_total{l}")), Some(2.0));
    // "b" has been processing for at least 30 ms.
    let unfinished = sample(&text, &format!("workqueue_unfinished_work_seconds{l}")).unwrap();
    let longest = sample(&text, &format!("workqueue_longest_running_processor_seconds{l}")).unwrap();
    assert!(unfinished >= 0.03 && longest >= 0.03 && longest <= unfinished, "{unfinished} {longest}");
    // client-go's buckets: 10 ns .. 10 s, ten of them, plus +Inf.
    let buckets = text.lines().filter(|l| l.starts_with("workqueue_queue_duration_seconds_bucket")).count();
    assert_eq!(buckets, 11);
    assert!(text.contains(r#"workqueue_queue_duration_seconds_bucket{le="1e-8",name="pods"}"#), "{text}");
    assert!(text.contains("# TYPE workqueue_depth gauge"));
    assert!(text.contains("# TYPE workqueue_adds counter"));
    assert!(text.contains("# TYPE workqueue_queue_duration_seconds histogram"));

    q.done(&busy);
    let text = render(&registry);
    assert_eq!(sample(&text, &format!("workqueue_unfinished_work_seconds{l}")), Some(0.0));
}

#[test]
fn a_re_add_while_processing_counts_as_an_add_and_as_depth() {
    // client-go counts the dirty-while-processing key in depth and adds.
    let mut registry = Registry::default();
    let q: WorkQueue<u8> = WorkQueue::builder().name("q").metrics(&mut registry).build();
    q.add(1);
    let k = q.get().unwrap();
    q.add(1);
    let text = render(&registry);
    assert_eq!(sample(&text, r#"workqueue_adds_total{name="q"}"#), Some(2.0));
    assert_eq!(sample(&text, r#"workqueue_depth{name="q"}"#), Some(1.0));
    q.done(&k);
    assert_eq!(q.get(), Some(1));
    let text = render(&registry);
    assert_eq!(sample(&text, r#"workqueue_depth{name="q"}"#), Some(0.0));
    assert_eq!(sample(&text, r#"workqueue_queue_duration_seconds_count{name="q"}"#), Some(2.0));
}

#[test]
fn several_queues_share_one_set_of_families_with_their_own_name_label() {
    let mut registry = Registry::default();
    let metrics = WorkQueueMetrics::register(&mut registry);
    let a: WorkQueue<u8> = WorkQueue::builder().name("a").metrics(&metrics).build();
    let b: WorkQueue<u8> = WorkQueue::builder().name("b").metrics(&metrics).build();
    a.add(1);
    b.add(1);
    b.add(2);
    let text = render(&registry);
    assert_eq!(text.matches("# TYPE workqueue_depth gauge").count(), 1);
    assert_eq!(text.matches("# TYPE workqueue_unfinished_work_seconds gauge").count(), 1);
    assert_eq!(sample(&text, r#"workqueue_depth{name="a"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"workqueue_depth{name="b"}"#), Some(2.0));
    drop(b);
    let text = render(&registry);
    assert!(sample(&text, r#"workqueue_unfinished_work_seconds{name="b"}"#).is_none());
    assert!(sample(&text, r#"workqueue_unfinished_work_seconds{name="a"}"#).is_some());
}
