//! kube-rs's `configmapgen_controller` on kcache: every `ConfigMapGenerator`
//! (`nullable.se/v1`) gets a ConfigMap of its name holding `data.content`, owned by
//! it; change or delete the ConfigMap and the controller puts it back.
//!
//! The controller is in `configmapgen/controller.rs` (the end-to-end test
//! `loadgen/tests/example_configmapgen.rs` runs the same code against the simulator).
//! Against the cluster of your kubeconfig, with the CRD installed:
//!
//! ```sh
//! kubectl apply -f - <<'YAML'
//! apiVersion: apiextensions.k8s.io/v1
//! kind: CustomResourceDefinition
//! metadata: {name: configmapgenerators.nullable.se}
//! spec:
//!   group: nullable.se
//!   names: {kind: ConfigMapGenerator, plural: configmapgenerators, shortNames: [cmg], singular: configmapgenerator}
//!   scope: Namespaced
//!   versions:
//!   - name: v1
//!     served: true
//!     storage: true
//!     schema: {openAPIV3Schema: {type: object, properties: {spec: {type: object, properties: {content: {type: string}}, required: [content]}}}}
//! YAML
//! cargo run -p kcache --example configmapgen_controller   # or: -- http://127.0.0.1:8001
//! ```
//!
//! Press Enter to reconcile every generator, Ctrl+C to shut down gracefully (twice
//! to exit at once).

#[path = "configmapgen/controller.rs"]
mod configmapgen;

use std::io::BufRead;

use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = match std::env::args().nth(1) {
        Some(url) => kube::Client::try_from(kube::Config::new(url.parse()?))?,
        None => kube::Client::try_default().await?,
    };

    let (reload_tx, reload_rx) = futures::channel::mpsc::channel(0);
    // A plain thread: tokio's stdin cannot be aborted and would hold the runtime open.
    std::thread::spawn(move || {
        let mut reload_tx = reload_tx;
        for _ in std::io::BufReader::new(std::io::stdin()).lines() {
            let _ = reload_tx.try_send(());
        }
    });
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("shutting down gracefully; Ctrl+C again to exit now");
        tokio::spawn(async {
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(0);
        });
    };

    eprintln!("configmapgen controller started: Enter reconciles everything, Ctrl+C stops");
    configmapgen::run(client, reload_rx.map(|()| ()), shutdown).await?;
    eprintln!("controller stopped");
    Ok(())
}
