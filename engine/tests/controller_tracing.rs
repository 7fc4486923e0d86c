//! Each reconcile runs in a `reconcile` span naming the controller, the kind and the
//! object, and a failure is logged inside it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kcache::controller::{Action, Controller};
use kcache::informer::{Informer, InformerConfig};
use kcache::testing::MemorySource;
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Fields of one span or event, as text.
type Fields = HashMap<String, String>;

struct Text<'a>(&'a mut Fields);

impl Visit for Text<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Records `reconcile` spans and, for each event, the span it was emitted in.
#[derive(Default)]
struct Recorder {
    next: AtomicU64,
    spans: Mutex<HashMap<u64, Fields>>,
    events: Mutex<Vec<(Fields, Option<Fields>)>>,
}

thread_local! {
    static CURRENT: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Shared(Arc<Recorder>);

impl Subscriber for Shared {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.0.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut fields = Fields::new();
        fields.insert("span".into(), attrs.metadata().name().to_owned());
        attrs.record(&mut Text(&mut fields));
        self.0.spans.lock().unwrap().insert(id, fields);
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Text(&mut fields));
        let current = CURRENT.with(|c| c.borrow().last().copied());
        let span = current.and_then(|id| self.0.spans.lock().unwrap().get(&id).cloned());
        self.0.events.lock().unwrap().push((fields, span));
    }
    fn enter(&self, span: &Id) {
        CURRENT.with(|c| c.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, _: &Id) {
        CURRENT.with(|c| c.borrow_mut().pop());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reconcile_has_a_span_with_its_object_and_failures_are_logged_in_it() {
    let recorder = Arc::new(Recorder::default());
    tracing::subscriber::set_global_default(Shared(Arc::clone(&recorder))).unwrap();

    let cms = MemorySource::new("ConfigMap");
    cms.apply(json!({"metadata": {"namespace": "default", "name": "app"}}));
    let informer = Informer::spawn(cms.clone(), InformerConfig::default()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = Controller::<ConfigMap>::new(&informer).graceful_shutdown_on(async move {
        let _ = stopped.await;
    });
    let stats = controller.stats();
    let run = tokio::spawn(controller.run(
        |_cm: Arc<ConfigMap>, _: Arc<()>| async { Err::<Action, _>("backend unavailable".to_owned()) },
        |_, _, _| Action::await_change(),
        Arc::new(()),
    ));
    for _ in 0..2000 {
        if stats.errors.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), run).await.unwrap().unwrap();
    assert_eq!(stats.errors.load(Ordering::SeqCst), 1);

    let spans: Vec<Fields> = recorder.spans.lock().unwrap().values().filter(|f| f["span"] == "reconcile").cloned().collect();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0]["object"], "ConfigMap.v1./app.default");
    assert_eq!(spans[0]["kind"], "ConfigMap");
    assert_eq!(spans[0]["controller"], "configmap");
    let events = recorder.events.lock().unwrap();
    let (failure, span) = events
        .iter()
        .find(|(f, _)| f.get("message").is_some_and(|m| m.contains("reconcile failed")))
        .expect("the failure is logged");
    assert_eq!(failure["error"], "backend unavailable");
    assert_eq!(span.as_ref().map(|s| s["object"].as_str()), Some("ConfigMap.v1./app.default"));
}
