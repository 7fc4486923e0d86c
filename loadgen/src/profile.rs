//! CPU profiles of a run (`loadgen run --profile NAME`) and their comparison
//! (`loadgen profile-diff A.pb B.pb`).
//!
//! The profiler is [`pprof`] (pprof-rs): a `SIGPROF` timer samples every thread
//! of this process at the given frequency; the result is written twice, as an
//! inferno flamegraph (`NAME.svg`, open it in a browser: width is CPU share,
//! click to zoom) and as a pprof protobuf (`NAME.pb`, for `go tool pprof` or
//! [`diff`]).
//!
//! # Guarantees
//! * [`summarize`] reads any pprof protobuf, plain or gzip-compressed (what
//!   `go tool pprof -proto` writes), and never panics on bad input: it returns
//!   [`ProfileError::Decode`].
//! * Shares are fractions of all samples of the profile (0.0..=1.0): *self* is
//!   the share of samples whose innermost frame is the function, *total* the share
//!   of samples with the function anywhere on the stack (counted once per sample,
//!   so recursion does not inflate it).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use pprof::protos::Message;

/// Why profiling or a profile comparison failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The sampling profiler could not be started (another one is running, or
    /// the platform has no `SIGPROF` timer).
    #[error("cannot start the profiler")]
    Start(#[source] pprof::Error),
    /// The samples could not be turned into a report.
    #[error("cannot build the profile report")]
    Report(#[source] pprof::Error),
    /// The flamegraph could not be rendered.
    #[error("cannot render the flamegraph {path}")]
    Flamegraph {
        /// Where it was going.
        path: PathBuf,
        /// The cause.
        #[source]
        source: pprof::Error,
    },
    /// The protobuf could not be encoded.
    #[error("cannot encode the pprof profile: {0}")]
    Encode(String),
    /// A profile file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a pprof profile.
    #[error("{what} is not a pprof profile: {reason}")]
    Decode {
        /// The input (a path or a label).
        what: String,
        /// What was wrong.
        reason: String,
    },
}

/// A sampling profiler of this whole process, running until [`Profiler::finish`].
pub struct Profiler {
    guard: pprof::ProfilerGuard<'static>,
}

/// The files [`Profiler::finish`] wrote.
#[derive(Clone, Debug)]
pub struct ProfileFiles {
    /// The flamegraph.
    pub svg: PathBuf,
    /// The pprof protobuf.
    pub pb: PathBuf,
    /// Samples taken.
    pub samples: u64,
}

impl Profiler {
    /// Starts sampling every thread at `hz` samples per second.
    ///
    /// # Errors
    /// [`ProfileError::Start`] when the profiler cannot run here.
    pub fn start(hz: i32) -> Result<Profiler, ProfileError> {
        // Frames from libc, libgcc and pthread are skipped: unwinding through them
        // from a signal handler can deadlock (pprof-rs documentation).
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(hz.clamp(1, 1000))
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .map_err(ProfileError::Start)?;
        Ok(Profiler { guard })
    }

    /// Stops sampling and writes `STEM.svg` and `STEM.pb` (creating the folder).
    ///
    /// # Errors
    /// When the report cannot be built or a file cannot be written.
    pub fn finish(self, stem: &Path) -> Result<ProfileFiles, ProfileError> {
        let report = self.guard.report().build().map_err(ProfileError::Report)?;
        drop(self.guard);
        if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ProfileError::Io { path: dir.to_owned(), source })?;
        }
        let svg = stem.with_extension("svg");
        let pb = stem.with_extension("pb");
        let mut svg_bytes = Vec::new();
        report.flamegraph(&mut svg_bytes).map_err(|source| ProfileError::Flamegraph { path: svg.clone(), source })?;
        std::fs::write(&svg, svg_bytes).map_err(|source| ProfileError::Io { path: svg.clone(), source })?;
        let profile = report.pprof().map_err(ProfileError::Report)?;
        let bytes = profile.write_to_bytes().map_err(|e| ProfileError::Encode(e.to_string()))?;
        std::fs::write(&pb, bytes).map_err(|source| ProfileError::Io { path: pb.clone(), source })?;
        let samples = report.data.values().map(|&n| n as u64).sum();
        Ok(ProfileFiles { svg, pb, samples })
    }
}

/// Per-function shares of one profile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Sum of the first sample value over all samples (pprof-rs: sample count).
    pub total: i64,
    /// Function name -> (self value, total value), in the same unit as `total`.
    pub functions: HashMap<String, (i64, i64)>,
}

impl Summary {
    /// `(self share, total share)` of `function` (0 when absent).
    pub fn shares(&self, function: &str) -> (f64, f64) {
        if self.total <= 0 {
            return (0.0, 0.0);
        }
        let (s, t) = self.functions.get(function).copied().unwrap_or((0, 0));
        (s as f64 / self.total as f64, t as f64 / self.total as f64)
    }
}

/// The name a function is compared under: without its Rust symbol hash
/// (`::h0123456789abcdef`, differs between builds) and without generic
/// arguments (`visit_map<serde_json::de::MapAccess<…>>` is `visit_map`), so the
/// monomorphisations of one function add up. `<T as Trait>::f` qualifiers stay.
/// Inlined frames carry only a short name in line-tables-only debug info, so
/// an unqualified name gets its source file appended: `string [wire/scan.rs]`.
pub fn normalise(name: &str, file: &str) -> String {
    let name = match name.rfind("::h") {
        Some(i) if name.len() - i == 19 && name[i + 3..].bytes().all(|b| b.is_ascii_hexdigit()) => &name[..i],
        _ => name,
    };
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    let mut prev: Option<char> = None;
    for c in name.chars() {
        match c {
            '<' if depth > 0 || prev.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '}') => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
        prev = Some(c);
    }
    if !out.contains("::") && !file.is_empty() {
        let parts: Vec<&str> = file.rsplit(['/', '\\']).take(2).collect();
        let short: Vec<&str> = parts.into_iter().rev().collect();
        out = format!("{out} [{}]", short.join("/"));
    }
    out
}

/// Reads a pprof profile (plain or gzip) from `bytes`; `what` names it in errors.
///
/// # Errors
/// [`ProfileError::Decode`] when the bytes are not a pprof profile.
pub fn summarize(bytes: &[u8], what: &str) -> Result<Summary, ProfileError> {
    let decode_err = |reason: String| ProfileError::Decode { what: what.to_owned(), reason };
    let mut inflated = Vec::new();
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut inflated).map_err(|e| decode_err(format!("bad gzip: {e}")))?;
        &inflated[..]
    } else {
        bytes
    };
    let profile = pprof::protos::Profile::parse_from_bytes(raw).map_err(|e| decode_err(e.to_string()))?;
    if profile.sample_type.is_empty() {
        return Err(decode_err("no sample types".into()));
    }
    let string = |i: i64| -> Result<&str, ProfileError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| profile.string_table.get(i))
            .map(String::as_str)
            .ok_or_else(|| decode_err(format!("string index {i} out of range")))
    };
    let mut function_names: HashMap<u64, String> = HashMap::with_capacity(profile.function.len());
    for f in &profile.function {
        function_names.insert(f.id, normalise(string(f.name)?, string(f.filename)?));
    }
    // A location expands to its lines, innermost inlined function first.
    let mut locations: HashMap<u64, Vec<&str>> = HashMap::with_capacity(profile.location.len());
    for loc in &profile.location {
        let names = loc
            .line
            .iter()
            .map(|l| function_names.get(&l.function_id).map_or("[unknown]", String::as_str))
            .collect::<Vec<_>>();
        let names = if names.is_empty() { vec!["[unknown]"] } else { names };
        locations.insert(loc.id, names);
    }
    let mut summary = Summary::default();
    let mut seen: HashSet<&str> = HashSet::new();
    for sample in &profile.sample {
        let value = sample.value.first().copied().unwrap_or(0);
        summary.total += value;
        seen.clear();
        let mut first = true;
        for id in &sample.location_id {
            let names = locations.get(id).ok_or_else(|| decode_err(format!("sample refers to missing location {id}")))?;
            for &name in names {
                let entry = summary.functions.entry(name.to_owned()).or_insert((0, 0));
                if first {
                    entry.0 += value;
                    first = false;
                }
                if seen.insert(name) {
                    entry.1 += value;
                }
            }
        }
    }
    Ok(summary)
}

/// Reads and summarises a profile file.
///
/// # Errors
/// When the file cannot be read or is not a pprof profile.
pub fn summarize_file(path: &Path) -> Result<Summary, ProfileError> {
    let bytes = std::fs::read(path).map_err(|source| ProfileError::Io { path: path.to_owned(), source })?;
    summarize(&bytes, &path.display().to_string())
}

/// One function's change from profile A to profile B.
#[derive(Clone, Debug, PartialEq)]
pub struct DiffRow {
    /// Function name.
    pub function: String,
    /// Self share in A and in B.
    pub self_share: (f64, f64),
    /// Total share in A and in B.
    pub total_share: (f64, f64),
}

impl DiffRow {
    /// Self share change, B - A.
    pub fn self_delta(&self) -> f64 {
        self.self_share.1 - self.self_share.0
    }

    /// Total share change, B - A.
    pub fn total_delta(&self) -> f64 {
        self.total_share.1 - self.total_share.0
    }
}

/// Every function of either profile with its shares in both, largest absolute
/// self-share change first (ties: largest total-share change, then name).
pub fn diff(a: &Summary, b: &Summary) -> Vec<DiffRow> {
    let names: HashSet<&String> = a.functions.keys().chain(b.functions.keys()).collect();
    let mut rows: Vec<DiffRow> = names
        .into_iter()
        .map(|name| {
            let (sa, ta) = a.shares(name);
            let (sb, tb) = b.shares(name);
            DiffRow { function: name.clone(), self_share: (sa, sb), total_share: (ta, tb) }
        })
        .collect();
    rows.sort_by(|x, y| {
        y.self_delta()
            .abs()
            .total_cmp(&x.self_delta().abs())
            .then(y.total_delta().abs().total_cmp(&x.total_delta().abs()))
            .then(x.function.cmp(&y.function))
    });
    rows
}

/// Keeps the head and the tail of a long name: both tell which function it is.
fn shorten(name: &str, width: usize) -> String {
    let n = name.chars().count();
    if n <= width {
        return name.to_owned();
    }
    let head = width / 3;
    let tail = width - head - 1;
    let start: String = name.chars().take(head).collect();
    let end: String = name.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// The two tables `loadgen profile-diff` prints: the `top` functions by change in
/// self share, then the `top` by change in total share. Shares are percentages.
pub fn diff_table(a: &Summary, b: &Summary, label_a: &str, label_b: &str, top: usize) -> String {
    let mut rows = diff(a, b);
    let mut out = String::new();
    let _ = writeln!(out, "A = {label_a} ({} samples)\nB = {label_b} ({} samples)\n", a.total, b.total);
    let width = 90;
    let header = |out: &mut String, title: &str| {
        let _ = writeln!(out, "{title}");
        let _ = writeln!(out, "{:>8} {:>8} {:>8}   {:>8} {:>8} {:>8}   function", "self A", "self B", "Δself", "total A", "total B", "Δtotal");
    };
    let line = |out: &mut String, r: &DiffRow| {
        let pct = |x: f64| format!("{:.2}%", x * 100.0);
        let signed = |x: f64| format!("{:+.2}%", x * 100.0);
        let _ = writeln!(
            out,
            "{:>8} {:>8} {:>8}   {:>8} {:>8} {:>8}   {}",
            pct(r.self_share.0),
            pct(r.self_share.1),
            signed(r.self_delta()),
            pct(r.total_share.0),
            pct(r.total_share.1),
            signed(r.total_delta()),
            shorten(&r.function, width)
        );
    };
    header(&mut out, "By change in self share (B - A):");
    for r in rows.iter().take(top) {
        line(&mut out, r);
    }
    rows.sort_by(|x, y| y.total_delta().abs().total_cmp(&x.total_delta().abs()).then(x.function.cmp(&y.function)));
    let _ = writeln!(out);
    header(&mut out, "By change in total share (B - A):");
    for r in rows.iter().take(top) {
        line(&mut out, r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pprof::protos::{Function, Line, Location, Profile, Sample, ValueType};

    /// A profile over functions `names` (ids 1..) whose samples are
    /// `(stack of function ids, leaf first; count)`.
    fn profile(names: &[&str], samples: &[(&[u64], i64)]) -> Vec<u8> {
        let mut strings = vec![String::new(), "samples".into(), "count".into()];
        strings.extend(names.iter().map(|s| s.to_string()));
        let mut p = Profile::new();
        let mut vt = ValueType::new();
        vt.ty = 1;
        vt.unit = 2;
        p.sample_type.push(vt);
        for (i, _) in names.iter().enumerate() {
            let id = i as u64 + 1;
            let mut f = Function::new();
            f.id = id;
            f.name = i as i64 + 3;
            p.function.push(f);
            let mut line = Line::new();
            line.function_id = id;
            let mut loc = Location::new();
            loc.id = id;
            loc.line.push(line);
            p.location.push(loc);
        }
        for (stack, n) in samples {
            let mut s = Sample::new();
            s.location_id = stack.to_vec();
            s.value = vec![*n];
            p.sample.push(s);
        }
        p.string_table = strings;
        p.write_to_bytes().unwrap()
    }

    #[test]
    fn self_and_total_shares_come_from_leaf_and_whole_stack() {
        // main(3) -> work(2) -> hash(1): 30 samples in hash, 10 in work, recursion in main.
        let bytes = profile(&["hash", "work", "main"], &[(&[1, 2, 3], 30), (&[2, 3], 10), (&[3, 3], 10)]);
        let s = summarize(&bytes, "test").unwrap();
        assert_eq!(s.total, 50);
        assert_eq!(s.functions["hash"], (30, 30));
        assert_eq!(s.functions["work"], (10, 40));
        // Recursion counts once per sample in total.
        assert_eq!(s.functions["main"], (10, 50));
        assert_eq!(s.shares("main"), (0.2, 1.0));
        assert_eq!(s.shares("absent"), (0.0, 0.0));
    }

    #[test]
    fn diff_ranks_functions_by_change_in_self_share() {
        let a = summarize(&profile(&["hash", "work", "main"], &[(&[1, 2, 3], 50), (&[2, 3], 50)]), "a").unwrap();
        let b = summarize(&profile(&["hash", "work", "main", "parse"], &[(&[1, 2, 3], 10), (&[2, 3], 60), (&[4, 3], 30)]), "b")
            .unwrap();
        let rows = diff(&a, &b);
        assert_eq!(rows[0].function, "hash");
        assert!((rows[0].self_delta() + 0.4).abs() < 1e-9, "{:?}", rows[0]);
        assert_eq!(rows[1].function, "parse");
        assert!((rows[1].self_delta() - 0.3).abs() < 1e-9);
        let main = rows.iter().find(|r| r.function == "main").unwrap();
        assert_eq!(main.total_share, (1.0, 1.0));
        let table = diff_table(&a, &b, "a.pb", "b.pb", 3);
        assert!(table.contains("By change in self share"), "{table}");
        assert!(table.contains("-40.00%"), "{table}");
        assert!(table.contains("+30.00%"), "{table}");
    }

    #[test]
    fn names_lose_hashes_and_generics_and_short_names_gain_their_file() {
        assert_eq!(normalise("kcache::store::Store::get::h0123456789abcdef", "x.rs"), "kcache::store::Store::get");
        assert_eq!(
            normalise("serde_json::de::visit_map<serde_json::de::MapAccess<serde_json::read::StrRead>>", ""),
            "serde_json::de::visit_map"
        );
        assert_eq!(normalise("<alloc::vec::Vec<u8> as core::ops::Drop>::drop", ""), "<alloc::vec::Vec as core::ops::Drop>::drop");
        assert_eq!(normalise("visit_map<A>", "/cargo/registry/serde_json-1.0/src/de.rs"), "visit_map [src/de.rs]");
        assert_eq!(normalise("{closure#0}", ""), "{closure#0}");
    }

    #[test]
    fn gzip_profiles_and_hashed_names_are_understood() {
        use std::io::Write;
        let bytes = profile(&["kcache::store::Store::get::h0123456789abcdef"], &[(&[1], 3)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        let s = summarize(&gz.finish().unwrap(), "gz").unwrap();
        assert_eq!(s.functions["kcache::store::Store::get"], (3, 3));
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        for bad in [&b"not a profile at all"[..], &[0x1f, 0x8b, 0, 1][..], &[][..]] {
            let err = summarize(bad, "bad.pb").unwrap_err();
            assert!(matches!(err, ProfileError::Decode { .. }), "{err:?}");
            assert!(err.to_string().contains("bad.pb"));
        }
        let dangling = {
            let mut p = Profile::new();
            p.string_table = vec![String::new()];
            p.sample_type.push(ValueType::new());
            let mut s = Sample::new();
            s.location_id = vec![9];
            s.value = vec![1];
            p.sample.push(s);
            p.write_to_bytes().unwrap()
        };
        assert!(matches!(summarize(&dangling, "d").unwrap_err(), ProfileError::Decode { .. }));
    }
}
