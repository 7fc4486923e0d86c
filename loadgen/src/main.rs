//! `loadgen`: drives kcache against the simulated API server or a real cluster.
//!
//! Thin dispatch only: each mode lives in the library. Exit codes: 0 ok,
//! 1 check failed, 2 error.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kcache_loadgen::{podgen, sim::SimServer};

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
    },
    /// Run the end-to-end load scenario (not yet available in this build).
    Run,
}

fn main() -> ExitCode {
    match Cli::parse().mode {
        Mode::Sim {
            port,
            pods,
            seed,
            namespace,
            history,
            bookmark_interval_ms,
            ignore_stdin,
        } => {
            match run_sim(
                port,
                pods,
                seed,
                &namespace,
                history,
                bookmark_interval_ms,
                ignore_stdin,
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("loadgen sim: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Mode::Run => {
            eprintln!("loadgen run: not yet available in this build (try `loadgen sim`)");
            ExitCode::from(2)
        }
    }
}

fn run_sim(
    port: u16,
    pods: usize,
    seed: u64,
    ns: &str,
    history: usize,
    bookmark_ms: u64,
    ignore_stdin: bool,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sim = SimServer::builder()
            .port(port)
            .history(history)
            .bookmark_interval(Duration::from_millis(bookmark_ms))
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
