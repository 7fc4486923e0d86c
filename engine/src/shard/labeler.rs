//! The sharder's decisions, as pure functions: which label marks an object's shard,
//! which member the ring gives it, whether it must be relabelled, and how fast.
//!
//! # Guarantees
//! * The shard label is `shard.kcache.io/<ring>` valued with the member's identity;
//!   [`ShardLabel::new`] refuses a ring name or identity the API server would refuse
//!   as a label key or value (apimachinery's `IsQualifiedName` / `IsValidLabelValue`).
//! * [`ShardLabel::relabel`] places an object exactly as the controller's
//!   [`Assignment`](super::Assignment) hashes it ([`ShardBy::hash`], owner-aware under
//!   [`ShardBy::Uid`] and [`ShardBy::Namespace`]) on the given [`Ring`]: an object is
//!   labelled with the ring owner of the hash the controller admits it by.
//! * [`PatchPacer`] lets at most `burst` patches through at once and `qps` per second
//!   on average (client-go's token bucket, k8s.io/client-go/util/flowcontrol).

use std::time::{Duration, Instant};

use super::key::ShardBy;
use super::ring::Ring;
use crate::Obj;

/// The prefix of every shard label key.
pub const SHARD_LABEL_PREFIX: &str = "shard.kcache.io/";

/// Why a ring name or identity cannot make a shard label.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// The ring name is not a label key's name part (at most 63 alphanumerics, `-`,
    /// `_` or `.`, starting and ending alphanumeric).
    #[error("ring name {0:?} cannot name a label: use at most 63 alphanumerics, '-', '_' or '.'")]
    Ring(String),
    /// The identity is not a label value (same rule; empty is refused too, since an
    /// unlabelled object would then look labelled).
    #[error("identity {0:?} cannot be a label value: use at most 63 alphanumerics, '-', '_' or '.'")]
    Identity(String),
}

/// apimachinery's qualified-name part and label value rule
/// (k8s.io/apimachinery/pkg/util/validation/validation.go, `qualifiedNameFmt`).
fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// The label of one ring: its key, and the selector each member caches by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardLabel {
    key: String,
}

/// What the sharder must write on one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relabel {
    /// The member the ring gives the object.
    pub to: String,
    /// The label it carries now (`None`: unlabelled).
    pub from: Option<String>,
}

impl ShardLabel {
    /// The label of `ring`: `shard.kcache.io/<ring>`.
    ///
    /// # Errors
    /// [`LabelError::Ring`] when `ring` cannot be a label key's name.
    pub fn new(ring: &str) -> Result<ShardLabel, LabelError> {
        if !is_label_token(ring) {
            return Err(LabelError::Ring(ring.to_owned()));
        }
        Ok(ShardLabel { key: format!("{SHARD_LABEL_PREFIX}{ring}") })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The label selector of `identity`'s slice: `shard.kcache.io/<ring>=<identity>`.
    ///
    /// ```
    /// use kcache::shard::ShardLabel;
    /// let label = ShardLabel::new("cm").unwrap();
    /// assert_eq!(label.selector("replica-a").unwrap(), "shard.kcache.io/cm=replica-a");
    /// assert!(label.selector("Not valid!").is_err());
    /// ```
    ///
    /// # Errors
    /// [`LabelError::Identity`] when `identity` cannot be a label value.
    pub fn selector(&self, identity: &str) -> Result<String, LabelError> {
        if !is_label_token(identity) {
            return Err(LabelError::Identity(identity.to_owned()));
        }
        Ok(format!("{}={identity}", self.key))
    }

    /// The member `obj` must be labelled with, unless it already is: `None` when its
    /// label is right, or when the ring is empty (nobody to give it to). An identity
    /// that cannot be a label value is skipped the same way (it could never cache).
    pub fn relabel(&self, ring: &Ring, by: ShardBy, obj: &Obj) -> Option<Relabel> {
        let to = ring.owner(by.hash(obj))?;
        let from = obj.label(&self.key);
        if from == Some(to) || !is_label_token(to) {
            return None;
        }
        Some(Relabel { to: to.to_owned(), from: from.map(str::to_owned) })
    }

    /// The merge patch that sets the label to `member` (JSON merge patch, RFC 7386:
    /// only `metadata.labels.<key>` changes).
    pub fn patch(&self, member: &str) -> serde_json::Value {
        serde_json::json!({ "metadata": { "labels": { self.key.as_str(): member } } })
    }
}

/// A token bucket: `burst` patches at once, then `qps` per second.
#[derive(Clone, Debug)]
pub struct PatchPacer {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl PatchPacer {
    /// A full bucket at `now`. A `qps` that is not positive and finite is unlimited.
    pub fn new(qps: f64, burst: u32, now: Instant) -> PatchPacer {
        let burst = f64::from(burst.max(1));
        PatchPacer { qps, burst, tokens: burst, last: now }
    }

    /// Takes a token at `now`: `Duration::ZERO` when one was there, else how long to
    /// wait before taking it (the token is reserved: call again only after waiting).
    pub fn take(&mut self, now: Instant) -> Duration {
        if !(self.qps.is_finite() && self.qps > 0.0) {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Decoder, DecoderConfig};

    fn obj(json: &str) -> Obj {
        Decoder::new(DecoderConfig::default()).decode_object(json.as_bytes()).unwrap()
    }

    /// A uid-like string: real uids are random, so their hashes spread over the ring
    /// (sequential names differing only at the end would not).
    fn uid_of(i: u64) -> String {
        format!("{:016x}-uid", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn labelled(name: &str, uid: &str, label: Option<&str>, owner: Option<&str>) -> Obj {
        let labels = label.map_or(String::new(), |l| format!(r#","labels":{{"shard.kcache.io/ring":"{l}","app":"x"}}"#));
        let owners = owner.map_or(String::new(), |o| {
            format!(r#","ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"{o}","controller":true}}]"#)
        });
        obj(&format!(r#"{{"metadata":{{"namespace":"ns","name":"{name}","uid":"{uid}"{labels}{owners}}}}}"#))
    }

    #[test]
    fn objects_are_labelled_with_their_ring_owner_and_owned_objects_follow_their_owner() {
        let label = ShardLabel::new("ring").unwrap();
        let ring = Ring::new(["a", "b", "c"], 64);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let uid = uid_of(i);
            let fresh = labelled(&format!("o{i}"), &uid, None, None);
            let owner = ring.owner(ShardBy::Uid.hash(&fresh)).unwrap().to_owned();
            seen.insert(owner.clone());
            assert_eq!(label.relabel(&ring, ShardBy::Uid, &fresh), Some(Relabel { to: owner.clone(), from: None }), "an unlabelled object is labelled");
            let right = labelled(&format!("o{i}"), &uid, Some(&owner), None);
            assert_eq!(label.relabel(&ring, ShardBy::Uid, &right), None, "a right label is left alone");
            let wrong = if owner == "a" { "b" } else { "a" };
            let moved = labelled(&format!("o{i}"), &uid, Some(wrong), None);
            assert_eq!(label.relabel(&ring, ShardBy::Uid, &moved), Some(Relabel { to: owner.clone(), from: Some(wrong.to_owned()) }));
            // An owned object goes where its controller owner goes, whatever its own uid.
            let owned = labelled(&format!("p{i}"), &uid_of(1000 + i), None, Some(&uid));
            assert_eq!(label.relabel(&ring, ShardBy::Uid, &owned).map(|r| r.to), Some(owner.clone()));
            assert_eq!(label.relabel(&ring, ShardBy::ObjectUid, &owned).map(|r| r.to), ring.owner(crate::shard::fnv1a64(uid_of(1000 + i).as_bytes())).map(str::to_owned));
            // By namespace, everything in "ns" has one owner.
            assert_eq!(label.relabel(&ring, ShardBy::Namespace, &owned).map(|r| r.to), ring.owner(crate::shard::fnv1a64(b"ns")).map(str::to_owned));
        }
        assert_eq!(seen.len(), 3, "every member gets objects");
        assert_eq!(label.relabel(&Ring::empty(), ShardBy::Uid, &labelled("o", "u", None, None)), None, "no member, no label");
    }

    #[test]
    fn a_leaving_member_moves_only_its_own_objects() {
        let label = ShardLabel::new("ring").unwrap();
        let before = Ring::new(["a", "b", "c"], 64);
        let after = Ring::new(["a", "c"], 64);
        let mut moved = 0;
        for i in 0..300 {
            let uid = uid_of(i);
            let owner = before.owner(ShardBy::Uid.hash(&labelled("o", &uid, None, None))).unwrap().to_owned();
            let o = labelled("o", &uid, Some(&owner), None);
            match label.relabel(&after, ShardBy::Uid, &o) {
                None => assert_ne!(owner, "b", "b's objects must move"),
                Some(r) => {
                    assert_eq!(owner, "b", "only b's objects move");
                    assert_eq!(r.from.as_deref(), Some("b"));
                    assert!(r.to == "a" || r.to == "c");
                    moved += 1;
                }
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn label_names_follow_the_api_server_rules() {
        assert_eq!(ShardLabel::new("cm-cache").unwrap().key(), "shard.kcache.io/cm-cache");
        assert!(ShardLabel::new("").is_err());
        assert!(ShardLabel::new("-x").is_err());
        assert!(ShardLabel::new(&"r".repeat(64)).is_err());
        let label = ShardLabel::new("r").unwrap();
        assert!(label.selector("").is_err());
        assert!(label.selector("pod/0").is_err());
        assert_eq!(label.patch("a"), serde_json::json!({"metadata": {"labels": {"shard.kcache.io/r": "a"}}}));
    }

    #[test]
    fn the_pacer_lets_a_burst_through_then_spaces_patches_by_the_rate() {
        let t0 = Instant::now();
        let mut pacer = PatchPacer::new(10.0, 3, t0);
        for _ in 0..3 {
            assert_eq!(pacer.take(t0), Duration::ZERO);
        }
        let wait = pacer.take(t0);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // After waiting, the next token costs another tenth of a second.
        let wait = pacer.take(t0 + Duration::from_millis(100));
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // A long pause refills at most the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(pacer.take(later), Duration::ZERO);
        }
        assert!(pacer.take(later) > Duration::ZERO);
        let mut unlimited = PatchPacer::new(0.0, 1, t0);
        for _ in 0..100 {
            assert_eq!(unlimited.take(t0), Duration::ZERO);
        }
    }
}
