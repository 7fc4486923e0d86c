//! Leader election on a Lease served by the simulator: who leads, handover on
//! release and on crash, controllers that reconcile only while leading, and a
//! leader cut off from the API server.

mod lease_support;

use std::time::{Duration, Instant};

use kcache::lease::LeaderElectionMetrics;
use kcache_loadgen::sim::{SimHandle, SimServer};
use lease_support::*;

async fn sim() -> SimHandle {
    SimServer::builder().start().await.expect("sim starts")
}

fn lease_spec(sim: &SimHandle) -> serde_json::Value {
    sim.get(LEASES, NS, LEASE_NAME).expect("get").expect("the lease exists")["spec"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_electors_leads_and_the_lease_names_it() {
    let sim = sim().await;
    // Each replica has its own gauges, as two processes would.
    let (a_metrics, b_metrics) = (LeaderElectionMetrics::default(), LeaderElectionMetrics::default());
    let a = Candidate::start_with(sim.client().expect("client"), config("a"), Some(&a_metrics));
    let b = Candidate::start_with(sim.client().expect("client"), config("b"), Some(&b_metrics));
    wait_for("a leader", || a.leadership.is_leading() || b.leadership.is_leading()).await;
    let led = never_two_leaders(&[&a.leadership, &b.leadership], 3 * LEASE).await;
    assert!(led > 0);
    let status = |m: &LeaderElectionMetrics| m.master_status(LEASE_NAME).get();
    wait_for("the gauges to agree with the leader", || {
        (status(&a_metrics), status(&b_metrics)) == if a.leadership.is_leading() { (1, 0) } else { (0, 1) }
    })
    .await;
    let (leader, follower) = if a.leadership.is_leading() { (&a, "b") } else { (&b, "a") };
    let spec = lease_spec(&sim);
    assert_eq!(Some(spec["holderIdentity"].as_str().expect("holder")), leader.leadership.leader().as_deref());
    assert_ne!(spec["holderIdentity"], follower);
    assert_eq!(spec["leaseDurationSeconds"], 2);
    assert_eq!(spec["leaseTransitions"], 0, "the first holder created the lease");
    // Both see the same leader.
    wait_for("the follower to see the leader", || a.leadership.leader() == b.leadership.leader()).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_release_clears_the_holder_and_hands_over_before_the_lease_expires() {
    let sim = sim().await;
    // A long lease, so a handover that waited for expiry would be told apart.
    let long = |id: &str| config(id).lease_duration(Duration::from_secs(20)).renew_deadline(Duration::from_secs(10));
    let a = Candidate::start(sim.client().expect("client"), long("a"));
    wait_for("a to lead", || a.leadership.is_leading()).await;
    let b = Candidate::start(sim.client().expect("client"), long("b"));
    wait_for("b to see a", || b.leadership.leader().as_deref() == Some("a")).await;

    let released = Instant::now();
    a.stop().await;
    assert!(!a_is_holder(&sim));
    wait_for("b to take over", || b.leadership.is_leading()).await;
    assert!(released.elapsed() < Duration::from_secs(20), "handover took {:?}", released.elapsed());
    let spec = lease_spec(&sim);
    assert_eq!(spec["holderIdentity"], "b");
    assert_eq!(spec["leaseTransitions"], 1);
    b.stop().await;
    // client-go's release: no holder, a one-second lease, transitions kept.
    let spec = lease_spec(&sim);
    assert_eq!(spec["holderIdentity"], "");
    assert_eq!(spec["leaseDurationSeconds"], 1);
    assert_eq!(spec["leaseTransitions"], 1);
}

fn a_is_holder(sim: &SimHandle) -> bool {
    lease_spec(sim)["holderIdentity"] == "a"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_taken_over_only_after_the_lease_duration() {
    let sim = sim().await;
    let a = Candidate::start(sim.client().expect("client"), config("a"));
    wait_for("a to lead", || a.leadership.is_leading()).await;
    let b = Candidate::start(sim.client().expect("client"), config("b"));
    wait_for("b to see a", || b.leadership.leader().as_deref() == Some("a")).await;
    let a_leadership = a.leadership.clone();
    assert!(a_leadership.is_leading());
    let crashed = Instant::now();
    a.crash().await;
    // The lease still names a; b waits for it to expire on b's own clock.
    wait_for("b to take over", || b.leadership.is_leading()).await;
    let took = crashed.elapsed();
    assert!(!a_leadership.is_leading(), "a's handle stops at its own deadline");
    // a led at `crashed`, so its last renew started after crashed - RENEW_DEADLINE,
    // and b saw that record no sooner: b may lead only a lease duration later.
    assert!(took >= LEASE - RENEW_DEADLINE, "b took over after {took:?}");
    assert!(took < T);
    assert_eq!(lease_spec(&sim)["leaseTransitions"], 1);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_never_reconcile_at_once_while_leadership_moves() {
    let sim = sim().await;
    let recorder = Recorder::default();
    let a = Candidate::start(sim.client().expect("client"), config("a"));
    let (a_stats, a_stop, a_run) = start_controller("a", a.leadership.clone(), &recorder);
    wait_for("a to reconcile", || !recorder.runs().is_empty()).await;
    let b = Candidate::start(sim.client().expect("client"), config("b"));
    let (_b_stats, b_stop, b_run) = start_controller("b", b.leadership.clone(), &recorder);
    let c = Candidate::start(sim.client().expect("client"), config("c"));
    let (_c_stats, c_stop, c_run) = start_controller("c", c.leadership.clone(), &recorder);
    never_two_leaders(&[&a.leadership, &b.leadership, &c.leadership], LEASE).await;
    assert!(recorder.runs().iter().all(|r| r.replica == "a"), "only the leader reconciles");

    // 1. a releases: its reconciles stop, then b or c takes over at once.
    let (a_leadership, c_leadership) = (a.leadership.clone(), c.leadership.clone());
    a.stop().await;
    assert!(a_stats.active.load(std::sync::atomic::Ordering::SeqCst) == 0, "a stopped before releasing");
    wait_for("b or c to lead", || b.leadership.is_leading() || c_leadership.is_leading()).await;
    let released_at = Instant::now();
    never_two_leaders(&[&a_leadership, &b.leadership, &c_leadership], LEASE).await;

    // 2. The new leader crashes while its controller runs on: it must stop at its
    //    renew deadline, before the last one takes over.
    let (crashed, survivor) = if b.leadership.is_leading() { (b, c) } else { (c, b) };
    let crashed_leadership = crashed.leadership.clone();
    crashed.crash().await;
    wait_for("the survivor to lead", || survivor.leadership.is_leading()).await;
    never_two_leaders(&[&a_leadership, &crashed_leadership, &survivor.leadership], LEASE).await;
    survivor.stop().await;

    for stop in [a_stop, b_stop, c_stop] {
        let _ = stop.send(());
    }
    for run in [a_run, b_run, c_run] {
        tokio::time::timeout(T, run).await.expect("controller stops").expect("task");
    }
    let runs = recorder.runs();
    let replicas: std::collections::BTreeSet<_> = runs.iter().map(|r| r.replica).collect();
    assert_eq!(replicas.len(), 3, "every replica reconciled while leading: {replicas:?}");
    assert!(runs.iter().any(|r| r.replica != "a" && r.start > released_at));
    recorder.assert_no_overlap(until_ended);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_unreachable_past_the_renew_deadline_stops_the_reconciles() {
    let sim = sim().await;
    let recorder = Recorder::default();
    let a = Candidate::start(sim.client().expect("client"), config("a"));
    let (stats, stop, run) = start_controller("a", a.leadership.clone(), &recorder);
    wait_for("reconciles", || recorder.runs().len() > 4).await;

    // Every request now hangs far longer than the renew deadline.
    sim.set_latency(Duration::from_secs(30));
    let cut = Instant::now();
    wait_for("a to stop leading", || !a.leadership.is_leading()).await;
    let lost = Instant::now();
    assert!(lost.duration_since(cut) <= RENEW_DEADLINE + T, "bounded");
    // The reconciles running at the loss ended by then (aborted or finished) ...
    wait_for("no reconcile running", || stats.active.load(std::sync::atomic::Ordering::SeqCst) == 0).await;
    let idle = Instant::now();
    tokio::time::sleep(2 * LEASE).await;
    // ... and none started while the server stayed unreachable.
    assert!(recorder.started_after("a", idle).is_empty(), "reconciled without a lease");
    assert!(recorder.runs().iter().all(|r| r.start < lost), "a reconcile started after leadership was lost");

    sim.set_latency(Duration::ZERO);
    wait_for("a to lead again", || a.leadership.is_leading()).await;
    let back = Instant::now();
    wait_for("reconciles again", || !recorder.started_after("a", back).is_empty()).await;
    let _ = stop.send(());
    tokio::time::timeout(T, run).await.expect("controller stops").expect("task");
    a.stop().await;
}
