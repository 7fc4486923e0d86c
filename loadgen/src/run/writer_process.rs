//! Where a run's writes come from: a `loadgen write` child process (the
//! default) or the run's own process.
//!
//! The child creates the namespaces and pods and drives the write mix with the
//! same [`Writer`] the in-process placement uses, so the run's process holds the
//! engine alone: its RSS, CPU and profile exclude the HTTP client of the
//! writes, the pods generated to create them and the per-key write bookkeeping.
//! Writes are stamped with the wall clock ([`super::recorder::now_nanos`]), which
//! both processes share, so event latency is measured the same way in either
//! placement.
//!
//! # Protocol
//! The child prints one JSON [`WriterMessage`] per stdout line: `created`
//! while it creates pods, `ready` once every pod exists, then it waits for a
//! `go` line on stdin, drives the writes and prints `done` with its
//! [`WriteStats`] (or `failed` with the reason). If stdin closes before `go`,
//! the run has gone and the child exits without writing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::target::Connection;
use super::raw_watch::RawWatch;
use super::write_mix::{self, WriteStats, Writer};
use super::error::{RunError, chain};

/// Which process drives a run's writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriterKind {
    /// A `loadgen write` child process: the run's figures are the engine's alone.
    #[default]
    Child,
    /// The run's own process (its RSS and CPU then include the writer's).
    InProcess,
}

impl WriterKind {
    /// The name used in reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            WriterKind::Child => "child",
            WriterKind::InProcess => "in-process",
        }
    }
}

/// What the writer creates and writes.
#[derive(Clone, Debug)]
pub struct WritePlan {
    /// The run's namespaces (pods are spread over them round-robin).
    pub namespaces: Vec<String>,
    /// Pods before the write phase.
    pub pods: usize,
    /// Seed of the pod contents and the write mix.
    pub seed: u64,
    /// The simulator already holds pods `0..pods` in `namespaces[0]`: create nothing.
    pub preloaded: bool,
    /// Writes per second.
    pub write_qps: f64,
    /// Length of the write phase.
    pub duration: Duration,
    /// Label selector of the run's pods, for the raw watch (`run/raw_watch.rs`).
    pub selector: String,
    /// The run's id: the value of the pods' run label ([`super::RUN_LABEL`]).
    pub run_id: String,
}

impl WritePlan {
    /// The command-line arguments of `loadgen write` for this plan (after the
    /// connection's own arguments).
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--namespaces".to_owned(),
            self.namespaces.join(","),
            "--pods".to_owned(),
            self.pods.to_string(),
            "--seed".to_owned(),
            self.seed.to_string(),
            "--write-qps".to_owned(),
            self.write_qps.to_string(),
            "--duration".to_owned(),
            self.duration.as_secs_f64().to_string(),
            "--selector".to_owned(),
            self.selector.clone(),
            "--run-id".to_owned(),
            self.run_id.clone(),
        ];
        if self.preloaded {
            args.push("--preloaded".to_owned());
        }
        args
    }
}

/// One line of a `loadgen write` child's stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriterMessage {
    /// Pods created so far.
    Created {
        /// How many.
        pods: u64,
    },
    /// Every pod exists; waiting for `go`.
    Ready,
    /// The write phase is over.
    Done(WriteStats),
    /// The writer could not go on.
    Failed {
        /// Why.
        error: String,
    },
}

/// Creates the namespaces and pods (or takes the preloaded ones); returns a
/// writer over them.
async fn prepare_writer(client: &kube::Client, plan: &WritePlan, bar: &ProgressBar) -> Result<Writer, RunError> {
    write_mix::ensure_namespaces(client, &plan.namespaces).await?;
    let keys = if plan.preloaded {
        let ns = plan.namespaces.first().cloned().unwrap_or_default();
        (0..plan.pods).map(|i| (ns.clone(), crate::podgen::PodGen::name(i))).collect()
    } else {
        write_mix::create_pods(client, &plan.namespaces, plan.pods, plan.seed, &plan.run_id, bar).await?
    };
    Ok(Writer::new(client.clone(), keys, plan.namespaces.clone(), plan.seed, &plan.run_id))
}

/// Opens the raw watch (`run/raw_watch.rs`) before the engine starts, so that
/// the API calls counted for the engine exclude it; `None` (with a warning)
/// when it cannot be opened, since the run is still worth its other figures.
async fn open_raw_watch(client: &kube::Client, plan: &WritePlan) -> Option<RawWatch> {
    if plan.duration.is_zero() {
        return None;
    }
    RawWatch::open(client, &plan.selector)
        .await
        .inspect_err(|e| tracing::warn!("no raw watch, so no event-latency floor for this run: {e}"))
        .ok()
}

/// Drives the writes, timing their events on the raw watch beside them.
async fn drive_writer(mut w: Writer, raw_watch: Option<RawWatch>, plan: &WritePlan, bar: &ProgressBar) -> WriteStats {
    if plan.duration.is_zero() {
        return WriteStats::default();
    }
    if let Some(raw_watch) = &raw_watch {
        raw_watch.start();
    }
    let mut stats = w.drive(plan.write_qps, plan.duration, bar).await;
    if let Some(raw_watch) = raw_watch {
        let own = stats.upsert_rvs.iter().copied().collect();
        stats.wire_latency_ms = raw_watch.finish(&own).await;
    }
    stats
}

/// The write side of a run, pods created and ready to write.
pub enum Writes {
    /// The writer runs in this process.
    InProcess {
        /// The writer.
        writer: Writer,
        /// The raw watch timing the event-latency floor, open.
        raw_watch: Option<RawWatch>,
        /// Its plan.
        plan: WritePlan,
    },
    /// A `loadgen write` child process.
    Child {
        /// The process (killed when dropped).
        child: Child,
        /// Its stdin, for `go`.
        stdin: ChildStdin,
        /// Its stdout, one [`WriterMessage`] per line.
        lines: Lines<BufReader<ChildStdout>>,
        /// Its plan.
        plan: WritePlan,
    },
}

impl Writes {
    /// Creates the run's namespaces and pods where `kind` says, showing
    /// progress on `bar`; returns once every pod exists.
    pub async fn prepare(
        kind: WriterKind,
        client: &kube::Client,
        connection: &Connection,
        plan: WritePlan,
        bar: &ProgressBar,
    ) -> Result<Writes, RunError> {
        match kind {
            WriterKind::InProcess => {
                let writer = prepare_writer(client, &plan, bar).await?;
                let raw_watch = open_raw_watch(client, &plan).await;
                Ok(Writes::InProcess { writer, raw_watch, plan })
            }
            WriterKind::Child => {
                let exe = std::env::current_exe()
                    .map_err(|e| RunError::Writer(format!("cannot find loadgen's own binary: {e}")))?;
                let mut child = tokio::process::Command::new(exe)
                    .arg("write")
                    .args(connection.args())
                    .args(plan.args())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| RunError::Writer(format!("cannot start `loadgen write`: {e}")))?;
                let stdin = child.stdin.take().ok_or_else(|| RunError::Writer("no stdin to `loadgen write`".into()))?;
                let stdout = child.stdout.take().ok_or_else(|| RunError::Writer("no stdout from `loadgen write`".into()))?;
                let mut lines = BufReader::new(stdout).lines();
                // Creating 100k pods over HTTP takes about two minutes here; allow plenty.
                let timeout = Duration::from_secs(300 + plan.pods as u64 / 100);
                let deadline = Instant::now() + timeout;
                loop {
                    match next_message(&mut lines, deadline, "creating pods").await? {
                        WriterMessage::Created { pods } => bar.set_position(pods),
                        WriterMessage::Ready => break,
                        other => return Err(RunError::Writer(format!("unexpected message while creating pods: {other:?}"))),
                    }
                }
                Ok(Writes::Child { child, stdin, lines, plan })
            }
        }
    }

    /// Drives the write phase; returns what it did once every write in flight
    /// has been answered. `bar` counts seconds.
    pub async fn drive(self, bar: &ProgressBar) -> Result<WriteStats, RunError> {
        match self {
            Writes::InProcess { writer, raw_watch, plan } => Ok(drive_writer(writer, raw_watch, &plan, bar).await),
            Writes::Child { mut child, mut stdin, mut lines, plan } => {
                let go = async {
                    stdin.write_all(b"go\n").await?;
                    stdin.flush().await
                };
                go.await.map_err(|e| RunError::Writer(format!("cannot tell `loadgen write` to start: {e}")))?;
                let start = Instant::now();
                let deadline = start + plan.duration + Duration::from_secs(300);
                let ticker = {
                    let bar = bar.clone();
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(Duration::from_secs(1));
                        loop {
                            tick.tick().await;
                            bar.set_position(start.elapsed().as_secs());
                        }
                    })
                };
                let result = next_message(&mut lines, deadline, "writing").await;
                ticker.abort();
                let _ = child.wait().await;
                match result? {
                    WriterMessage::Done(stats) => Ok(stats),
                    other => Err(RunError::Writer(format!("unexpected message after the write phase: {other:?}"))),
                }
            }
        }
    }
}

async fn next_message(
    lines: &mut Lines<BufReader<ChildStdout>>,
    deadline: Instant,
    during: &str,
) -> Result<WriterMessage, RunError> {
    let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
        .await
        .map_err(|_| RunError::Writer(format!("`loadgen write` did not answer in time while {during}")))?
        .map_err(|e| RunError::Writer(format!("cannot read from `loadgen write`: {e}")))?
        .ok_or_else(|| RunError::Writer(format!("`loadgen write` exited while {during} (its errors are above)")))?;
    let message: WriterMessage = serde_json::from_str(&line)
        .map_err(|e| RunError::Writer(format!("`loadgen write` said something unreadable ({e}): {line:?}")))?;
    match message {
        WriterMessage::Failed { error } => Err(RunError::Writer(error)),
        m => Ok(m),
    }
}

fn emit(message: &WriterMessage) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A parent that went away is noticed on stdin; a write error here changes nothing.
    let _ = serde_json::to_writer(&mut out, message);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// The child side (`loadgen write`): connects, creates the pods, reports
/// `ready`, waits for `go` on stdin and drives the writes, reporting on stdout
/// as `run/writer_process.rs`'s module docs describe. Returns when done; an error has
/// already been reported as `failed`.
pub async fn serve_child(connection: &Connection, plan: &WritePlan) -> Result<(), RunError> {
    let result = serve_child_inner(connection, plan).await;
    if let Err(e) = &result {
        emit(&WriterMessage::Failed { error: chain(e) });
    }
    result
}

async fn serve_child_inner(connection: &Connection, plan: &WritePlan) -> Result<(), RunError> {
    let client = connection.client().await?;
    let bar = ProgressBar::hidden();
    let progress = {
        let bar = bar.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                emit(&WriterMessage::Created { pods: bar.position() });
            }
        })
    };
    let writer = prepare_writer(&client, plan, &bar).await;
    progress.abort();
    let writer = writer?;
    let raw_watch = open_raw_watch(&client, plan).await;
    emit(&WriterMessage::Ready);
    let go = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| RunError::Writer(format!("cannot read stdin: {e}")))?
    .map_err(|e| RunError::Writer(format!("cannot read stdin: {e}")))?;
    if go.trim() != "go" {
        // Stdin closed (or nonsense): the run is gone, so nothing is written.
        return Ok(());
    }
    let stats = drive_writer(writer, raw_watch, plan, &ProgressBar::hidden()).await;
    emit(&WriterMessage::Done(stats));
    Ok(())
}
