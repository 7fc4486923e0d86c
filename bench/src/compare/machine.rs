//! The machine a comparison ran on, stated with every table.

use kcache_loadgen::sim::rfc3339;
use serde::Serialize;

/// Facts about the machine and the build.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Machine {
    /// Logical cores available to this process.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// Cargo profile of the binaries (`release` for published figures).
    pub build_profile: String,
    /// UTC date of the run, `YYYY-MM-DD`.
    pub date: String,
    /// 1-minute load average when the comparison started (other work on the
    /// machine skews every figure; this says how busy it was).
    pub load_at_start: f64,
}

impl Machine {
    /// Reads the machine this process runs on.
    pub fn detect(build_profile: &str) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_gib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|k| k.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1_048_576.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let rustc = std::process::Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            memory_gib,
            kernel,
            rustc,
            build_profile: build_profile.to_owned(),
            date: utc_date(secs),
            load_at_start: load_average().unwrap_or(0.0),
        }
    }

    /// One line for the top of every table.
    pub fn line(&self) -> String {
        format!(
            "{} cores ({}), {:.0} GiB, Linux {}, {}, `{}` build, {}",
            self.cores, self.cpu_model, self.memory_gib, self.kernel, self.rustc, self.build_profile, self.date
        )
    }
}

/// The 1-minute load average (/proc/loadavg).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// `YYYY-MM-DD` of a Unix time (UTC): the date part of the simulator's
/// [`rfc3339`] (so clamped to year 9999 like it).
pub fn utc_date(unix_seconds: u64) -> String {
    let mut date = rfc3339(i64::try_from(unix_seconds).unwrap_or(i64::MAX));
    date.truncate("YYYY-MM-DD".len());
    date
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_become_calendar_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_795_392_000), "2026-11-23");
        assert_eq!(utc_date(1_795_392_000 + 86_399), "2026-11-23");
        assert!(utc_date(u64::MAX).starts_with("9999-12-"), "clamped to jiff's last day");
    }

    #[test]
    fn the_machine_line_names_cores_and_profile() {
        let m = Machine { cores: 2, cpu_model: "AMD EPYC".into(), build_profile: "release".into(), ..Machine::default() };
        let line = m.line();
        assert!(line.starts_with("2 cores (AMD EPYC)") && line.contains("`release` build"), "{line}");
    }
}
