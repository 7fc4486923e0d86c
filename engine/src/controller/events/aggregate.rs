//! What the recorder writes for each published event: the spam filter's token
//! buckets and client-go's series aggregation, as pure state without I/O.
//!
//! # Guarantees
//! * Every occurrence takes a token from its object's bucket first (client-go
//!   tools/record/events_cache.go `EventCorrelate` filters every event); an
//!   occurrence without a token is dropped and counted, and never reaches a
//!   series.
//! * Isomorphic occurrences (client-go tools/events/event_broadcaster.go
//!   `getKey`) make one Event: the first is created, the second writes
//!   `series.count = 2`, later ones only raise the count in memory; the count
//!   is written by [`Aggregator::due`] at most once per flush interval and when
//!   the series ends.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::{Event, EventType, Reporter};

/// The real server's limits (pkg/apis/core/validation/events.go): longer
/// fields are cut so that the Event is accepted rather than refused.
const REASON_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

/// What makes two occurrences the same Event: client-go's `eventKey` (type,
/// action, reason, reporting controller and instance, regarding, related).
/// The note is not part of it, as in client-go: it is immutable on the server,
/// so a series keeps its first note.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EventKey {
    event_type: EventType,
    action: String,
    reason: String,
    reporting_controller: String,
    reporting_instance: String,
    regarding: RefKey,
    related: Option<RefKey>,
}

/// Every field of an `ObjectReference` (Go compares the structs whole).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RefKey([Option<String>; 7]);

impl RefKey {
    fn of(r: &ObjectReference) -> Self {
        RefKey([
            r.api_version.clone(),
            r.kind.clone(),
            r.namespace.clone(),
            r.name.clone(),
            r.uid.clone(),
            r.resource_version.clone(),
            r.field_path.clone(),
        ])
    }
}

/// Whose bucket an occurrence draws from: client-go's `getSpamKey` (source,
/// the regarding object's kind, namespace, name, uid and apiVersion, and the
/// event type).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SpamKey {
    reporter: String,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    api_version: Option<String>,
    event_type: EventType,
}

/// A token bucket that starts full, as golang.org/x/time/rate's limiter behind
/// client-go's `NewTokenBucketPassiveRateLimiter`.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_token: Duration,
    at: Timestamp,
}

impl TokenBucket {
    pub(crate) fn new(burst: u32, per_token: Duration, now: Timestamp) -> Self {
        TokenBucket { tokens: f64::from(burst), burst: f64::from(burst), per_token, at: now }
    }

    /// Takes one token if there is one (client-go's `TryAccept`).
    pub(crate) fn try_take(&mut self, now: Timestamp) -> bool {
        let elapsed = now.duration_since(self.at).as_secs_f64().max(0.0);
        if elapsed > 0.0 {
            let refill = if self.per_token.is_zero() { self.burst } else { elapsed / self.per_token.as_secs_f64() };
            self.tokens = (self.tokens + refill).min(self.burst);
            self.at = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again: forgetting it then changes nothing.
    fn is_full(&self, now: Timestamp) -> bool {
        let elapsed = now.duration_since(self.at).as_secs_f64().max(0.0);
        self.per_token.is_zero() || self.tokens + elapsed / self.per_token.as_secs_f64() >= self.burst
    }
}

/// The aggregation and spam settings (see [`super::RecorderConfig`]).
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) burst: u32,
    pub(crate) per_token: Duration,
    pub(crate) buckets: usize,
    pub(crate) finish_after: Duration,
}

/// One API write the recorder owes the server.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Write {
    /// POST this Event.
    Create(Box<K8sEvent>),
    /// PATCH the series of this Event (created before); `event` is the whole
    /// Event with the series, to create should the server have lost it.
    Series(Box<K8sEvent>),
}

/// What [`Aggregator::observe`] decided for one occurrence.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// Write this now.
    Write(Write),
    /// Counted into a series; written later by [`Aggregator::due`].
    Counted,
    /// Over the object's spam budget: dropped.
    Spam,
}

struct Series {
    event: K8sEvent,
    /// The count changed since it was last written.
    dirty: bool,
    last_seen: Timestamp,
}

/// The spam filter and the series cache.
pub(crate) struct Aggregator {
    limits: Limits,
    buckets: HashMap<SpamKey, TokenBucket>,
    series: HashMap<EventKey, Series>,
}

impl Aggregator {
    pub(crate) fn new(limits: Limits) -> Self {
        Aggregator { limits, buckets: HashMap::new(), series: HashMap::new() }
    }

    /// Filters, then aggregates, one occurrence of `event` about `regarding`.
    pub(crate) fn observe(&mut self, reporter: &Reporter, event: &Event, regarding: &ObjectReference, now: Timestamp) -> Outcome {
        if !self.take_token(spam_key(reporter, event, regarding), now) {
            return Outcome::Spam;
        }
        let key = event_key(reporter, event, regarding);
        match self.series.get_mut(&key) {
            None => {
                let created = make_event(reporter, event, regarding, now);
                self.series.insert(key, Series { event: created.clone(), dirty: false, last_seen: now });
                Outcome::Write(Write::Create(Box::new(created)))
            }
            Some(s) => {
                s.last_seen = now;
                let observed = MicroTime(now);
                match &mut s.event.series {
                    Some(series) => {
                        series.count = series.count.saturating_add(1);
                        series.last_observed_time = observed;
                        s.dirty = true;
                        Outcome::Counted
                    }
                    None => {
                        s.event.series = Some(EventSeries { count: 2, last_observed_time: observed });
                        Outcome::Write(Write::Series(Box::new(s.event.clone())))
                    }
                }
            }
        }
    }

    /// The series writes owed now: every count that changed since it was last
    /// written. Forgets the Events idle for `finish_after` (client-go's
    /// `finishSeries`), after their final count.
    pub(crate) fn due(&mut self, now: Timestamp) -> Vec<Write> {
        let finish_before = now - SignedDuration::try_from(self.limits.finish_after).unwrap_or(SignedDuration::MAX);
        let mut writes = Vec::new();
        self.series.retain(|_, s| {
            if s.dirty {
                s.dirty = false;
                writes.push(Write::Series(Box::new(s.event.clone())));
            }
            s.last_seen > finish_before
        });
        writes
    }

    /// How many distinct Events are remembered for aggregation.
    #[cfg(test)]
    pub(crate) fn series_len(&self) -> usize {
        self.series.len()
    }

    fn take_token(&mut self, key: SpamKey, now: Timestamp) -> bool {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.limits.buckets {
            // client-go keeps the buckets in an LRU of 4096; a full bucket is
            // the same as a forgotten one, so those go first.
            self.buckets.retain(|_, b| !b.is_full(now));
            if self.buckets.len() >= self.limits.buckets {
                let mut oldest: Vec<(Timestamp, SpamKey)> = self.buckets.iter().map(|(k, b)| (b.at, k.clone())).collect();
                oldest.sort_by_key(|(at, _)| *at);
                for (_, k) in oldest.into_iter().take(self.limits.buckets / 2 + 1) {
                    self.buckets.remove(&k);
                }
            }
        }
        let (burst, per_token) = (self.limits.burst, self.limits.per_token);
        self.buckets.entry(key).or_insert_with(|| TokenBucket::new(burst, per_token, now)).try_take(now)
    }
}

pub(crate) fn event_key(reporter: &Reporter, event: &Event, regarding: &ObjectReference) -> EventKey {
    EventKey {
        event_type: event.type_,
        action: cut(&event.action, ACTION_LIMIT),
        reason: cut(&event.reason, REASON_LIMIT),
        reporting_controller: reporter.controller.clone(),
        reporting_instance: reporter.instance(),
        regarding: RefKey::of(regarding),
        related: event.related.as_ref().map(RefKey::of),
    }
}

pub(crate) fn spam_key(reporter: &Reporter, event: &Event, regarding: &ObjectReference) -> SpamKey {
    SpamKey {
        reporter: format!("{}/{}", reporter.controller, reporter.instance()),
        kind: regarding.kind.clone(),
        namespace: regarding.namespace.clone(),
        name: regarding.name.clone(),
        uid: regarding.uid.clone(),
        api_version: regarding.api_version.clone(),
        event_type: event.type_,
    }
}

/// The Event client-go's `makeEvent` builds (tools/events/event_recorder.go):
/// in the regarding object's namespace (`default` for a cluster-scoped one),
/// named `<regarding name>.<unix nanoseconds in hex>`.
pub(crate) fn make_event(reporter: &Reporter, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
    let namespace = regarding.namespace.clone().filter(|ns| !ns.is_empty()).unwrap_or_else(|| "default".to_owned());
    K8sEvent {
        metadata: ObjectMeta {
            name: Some(event_name(regarding.name.as_deref().unwrap_or(""), now.as_nanosecond())),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        series: None,
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(reporter.instance()),
        action: Some(cut(&event.action, ACTION_LIMIT)),
        reason: Some(cut(&event.reason, REASON_LIMIT)),
        regarding: Some(regarding.clone()),
        related: event.related.clone(),
        note: event.note.as_deref().map(|n| cut(n, NOTE_LIMIT)),
        type_: Some(event.type_.as_str().to_owned()),
        ..K8sEvent::default()
    }
}

/// client-go's `GenerateEventName` (tools/record/util/util.go): the regarding
/// name, a dot and the time in hex, or a random UUID when that is not a valid
/// DNS subdomain (an empty or too long name).
pub(crate) fn event_name(regarding: &str, unix_nanos: i128) -> String {
    let name = format!("{regarding}.{unix_nanos:x}");
    if is_dns_subdomain(&name) { name } else { random_uuid() }
}

fn is_dns_subdomain(s: &str) -> bool {
    let ok_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty() && ok_char(b[0]) && ok_char(b[b.len() - 1]) && b.iter().all(|&c| ok_char(c) || c == b'-')
        })
}

fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// `s` cut to at most `limit` bytes, on a character boundary (the server
/// counts Go string bytes).
fn cut(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_owned();
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reporter() -> Reporter {
        Reporter { controller: "example.com/ctl".into(), instance: Some("ctl-0".into()) }
    }

    fn pod(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn ev(reason: &str, note: &str) -> Event {
        Event::normal(reason, "Reconcile").note(note)
    }

    fn limits() -> Limits {
        Limits { burst: 25, per_token: Duration::from_secs(300), buckets: 4096, finish_after: Duration::from_secs(360) }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn the_aggregation_key_ignores_the_note_and_nothing_else() {
        let r = reporter();
        let base = event_key(&r, &ev("Synced", "a"), &pod("p"));
        assert_eq!(base, event_key(&r, &ev("Synced", "another note"), &pod("p")));
        assert_ne!(base, event_key(&r, &ev("Failed", "a"), &pod("p")));
        assert_ne!(base, event_key(&r, &ev("Synced", "a"), &pod("q")));
        assert_ne!(base, event_key(&r, &Event::warning("Synced", "Reconcile").note("a"), &pod("p")));
        assert_ne!(base, event_key(&r, &Event::normal("Synced", "Delete").note("a"), &pod("p")));
        assert_ne!(base, event_key(&r, &ev("Synced", "a").related(pod("q")), &pod("p")));
        let mut newer = pod("p");
        newer.resource_version = Some("7".into());
        assert_ne!(base, event_key(&r, &ev("Synced", "a"), &newer), "client-go's reference carries the version");
        let other = Reporter { instance: Some("ctl-1".into()), ..reporter() };
        assert_ne!(base, event_key(&other, &ev("Synced", "a"), &pod("p")));
    }

    #[test]
    fn the_spam_key_is_per_object_and_type() {
        let r = reporter();
        let k = spam_key(&r, &ev("A", ""), &pod("p"));
        assert_eq!(k, spam_key(&r, &ev("B", "x"), &pod("p")));
        assert_ne!(k, spam_key(&r, &ev("A", ""), &pod("q")));
        assert_ne!(k, spam_key(&r, &Event::warning("A", "Reconcile"), &pod("p")));
    }

    #[test]
    fn the_token_bucket_allows_a_burst_then_one_per_refill_period() {
        let mut b = TokenBucket::new(25, Duration::from_secs(300), t(0));
        assert_eq!((0..30).filter(|_| b.try_take(t(0))).count(), 25);
        assert!(!b.try_take(t(299)), "not refilled yet");
        assert!(b.try_take(t(301)), "one token after 5 minutes");
        assert!(!b.try_take(t(302)));
        // A long pause refills up to the burst and no further.
        assert_eq!((0..40).filter(|_| b.try_take(t(100_000))).count(), 25);
        // A clock going back refills nothing.
        assert!(!b.try_take(t(50_000)));
    }

    #[test]
    fn identical_events_become_one_series_written_at_the_second_and_then_on_flush() {
        let mut a = Aggregator::new(limits());
        let r = reporter();
        let first = a.observe(&r, &ev("Synced", "n"), &pod("p"), t(0));
        let Outcome::Write(Write::Create(created)) = first else { panic!("first creates: {first:?}") };
        assert_eq!(created.series, None);
        let second = a.observe(&r, &ev("Synced", "n"), &pod("p"), t(1));
        let Outcome::Write(Write::Series(s)) = second else { panic!("second writes the series: {second:?}") };
        assert_eq!(s.series.as_ref().map(|s| s.count), Some(2));
        assert_eq!(s.metadata.name, created.metadata.name, "the same Event");
        for i in 3..=10 {
            assert_eq!(a.observe(&r, &ev("Synced", "n"), &pod("p"), t(i)), Outcome::Counted);
        }
        let due = a.due(t(11));
        assert_eq!(due.len(), 1);
        let Write::Series(s) = &due[0] else { panic!("{due:?}") };
        let series = s.series.as_ref().expect("series");
        assert_eq!((series.count, series.last_observed_time.0), (10, t(10)));
        assert!(a.due(t(12)).is_empty(), "nothing changed since");
        assert_eq!(a.series_len(), 1);
        assert!(a.due(t(10 + 361)).is_empty());
        assert_eq!(a.series_len(), 0, "an idle series is finished and forgotten");
        let again = a.observe(&r, &ev("Synced", "n"), &pod("p"), t(400));
        assert!(matches!(again, Outcome::Write(Write::Create(_))), "a new Event after the series ended");
    }

    #[test]
    fn the_spam_filter_drops_beyond_the_burst_per_object() {
        let mut a = Aggregator::new(limits());
        let r = reporter();
        let outcomes: Vec<Outcome> = (0..30).map(|i| a.observe(&r, &ev(&format!("R{i}"), ""), &pod("p"), t(0))).collect();
        assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Spam).count(), 5);
        assert!(outcomes[..25].iter().all(|o| matches!(o, Outcome::Write(Write::Create(_)))));
        assert!(matches!(a.observe(&r, &ev("R0", ""), &pod("q"), t(0)), Outcome::Write(_)), "another object has its own bucket");
    }

    #[test]
    fn the_bucket_table_stays_bounded() {
        let mut a = Aggregator::new(Limits { buckets: 8, ..limits() });
        for i in 0..100 {
            a.observe(&reporter(), &ev("R", ""), &pod(&format!("p{i}")), t(i));
            assert!(a.buckets.len() <= 8);
        }
    }

    #[test]
    fn events_are_named_and_cut_as_client_go_and_the_server_want() {
        let now = t(0);
        let e = make_event(&reporter(), &ev(&"R".repeat(200), &"é".repeat(600)), &pod("web-0"), now);
        assert_eq!(e.metadata.name.as_deref(), Some(format!("web-0.{:x}", now.as_nanosecond()).as_str()));
        assert_eq!(e.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(e.reason.as_ref().map(String::len), Some(128));
        assert_eq!(e.note.as_ref().map(String::len), Some(1024));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        let node = ObjectReference { kind: Some("Node".into()), name: Some("n1".into()), ..ObjectReference::default() };
        assert_eq!(make_event(&reporter(), &ev("R", ""), &node, now).metadata.namespace.as_deref(), Some("default"));
        let odd = event_name("Not_A_Name", 255);
        assert_eq!((odd.len(), odd.as_bytes()[14]), (36, b'4'), "a v4 UUID: {odd}");
        assert_eq!(event_name("", 255).len(), 36);
        assert_eq!(event_name("a", 255), "a.ff");
    }
}
