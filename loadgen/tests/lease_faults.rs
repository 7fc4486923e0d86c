//! Leader election under faults: the simulator's 409s, a flood of conflicting
//! writes, Leases edited by hand with garbage fields, and renew times from clocks
//! that disagree.

mod lease_support;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kcache::lease::{LeaseClient, LeaseError};
use kcache_loadgen::sim::{RawClient, SimHandle, SimServer};
use lease_support::*;
use serde_json::{Value, json};

async fn sim() -> SimHandle {
    SimServer::builder().start().await.expect("sim starts")
}

fn hand_made(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"namespace": NS, "name": name}, "spec": spec})
}

fn spec_of(sim: &SimHandle, name: &str) -> Value {
    sim.get(LEASES, NS, name).expect("get").expect("the lease exists")["spec"].clone()
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/../fixtures/real-apiserver/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn stale_replaces_and_duplicate_creates_get_the_real_409_statuses() {
    let sim = sim().await;
    let leases = LeaseClient::new(sim.client().expect("client"), NS);
    let mut lease = Lease::default();
    lease.metadata.name = Some("l".into());
    let created = leases.create(&lease).await.expect("create");
    let e = leases.create(&lease).await.expect_err("a second create");
    assert!(matches!(e, LeaseError::AlreadyExists { .. }), "{e}");
    assert_eq!(e.to_string(), "lease default/l already exists");

    let mut next = created.clone();
    next.spec.get_or_insert_default().holder_identity = Some("a".into());
    let replaced = leases.replace(&next).await.expect("replace at the current version");
    assert_ne!(replaced.metadata.resource_version, created.metadata.resource_version);
    let e = leases.replace(&next).await.expect_err("a replay of the stale version");
    assert!(matches!(e, LeaseError::Conflict { .. }), "{e}");
    assert!(e.to_string().contains("lease default/l") && e.to_string().contains("the object has been modified"), "{e}");
    assert!(leases.get("missing").await.expect("get").is_none());
    let mut unversioned = replaced.clone();
    unversioned.metadata.resource_version = None;
    assert!(matches!(leases.replace(&unversioned).await, Err(LeaseError::Invalid { .. })));

    // The bodies have the shape of a real server's (fixtures captured from kube-apiserver).
    let mut raw = RawClient::connect(sim.addr()).await.expect("connect");
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases");
    let body = serde_json::to_vec(&lease).expect("json");
    let exists = raw.request("POST", &path, &[("content-type", "application/json")], body).await.expect("post");
    let stale = serde_json::to_vec(&next).expect("json");
    let conflict = raw
        .request("PUT", &format!("{path}/l"), &[("content-type", "application/json")], stale)
        .await
        .expect("put");
    for (response, fixture_name, reason) in
        [(exists, "status-409-exists.json", "AlreadyExists"), (conflict, "status-409-conflict.json", "Conflict")]
    {
        assert_eq!(response.status, 409);
        let (got, want) = (response.json(), fixture(fixture_name));
        assert_eq!(keys(&got), keys(&want), "{got}");
        assert_eq!((&got["kind"], &got["status"], &got["reason"], &got["code"]), (&want["kind"], &want["status"], &json!(reason), &json!(409)));
        assert_eq!(got["details"]["name"], "l");
        assert_eq!(got["details"]["kind"], "leases");
        // A grouped resource is named `plural.group` and its group is in the details,
        // as apimachinery's errors.go fills them from the qualified resource.
        assert_eq!(got["details"]["group"], "coordination.k8s.io", "{got}");
        let message = got["message"].as_str().expect("message");
        assert!(message.contains("leases.coordination.k8s.io \"l\""), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_conflicting_writes_never_makes_two_leaders() {
    let sim = std::sync::Arc::new(sim().await);
    let a = Candidate::start(sim.client().expect("client"), config("a"));
    let b = Candidate::start(sim.client().expect("client"), config("b"));
    wait_for("a leader", || a.leadership.is_leading() || b.leadership.is_leading()).await;
    let errors_before = sim.stats().errors;

    // A third writer bumps the lease's resourceVersion every few milliseconds.
    let flood = tokio::spawn({
        let sim = std::sync::Arc::clone(&sim);
        async move {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < 3 * LEASE {
                n += 1;
                sim.merge_patch(LEASES, NS, LEASE_NAME, &json!({"metadata": {"annotations": {"bump": n.to_string()}}}))
                    .expect("bump");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            n
        }
    });
    never_two_leaders(&[&a.leadership, &b.leadership], 3 * LEASE).await;
    let bumps = flood.await.expect("flood");
    assert!(bumps > 10);
    assert!(sim.stats().errors > errors_before, "the electors' writes met 409s");
    // Once the flood ends, one of them leads.
    wait_for("a leader after the flood", || a.leadership.is_leading() || b.leadership.is_leading()).await;
    never_two_leaders(&[&a.leadership, &b.leadership], LEASE).await;
    a.stop().await;
    b.stop().await;
}

/// Starts an elector on lease `name`, waits until it leads, returns how long that took.
async fn time_to_lead(sim: &SimHandle, name: &str) -> Duration {
    let start = Instant::now();
    let mut config = config("a");
    config.name = name.to_owned();
    let a = Candidate::start(sim.client().expect("client"), config);
    wait_for(name, || a.leadership.is_leading()).await;
    let took = start.elapsed();
    a.stop().await;
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_with_garbage_fields_is_taken_over_on_the_observed_time_rule() {
    let sim = sim().await;
    // No holder: free at once.
    sim.create(LEASES, hand_made("no-holder", json!({"leaseDurationSeconds": 3600, "renewTime": "not a time"})))
        .expect("create");
    // A holder with a duration that is missing, zero, negative or not a number:
    // it counts as our own lease duration, never as "expired at once".
    for (name, duration) in [("missing", Value::Null), ("zero", json!(0)), ("negative", json!(-5)), ("text", json!("fifteen"))] {
        let mut spec = json!({"holderIdentity": "ghost", "renewTime": "yesterday", "acquireTime": "1970-01-01T00:00:00.000000Z",
                              "leaseTransitions": -3});
        if !duration.is_null() {
            spec["leaseDurationSeconds"] = duration;
        }
        sim.create(LEASES, hand_made(name, spec)).expect("create");
    }
    sim.create(LEASES, hand_made("huge", json!({"holderIdentity": "ghost", "leaseDurationSeconds": i32::MAX})))
        .expect("create");

    let took = time_to_lead(&sim, "no-holder").await;
    assert!(took < T);
    assert_eq!(spec_of(&sim, "no-holder")["leaseTransitions"], 1);

    let cases = ["missing", "zero", "negative", "text"].map(|name| {
        let sim = &sim;
        async move { (name, time_to_lead(sim, name).await) }
    });
    for (name, took) in futures::future::join_all(cases).await {
        assert!(took >= LEASE, "{name}: taken after {took:?}, before our own lease duration");
        // Released on stop, with the transition counted from a sane base.
        assert_eq!(spec_of(&sim, name)["leaseTransitions"], 1, "{name}");
    }

    // A huge duration is honoured (capped at an hour): the ghost keeps it.
    let mut huge = config("a");
    huge.name = "huge".into();
    let a = Candidate::start(sim.client().expect("client"), huge);
    wait_for("a to observe the ghost", || a.leadership.leader().as_deref() == Some("ghost")).await;
    tokio::time::sleep(3 * LEASE).await;
    assert!(!a.leadership.is_leading());
    assert_eq!(spec_of(&sim, "huge")["holderIdentity"], "ghost");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_times_from_skewed_clocks_change_nothing_but_observed_changes_do() {
    let sim = sim().await;
    let now = k8s_openapi::jiff::Timestamp::now();
    let hour = k8s_openapi::jiff::SignedDuration::from_hours(1);
    for (name, renew) in [("future", now.checked_add(hour).expect("time")), ("past", now.checked_sub(hour).expect("time"))] {
        let renew = format!("{}", renew.strftime("%Y-%m-%dT%H:%M:%S.%6fZ"));
        sim.create(LEASES, hand_made(name, json!({"holderIdentity": "ghost", "leaseDurationSeconds": 2, "renewTime": renew})))
            .expect("create");
    }
    // A renew time an hour ahead does not stretch the lease; an hour behind does
    // not end it: both expire a lease duration after we first saw them.
    let (future, past) = tokio::join!(time_to_lead(&sim, "future"), time_to_lead(&sim, "past"));
    for (name, took) in [("future", future), ("past", past)] {
        assert!(took >= LEASE, "{name}: taken after {took:?}");
        assert!(took < T, "{name}");
    }

    // A live holder whose renew times come from a clock an hour slow: each renew is
    // a change we observe, so its lease never expires under us.
    let b = Candidate::start(sim.client().expect("client"), config("b"));
    wait_for("b to lead", || b.leadership.is_leading()).await;
    b.stop().await;
    sim.create(LEASES, hand_made("skewed", json!({}))).expect("create");
    let skewed_writer = tokio::spawn({
        let client = LeaseClient::new(sim.client().expect("client"), NS);
        async move {
            let start = Instant::now();
            while start.elapsed() < 3 * LEASE {
                let mut lease = client.get("skewed").await.expect("get").expect("exists");
                let renew = k8s_openapi::jiff::Timestamp::now().checked_sub(k8s_openapi::jiff::SignedDuration::from_hours(1)).expect("time");
                let spec = lease.spec.get_or_insert_default();
                spec.holder_identity = Some("slow-clock".into());
                spec.lease_duration_seconds = Some(2);
                spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(renew));
                let _ = client.replace(&lease).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    // The empty Lease is free: `a` starts only once the slow-clock holder owns it.
    wait_for("the slow-clock holder to own the lease", || spec_of(&sim, "skewed")["holderIdentity"] == "slow-clock").await;
    let mut skewed = config("a");
    skewed.name = "skewed".into();
    let a = Candidate::start(sim.client().expect("client"), skewed);
    while !skewed_writer.is_finished() {
        assert!(!a.leadership.is_leading(), "took a lease whose holder renews (with a slow clock)");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    skewed_writer.await.expect("writer");
    // Once the holder stops renewing, the lease expires and a takes it.
    wait_for("a to take the abandoned lease", || a.leadership.is_leading()).await;
    a.stop().await;
}
