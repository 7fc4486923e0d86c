//! RFC 3339 timestamps (jiff, as k8s-openapi re-exports it) and uids.

use k8s_openapi::jiff::Timestamp;

/// Formats seconds since the Unix epoch as `2026-11-23T18:20:22Z` (what Kubernetes
/// puts in `creationTimestamp`); times jiff cannot represent (beyond year 9999)
/// are clamped to its range.
pub fn rfc3339(unix_secs: i64) -> String {
    let t = Timestamp::from_second(unix_secs.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second()))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current time as an RFC 3339 timestamp.
pub fn now_rfc3339() -> String {
    rfc3339(Timestamp::now().as_second())
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
    fn uids_are_version_4() {
        let u = uuid_from(0);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(&u[19..20], "8");
    }
}
