//! The side-by-side comparison runner behind `cargo run --release -p kcache-bench
//! --bin compare`: runs the macro scenarios as separate `loadgen run`
//! processes against the simulator, and writes docs/RESULTS.md, docs/results.json,
//! docs/img/*.svg and the results block of README.md.
//!
//! * [`plan`]: which runs, in what order.
//! * [`exec`]: one process per run; locating and building `loadgen`.
//! * [`stats`]: medians, RSS growth, pair-wise ratios.
//! * [`rows`]: one row type per scenario, built from the runs' reports.
//! * [`goals`]: the goals and whether they were met.
//! * [`results`]: everything a comparison measured, built from its outcomes.
//! * [`json`]: the docs/results.json document.
//! * [`typed`]: typed Gets (kcache's typed view against kube-rs's `Store<Pod>`),
//!   measured in this process.
//! * [`replicas`]: `--replicas N` runs: each replica's store, takeover and
//!   leader failover, their row and RESULTS.md section.
//! * [`reconcile`]: reconcile throughput of a no-op controller (kcache's
//!   `Controller<Pod>` against kube-rs's), measured in this process.
//! * [`compressed`]: the compressed store beside the uncompressed one and kube-rs;
//!   [`compressed_decode`] times its body reads in this process.
//! * [`markdown`] and [`charts`]: the documents.

pub mod charts;
pub mod compressed;
pub mod compressed_decode;
pub mod exec;
pub mod goals;
pub mod json;
pub mod machine;
pub mod markdown;
pub mod plan;
pub mod results;
pub mod reconcile;
pub mod replicas;
pub mod rows;
pub mod stats;
#[cfg(test)]
mod synthetic;
pub mod typed;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use exec::{ExecError, Outcome};
pub use machine::Machine;
pub use plan::{Group, Job, PlanConfig};
pub use results::Results;

/// What `compare` is told.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--quick`.
    pub quick: bool,
    /// Repository root: docs/ and README.md are written under it.
    pub root: PathBuf,
    /// Folder for per-run reports and logs.
    pub work: PathBuf,
    /// Only jobs whose id contains this, or one of its comma-separated parts (for
    /// trying one scenario; documents are still written, with the other figures
    /// missing).
    pub only: Option<String>,
}

/// Why the comparison could not produce its documents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// `loadgen` is missing.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// A chart failed.
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
    /// docs/results.json could not be serialised.
    #[error("cannot serialise docs/results.json")]
    Json(#[from] serde_json::Error),
    /// A document could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn write(path: &Path, text: &str) -> Result<(), CompareError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| CompareError::Write { path: dir.to_owned(), source })?;
    }
    std::fs::write(path, text).map_err(|source| CompareError::Write { path: path.to_owned(), source })
}

/// Measures the simulator on its own ([`crate::simload`]); a failure is
/// recorded in `failures` and leaves the section out.
fn measure_sim(quick: bool, failures: &mut Vec<results::Failure>) -> Option<rows::SimRow> {
    let (lists, paced, flat) = if quick { (5, 3, 2) } else { (30, 10, 5) };
    let t = Instant::now();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            failures.push(results::Failure { job: "sim".into(), error: format!("cannot start a tokio runtime: {e}") });
            return None;
        }
    };
    let measured =
        rt.block_on(crate::simload::measure(10_000, lists, Duration::from_secs(paced), Duration::from_secs(flat)));
    eprintln!("compare: simulator on its own {:>6.1} s", t.elapsed().as_secs_f64());
    match measured {
        Ok(f) => Some(rows::SimRow::from(&f)),
        Err(e) => {
            failures.push(results::Failure { job: "sim".into(), error: e.to_string() });
            None
        }
    }
}

/// Measures typed Gets ([`typed`]); a failure is recorded in `failures` and
/// leaves the section out.
fn measure_typed_get(quick: bool, failures: &mut Vec<results::Failure>) -> Option<rows::TypedGetRow> {
    let t = Instant::now();
    let measured = typed::measure(quick);
    eprintln!("compare: typed Get {:>6.1} s", t.elapsed().as_secs_f64());
    measured.map_err(|e| failures.push(results::Failure { job: "typed-get".into(), error: e.to_string() })).ok()
}

/// Measures reconcile throughput ([`reconcile`]); a failure is recorded in
/// `failures` and leaves the section out.
fn measure_reconcile(quick: bool, failures: &mut Vec<results::Failure>) -> Option<rows::ReconcileRow> {
    let t = Instant::now();
    let measured = reconcile::measure(quick);
    eprintln!("compare: reconcile throughput {:>6.1} s", t.elapsed().as_secs_f64());
    measured.map_err(|e| failures.push(results::Failure { job: "reconcile".into(), error: e.to_string() })).ok()
}

/// Measures compressed body reads ([`compressed_decode`]); a failure is recorded
/// in `failures` and leaves the figures out.
fn measure_compressed_decode(quick: bool, failures: &mut Vec<results::Failure>) -> Option<compressed::TypedDecodeRow> {
    let t = Instant::now();
    let measured = compressed_decode::measure(quick);
    eprintln!("compare: compressed body reads {:>6.1} s", t.elapsed().as_secs_f64());
    measured.map_err(|e| failures.push(results::Failure { job: "typed-decode-compressed".into(), error: e.to_string() })).ok()
}

/// Whether `--only` selects the job or measurement `id`: no `--only`, or `id`
/// contains one of its comma-separated parts.
fn selected(only: Option<&str>, id: &str) -> bool {
    only.is_none_or(|o| o.split(',').any(|part| id.contains(part)))
}

/// Runs every job of the plan and writes the documents; returns the results.
///
/// # Errors
/// When `loadgen` cannot be found or a document cannot be written. A failing
/// run is not an error: it is reported in the documents.
pub fn run(opts: &Options) -> Result<Results, CompareError> {
    let started = Instant::now();
    std::fs::create_dir_all(&opts.work).map_err(|source| CompareError::Write { path: opts.work.clone(), source })?;
    let loadgen = exec::locate_loadgen(&opts.work)?;
    let machine = Machine::detect(&exec::build_profile());
    let jobs: Vec<Job> = plan::plan(&PlanConfig::new(opts.quick))
        .into_iter()
        .filter(|j| selected(opts.only.as_deref(), &j.id()))
        .collect();
    eprintln!("compare: {} runs with {} on {}", jobs.len(), loadgen.display(), machine.line());
    let mut outcomes = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let t = Instant::now();
        let outcome = match exec::run_job(&loadgen, job, &opts.work, Duration::from_secs(900)) {
            Ok(o) => o,
            Err(e) => Outcome { job: job.clone(), report: None, error: Some(e.to_string()), wall_seconds: t.elapsed().as_secs_f64() },
        };
        eprintln!(
            "compare: [{:>2}/{}] {:<40} {:>6.1} s{}",
            i + 1,
            jobs.len(),
            job.id(),
            outcome.wall_seconds,
            outcome.error.as_deref().map(|e| format!("  ({e})")).unwrap_or_default()
        );
        outcomes.push(outcome);
    }
    let mut results = results::build(&outcomes, machine, opts.quick, started.elapsed().as_secs_f64());
    if opts.only.as_deref().is_none_or(|o| "sim".contains(o)) {
        results.sim = measure_sim(opts.quick, &mut results.failures);
    }
    if opts.only.as_deref().is_none_or(|o| "typed-get".contains(o)) {
        results.typed_get = measure_typed_get(opts.quick, &mut results.failures);
    }
    if opts.only.as_deref().is_none_or(|o| "reconcile".contains(o)) {
        results.reconcile = measure_reconcile(opts.quick, &mut results.failures);
    }
    if selected(opts.only.as_deref(), "typed-decode-compressed") {
        results.compressed.typed_decode = measure_compressed_decode(opts.quick, &mut results.failures);
    }
    results.goals = goals::goals(&results);
    results.wall_seconds = started.elapsed().as_secs_f64();
    let docs = opts.root.join("docs");
    let charts = charts::draw_all(&results, &docs.join("img"))?;
    write(&docs.join("RESULTS.md"), &markdown::results_md(&results, &charts))?;
    write(&docs.join("results.json"), &json::to_text(&results)?)?;
    let readme_path = opts.root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap_or_default();
    write(&readme_path, &markdown::splice_readme(&readme, &markdown::readme_block(&results)))?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::selected;

    #[test]
    fn only_selects_ids_containing_any_comma_separated_part() {
        assert!(selected(None, "reads-kcache-0"));
        assert!(selected(Some("compressed"), "sync-10000-kcache-compressed-0"));
        assert!(!selected(Some("compressed"), "sync-10000-kcache-0"));
        assert!(selected(Some("compressed,sync-10000-kcache-0"), "sync-10000-kcache-0"));
        assert!(!selected(Some("compressed,sync-10000-kcache-0"), "sync-10000-kube-rs-0"));
    }
}
