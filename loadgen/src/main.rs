//! `loadgen`: drives kcache against the simulated API server or a real cluster.
//!
//! Thin dispatch only: each mode lives in the library. Exit codes: 0 ok,
//! 1 check failed, 2 error.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kcache_loadgen::run::{self, Connection, EngineKind, HandlerStyle, ReplicaPlan, RunConfig, TargetKind, WritePlan, WriterKind};
use kcache_loadgen::{cleanup, podgen, sim::SimServer};

/// mimalloc, told to purge freed pages at once (`kcache_loadgen::alloc`),
/// returns freed memory to the OS promptly and keeps per-thread heaps small;
/// glibc's malloc, with an arena per thread, let RSS climb by hundreds
/// of MiB during a write phase whose live data did not grow.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Drives kcache against the simulated API server or a real cluster"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Run the simulated Kubernetes API server in the foreground.
    ///
    /// Prints `listening on http://127.0.0.1:PORT` as its first stdout line, then
    /// serves until killed or until stdin reaches end of file (so a parent that
    /// dies takes it down); `--ignore-stdin` serves until killed only.
    Sim {
        /// Port on 127.0.0.1 (0: pick a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Realistic pods to preload.
        #[arg(long, default_value_t = 0)]
        pods: usize,
        /// Seed for the generated pods.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Namespace of the preloaded pods.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Watch events kept for resuming watches.
        #[arg(long, default_value_t = 10_000)]
        history: usize,
        /// Milliseconds between watch bookmarks.
        #[arg(long, default_value_t = 1_000)]
        bookmark_interval_ms: u64,
        /// Do not stop when stdin closes.
        #[arg(long)]
        ignore_stdin: bool,
        /// Serve the KEP-5866 `shardSelector` on LIST and WATCH (the
        /// `ShardedListAndWatch` feature gate); off, it is ignored.
        #[arg(long)]
        sharded_list_and_watch: bool,
    },
    /// Run the end-to-end load scenario (the main job): create pods, sync an
    /// engine, drive writes, verify the cache, print a table.
    Run(RunArgs),
    /// Create a run's pods and drive its writes for a parent `loadgen run`,
    /// talking JSON lines over stdio (started by `loadgen run --writer child`,
    /// the default; not meant to be run by hand).
    #[command(hide = true)]
    Write(WriteArgs),
    /// Run one engine replica for a parent `loadgen run --replicas N`, talking
    /// JSON lines over stdio (not meant to be run by hand).
    #[command(hide = true)]
    Replica(ReplicaArgs),
    /// Compare two pprof profiles (e.g. `profiles/kcache-default.pb` and
    /// `profiles/kube-rs-default.pb`): the functions whose share of samples
    /// changed most, by self share and by total share.
    ProfileDiff {
        /// Profile A (the baseline).
        a: std::path::PathBuf,
        /// Profile B.
        b: std::path::PathBuf,
        /// Rows per table.
        #[arg(long, default_value_t = 25)]
        top: usize,
    },
    /// Delete every namespace loadgen created on a cluster (labelled as its
    /// own), deleting its pods at once first so that the namespace goes quickly.
    Cleanup(CleanupArgs),
}

/// Which cluster a mode talks to, from a kubeconfig (for `run`, giving
/// `--kubeconfig` or `--context` selects a real cluster instead of the simulator).
#[derive(clap::Args)]
struct ClusterArgs {
    /// Kubeconfig file (default: KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context (default: current).
    #[arg(long)]
    context: Option<String>,
    /// Allow a context that is not a local kind cluster.
    #[arg(long)]
    allow_remote: bool,
}

#[derive(clap::Args)]
struct CleanupArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Wait until the namespaces are gone, up to this many seconds (0: do not wait).
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    wait: u64,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Pods created before the write phase.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Writes per second during the write phase.
    #[arg(long, default_value_t = 2000.0)]
    write_qps: f64,
    /// Seconds of the write phase.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Namespaces the pods are spread over.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Handler style.
    #[arg(long, value_enum, default_value_t = HandlerStyle::Sync)]
    handler: HandlerStyle,
    /// Microseconds of work (a sleep) per event wherever the handler style does
    /// its work: inline (sync), on the consumer thread (channel), on each worker
    /// (workqueue). 10000 with 2 shards makes a sync handler 10x slower than
    /// 2,000 events/s: the overload scenario.
    #[arg(long, default_value_t = 0)]
    handler_cost_us: u64,
    /// Engine under test.
    #[arg(long, value_enum, default_value_t = EngineKind::Kcache)]
    engine: EngineKind,
    /// kcache shards (fifo threads); 0 = one per core.
    #[arg(long, default_value_t = 0)]
    shards: usize,
    /// Strip metadata.managedFields at decode time.
    #[arg(long)]
    strip_managed_fields: bool,
    /// kcache: keep object bodies as zstd frames with a dictionary trained on the
    /// initial list (`InformerConfig::compression`).
    #[arg(long)]
    compress: bool,
    /// Seed for pod contents and the write mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the simulator runs when no kubeconfig is given.
    #[arg(long, value_enum, default_value_t = SimMode::Child)]
    sim: SimMode,
    /// Which process creates the pods and drives the writes: a `loadgen write`
    /// child (RSS, CPU and profile are then the engine's alone) or this one.
    #[arg(long, value_enum, default_value_t = WriterKind::Child)]
    writer: WriterKind,
    /// A real cluster instead of the simulator: given `--kubeconfig` or `--context`.
    #[command(flatten)]
    cluster: ClusterArgs,
    /// kcache: list with a streaming list (`sendInitialEvents=true`) instead of
    /// paginated LISTs; kube-rs: `watcher::Config::streaming_lists()`.
    #[arg(long)]
    streaming_list: bool,
    /// kcache: resync period in seconds (0: none). Resync is in memory: it makes no API calls.
    #[arg(long, default_value_t = 0.0)]
    resync: f64,
    /// Let the simulator bulk-load the pods into one namespace before it starts
    /// (fast for 100k pods; selects pods by `--label-selector`, default `app`).
    #[arg(long)]
    preload: bool,
    /// Label selector of the engine and the verification LIST
    /// (default `loadgen.kcache.io/run=<run id>`, or `app` with `--preload`).
    #[arg(long)]
    label_selector: Option<String>,
    /// Skip timing cache Get / List (during the writes) and direct GET / LIST
    /// (after them).
    #[arg(long)]
    no_read_timings: bool,
    /// Threads timing cache Get / List during the writes, as a controller's
    /// workers read while its informer applies events.
    #[arg(long, default_value_t = 2, value_name = "N")]
    readers: usize,
    /// Profile the sync and write phases; writes `PROFILE_DIR/NAME.svg` (flamegraph)
    /// and `PROFILE_DIR/NAME.pb` (pprof protobuf).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Folder for `--profile` output.
    #[arg(long, default_value = "profiles")]
    profile_dir: std::path::PathBuf,
    /// Profiler sampling frequency, Hz.
    #[arg(long, default_value_t = 199)]
    profile_hz: i32,
    /// Engine processes (`loadgen replica` children, kcache only) sharing the pods
    /// through a ring of Leases, each with a no-op controller that records which
    /// replica reconciled which key and when; 1: this process runs the engine.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    replicas: u16,
    /// With `--replicas` of 2 or more: SIGKILL replica 0 (the leader with
    /// `--leader-election`) this many seconds into the write phase (less than
    /// `--duration`); the report's `takeover_seconds` says how long the survivors
    /// took to reconcile its keys, `failover_seconds` when a new leader started.
    #[arg(long, value_name = "SECONDS")]
    kill_replica_at: Option<f64>,
    /// With `--replicas` of 2 or more: the ring's lease duration, whole seconds
    /// (renew deadline 2/3 of it, retry period 1/8).
    #[arg(long, default_value_t = 5, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease_duration: u64,
    /// With `--replicas` of 2 or more: no sharding; the replicas elect one leader
    /// on a Lease (renew deadline 10/15 of `--lease-duration`, retry period 2/15,
    /// client-go's ratios), each caches every pod, only the leader reconciles.
    #[arg(long)]
    leader_election: bool,
    /// With `--replicas` of 2 or more: SIGSTOP replica 0 (the leader with
    /// `--leader-election`) this many seconds into the write phase (less than
    /// `--duration`), and SIGCONT it `--pause-seconds` later.
    #[arg(long, value_name = "SECONDS", requires = "pause_seconds", conflicts_with = "kill_replica_at")]
    pause_replica_at: Option<f64>,
    /// How long `--pause-replica-at` keeps the replica stopped (more than
    /// `--lease-duration` to make it lose its lease).
    #[arg(long, value_name = "SECONDS", requires = "pause_replica_at")]
    pause_seconds: Option<f64>,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct WriteArgs {
    /// The API server's URL (a simulator); otherwise the kubeconfig is used.
    #[arg(long)]
    server: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The run's namespaces, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    namespaces: Vec<String>,
    /// Pods to create (or already preloaded).
    #[arg(long)]
    pods: usize,
    /// Seed for pod contents and the write mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The pods were preloaded into the first namespace: create none.
    #[arg(long)]
    preloaded: bool,
    /// Writes per second.
    #[arg(long)]
    write_qps: f64,
    /// Seconds of writes.
    #[arg(long)]
    duration: f64,
    /// Label selector of the run's pods (for the raw watch timing the event-latency floor).
    #[arg(long, default_value = "")]
    selector: String,
    /// The run's id (the value of the pods' run label).
    #[arg(long, default_value = "")]
    run_id: String,
}

#[derive(clap::Args)]
struct ReplicaArgs {
    /// The API server's URL (a simulator); otherwise the kubeconfig is used.
    #[arg(long)]
    server: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Label selector of the run's pods.
    #[arg(long)]
    selector: String,
    /// Namespace of the ring's Leases.
    #[arg(long)]
    lease_namespace: String,
    /// The ring's name.
    #[arg(long)]
    ring: String,
    /// This replica's identity in the ring.
    #[arg(long)]
    identity: String,
    /// Lease duration, whole seconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease_duration: u64,
    /// Controller workers.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Elect a leader on the Lease named `--ring` instead of joining a ring.
    #[arg(long)]
    leader_election: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SimMode {
    /// `loadgen sim` as a child process: RSS and CPU figures are the engine's alone.
    Child,
    /// The simulator in this process.
    InProcess,
}

/// Logs to stderr as `RUST_LOG` says; by default errors only, and none from
/// kube's client, whose failed requests loadgen reports itself, on one line.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,kube_client=off"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn main() -> ExitCode {
    // Before any thread starts: mimalloc's option setters are not thread safe.
    kcache_loadgen::alloc::purge_freed_pages_at_once();
    match Cli::parse().mode {
        Mode::Sim {
            port,
            pods,
            seed,
            namespace,
            history,
            bookmark_interval_ms,
            ignore_stdin,
            sharded_list_and_watch,
        } => {
            match run_sim(
                port,
                pods,
                seed,
                &namespace,
                history,
                bookmark_interval_ms,
                ignore_stdin,
                sharded_list_and_watch,
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("loadgen sim: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Mode::Run(args) => match run_scenario(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("loadgen run: {e}");
                ExitCode::from(2)
            }
        },
        Mode::Write(args) => match write(args) {
            Ok(()) => ExitCode::SUCCESS,
            // Already reported as a `failed` line on stdout, which the parent
            // `loadgen run` prints: printing it here too would show it twice.
            Err(WriteFailed::Reported) => ExitCode::from(2),
            Err(WriteFailed::Other(e)) => {
                eprintln!("loadgen write: {e}");
                ExitCode::from(2)
            }
        },
        Mode::Replica(args) => match replica(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(WriteFailed::Reported) => ExitCode::from(2),
            Err(WriteFailed::Other(e)) => {
                eprintln!("loadgen replica: {e}");
                ExitCode::from(2)
            }
        },
        Mode::ProfileDiff { a, b, top } => match profile_diff(&a, &b, top) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen profile-diff: {e:#}");
                ExitCode::from(2)
            }
        },
        Mode::Cleanup(args) => match cleanup(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("loadgen cleanup: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Runs the scenario; `Ok(false)` when a check failed (events lost, cache
/// differs). An error is one line (see `run::RunError`), printed once by `main`.
fn run_scenario(args: RunArgs) -> Result<bool, String> {
    let ClusterArgs { kubeconfig, context, allow_remote } = args.cluster;
    let target = if kubeconfig.is_some() || context.is_some() {
        TargetKind::Kubeconfig { path: kubeconfig, context, allow_remote }
    } else {
        match args.sim {
            SimMode::Child => TargetKind::SimChild,
            SimMode::InProcess => TargetKind::SimInProcess,
        }
    };
    let replicas = usize::from(args.replicas);
    if replicas > 1 && args.engine != EngineKind::Kcache {
        return Err("--replicas runs kcache replicas only: drop --engine kube-rs".to_owned());
    }
    if replicas > 1 && args.profile.is_some() {
        return Err("--profile samples this process, which runs no engine with --replicas above 1".to_owned());
    }
    let kill_replica_at = match args.kill_replica_at {
        None => None,
        Some(_) if replicas < 2 => return Err("--kill-replica-at needs --replicas 2 or more (a survivor must take over)".to_owned()),
        Some(at) if !(at >= 0.0 && at < args.duration) => {
            return Err(format!("--kill-replica-at {at} must be at least 0 and less than --duration {}", args.duration));
        }
        Some(at) => Some(Duration::from_secs_f64(at)),
    };
    if args.leader_election && replicas < 2 {
        return Err("--leader-election needs --replicas 2 or more (a follower must take over)".to_owned());
    }
    let pause_replica_at = match args.pause_replica_at {
        None => None,
        Some(_) if replicas < 2 => return Err("--pause-replica-at needs --replicas 2 or more".to_owned()),
        Some(at) if !(at >= 0.0 && at < args.duration) => {
            return Err(format!("--pause-replica-at {at} must be at least 0 and less than --duration {}", args.duration));
        }
        Some(at) => Some(Duration::from_secs_f64(at)),
    };
    let pause_for = match args.pause_seconds {
        None => Duration::ZERO,
        Some(p) if !(p > 0.0 && p <= 3600.0) => return Err(format!("--pause-seconds {p} must be more than 0 and at most 3600")),
        Some(p) => Duration::from_secs_f64(p),
    };
    let cfg = RunConfig {
        replicas,
        kill_replica_at,
        leader_election: args.leader_election,
        pause_replica_at,
        pause_for,
        lease_duration: Duration::from_secs(args.lease_duration),
        pods: args.pods,
        write_qps: args.write_qps,
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        namespaces: args.namespaces,
        handler: args.handler,
        handler_cost: Duration::from_micros(args.handler_cost_us),
        engine: args.engine,
        shards: args.shards,
        strip_managed_fields: args.strip_managed_fields,
        compress: args.compress,
        seed: args.seed,
        target,
        writer: args.writer,
        progress: !args.quiet,
        streaming_list: args.streaming_list,
        resync: (args.resync > 0.0).then(|| Duration::from_secs_f64(args.resync)),
        preload: args.preload,
        label_selector: args.label_selector,
        read_timings: !args.no_read_timings,
        readers: args.readers,
        profile: args.profile.map(|name| args.profile_dir.join(name)),
        profile_hz: args.profile_hz,
        run_id: run::new_run_id(),
    };
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let report = rt.block_on(async {
        tokio::select! {
            r = run::run(&cfg) => r.map_err(|e| e.to_string()),
            _ = tokio::signal::ctrl_c() => Err("interrupted; run 'loadgen cleanup' if this was a real cluster".to_owned()),
        }
    })?;
    println!("{}", report.table());
    if let Some(stem) = &cfg.profile {
        println!("  profile: {} and {}", stem.with_extension("svg").display(), stem.with_extension("pb").display());
    }
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| format!("cannot encode the report: {e}"))?;
        std::fs::write(path, json).map_err(|e| format!("cannot write the report to {}: {e}", path.display()))?;
    }
    let ok = report.events_lost == 0 && report.cache_matches_server;
    if !ok {
        eprintln!("loadgen run: check failed (events_lost = {}, cache_matches_server = {})", report.events_lost, report.cache_matches_server);
    }
    Ok(ok)
}

/// Why `loadgen write` failed.
enum WriteFailed {
    /// Reported on stdout as a `failed` message already.
    Reported,
    /// Before the protocol started.
    Other(String),
}

fn write(args: WriteArgs) -> Result<(), WriteFailed> {
    let connection = match args.server {
        Some(url) => Connection::Url(url),
        None => Connection::Kubeconfig {
            path: args.cluster.kubeconfig,
            context: args.cluster.context,
            allow_remote: args.cluster.allow_remote,
        },
    };
    let plan = WritePlan {
        namespaces: args.namespaces,
        pods: args.pods,
        seed: args.seed,
        preloaded: args.preloaded,
        write_qps: args.write_qps,
        duration: Duration::from_secs_f64(args.duration.max(0.0)),
        selector: args.selector,
        run_id: args.run_id,
    };
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| WriteFailed::Other(format!("cannot start the runtime: {e}")))?;
    rt.block_on(run::serve_child(&connection, &plan)).map_err(|_| WriteFailed::Reported)
}

fn replica(args: ReplicaArgs) -> Result<(), WriteFailed> {
    let connection = match args.server {
        Some(url) => Connection::Url(url),
        None => Connection::Kubeconfig {
            path: args.cluster.kubeconfig,
            context: args.cluster.context,
            allow_remote: args.cluster.allow_remote,
        },
    };
    let plan = ReplicaPlan {
        selector: args.selector,
        lease_namespace: args.lease_namespace,
        ring: args.ring,
        identity: args.identity,
        lease_duration: Duration::from_secs(args.lease_duration),
        workers: args.workers,
        leader_election: args.leader_election,
    };
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| WriteFailed::Other(format!("cannot start the runtime: {e}")))?;
    rt.block_on(run::serve_replica(&connection, &plan)).map_err(|_| WriteFailed::Reported)
}

fn profile_diff(a: &std::path::Path, b: &std::path::Path, top: usize) -> anyhow::Result<()> {
    use kcache_loadgen::profile;
    let sa = profile::summarize_file(a)?;
    let sb = profile::summarize_file(b)?;
    print!("{}", profile::diff_table(&sa, &sb, &a.display().to_string(), &b.display().to_string(), top));
    Ok(())
}

/// Deletes loadgen's namespaces; with `--wait`, waits for them to go.
/// `Ok(false)` when some were still there when the wait ended.
fn cleanup(args: CleanupArgs) -> Result<bool, String> {
    let ClusterArgs { kubeconfig, context, allow_remote } = args.cluster;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        let connection = Connection::Kubeconfig { path: kubeconfig, context, allow_remote };
        let client = connection.client().await.map_err(|e| e.to_string())?;
        let cleaned = cleanup::cleanup_owned(&client)
            .await
            .map_err(|(during, e)| format!("{during}: {}", run::describe_kube_error(&e)))?;
        if cleaned.is_empty() {
            println!("no loadgen namespaces");
        }
        for (ns, how) in &cleaned {
            println!("namespace {ns}: {}", how.as_str());
        }
        if args.wait == 0 || cleaned.is_empty() {
            return Ok(true);
        }
        let names: Vec<String> = cleaned.into_iter().map(|(ns, _)| ns).collect();
        let left = cleanup::wait_gone(&client, &names, Duration::from_secs(args.wait), true)
            .await
            .map_err(|e| format!("waiting for the namespaces to go: {}", run::describe_kube_error(&e)))?;
        if left.is_empty() {
            println!("all gone");
            return Ok(true);
        }
        eprintln!(
            "loadgen cleanup: still terminating after {} s: {}; wait longer (`kubectl get ns`) or look for a finalizer that holds them",
            args.wait,
            left.join(", ")
        );
        Ok(false)
    })
}

#[allow(clippy::too_many_arguments)] // one per `loadgen sim` flag
fn run_sim(
    port: u16,
    pods: usize,
    seed: u64,
    ns: &str,
    history: usize,
    bookmark_ms: u64,
    ignore_stdin: bool,
    sharded_list_and_watch: bool,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sim = SimServer::builder()
            .port(port)
            .history(history)
            .bookmark_interval(Duration::from_millis(bookmark_ms))
            .sharded_list_and_watch(sharded_list_and_watch)
            .start()
            .await?;
        if pods > 0 {
            podgen::load_pods(&sim, ns, pods, seed)?;
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", sim.url())?;
        out.flush()?;
        drop(out);
        let stdin_closed = async {
            if ignore_stdin {
                std::future::pending::<()>().await;
            }
            // Blocking read on a dedicated thread: EOF or an error both mean the parent is gone.
            let _ = tokio::task::spawn_blocking(|| {
                std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
            })
            .await;
        };
        tokio::select! {
            () = stdin_closed => {}
            r = tokio::signal::ctrl_c() => r?,
        }
        sim.shutdown().await;
        Ok(())
    })
}
