//! Where a run's API server is: a simulator child process, an in-process
//! simulator, or a real cluster from a kubeconfig.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::RunError;
use crate::guard;
use crate::sim::{SimHandle, SimServer};

/// The label on every namespace loadgen creates; `loadgen cleanup` deletes them.
pub const OWNED_LABEL: &str = "loadgen.kcache.io/owned";

/// Which API server to run against.
#[derive(Clone, Debug)]
pub enum TargetKind {
    /// `loadgen sim` as a child process (default: engine figures exclude the simulator).
    SimChild,
    /// The simulator inside this process.
    SimInProcess,
    /// A real cluster.
    Kubeconfig {
        /// Kubeconfig file; `None` = the usual lookup (`KUBECONFIG`, `~/.kube/config`).
        path: Option<PathBuf>,
        /// Context; `None` = current context.
        context: Option<String>,
        /// Skip the local-kind guard.
        allow_remote: bool,
    },
}

/// Pods the simulator loads itself before it listens (`--preload`).
#[derive(Clone, Debug)]
pub struct Preload {
    /// How many ([`crate::podgen::PodGen`] pods `0..pods`).
    pub pods: usize,
    /// Their namespace.
    pub namespace: String,
    /// The generator's seed.
    pub seed: u64,
}

/// A started target.
pub struct Target {
    /// A client for it.
    pub client: kube::Client,
    child: Option<tokio::process::Child>,
    sim: Option<SimHandle>,
    real_cluster: bool,
}

impl Target {
    /// Starts or connects to `kind`; a simulator first loads `preload`'s pods.
    pub async fn start(kind: &TargetKind, preload: Option<&Preload>) -> Result<Target, RunError> {
        match kind {
            TargetKind::SimInProcess => {
                let sim = SimServer::builder().start().await.map_err(|e| RunError::Target(e.to_string()))?;
                if let Some(p) = preload {
                    crate::podgen::load_pods(&sim, &p.namespace, p.pods, p.seed)
                        .map_err(|e| RunError::Target(format!("cannot preload pods: {e}")))?;
                }
                let client = sim.client().map_err(|e| RunError::Target(e.to_string()))?;
                Ok(Target { client, child: None, sim: Some(sim), real_cluster: false })
            }
            TargetKind::SimChild => {
                let exe = std::env::current_exe().map_err(|e| RunError::Target(format!("cannot find loadgen's own binary: {e}")))?;
                let mut args: Vec<String> = vec!["sim".into(), "--port".into(), "0".into()];
                if let Some(p) = preload {
                    args.extend(["--pods".into(), p.pods.to_string(), "--namespace".into(), p.namespace.clone()]);
                    args.extend(["--seed".into(), p.seed.to_string()]);
                }
                // Generating and loading pods happens before the first line: allow for it.
                let startup = Duration::from_secs(30 + preload.map_or(0, |p| p.pods as u64 / 1_000));
                let mut child = tokio::process::Command::new(exe)
                    .args(&args)
                    .stdout(std::process::Stdio::piped())
                    .stdin(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| RunError::Target(format!("cannot start `loadgen sim`: {e}")))?;
                let stdout = child.stdout.take().ok_or_else(|| RunError::Target("no stdout from `loadgen sim`".into()))?;
                let mut lines = BufReader::new(stdout).lines();
                let first = tokio::time::timeout(startup, lines.next_line())
                    .await
                    .map_err(|_| RunError::Target(format!("`loadgen sim` did not start within {startup:?}")))?
                    .map_err(|e| RunError::Target(e.to_string()))?
                    .ok_or_else(|| RunError::Target("`loadgen sim` exited before listening".into()))?;
                let url = first
                    .strip_prefix("listening on ")
                    .ok_or_else(|| RunError::Target(format!("unexpected first line from `loadgen sim`: {first:?}")))?
                    .trim()
                    .to_owned();
                // Keep draining the child's stdout so it never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                let uri = url.parse().map_err(|e| RunError::Target(format!("bad simulator url {url}: {e}")))?;
                let client = kube::Client::try_from(kube::Config::new(uri)).map_err(|e| RunError::Target(e.to_string()))?;
                Ok(Target { client, child: Some(child), sim: None, real_cluster: false })
            }
            TargetKind::Kubeconfig { path, context, allow_remote } => {
                let kubeconfig = match path {
                    Some(p) => Kubeconfig::read_from(p),
                    None => Kubeconfig::read(),
                }
                .map_err(|e| RunError::Target(format!("cannot read kubeconfig: {e}")))?;
                let name = guard::check_context(&kubeconfig, context.as_deref(), *allow_remote)
                    .map_err(|e| RunError::Target(e.to_string()))?;
                let options = KubeConfigOptions { context: Some(name), ..KubeConfigOptions::default() };
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| RunError::Target(format!("cannot load kubeconfig: {e}")))?;
                let client = kube::Client::try_from(config).map_err(|e| RunError::Target(e.to_string()))?;
                Ok(Target { client, child: None, sim: None, real_cluster: true })
            }
        }
    }

    /// Removes what the run created (a real cluster's namespaces); stops a simulator.
    pub async fn cleanup(mut self, namespaces: &[String]) {
        if self.real_cluster {
            let api: Api<Namespace> = Api::all(self.client.clone());
            for ns in namespaces {
                let _ = api.delete(ns, &DeleteParams::default()).await;
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await;
        }
    }
}

/// Deletes every namespace labelled [`OWNED_LABEL`] (`loadgen cleanup`); returns their names.
pub async fn cleanup_owned(client: &kube::Client) -> Result<Vec<String>, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let owned = api.list(&ListParams::default().labels(&format!("{OWNED_LABEL}=true"))).await?;
    let mut names = Vec::new();
    for ns in owned.items {
        if let Some(name) = ns.metadata.name {
            api.delete(&name, &DeleteParams::default()).await?;
            names.push(name);
        }
    }
    Ok(names)
}
