//! The statistics of a comparison: medians, RSS growth, the cache's memory, and
//! ratios of runs paired by repeat.
//!
//! # Guarantees
//! * A ratio kcache/kube-rs ([`Index::ratio`]) is the median of per-repeat
//!   ratios of runs made next to each other in the same comparison
//!   ([`super::plan`]), never a ratio of medians from different times.
//! * Non-finite values never enter a median; a median of nothing is `None`.

use std::collections::BTreeMap;

use kcache_loadgen::report::Report;

use super::exec::Outcome;
use super::plan::Group;

/// Bytes in a MiB.
pub const MIB: f64 = 1_048_576.0;

/// Median of `values` (mean of the middle two for an even count); `None` when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 })
}

/// Relative RSS growth over a write phase: mean of the last third of the
/// samples over the mean of the middle third, minus one. `None` under 3 samples.
///
/// The first third is left out: it holds the climb from the synced cache to
/// the write phase's working set (kcache's arena fills with replaced objects
/// until their share reaches the compaction threshold, about 4 s at 2,000
/// writes/s), which happens once. Growth between the middle and the last
/// third is what a leak or an unbounded backlog would show.
pub fn rss_growth(timeline: &[f64]) -> Option<f64> {
    if timeline.len() < 3 {
        return None;
    }
    let third = timeline.len() / 3;
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let middle = mean(&timeline[third..2 * third]);
    let last = mean(&timeline[timeline.len() - third..]);
    (middle > 0.0).then(|| last / middle - 1.0)
}

/// Memory the synced cache added to its process, bytes.
pub fn cache_bytes(r: &Report) -> f64 {
    ((r.rss_mb_after_sync - r.rss_mb_before_engine) * MIB).max(0.0)
}

/// `a / b` when both were measured and `b` is positive.
pub fn ratio_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Outcomes indexed by (group, param, variant) -> rep -> report.
pub struct Index<'a> {
    map: BTreeMap<(String, String, String), BTreeMap<usize, &'a Report>>,
}

impl<'a> Index<'a> {
    /// Indexes the outcomes that have a report.
    pub fn new(outcomes: &'a [Outcome]) -> Self {
        let mut map: BTreeMap<_, BTreeMap<usize, &Report>> = BTreeMap::new();
        for o in outcomes {
            if let Some(r) = &o.report {
                let j = &o.job;
                map.entry((j.group.as_str().to_owned(), j.param.clone(), j.variant.clone())).or_default().insert(j.rep, r);
            }
        }
        Index { map }
    }

    /// Reports of one variant, by repeat.
    pub fn get(&self, group: Group, param: &str, variant: &str) -> Option<&BTreeMap<usize, &'a Report>> {
        self.map.get(&(group.as_str().to_owned(), param.to_owned(), variant.to_owned())).filter(|m| !m.is_empty())
    }

    /// The report of one variant's first repeat.
    pub fn first(&self, group: Group, param: &str, variant: &str) -> Option<&'a Report> {
        self.get(group, param, variant).and_then(|m| m.values().next().copied())
    }

    /// Median of `f` over the repeats of one variant.
    pub fn median(&self, group: Group, param: &str, variant: &str, f: impl Fn(&Report) -> f64) -> Option<f64> {
        median(self.get(group, param, variant)?.values().map(|r| f(r)).collect())
    }

    /// Repeats of one variant.
    pub fn runs(&self, group: Group, param: &str, variant: &str) -> usize {
        self.get(group, param, variant).map_or(0, BTreeMap::len)
    }

    /// Median over repeats of `f(num) / f(den)`, pairing runs of the same repeat.
    pub fn ratio(&self, group: Group, param: &str, num: &str, den: &str, f: impl Fn(&Report) -> f64) -> Option<f64> {
        let a = self.get(group, param, num)?;
        let b = self.get(group, param, den)?;
        median(
            a.iter()
                .filter_map(|(rep, ra)| b.get(rep).map(|rb| (f(ra), f(rb))))
                .filter(|(_, d)| *d > 0.0)
                .map(|(n, d)| n / d)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![f64::NAN]), None);
    }

    #[test]
    fn rss_growth_compares_the_last_third_with_the_middle_one() {
        assert_eq!(rss_growth(&[100.0, 100.0, 100.0]), Some(0.0));
        let g = rss_growth(&[100.0, 100.0, 150.0, 150.0, 300.0, 300.0]).unwrap();
        assert!((g - 1.0).abs() < 1e-9, "{g}");
        // A climb confined to the first third is not growth.
        assert_eq!(rss_growth(&[50.0, 80.0, 100.0, 100.0, 100.0, 100.0]), Some(0.0));
        assert_eq!(rss_growth(&[1.0, 2.0]), None);
    }
}
