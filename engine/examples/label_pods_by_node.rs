//! A complete controller: label every pod with the node it runs on.
//!
//! ```sh
//! # terminal 1: a simulated API server with 1,000 pods
//! cargo run --release -p kcache-loadgen -- sim --port 8001 --pods 1000 --ignore-stdin
//! # terminal 2: the controller (exits once every pod is labelled, with --once)
//! cargo run --release -p kcache --example label_pods_by_node -- http://127.0.0.1:8001 --once
//! ```
//!
//! Without a URL it uses the usual kubeconfig (`KUBECONFIG`, `~/.kube/config`).
//! The informer feeds a workqueue; each reconcile reads the pod from the cache
//! and, when the label is missing or stale, merge-patches it through the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kcache::controller::{Action, KeyController, ReconcileKey, kind_of};
use kcache::informer::{Informer, InformerConfig};
use kcache::reflector::KubeSource;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};

const LABEL: &str = "kcache.io/node";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let once = args.iter().any(|a| a == "--once");
    let client = match args.iter().find(|a| a.starts_with("http")) {
        Some(url) => kube::Client::try_from(kube::Config::new(url.parse()?))?,
        None => kube::Client::try_default().await?,
    };

    let mut config = InformerConfig::default();
    config.decoder.index_fields = vec!["/spec/nodeName".into()];
    let informer = Informer::spawn(KubeSource::for_type::<Pod>(client.clone(), None), config)?;
    let controller = KeyController::new().workers(4);
    informer.add_handler(controller.handler_for(kind_of::<Pod>(&())))?;
    let started = Instant::now();
    if !informer.wait_for_sync(Duration::from_secs(120)).await {
        return Err("the pod informer did not sync within 2 minutes".into());
    }
    eprintln!("synced {} pods in {:?}", informer.store().len(), started.elapsed());

    let patched = Arc::new(AtomicUsize::new(0));
    let store = informer.store();
    let counter = Arc::clone(&patched);
    let reconcile = move |key: ReconcileKey| {
        let (store, client, counter) = (store.clone(), client.clone(), Arc::clone(&counter));
        async move {
            // Read from the cache: no API call unless there is something to change.
            let Some(pod) = store.get(&key.object_ref()) else { return Ok(Action::Done) };
            let Some(node) = pod.field(0) else { return Ok(Action::Done) };
            if pod.label(LABEL) == Some(node) {
                return Ok(Action::Done);
            }
            let api: Api<Pod> = Api::namespaced(client, key.namespace.as_deref().unwrap_or("default"));
            let patch = serde_json::json!({"metadata": {"labels": {LABEL: node}}});
            api.patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            counter.fetch_add(1, Ordering::Relaxed);
            Ok::<_, kube::Error>(Action::Done)
        }
    };

    let check = informer.store();
    let stop = async move {
        if once {
            // Done when every cached pod carries its node label.
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if check.list().iter().all(|p| p.field(0).is_none() || p.label(LABEL) == p.field(0)) {
                    return;
                }
            }
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    controller.run(reconcile, stop).await;
    println!("labelled {} pods in {:?}", patched.load(Ordering::Relaxed), started.elapsed());
    Ok(())
}
