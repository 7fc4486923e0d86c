//! Two controllers over three kinds: a `WebApp` (`example.kcache.dev/v1`, spec
//! `replicas` and `image`) owns one `WebAppRevision` per image, which owns the pods.
//! Scaling the app scales its revision's pods; a new image makes a new revision and
//! retires the old one once the new one runs all its pods; pod counts flow up into
//! the revision's and the app's `status`. A finalizer on the app deletes its
//! revisions before the app goes.
//!
//! The controllers are in `multikind/` (the end-to-end test
//! `loadgen/tests/example_multikind.rs` runs the same code against the simulator).
//! Against the cluster of your kubeconfig, with the two CRDs installed (both
//! namespaced, `x-kubernetes-preserve-unknown-fields` specs, a `status` subresource):
//!
//! ```sh
//! for kind in WebApp:webapps WebAppRevision:webapprevisions; do
//! kubectl apply -f - <<YAML
//! apiVersion: apiextensions.k8s.io/v1
//! kind: CustomResourceDefinition
//! metadata: {name: ${kind#*:}.example.kcache.dev}
//! spec:
//!   group: example.kcache.dev
//!   names: {kind: ${kind%:*}, plural: ${kind#*:}}
//!   scope: Namespaced
//!   versions:
//!   - name: v1
//!     served: true
//!     storage: true
//!     subresources: {status: {}}
//!     schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
//! YAML
//! done
//! cargo run -p kcache --example multikind_controller   # or: -- http://127.0.0.1:8001
//! ```

#[path = "multikind/controller.rs"]
mod controller;
#[path = "multikind/types.rs"]
mod types;

use std::sync::Arc;
use std::sync::atomic::Ordering;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = match std::env::args().nth(1) {
        Some(url) => kube::Client::try_from(kube::Config::new(url.parse()?))?,
        None => kube::Client::try_default().await?,
    };
    let counters = Arc::new(controller::Counters::default());
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    eprintln!("webapp and revision controllers started; Ctrl+C stops them");
    controller::run(client, Arc::clone(&counters), shutdown).await?;
    eprintln!("stopped after {} cleanups", counters.cleanups.load(Ordering::Relaxed));
    Ok(())
}
