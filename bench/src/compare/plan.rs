//! The jobs of a comparison: which `loadgen run` invocations, in what order.
//!
//! # Guarantees
//! * Jobs whose figures are divided by each other (a kcache run and its kube-rs
//!   counterpart) are adjacent in the plan, repeat by repeat, so a ratio never
//!   pairs runs far apart in time.
//! * The compressed store (`kcache-compressed`) runs right before the kcache run of
//!   the same scenario and repeat (its goals are ratios to it), and in the same
//!   repeat as kube-rs's run: right before it in the reads and writes, two runs
//!   before it (the sync-only variants of the same repeat) in the sync-only scenario.

/// The scenario a job belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// Direct REST vs cache Get and List(1,000).
    Reads,
    /// 2,000 writes/s with one handler style.
    Writes,
    /// A sync-only run: memory to hold the pods, and the initial sync time.
    Sync,
    /// Resync periods: CPU and API calls.
    Resync,
    /// The scale run: many pods and 2,000 writes/s, kcache alone.
    Scale,
    /// A sync handler 10x slower than 2,000 writes/s: memory stays bounded.
    Overload,
    /// `--replicas N`: sharded caches per replica, a replica kill, a leader failover.
    Replicas,
}

impl Group {
    /// Short name used in job ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Reads => "reads",
            Group::Writes => "writes",
            Group::Sync => "sync",
            Group::Resync => "resync",
            Group::Scale => "scale",
            Group::Overload => "overload",
            Group::Replicas => "replicas",
        }
    }
}

/// One `loadgen run` invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Its scenario.
    pub group: Group,
    /// What varies within the scenario: handler style (`sync`), pod count
    /// (`10000`), resync seconds (`30`); empty for reads.
    pub param: String,
    /// The engine variant: `kcache`, `kcache-strip`, `kcache-streaming`,
    /// `kcache-compressed`, `kube-rs`, `kube-rs-streaming`.
    pub variant: String,
    /// Repeat number, from 0.
    pub rep: usize,
    /// Arguments after `loadgen run` (without `--report` and `--quiet`).
    pub args: Vec<String>,
}

impl Job {
    /// A unique, file-name-safe id: `writes-sync-kcache-0`.
    pub fn id(&self) -> String {
        let mut id = self.group.as_str().to_owned();
        if !self.param.is_empty() {
            id.push('-');
            id.push_str(&self.param);
        }
        format!("{id}-{}-{}", self.variant, self.rep)
    }
}

/// Sizes and lengths of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanConfig {
    /// `--quick`: fewer pods, short phases, no 100k.
    pub quick: bool,
    /// Pods of the reads and writes scenarios.
    pub pods: usize,
    /// Seconds of the 2,000 writes/s phase.
    pub write_seconds: f64,
    /// Runs of the sync-handler writes scenario per engine, interleaved (kcache,
    /// kube-rs, kcache, ...): its event-p99 ratio is a goal, and one run's p99 on
    /// shared cores moves by a third from run to run. The other handler styles
    /// run once.
    pub writes_repeats: usize,
    /// Seconds of the reads scenario's 2,000 writes/s phase, during which two
    /// threads time cache reads.
    pub reads_write_seconds: f64,
    /// Runs of the reads scenario per engine, interleaved (kcache, kube-rs,
    /// kcache, ...): one p99 of a shared machine moves by a third from run to run.
    pub reads_repeats: usize,
    /// Pod counts of the sync-only scenario.
    pub sync_sizes: Vec<usize>,
    /// Repeats of the sync-only scenario at its smallest size.
    pub sync_repeats: usize,
    /// Resync periods, seconds (0: none).
    pub resync_periods: Vec<u64>,
    /// Seconds of the resync scenario's write phase.
    pub resync_seconds: f64,
    /// Pods of the scale run (`None`: no scale run).
    pub scale_pods: Option<usize>,
    /// Pods of the compressed store's sync-only run at scale (`None`: none).
    pub compressed_sync_pods: Option<usize>,
    /// Seconds of the overload scenario's write phase.
    pub overload_seconds: f64,
    /// Pods of the replicas scenario.
    pub replicas_pods: usize,
    /// Seconds of the replicas scenario's write phases.
    pub replicas_seconds: f64,
}

/// Work per event of the overload scenario's handler: with one fifo thread per
/// core on 2 cores, 200 events/s, a tenth of the 2,000 writes/s.
pub const OVERLOAD_HANDLER_COST_US: u64 = 10_000;

/// Pods of the overload scenario.
pub const OVERLOAD_PODS: usize = 2_000;

/// Pods of the compressed store's sync-only run at scale (full plan).
pub const COMPRESSED_SYNC_PODS: usize = 1_000_000;

/// The compressed store's variant.
pub const COMPRESSED: &str = "kcache-compressed";

impl PlanConfig {
    /// The full comparison, or the quick one.
    pub fn new(quick: bool) -> Self {
        if quick {
            PlanConfig {
                quick,
                pods: 2_000,
                write_seconds: 10.0,
                writes_repeats: 1,
                reads_write_seconds: 3.0,
                reads_repeats: 1,
                sync_sizes: vec![10_000],
                sync_repeats: 1,
                resync_periods: vec![0, 2, 30],
                resync_seconds: 5.0,
                scale_pods: None,
                compressed_sync_pods: None,
                overload_seconds: 10.0,
                replicas_pods: 2_000,
                replicas_seconds: 8.0,
            }
        } else {
            PlanConfig {
                quick,
                pods: 10_000,
                write_seconds: 30.0,
                writes_repeats: 3,
                reads_write_seconds: 10.0,
                reads_repeats: 3,
                sync_sizes: vec![10_000, 100_000],
                sync_repeats: 3,
                resync_periods: vec![0, 30, 300],
                resync_seconds: 65.0,
                scale_pods: Some(100_000),
                compressed_sync_pods: Some(COMPRESSED_SYNC_PODS),
                overload_seconds: 60.0,
                replicas_pods: 10_000,
                replicas_seconds: 15.0,
            }
        }
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The jobs, in run order.
pub fn plan(cfg: &PlanConfig) -> Vec<Job> {
    let mut jobs = Vec::new();
    let pods = cfg.pods.to_string();
    let job = |group, param: &str, variant: &str, rep, a: Vec<String>| Job {
        group,
        param: param.to_owned(),
        variant: variant.to_owned(),
        rep,
        args: a,
    };
    let engine_args = |variant: &str| -> Vec<String> {
        match variant {
            "kcache" => args(&["--engine", "kcache"]),
            "kcache-strip" => args(&["--engine", "kcache", "--strip-managed-fields"]),
            "kcache-streaming" => args(&["--engine", "kcache", "--streaming-list"]),
            COMPRESSED => args(&["--engine", "kcache", "--compress"]),
            "kube-rs" => args(&["--engine", "kube-rs"]),
            _ => args(&["--engine", "kube-rs", "--streaming-list"]),
        }
    };

    // Reads: namespaces of 1,000 pods; two threads time cache reads while 2,000
    // writes/s arrive, as a busy controller's workers do.
    let namespaces = (cfg.pods / 1_000).max(1).to_string();
    for rep in 0..cfg.reads_repeats {
        for variant in [COMPRESSED, "kcache", "kube-rs"] {
            let mut a = engine_args(variant);
            let secs = cfg.reads_write_seconds.to_string();
            a.extend(args(&["--pods", &pods, "--namespaces", &namespaces, "--write-qps", "2000", "--duration", &secs]));
            a.extend(args(&["--readers", "2"]));
            jobs.push(job(Group::Reads, "", variant, rep, a));
        }
    }

    // 2,000 writes/s per handler style; the simulator preloads the pods.
    let secs = cfg.write_seconds.to_string();
    for handler in ["sync", "channel", "workqueue"] {
        let repeats = if handler == "sync" { cfg.writes_repeats.max(1) } else { 1 };
        // The compressed store's event-p99 goal is the sync handler's.
        let variants: &[&str] = if handler == "sync" { &[COMPRESSED, "kcache", "kube-rs"] } else { &["kcache", "kube-rs"] };
        for rep in 0..repeats {
            for &variant in variants {
                let mut a = engine_args(variant);
                a.extend(args(&["--handler", handler, "--pods", &pods, "--preload", "--no-read-timings"]));
                a.extend(args(&["--write-qps", "2000", "--duration", &secs]));
                jobs.push(job(Group::Writes, handler, variant, rep, a));
            }
        }
    }

    // Overload: the sync handler spends 10 ms per event while 2,000 writes/s arrive.
    // 2,000 pods keep the initial replay and the final drain through the slow
    // handler to seconds, not minutes. The goal is kcache's; kube-rs's run, whose
    // one stream drains the backlog at 100 events/s (over a minute), is the
    // full comparison's reference and left out of the quick one.
    let secs = cfg.overload_seconds.to_string();
    let cost = OVERLOAD_HANDLER_COST_US.to_string();
    let overload_pods = OVERLOAD_PODS.to_string();
    let overload_variants: &[&str] = if cfg.quick { &["kcache"] } else { &["kcache", "kube-rs"] };
    for &variant in overload_variants {
        let mut a = engine_args(variant);
        a.extend(args(&["--handler", "sync", "--handler-cost-us", &cost, "--pods", &overload_pods, "--preload"]));
        a.extend(args(&["--no-read-timings", "--write-qps", "2000", "--duration", &secs]));
        jobs.push(job(Group::Overload, "sync", variant, 0, a));
    }

    // Sync only: memory and sync time, preloaded, no writes.
    for (i, &size) in cfg.sync_sizes.iter().enumerate() {
        let reps = if i == 0 { cfg.sync_repeats } else { 1 };
        let n = size.to_string();
        for rep in 0..reps {
            for variant in [COMPRESSED, "kcache", "kcache-strip", "kcache-streaming", "kube-rs", "kube-rs-streaming"] {
                let mut a = engine_args(variant);
                a.extend(args(&["--pods", &n, "--preload", "--duration", "0", "--no-read-timings"]));
                jobs.push(job(Group::Sync, &n, variant, rep, a));
            }
        }
    }
    // The compressed store alone at scale: RSS and sync time, compared with the
    // uncompressed store's 100k run scaled linearly (kube-rs would need ~37 GiB).
    if let Some(pods) = cfg.compressed_sync_pods {
        let n = pods.to_string();
        let mut a = engine_args(COMPRESSED);
        a.extend(args(&["--pods", &n, "--preload", "--duration", "0", "--no-read-timings"]));
        jobs.push(job(Group::Sync, &n, COMPRESSED, 0, a));
    }

    // Resync: kcache at each period, kube-rs (which has none) for reference.
    let secs = cfg.resync_seconds.to_string();
    for &period in &cfg.resync_periods {
        let mut a = engine_args("kcache");
        a.extend(args(&["--pods", &pods, "--preload", "--no-read-timings", "--write-qps", "100", "--duration", &secs]));
        a.extend(args(&["--resync", &period.to_string()]));
        jobs.push(job(Group::Resync, &period.to_string(), "kcache", 0, a));
    }
    if !cfg.quick {
        let mut a = engine_args("kube-rs");
        a.extend(args(&["--pods", &pods, "--preload", "--no-read-timings", "--write-qps", "100", "--duration", &secs]));
        jobs.push(job(Group::Resync, "0", "kube-rs", 0, a));
    }

    // Scale: `loadgen run --pods 100000 --write-qps 2000`, preloaded so that the
    // run does not spend minutes creating pods over HTTP. kcache only: kube-rs
    // needs ~3.7 GiB and minutes to drain a backlog at this size (section 3 and 2).
    if let Some(n) = cfg.scale_pods {
        let mut a = engine_args("kcache");
        a.extend(args(&["--pods", &n.to_string(), "--preload", "--no-read-timings"]));
        a.extend(args(&["--write-qps", "2000", "--duration", &cfg.write_seconds.to_string()]));
        jobs.push(job(Group::Scale, &n.to_string(), "kcache", 0, a));
    }

    // Replicas: sharded caches per replica, a replica kill, a leader failover.
    jobs.extend(super::replicas::jobs(cfg.replicas_pods, cfg.replicas_seconds));
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_unique_and_pairs_are_adjacent() {
        for quick in [true, false] {
            let jobs = plan(&PlanConfig::new(quick));
            let mut ids: Vec<String> = jobs.iter().map(Job::id).collect();
            let n = ids.len();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), n, "duplicate job ids");
            // Every kube-rs writes job directly follows the kcache job of the same handler and repeat.
            for (i, j) in jobs.iter().enumerate() {
                if j.group == Group::Writes && j.variant == "kube-rs" {
                    let k = &jobs[i - 1];
                    assert_eq!((k.variant.as_str(), &k.param, k.rep), ("kcache", &j.param, j.rep));
                }
            }
        }
    }

    #[test]
    fn quick_plans_skip_100k_and_keep_10_second_write_phases() {
        let quick = plan(&PlanConfig::new(true));
        assert!(quick.iter().all(|j| j.param != "100000"));
        let w = quick.iter().find(|j| j.group == Group::Writes).unwrap();
        assert!(w.args.windows(2).any(|p| p[0] == "--duration" && p[1] == "10"), "{:?}", w.args);
        assert!(quick.iter().all(|j| j.group != Group::Scale));
        let full = plan(&PlanConfig::new(false));
        assert!(full.iter().any(|j| j.param == "100000" && j.variant == "kube-rs"));
        // Reads: three interleaved pairs in full mode, one in quick mode.
        let reads = |p: &[Job]| p.iter().filter(|j| j.group == Group::Reads).map(|j| (j.variant.clone(), j.rep)).collect::<Vec<_>>();
        let v = |s: &str, r| (String::from(s), r);
        assert_eq!(reads(&quick), [v(COMPRESSED, 0), v("kcache", 0), v("kube-rs", 0)]);
        assert_eq!(
            reads(&full),
            [v(COMPRESSED, 0), v("kcache", 0), v("kube-rs", 0), v(COMPRESSED, 1), v("kcache", 1), v("kube-rs", 1), v(COMPRESSED, 2), v("kcache", 2), v("kube-rs", 2)]
        );
        // Writes: the sync handler (a goal) three interleaved pairs in full mode, the others one.
        let writes = |p: &[Job], h: &str| {
            p.iter().filter(|j| j.group == Group::Writes && j.param == h).map(|j| (j.variant.clone(), j.rep)).collect::<Vec<_>>()
        };
        assert_eq!(writes(&full, "sync"), reads(&full));
        assert_eq!(writes(&quick, "sync"), [v(COMPRESSED, 0), v("kcache", 0), v("kube-rs", 0)]);
        assert_eq!(writes(&full, "channel"), [v("kcache", 0), v("kube-rs", 0)]);
        let scale = full.iter().find(|j| j.group == Group::Scale).expect("a scale run");
        assert!(scale.args.windows(2).any(|p| p[0] == "--pods" && p[1] == "100000"), "{:?}", scale.args);
        assert!(scale.args.windows(2).any(|p| p[0] == "--write-qps" && p[1] == "2000"), "{:?}", scale.args);
        // Overload: kcache's goal in both; kube-rs's reference only in the full plan.
        let overload = |p: &[Job]| p.iter().filter(|j| j.group == Group::Overload).map(|j| j.variant.clone()).collect::<Vec<_>>();
        assert_eq!(overload(&quick), ["kcache"]);
        assert_eq!(overload(&full), ["kcache", "kube-rs"]);
        // Replicas: 10,000 pods for 15 s in full, 2,000 for 8 s in quick; the same five runs.
        let replicas = |p: &[Job]| p.iter().filter(|j| j.group == Group::Replicas).cloned().collect::<Vec<_>>();
        let has = |j: &Job, a: &str, b: &str| j.args.windows(2).any(|p| p[0] == a && p[1] == b);
        assert_eq!(replicas(&full).len(), 5);
        assert!(replicas(&full).iter().all(|j| has(j, "--pods", "10000") && has(j, "--duration", "15")));
        assert!(replicas(&quick).iter().all(|j| has(j, "--pods", "2000") && has(j, "--duration", "8")));
        assert_eq!(replicas(&quick).len(), 5);
    }

    #[test]
    fn the_compressed_store_runs_right_before_its_uncompressed_pair() {
        for quick in [true, false] {
            let jobs = plan(&PlanConfig::new(quick));
            let compressed: Vec<(usize, &Job)> = jobs.iter().enumerate().filter(|(_, j)| j.variant == COMPRESSED).collect();
            for &(i, j) in &compressed {
                assert!(j.args.windows(3).any(|a| a == ["--engine", "kcache", "--compress"]), "{:?}", j.args);
                if j.param == COMPRESSED_SYNC_PODS.to_string() {
                    continue;
                }
                // kcache of the same scenario and repeat follows; kube-rs right after it
                // (reads, writes) or later in the same repeat's block (sync-only).
                let next = &jobs[i + 1];
                assert_eq!((next.group, next.variant.as_str(), &next.param, next.rep), (j.group, "kcache", &j.param, j.rep), "after {}", j.id());
                let same_block = jobs[i + 2..].iter().take_while(|k| (k.group, &k.param, k.rep) == (j.group, &j.param, j.rep));
                let kube_rs = same_block.map(|k| k.variant.as_str()).position(|v| v == "kube-rs");
                let expected = if j.group == Group::Sync { Some(2) } else { Some(0) };
                assert_eq!(kube_rs, expected, "kube-rs after {}", j.id());
            }
            let in_group = |g: Group, p: &str| compressed.iter().filter(|(_, j)| j.group == g && j.param == p).count();
            let (repeats, sizes) = if quick { (1, vec!["10000"]) } else { (3, vec!["10000", "100000"]) };
            assert_eq!(in_group(Group::Reads, ""), repeats);
            assert_eq!(in_group(Group::Writes, "sync"), repeats);
            assert_eq!((in_group(Group::Writes, "channel"), in_group(Group::Writes, "workqueue")), (0, 0));
            assert_eq!(in_group(Group::Sync, "10000"), repeats);
            assert_eq!(in_group(Group::Sync, "100000"), usize::from(sizes.contains(&"100000")));
            // The 1,000,000-pod sync-only run: the compressed store alone, full plan only.
            let at_scale: Vec<&Job> = jobs.iter().filter(|j| j.param == "1000000").collect();
            assert_eq!(at_scale.len(), usize::from(!quick));
            for j in at_scale {
                assert_eq!((j.group, j.variant.as_str()), (Group::Sync, COMPRESSED));
                assert!(j.args.windows(2).any(|a| a == ["--duration", "0"]) && j.args.iter().any(|a| a == "--preload"), "{:?}", j.args);
            }
        }
    }
}
