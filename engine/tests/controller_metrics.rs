//! A controller given a metrics set exports controller-runtime's reconcile
//! series under its name: results, errors, panics, time and workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kcache::controller::{Action, Controller, ReconcileKey};
use kcache::informer::{Informer, InformerConfig};
use kcache::metrics::{Metrics, render};
use kcache::queue::{ItemExponentialFailureRateLimiter, WorkQueue};
use kcache::testing::MemorySource;
use prometheus_client::registry::Registry;
use serde_json::json;

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_errors_and_panics_reach_the_controller_runtime_series() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let cms = MemorySource::new("ConfigMap");
    for name in ["ok", "flaky", "boom"] {
        cms.apply(json!({"metadata": {"namespace": "default", "name": name}}));
    }
    let informer = Informer::spawn(cms.clone(), InformerConfig::default()).unwrap();
    let queue: WorkQueue<ReconcileKey> = WorkQueue::builder()
        .name("cms")
        .rate_limiter(ItemExponentialFailureRateLimiter::new(Duration::from_millis(1), Duration::from_millis(10)))
        .build();
    let (stop, signal) = tokio::sync::oneshot::channel::<()>();
    let controller = Controller::<ConfigMap>::new(&informer)
        .with_queue(queue)
        .metrics(&metrics)
        .graceful_shutdown_on(async move {
            let _ = signal.await;
        });
    let stats = controller.stats();
    let attempts = Arc::new(AtomicUsize::new(0));
    let run = tokio::spawn(controller.run(
        |cm: Arc<ConfigMap>, attempts: Arc<AtomicUsize>| async move {
            match cm.metadata.name.as_deref() {
                Some("flaky") if attempts.fetch_add(1, Ordering::SeqCst) < 2 => Err("not yet".to_owned()),
                Some("boom") if attempts.fetch_add(1, Ordering::SeqCst) < 4 => panic!("boom"),
                _ => Ok(Action::await_change()),
            }
        },
        |_, _, _| Action::Requeue,
        Arc::clone(&attempts),
    ));
    for _ in 0..6000 {
        if stats.successes.load(Ordering::SeqCst) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("run returns").unwrap();

    let text = render(&registry);
    let errors = stats.errors.load(Ordering::SeqCst) as f64;
    let panics = stats.panics.load(Ordering::SeqCst) as f64;
    assert_eq!(stats.successes.load(Ordering::SeqCst), 3);
    assert!(errors >= 1.0 && panics >= 1.0, "errors {errors}, panics {panics}");
    assert_eq!(sample(&text, r#"controller_runtime_reconcile_total{controller="cms",result="success"}"#), 3.0);
    assert_eq!(sample(&text, r#"controller_runtime_reconcile_total{controller="cms",result="error"}"#), errors + panics);
    assert_eq!(sample(&text, r#"controller_runtime_reconcile_errors_total{controller="cms"}"#), errors + panics);
    assert_eq!(sample(&text, r#"controller_runtime_reconcile_panics_total{controller="cms"}"#), panics);
    assert_eq!(
        sample(&text, r#"controller_runtime_reconcile_time_seconds_count{controller="cms"}"#),
        3.0 + errors + panics
    );
    assert_eq!(sample(&text, r#"controller_runtime_active_workers{controller="cms"}"#), 0.0);
    assert!(sample(&text, r#"controller_runtime_max_concurrent_reconciles{controller="cms"}"#) >= 1.0);
}
