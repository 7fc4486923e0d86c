//! Where a run's API server is: a simulator child process, an in-process
//! simulator, or a real cluster from a kubeconfig.

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::error::RunError;
use crate::guard;
use crate::sim::{SimHandle, SimServer};


/// Which API server to run against.
#[derive(Clone, Debug)]
pub enum TargetKind {
    /// `loadgen sim` as a child process (default: engine figures exclude the simulator).
    SimChild,
    /// The simulator inside this process.
    SimInProcess,
    /// An API server already running at this URL, without credentials: a
    /// `loadgen sim` started by hand, or a test's simulator with other writers.
    /// Shared, like a cluster: the run deletes its namespaces when it ends.
    Url(String),
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

/// How another process (the `loadgen write` child) reaches the same target.
#[derive(Clone, Debug)]
pub enum Connection {
    /// A URL without credentials: a simulator on 127.0.0.1.
    Url(String),
    /// A kubeconfig context the guard has already accepted once.
    Kubeconfig {
        /// Kubeconfig file; `None` = the usual lookup.
        path: Option<PathBuf>,
        /// The context's name; `None` = the current context.
        context: Option<String>,
        /// Skip the local-kind guard.
        allow_remote: bool,
    },
}

impl Connection {
    /// The command-line arguments that name this connection (`--server URL` or
    /// `--kubeconfig`/`--context`/`--allow-remote`). Credentials are never
    /// among them: a kubeconfig is passed by path.
    pub fn args(&self) -> Vec<String> {
        match self {
            Connection::Url(url) => vec!["--server".to_owned(), url.clone()],
            Connection::Kubeconfig { path, context, allow_remote } => {
                let mut args = Vec::new();
                if let Some(p) = path {
                    args.extend(["--kubeconfig".to_owned(), p.display().to_string()]);
                }
                if let Some(c) = context {
                    args.extend(["--context".to_owned(), c.clone()]);
                }
                if *allow_remote {
                    args.push("--allow-remote".to_owned());
                }
                args
            }
        }
    }

    /// A client for the target.
    pub async fn client(&self) -> Result<kube::Client, RunError> {
        match self {
            Connection::Url(url) => {
                let uri = url.parse().map_err(|e| RunError::Target(format!("bad server url {url}: {e}")))?;
                kube::Client::try_from(kube::Config::new(uri)).map_err(|e| RunError::Target(e.to_string()))
            }
            Connection::Kubeconfig { path, context, allow_remote } => {
                kubeconfig_client(path.as_ref(), context.as_deref(), *allow_remote).await.map(|(client, _)| client)
            }
        }
    }
}

/// A client for a kubeconfig context the guard accepts, and the context's name.
async fn kubeconfig_client(
    path: Option<&PathBuf>,
    context: Option<&str>,
    allow_remote: bool,
) -> Result<(kube::Client, String), RunError> {
    let kubeconfig = match path {
        Some(p) => Kubeconfig::read_from(p),
        None => Kubeconfig::read(),
    }
    .map_err(|e| RunError::Target(format!("cannot read kubeconfig: {e}")))?;
    let name = guard::check_context(&kubeconfig, context, allow_remote).map_err(|e| RunError::Target(e.to_string()))?;
    let options = KubeConfigOptions { context: Some(name.clone()), ..KubeConfigOptions::default() };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| RunError::Target(format!("cannot load kubeconfig: {e}")))?;
    let client = kube::Client::try_from(config).map_err(|e| RunError::Target(e.to_string()))?;
    Ok((client, name))
}

/// A started target.
pub struct Target {
    /// A client for it.
    pub client: kube::Client,
    /// How another process reaches it.
    pub connection: Connection,
    child: Option<tokio::process::Child>,
    sim: Option<SimHandle>,
    /// Others may use the server after the run: delete the run's namespaces.
    shared: bool,
}

impl Target {
    /// Starts or connects to `kind`; a simulator first loads `preload`'s pods.
    pub async fn start(kind: &TargetKind, preload: Option<&Preload>) -> Result<Target, RunError> {
        Self::start_with(kind, preload, false).await
    }

    /// [`Target::start`], a simulator serving the KEP-5866 shard selector when
    /// `sharded_list_and_watch` (a real cluster serves it or not by its own gate).
    pub async fn start_with(kind: &TargetKind, preload: Option<&Preload>, sharded_list_and_watch: bool) -> Result<Target, RunError> {
        match kind {
            TargetKind::SimInProcess => {
                let sim = SimServer::builder().sharded_list_and_watch(sharded_list_and_watch).start().await.map_err(|e| RunError::Target(e.to_string()))?;
                if let Some(p) = preload {
                    crate::podgen::load_pods(&sim, &p.namespace, p.pods, p.seed)
                        .map_err(|e| RunError::Target(format!("cannot preload pods: {e}")))?;
                }
                let client = sim.client().map_err(|e| RunError::Target(e.to_string()))?;
                let connection = Connection::Url(sim.url());
                Ok(Target { client, connection, child: None, sim: Some(sim), shared: false })
            }
            TargetKind::SimChild => {
                let exe = std::env::current_exe().map_err(|e| RunError::Target(format!("cannot find loadgen's own binary: {e}")))?;
                let mut args: Vec<String> = vec!["sim".into(), "--port".into(), "0".into()];
                if sharded_list_and_watch {
                    args.push("--sharded-list-and-watch".into());
                }
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
                let connection = Connection::Url(url);
                let client = connection.client().await?;
                Ok(Target { client, connection, child: Some(child), sim: None, shared: false })
            }
            TargetKind::Kubeconfig { path, context, allow_remote } => {
                let (client, context) = kubeconfig_client(path.as_ref(), context.as_deref(), *allow_remote).await?;
                let connection = Connection::Kubeconfig { path: path.clone(), context: Some(context), allow_remote: *allow_remote };
                Ok(Target { client, connection, child: None, sim: None, shared: true })
            }
            TargetKind::Url(url) => {
                if preload.is_some() {
                    return Err(RunError::PreloadNeedsSim);
                }
                let connection = Connection::Url(url.clone());
                let client = connection.client().await?;
                Ok(Target { client, connection, child: None, sim: None, shared: true })
            }
        }
    }

    /// Removes what the run created on a shared server (its namespaces, see
    /// [`crate::cleanup`]); stops a simulator the run started.
    pub async fn cleanup(mut self, namespaces: &[String]) {
        if self.shared {
            for ns in namespaces {
                if let Err(e) = crate::cleanup::delete_namespace(&self.client, ns).await {
                    tracing::warn!("could not delete namespace {ns}: {}; run 'loadgen cleanup'", super::error::describe_kube_error(&e));
                }
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
