//! Running a job: one `loadgen run` process per measurement, so that its RSS,
//! peak RSS and CPU figures contain that engine alone (the simulator runs in
//! yet another process, `loadgen sim`, started by `loadgen run`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kcache_loadgen::report::Report;

use super::plan::Job;

/// Why a job produced no report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// `loadgen` could not be built or found.
    #[error("cannot find or build the loadgen binary: {0}")]
    Loadgen(String),
    /// The process could not be started or waited for.
    #[error("cannot run {job}")]
    Spawn {
        /// The job id.
        job: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The run failed (exit code 2) or wrote no report.
    #[error("{job} failed with {status}: {stderr_tail}")]
    Failed {
        /// The job id.
        job: String,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr_tail: String,
    },
    /// The run took longer than allowed and was killed.
    #[error("{job} did not finish within {limit:?}")]
    Timeout {
        /// The job id.
        job: String,
        /// The limit.
        limit: Duration,
    },
}

/// What one job produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The job.
    pub job: Job,
    /// Its report (also when its checks failed, exit code 1).
    pub report: Option<Report>,
    /// Why there is no report, or which check failed.
    pub error: Option<String>,
    /// Wall time of the whole process, seconds.
    pub wall_seconds: f64,
}

/// The cargo profile the running binary was built with (`release`, `debug`, ...),
/// read from its folder in the target directory.
pub fn build_profile() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".into())
}

/// Whether `cargo run` sets `name` for the package it runs (not for builds).
fn is_cargo_run_variable(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || matches!(name, "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR")
}

/// The `loadgen` binary next to this one, built first with the same profile
/// when cargo is at hand (a no-op when it is up to date), then copied into
/// `work` so that a later build into the same target directory cannot swap it
/// in the middle of a comparison.
///
/// # Errors
/// [`ExecError::Loadgen`] when it cannot be built, found or copied.
pub fn locate_loadgen(work: &Path) -> Result<PathBuf, ExecError> {
    let exe = std::env::current_exe().map_err(|e| ExecError::Loadgen(e.to_string()))?;
    let dir = exe.parent().ok_or_else(|| ExecError::Loadgen("the compare binary has no folder".into()))?;
    let profile = build_profile();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "kcache-loadgen", "--bin", "loadgen"]);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    // Build into the target directory this binary lives in.
    if let Some(target) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    // `cargo run` hands this process the variables it sets for a running package
    // (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...). Build scripts (ring's) rerun when
    // those change, so passing them on rebuilt ring, rustls, kube, kcache and
    // loadgen (about 90 s) on every comparison, and again on the next plain build.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_cargo_run_variable) {
            cmd.env_remove(&name);
        }
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("compare: building loadgen exited with {s}; looking for an existing binary"),
        Err(e) => eprintln!("compare: cannot run cargo ({e}); looking for an existing binary"),
    }
    let name = format!("loadgen{}", std::env::consts::EXE_SUFFIX);
    let built = dir.join(&name);
    if !built.is_file() {
        return Err(ExecError::Loadgen(format!("{} does not exist", built.display())));
    }
    std::fs::create_dir_all(work).map_err(|e| ExecError::Loadgen(format!("cannot create {}: {e}", work.display())))?;
    let copy = work.join(name);
    std::fs::copy(&built, &copy).map_err(|e| ExecError::Loadgen(format!("cannot copy {}: {e}", built.display())))?;
    Ok(copy)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// Runs `job` with `loadgen`, keeping its output in `work/ID.{json,log}`.
///
/// # Errors
/// When the process cannot be started, fails without a report, or overruns `limit`.
pub fn run_job(loadgen: &Path, job: &Job, work: &Path, limit: Duration) -> Result<Outcome, ExecError> {
    let id = job.id();
    let report_path = work.join(format!("{id}.json"));
    let log_path = work.join(format!("{id}.log"));
    let _ = std::fs::remove_file(&report_path);
    let log = std::fs::File::create(&log_path).map_err(|source| ExecError::Spawn { job: id.clone(), source })?;
    let log_err = log.try_clone().map_err(|source| ExecError::Spawn { job: id.clone(), source })?;
    let start = Instant::now();
    let mut child = Command::new(loadgen)
        .arg("run")
        .args(&job.args)
        .arg("--quiet")
        .arg("--report")
        .arg(&report_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|source| ExecError::Spawn { job: id.clone(), source })?;
    let status = loop {
        match child.try_wait().map_err(|source| ExecError::Spawn { job: id.clone(), source })? {
            Some(status) => break status,
            None if start.elapsed() > limit => {
                // Only this child (its simulator child exits when its stdin closes).
                let _ = child.kill();
                let _ = child.wait();
                return Err(ExecError::Timeout { job: id, limit });
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let wall_seconds = start.elapsed().as_secs_f64();
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let report = std::fs::read(&report_path).ok().and_then(|b| serde_json::from_slice::<Report>(&b).ok());
    match report {
        Some(report) => {
            let error = (!status.success()).then(|| format!("check failed ({status}): {}", tail(&log_text, 2)));
            Ok(Outcome { job: job.clone(), report: Some(report), error, wall_seconds })
        }
        None => Err(ExecError::Failed { job: id, status: status.to_string(), stderr_tail: tail(&log_text, 3) }),
    }
}

#[cfg(test)]
mod tests {
    use super::is_cargo_run_variable;

    #[test]
    fn only_the_running_packages_variables_are_dropped_from_the_loadgen_build() {
        for name in ["CARGO_PKG_NAME", "CARGO_PKG_VERSION_MAJOR", "CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_CRATE_NAME", "CARGO_BIN_NAME", "OUT_DIR"] {
            assert!(is_cargo_run_variable(name), "{name}");
        }
        for name in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_INCREMENTAL", "RUSTFLAGS", "PATH", "CC"] {
            assert!(!is_cargo_run_variable(name), "{name}");
        }
    }
}
