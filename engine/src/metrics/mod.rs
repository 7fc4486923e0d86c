//! Prometheus metrics of informers, work queues and controllers, the text renderer and an optional `/metrics` endpoint.
//!
//! [`Metrics::register`] puts every kcache metric family into a
//! `prometheus_client` [`Registry`](prometheus_client::registry::Registry) once;
//! informers ([`Metrics::informer`]), work queues
//! ([`WorkQueueBuilder::metrics`](crate::queue::WorkQueueBuilder::metrics)`(&metrics)`)
//! and controllers ([`Metrics::controller`]) then report into those families
//! under their own label values. [`render`] encodes a registry as text;
//! `serve` (feature `metrics-server`, on by default) answers `GET /metrics`.
//! docs/METRICS.md lists every family.
//!
//! | families | labels | names follow |
//! |---|---|---|
//! | `kcache_informer_*` | `informer` | kcache's own |
//! | `workqueue_*` | `name` | client-go's `util/workqueue` |
//! | `controller_runtime_reconcile_*`, `controller_runtime_*_workers`/`_reconciles` | `controller` (and `result`) | controller-runtime's `pkg/internal/controller/metrics` |
//!
//! # Guarantees
//! * One [`Metrics`] per registry describes each family once (one `# HELP` and
//!   one `# TYPE`), whatever the number of informers, queues and controllers.
//! * Informers, queues and controllers can be added after the registry is
//!   served; they appear at the next scrape. A dropped informer's series and a
//!   dropped queue's unfinished-work series disappear.
//! * `serve` binds loopback addresses only; another address must be asked for
//!   with `serve_non_loopback`.
//!
//! # Example
//! Two informers and a work queue in one registry, served on a free port of
//! 127.0.0.1:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use prometheus_client::registry::Registry;
//! use kcache::informer::{Informer, InformerConfig};
//! use kcache::metrics::Metrics;
//! use kcache::queue::WorkQueue;
//! use kcache::testing::MemorySource;
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let pods = MemorySource::new("Pod");
//! pods.apply(serde_json::json!({"metadata": {"namespace": "default", "name": "web-0"}}));
//! let nodes = MemorySource::new("Node");
//! let pod_informer = Informer::spawn(pods, InformerConfig::default()).unwrap();
//! let node_informer = Informer::spawn(nodes, InformerConfig::default()).unwrap();
//! assert!(pod_informer.wait_for_sync(Duration::from_secs(30)).await);
//! assert!(node_informer.wait_for_sync(Duration::from_secs(30)).await);
//!
//! let mut registry = Registry::default();
//! let metrics = Metrics::register(&mut registry);
//! metrics.informer("pods", &pod_informer);
//! metrics.informer("nodes", &node_informer);
//! let queue: WorkQueue<String> = WorkQueue::builder().name("pods").metrics(&metrics).build();
//! queue.add("default/web-0".to_owned());
//!
//! let text = kcache::metrics::render(&registry);
//! assert_eq!(text.matches("# TYPE kcache_informer_store_objects gauge").count(), 1);
//! assert!(text.contains(r#"kcache_informer_store_objects{informer="pods"} 1"#));
//! assert!(text.contains(r#"kcache_informer_store_objects{informer="nodes"} 0"#));
//! assert!(text.contains(r#"workqueue_depth{name="pods"} 1"#));
//!
//! # #[cfg(feature = "metrics-server")] {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let server = kcache::metrics::serve(Arc::new(registry), "127.0.0.1:0".parse().unwrap()).await.unwrap();
//! let mut conn = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
//! conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
//! let mut answer = String::new();
//! conn.read_to_string(&mut answer).await.unwrap();
//! assert!(answer.contains("application/openmetrics-text; version=1.0.0; charset=utf-8"));
//! assert!(answer.contains(r#"kcache_informer_events_total{informer="nodes"} 0"#));
//! server.shutdown().await;
//! # }
//! # });
//! ```

mod controller;
#[cfg(feature = "metrics-server")]
mod server;
mod set;

pub use crate::queue::{WorkQueueMetrics, render};
pub use controller::{ControllerMetrics, ReconcileResult, Reconciling};
#[cfg(feature = "metrics-server")]
pub use server::{MetricsServer, OPENMETRICS_CONTENT_TYPE, ServeError, serve, serve_non_loopback};
pub use set::Metrics;
