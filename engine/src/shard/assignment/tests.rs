use super::*;

const SEC: Duration = Duration::from_secs(1);

fn timing() -> Timing {
    Timing { lease_duration: 5 * SEC, renew_deadline: 3 * SEC, retry_period: SEC }.validate().unwrap()
}

fn lease(id: &str, version: u64) -> MemberLease {
    MemberLease { identity: id.to_owned(), fingerprint: version.to_string(), duration: 5 * SEC, released: false }
}

fn released(id: &str, version: u64) -> MemberLease {
    MemberLease { released: true, ..lease(id, version) }
}

/// Feeds one successful tick (renew then list, answered at once) at `now`.
fn tick(a: &mut Assignment, now: Instant, leases: Vec<MemberLease>) {
    a.renewed(now, now);
    a.listed(now, now, leases);
    a.advance(now);
}

/// A hash `member` owns under the ring of `members`.
fn hash_of(members: &[&str], member: &str) -> u64 {
    let ring = Ring::new(members, DEFAULT_VNODES);
    ring.ranges(member)[0].start
}

#[test]
fn timings_are_checked_in_client_go_order() {
    assert!(Timing::default().validate().is_ok());
    let t = timing();
    assert_eq!(Timing { lease_duration: Duration::from_millis(1500), ..t }.validate(), Err(TimingError::LeaseNotWholeSeconds(Duration::from_millis(1500))));
    assert!(matches!(Timing { renew_deadline: 5 * SEC, ..t }.validate(), Err(TimingError::DeadlineNotBeforeExpiry { .. })));
    assert!(matches!(Timing { retry_period: 3 * SEC, ..t }.validate(), Err(TimingError::RetryNotBeforeDeadline { .. })));
    assert_eq!(t.hold(), 4 * SEC);
}

#[test]
fn nothing_is_admitted_without_a_fresh_renew_and_list_and_an_own_live_lease() {
    let t0 = Instant::now();
    let mut a = Assignment::new("a", timing());
    assert_eq!(a.decide(1, t0), Decision::Stopped);
    a.listed(t0, t0, vec![lease("a", 1)]);
    assert_eq!(a.decide(1, t0), Decision::Stopped, "no renew yet");
    a.renewed(t0, t0);
    let settled = t0 + 4 * SEC;
    tick(&mut a, t0 + 2 * SEC, vec![lease("a", 2)]);
    tick(&mut a, settled, vec![lease("a", 3)]);
    assert!(a.admits(1, settled));
    // The renew deadline counts from when the renew and list were sent, not answered.
    let slow = settled + 2 * SEC;
    a.renewed(settled + SEC, slow);
    assert!(a.admits(1, slow));
    assert!(!a.admits(1, settled + 3 * SEC), "the list sent at `settled` is now renew_deadline old");
    assert_eq!(a.next_wakeup(slow), Some(settled + 3 * SEC));
    // Without its own lease in the list, a replica is not a member.
    let mut b = Assignment::new("b", timing());
    tick(&mut b, t0, vec![lease("a", 1)]);
    assert_eq!(b.decide(1, t0), Decision::Stopped);
}

#[test]
fn a_paused_replica_stops_and_holds_everything_when_it_comes_back() {
    let t0 = Instant::now();
    let mut a = Assignment::new("a", timing());
    let mine = hash_of(&["a", "b"], "a");
    for s in 0..6u64 {
        tick(&mut a, t0 + Duration::from_secs(s), vec![lease("a", s), lease("b", s)]);
    }
    let resumed_at = t0 + 20 * SEC;
    assert!(a.admits(mine, t0 + 5 * SEC));
    assert!(!a.admits(mine, resumed_at), "paused past its deadline: stopped before anything else runs");
    // Its first tick after the pause: the same members, but it was stale, so it waits a
    // hold before taking back what another may have taken while it was gone.
    tick(&mut a, resumed_at, vec![lease("a", 20), lease("b", 20)]);
    assert!(matches!(a.decide(mine, resumed_at), Decision::Held { until, .. } if until == resumed_at + timing().hold()));
    assert_eq!(a.epoch(), 2, "fresh at the first view, then again after the pause");
    for s in 1..4u64 {
        let t = resumed_at + Duration::from_secs(s);
        tick(&mut a, t, vec![lease("a", 20 + s), lease("b", 20 + s)]);
        assert!(!a.admits(mine, t));
    }
    let later = resumed_at + timing().hold();
    tick(&mut a, later, vec![lease("a", 24), lease("b", 24)]);
    assert!(a.admits(mine, later));
}

#[test]
fn a_gain_from_a_live_member_waits_a_hold_and_a_gain_from_an_expired_one_does_not() {
    let t0 = Instant::now();
    let mut b = Assignment::new("b", timing());
    for s in 0..5u64 {
        tick(&mut b, t0 + Duration::from_secs(s), vec![lease("a", s), lease("b", s)]);
    }
    // c joins: the hashes b loses go at once; what c gains is not b's concern.
    let now = t0 + 5 * SEC;
    let to_c = (0..)
        .map(|i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .find(|&h| Ring::new(["a", "b"], DEFAULT_VNODES).owner(h) == Some("b") && Ring::new(["a", "b", "c"], DEFAULT_VNODES).owner(h) == Some("c"))
        .unwrap();
    assert!(b.admits(to_c, now - SEC));
    tick(&mut b, now, vec![lease("a", 5), lease("b", 5), lease("c", 1)]);
    assert_eq!(b.decide(to_c, now), Decision::Other(Arc::from("c")));

    // a stops renewing (killed): b takes a's hashes once a's lease expires, at once.
    let from_a = (0..)
        .map(|i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .find(|&h| Ring::new(["a", "b", "c"], DEFAULT_VNODES).owner(h) == Some("a") && Ring::new(["b", "c"], DEFAULT_VNODES).owner(h) == Some("b"))
        .unwrap();
    let mut t = now;
    let mut version = 6;
    while b.ring().contains("a") {
        t += SEC / 2;
        version += 1;
        tick(&mut b, t, vec![lease("a", 5), lease("b", version), lease("c", version)]);
        assert!(t < now + 6 * SEC, "a's lease expires within its duration");
    }
    assert!(t >= now + 5 * SEC, "not before its duration either (last seen to change at {now:?})");
    assert_eq!(b.decide(from_a, t), Decision::Mine, "gained from an expired member: at once");

    // c leaves gracefully (released): its hashes move at once, too.
    let from_c = (0..)
        .map(|i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .find(|&h| Ring::new(["b", "c"], DEFAULT_VNODES).owner(h) == Some("c"))
        .unwrap();
    t += SEC;
    tick(&mut b, t, vec![lease("a", 5), lease("b", 100), released("c", 100)]);
    assert_eq!(b.decide(from_c, t), Decision::Mine);

    // c comes back: b loses at once what c regains.
    t += SEC;
    tick(&mut b, t, vec![lease("a", 5), lease("b", 101), lease("c", 101)]);
    assert_eq!(b.decide(from_c, t), Decision::Other(Arc::from("c")));
}

#[test]
fn a_joining_replica_waits_for_the_previous_owner_but_not_for_a_dead_one() {
    let t0 = Instant::now();
    let mut c = Assignment::new("c", timing());
    let from_a = (0..)
        .map(|i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .find(|&h| Ring::new(["a", "b"], DEFAULT_VNODES).owner(h) == Some("a") && Ring::new(["a", "b", "c"], DEFAULT_VNODES).owner(h) == Some("c"))
        .unwrap();
    tick(&mut c, t0, vec![lease("a", 1), lease("b", 1), lease("c", 1)]);
    assert_eq!(c.decide(from_a, t0), Decision::Held { until: t0 + timing().hold(), from: Arc::from("a") });
    assert_eq!(c.next_wakeup(t0), Some(t0 + timing().renew_deadline), "the freshness deadline comes first");
    // a dies during the hold (its record stops changing): once it expires the hash is c's.
    let mut t = t0;
    for v in 2..5 {
        t += SEC;
        tick(&mut c, t, vec![lease("a", 1), lease("b", v), lease("c", v)]);
        assert!(matches!(c.decide(from_a, t), Decision::Held { .. }));
    }
    t = t0 + 5 * SEC;
    tick(&mut c, t, vec![lease("a", 1), lease("b", 5), lease("c", 5)]);
    assert!(!c.ring().contains("a"));
    assert_eq!(c.decide(from_a, t), Decision::Mine);
}

#[test]
fn a_stale_list_never_replaces_a_newer_one_and_leaving_stops_everything() {
    let t0 = Instant::now();
    let mut a = Assignment::new("a", timing());
    tick(&mut a, t0, vec![lease("a", 1)]);
    let v = a.version();
    a.listed(t0 - SEC, t0, vec![lease("a", 1), lease("z", 1)]);
    assert!(!a.ring().contains("z"));
    assert_eq!(a.version(), v);
    let later = t0 + timing().hold();
    tick(&mut a, later, vec![lease("a", 2)]);
    assert!(a.admits(7, later));
    a.leave();
    assert_eq!(a.decide(7, later), Decision::Stopped);
    assert!(a.version() > v);
}

/// A model of replicas, an API server and a network with delays, pauses, kills and
/// outages, driven by a seeded random schedule; at every step, no sampled hash is
/// admitted by two running replicas, and once faults stop every hash is admitted by
/// one replica.
mod model {
    use super::*;
    use std::collections::BTreeMap;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// What the server holds per member: a version counter (the record) and whether released.
    type Server = BTreeMap<String, (u64, bool)>;

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Life {
        Running,
        Paused { until_ms: u64 },
        Cut { until_ms: u64 },
        Dead,
        Left,
    }

    struct Replica {
        name: String,
        state: Assignment,
        life: Life,
        next_tick_ms: u64,
        /// Each replica's clock runs at its own rate (parts per thousand off real time).
        skew_permille: i64,
    }

    fn local(base: Instant, real_ms: u64, skew_permille: i64) -> Instant {
        let ms = real_ms as i64 + real_ms as i64 * skew_permille / 1000;
        base + Duration::from_millis(ms.max(0) as u64)
    }

    fn run(seed: u64) {
        let mut rng = Rng(seed);
        let timing = Timing { lease_duration: 5 * SEC, renew_deadline: 3 * SEC, retry_period: SEC }.validate().unwrap();
        let base = Instant::now();
        let mut server: Server = BTreeMap::new();
        let mut replicas: Vec<Replica> = Vec::new();
        let samples: Vec<u64> = (0..256).map(|_| rng.next()).collect();
        let join = |replicas: &mut Vec<Replica>, rng: &mut Rng, now_ms: u64| {
            let name = format!("r{}", replicas.len());
            replicas.push(Replica {
                state: Assignment::with_vnodes(&name, timing, 16),
                name,
                life: Life::Running,
                next_tick_ms: now_ms + rng.below(1000),
                skew_permille: rng.below(21) as i64 - 10,
            });
        };
        for _ in 0..3 {
            join(&mut replicas, &mut rng, 0);
        }
        let faults_end_ms = 60_000;
        let end_ms = faults_end_ms + 20_000;
        let step = 20;
        let mut now_ms = 0;
        while now_ms < end_ms {
            // Faults, only before faults_end_ms, and never below two running replicas.
            if now_ms < faults_end_ms && rng.below(1000) < 4 {
                let i = rng.below(replicas.len() as u64) as usize;
                let running = replicas.iter().filter(|r| r.life == Life::Running).count();
                if replicas[i].life == Life::Running && running > 2 {
                    replicas[i].life = match rng.below(5) {
                        0 => Life::Paused { until_ms: now_ms + 2000 + rng.below(8000) },
                        1 => Life::Cut { until_ms: now_ms + 2000 + rng.below(8000) },
                        2 => Life::Dead,
                        3 => {
                            // A graceful leave: stop admitting, then release.
                            replicas[i].state.leave();
                            let entry = server.entry(replicas[i].name.clone()).or_default();
                            *entry = (entry.0 + 1, true);
                            Life::Left
                        }
                        _ => Life::Paused { until_ms: now_ms + rng.below(1500) },
                    };
                } else if replicas.len() < 8 {
                    join(&mut replicas, &mut rng, now_ms);
                }
            }
            for r in &mut replicas {
                match r.life {
                    Life::Paused { until_ms } | Life::Cut { until_ms } if now_ms >= until_ms => r.life = Life::Running,
                    _ => {}
                }
            }
            // Ticks: renew (stored at a random delay), then list (read at a random delay,
            // answered after another); a cut replica's requests fail.
            for r in &mut replicas {
                let ticking = matches!(r.life, Life::Running | Life::Cut { .. });
                if !ticking || now_ms < r.next_tick_ms {
                    continue;
                }
                r.next_tick_ms = now_ms + 1000;
                if matches!(r.life, Life::Cut { .. }) {
                    continue;
                }
                let sent = now_ms;
                let stored = sent + rng.below(300);
                let renew_answered = stored + rng.below(300);
                // The model applies a request's effects at once but answers with the
                // times it would have had: every delay stays below one step's worth of
                // reordering that matters to the protocol (stored before answered).
                let entry = server.entry(r.name.clone()).or_default();
                *entry = (entry.0 + 1, false);
                r.state.renewed(local(base, sent, r.skew_permille), local(base, renew_answered, r.skew_permille));
                let list_answered = renew_answered + rng.below(300);
                let leases = server
                    .iter()
                    .map(|(id, &(v, rel))| MemberLease { identity: id.clone(), fingerprint: v.to_string(), duration: timing.lease_duration, released: rel })
                    .collect();
                r.state.listed(local(base, renew_answered, r.skew_permille), local(base, list_answered, r.skew_permille), leases);
            }
            for r in &mut replicas {
                if r.life == Life::Running {
                    r.state.advance(local(base, now_ms, r.skew_permille));
                }
            }
            // Safety: no sampled hash admitted by two running replicas now.
            for &h in &samples {
                let owners: Vec<&str> = replicas
                    .iter()
                    .filter(|r| r.life == Life::Running && r.state.admits(h, local(base, now_ms, r.skew_permille)))
                    .map(|r| r.name.as_str())
                    .collect();
                assert!(owners.len() <= 1, "seed {seed}, t={now_ms}ms: hash {h:x} admitted by {owners:?}");
                if now_ms + step >= end_ms {
                    assert_eq!(owners.len(), 1, "seed {seed}: hash {h:x} has an owner once faults stop");
                }
            }
            now_ms += step;
        }
    }

    #[test]
    fn no_hash_is_admitted_twice_under_random_faults_and_all_are_owned_after() {
        for seed in 0..12 {
            run(seed);
        }
    }
}

#[test]
fn takeover_after_a_kill_comes_within_lease_duration_plus_one_retry_period() {
    // b ticks every retry period; a is killed right after a renew that b sees only at
    // its next tick (the worst phase). b takes a's hashes when a's lease, as b observed
    // it, expires: at most one retry period plus the lease duration after the kill.
    let t = timing();
    let t0 = Instant::now();
    let mut b = Assignment::new("b", t);
    let from_a = (0..)
        .map(|i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .find(|&h| Ring::new(["a", "b"], DEFAULT_VNODES).owner(h) == Some("a"))
        .unwrap();
    for s in 0..6u64 {
        tick(&mut b, t0 + Duration::from_secs(s), vec![lease("a", s), lease("b", s)]);
    }
    // a renews (version 6) just after b's tick at t0+5s, and is killed.
    let killed = t0 + 5 * SEC + Duration::from_millis(1);
    let mut now = t0 + 6 * SEC;
    tick(&mut b, now, vec![lease("a", 6), lease("b", 6)]);
    let mut version = 7;
    let taken = loop {
        // The membership loop wakes at whichever comes first: its next tick or a deadline.
        let next_tick = now + t.retry_period;
        let wake = b.next_wakeup(now).map_or(next_tick, |w| w.min(next_tick));
        now = wake;
        if wake == next_tick {
            tick(&mut b, now, vec![lease("a", 6), lease("b", version)]);
            version += 1;
        } else {
            b.advance(now);
        }
        if b.admits(from_a, now) {
            break now;
        }
        assert!(now < killed + 20 * SEC, "a's hashes are taken over");
    };
    let takeover = taken - killed;
    assert!(takeover <= t.lease_duration + t.retry_period, "takeover took {takeover:?}");
    assert!(takeover >= t.lease_duration - t.retry_period, "not before a's lease could have expired: {takeover:?}");
}
