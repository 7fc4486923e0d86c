//! `compare`: runs kcache and kube-rs side by side on the macro scenarios and
//! writes docs/RESULTS.md, docs/results.json, docs/img/*.svg and README.md's
//! results block. Exit codes: 0 ok, 2 error.
//!
//! ```text
//! cargo run --release -p kcache-bench --bin compare [-- --quick] [--only ID-PART[,ID-PART...]] [--root DIR]
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use kcache_bench::compare::{self, Options};

/// The allocator kcache's binaries use (loadgen's `main.rs` says why); the rows
/// measured in this process (typed Get, reconcile throughput) run on it for both
/// engines.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: compare [--quick] [--only ID-PART[,ID-PART...]] [--root REPO-DIR] [--work DIR]";

fn main() -> ExitCode {
    // The repository root is two levels above this package's manifest.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), PathBuf::from);
    let mut opts = Options { quick: false, work: PathBuf::new(), root, only: None };
    let mut work = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--only" => opts.only = args.next(),
            "--root" => opts.root = args.next().map_or(opts.root, PathBuf::from),
            "--work" => work = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("compare: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    // Per-run reports and logs go next to the binaries, out of the repository.
    opts.work = work.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().and_then(|d| d.parent()).map(|t| t.join("compare")))
            .unwrap_or_else(|| PathBuf::from("target/compare"))
    });
    match compare::run(&opts) {
        Ok(r) => {
            for g in &r.goals {
                println!("{:<90} {:>10}  {}", g.name, g.target, g.verdict());
            }
            println!("wrote {}", opts.root.join("docs/RESULTS.md").display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("compare: {msg}");
            ExitCode::from(2)
        }
    }
}
