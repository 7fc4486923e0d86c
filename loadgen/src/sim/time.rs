//! RFC 3339 timestamps (jiff, as k8s-openapi re-exports it), uids, and the
//! simulator's clock.
//!
//! # Guarantees
//! * [`Clock`] never runs backwards: it is the wall clock at start plus the real
//!   time elapsed times a scale, plus whatever tests advanced it by.

use std::sync::Mutex;
use std::time::Instant;

use k8s_openapi::jiff::Timestamp;

/// The simulator's notion of now: what `creationTimestamp`, `deletionTimestamp`
/// and grace periods are measured in. Tests speed it up ([`Clock::scaled`]) or
/// move it by hand ([`Clock::advance`]) so that 30 s grace periods pass at once.
#[derive(Debug)]
pub struct Clock {
    start_real: Instant,
    start_unix_ms: i64,
    scale: f64,
    advanced_ms: Mutex<i64>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::scaled(1.0)
    }
}

impl Clock {
    /// A clock that starts at the wall clock and runs `scale` times as fast
    /// (1.0: real time; values that are not positive and finite count as 1.0).
    pub fn scaled(scale: f64) -> Self {
        Clock {
            start_real: Instant::now(),
            start_unix_ms: Timestamp::now().as_millisecond(),
            scale: if scale.is_finite() && scale > 0.0 { scale } else { 1.0 },
            advanced_ms: Mutex::new(0),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        let mut a = self.advanced_ms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *a = a.saturating_add(ms);
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let scaled = (self.start_real.elapsed().as_secs_f64() * 1000.0 * self.scale) as i64;
        let advanced = *self.advanced_ms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.start_unix_ms.saturating_add(scaled).saturating_add(advanced)
    }

    /// Whole seconds since the Unix epoch.
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Now, as an RFC 3339 timestamp.
    pub fn now_rfc3339(&self) -> String {
        rfc3339(self.now_secs())
    }
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp (None when unparsable).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<Timestamp>().ok().map(|t| t.as_second())
}

/// Formats seconds since the Unix epoch as `2026-11-23T18:20:22Z` (what Kubernetes
/// puts in `creationTimestamp`); times jiff cannot represent (beyond year 9999)
/// are clamped to its range.
pub fn rfc3339(unix_secs: i64) -> String {
    let t = Timestamp::from_second(unix_secs.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second()))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Formats 128 random bits as a version-4 UUID string.
pub fn uuid_from(bits: u128) -> String {
    let b = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A fresh random UUID.
pub fn new_uid() -> String {
    uuid_from(rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_like_kubernetes() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_458_022), "2026-11-23T18:20:22Z");
        assert_eq!(rfc3339(951_782_400 + 86_399), "2000-02-29T23:59:59Z");
        assert!(rfc3339(i64::MAX).starts_with("9999-12-"), "clamped to jiff's range");
        assert!(rfc3339(i64::MIN).starts_with("-9999-01-"), "clamped to jiff's range");
    }

    #[test]
    fn clock_advances_and_parses_its_own_timestamps() {
        let c = Clock::scaled(1.0);
        let before = c.now_secs();
        c.advance(std::time::Duration::from_secs(90));
        assert!(c.now_secs() >= before + 90);
        assert_eq!(parse_rfc3339(&rfc3339(1_795_458_022)), Some(1_795_458_022));
        assert_eq!(parse_rfc3339("not a time"), None);
    }

    #[test]
    fn uids_are_version_4() {
        let u = uuid_from(0);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(&u[19..20], "8");
    }
}
