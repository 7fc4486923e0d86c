//! Capped exponential backoff with jitter, for relists and rewatches.
//!
//! # Guarantees
//! * Delays never exceed [`Backoff::max`] (jitter included).
//! * After a quiet period of [`Backoff::reset_after`] without failures the next
//!   delay starts again from [`Backoff::initial`], so one blip after hours of
//!   health does not wait 30 s — client-go's `NewExponentialBackoffManager`
//!   (800 ms initial, 30 s cap, reset after 2 min) behaves the same.

use std::time::{Duration, Instant};

use rand::Rng;

/// Exponential backoff state: `initial * factor^n`, capped, with multiplicative jitter.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay ever returned.
    pub max: Duration,
    /// Growth per consecutive failure (2.0 doubles).
    pub factor: f64,
    /// Each delay is multiplied by a random factor in `[1 - jitter/2, 1 + jitter/2]`
    /// so that many informers restarting together spread their requests.
    pub jitter: f64,
    /// A failure that comes this long after the previous one starts from `initial` again.
    pub reset_after: Duration,
    current: Duration,
    last_failure: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(800), Duration::from_secs(30))
    }
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max`, jitter 0.5, reset after 2 minutes.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            factor: 2.0,
            jitter: 0.5,
            reset_after: Duration::from_secs(120),
            current: Duration::ZERO,
            last_failure: None,
        }
    }

    /// The delay to wait after a failure observed now.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_at(Instant::now(), &mut rand::rng())
    }

    /// The delay to wait after a failure observed at `now`, drawing jitter from `rng`.
    pub fn next_delay_at(&mut self, now: Instant, rng: &mut impl Rng) -> Duration {
        let quiet = self.last_failure.is_none_or(|t| now.saturating_duration_since(t) >= self.reset_after);
        self.current = if quiet || self.current.is_zero() {
            self.initial
        } else {
            self.current.mul_f64(self.factor.max(1.0)).min(self.max)
        };
        self.last_failure = Some(now);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let scale = if jitter > 0.0 { rng.random_range((1.0 - jitter / 2.0)..=(1.0 + jitter / 2.0)) } else { 1.0 };
        self.current.mul_f64(scale).min(self.max)
    }

    /// Forgets past failures (call after a successful sync).
    pub fn reset(&mut self) {
        self.current = Duration::ZERO;
        self.last_failure = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn delays_double_then_cap_without_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        b.jitter = 0.0;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let t = Instant::now();
        let got: Vec<u128> = (0..7).map(|i| b.next_delay_at(t + Duration::from_millis(i), &mut rng).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_under_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let t = Instant::now();
        let mut seen = std::collections::HashSet::new();
        for i in 0..50 {
            let d = b.next_delay_at(t + Duration::from_millis(i), &mut rng);
            assert!(d <= Duration::from_secs(2), "{d:?}");
            seen.insert(d.as_micros());
        }
        assert!(seen.len() > 10, "jitter should vary delays: {seen:?}");
        b.reset();
        let first = b.next_delay_at(t, &mut rng);
        assert!(first >= Duration::from_millis(75) && first <= Duration::from_millis(125), "{first:?}");
    }

    #[test]
    fn a_quiet_period_restarts_from_the_initial_delay() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        b.jitter = 0.0;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let t = Instant::now();
        b.next_delay_at(t, &mut rng);
        b.next_delay_at(t, &mut rng);
        assert_eq!(b.next_delay_at(t, &mut rng), Duration::from_millis(400));
        assert_eq!(b.next_delay_at(t + Duration::from_secs(121), &mut rng), Duration::from_millis(100));
    }
}
