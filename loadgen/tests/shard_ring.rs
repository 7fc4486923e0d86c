//! Sharding one controller across replicas against the simulator: each replica runs
//! on its own thread and runtime (its informer, its ring membership over Leases, a
//! sharded `Controller<ConfigMap>` with a recording reconcile), through a join, a
//! graceful leave, a kill and a pause past the lease (the replica's runtime blocked,
//! as under SIGSTOP). Every key is reconciled in every phase, and no key is ever
//! reconciled by two replicas at overlapping times.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kcache::controller::{Action, Controller};
use kcache::lease::LeaseClient;
use kcache::shard::{MembershipConfig, RING_LABEL, ShardBy, ShardMembership, Timing};
use kcache::{Informer, InformerConfig, KubeSource};
use kcache_loadgen::sim::SimServer;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// Bound for every wait: generous, for a loaded 2-core machine.
const T: Duration = Duration::from_secs(90);
const NS: &str = "ring";
const RING: &str = "cm-controller";
const KEYS: usize = 48;

fn timing() -> Timing {
    Timing { lease_duration: Duration::from_secs(2), renew_deadline: Duration::from_millis(1200), retry_period: Duration::from_millis(250) }
}

/// One step of a reconcile: the key, the replica, which run, the object's phase, when.
#[derive(Clone, Debug)]
struct Touch {
    key: String,
    replica: String,
    run: u64,
    phase: u64,
    at: Instant,
}

/// One reconcile as its steps show it.
#[derive(Clone, Debug)]
struct Run {
    key: String,
    replica: String,
    run: u64,
    phase: u64,
    first: Instant,
    last: Instant,
}

#[derive(Default)]
struct Record {
    touches: Mutex<Vec<Touch>>,
    /// Per key: the highest phase whose reconcile ran to its end, and by whom.
    done: Mutex<HashMap<String, (u64, String)>>,
    runs: std::sync::atomic::AtomicU64,
}

impl Record {
    fn touch(&self, key: &str, replica: &str, run: u64, phase: u64) {
        let t = Touch { key: key.to_owned(), replica: replica.to_owned(), run, phase, at: Instant::now() };
        self.touches.lock().unwrap().push(t);
    }

    fn completed(&self, phase: u64) -> usize {
        self.done.lock().unwrap().values().filter(|(p, _)| *p >= phase).count()
    }

    /// Every reconcile run, from its first to its last step.
    fn runs(&self) -> Vec<Run> {
        let mut runs: BTreeMap<u64, Run> = BTreeMap::new();
        for t in self.touches.lock().unwrap().iter() {
            let run = runs.entry(t.run).or_insert_with(|| Run { key: t.key.clone(), replica: t.replica.clone(), run: t.run, phase: t.phase, first: t.at, last: t.at });
            run.first = run.first.min(t.at);
            run.last = run.last.max(t.at);
        }
        runs.into_values().collect()
    }
}

struct Ctx {
    replica: String,
    record: Arc<Record>,
    /// How long each of a reconcile's five steps sleeps.
    step: Arc<Mutex<Duration>>,
    /// Reconcile again after this long (`None`: wait for a change).
    again: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, Never> {
    let key = cm.metadata.name.clone().unwrap_or_default();
    let phase = cm.metadata.labels.as_ref().and_then(|l| l.get("phase")).and_then(|p| p.parse().ok()).unwrap_or(0);
    let run = ctx.record.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let step = *ctx.step.lock().unwrap();
    for _ in 0..5 {
        ctx.record.touch(&key, &ctx.replica, run, phase);
        tokio::time::sleep(step).await;
    }
    ctx.record.touch(&key, &ctx.replica, run, phase);
    let mut done = ctx.record.done.lock().unwrap();
    let entry = done.entry(key).or_insert((0, String::new()));
    if phase >= entry.0 {
        *entry = (phase, ctx.replica.clone());
    }
    Ok(ctx.again.map_or(Action::await_change(), Action::requeue))
}

enum Command {
    Leave(std::sync::mpsc::Sender<()>),
    /// Blocks the replica's runtime thread until the receiver yields: nothing of the
    /// replica's async code runs meanwhile, as under SIGSTOP.
    Pause(std::sync::mpsc::Receiver<()>),
    Kill,
}

struct Replica {
    name: String,
    membership: ShardMembership,
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Replica {
    fn start(name: &str, addr: std::net::SocketAddr, record: Arc<Record>, step: Arc<Mutex<Duration>>, again: Option<Duration>) -> Replica {
        let (commands, mut received) = tokio::sync::mpsc::unbounded_channel::<Command>();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let replica = name.to_owned();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let mut config = kube::Config::new(format!("http://{addr}").parse().unwrap());
                config.default_namespace = NS.to_owned();
                let client = kube::Client::try_from(config).expect("client");
                let informer = Informer::spawn(KubeSource::for_type::<ConfigMap>(client.clone(), Some(NS)), InformerConfig::default()).expect("informer");
                let membership = ShardMembership::start(LeaseClient::new(client, NS), MembershipConfig::new(RING, replica.clone()).timing(timing()))
                    .expect("valid timing");
                handle_tx.send(membership.clone()).unwrap();
                let ctx = Arc::new(Ctx { replica: replica.clone(), record, step, again });
                let controller = Controller::<ConfigMap>::new(&informer).workers(8).shard(membership.clone(), ShardBy::Uid);
                let run = tokio::spawn(controller.run(reconcile, |_, _, _| Action::requeue(Duration::from_millis(100)), ctx));
                while let Some(command) = received.recv().await {
                    match command {
                        Command::Leave(left) => {
                            membership.leave().await;
                            let _ = left.send(());
                        }
                        Command::Pause(resume) => {
                            let _ = resume.recv();
                        }
                        Command::Kill => break,
                    }
                }
                run.abort();
                informer.shutdown();
            });
            // Dropping the runtime drops every task: the membership loop ends without
            // releasing its lease, as a killed process does.
            drop(rt);
        });
        let membership = handle_rx.recv_timeout(T).expect("replica started");
        Replica { name: name.to_owned(), membership, commands, thread: Some(thread) }
    }

    fn send(&self, command: Command) {
        self.commands.send(command).expect("replica running");
    }

    fn kill(&mut self) {
        let _ = self.commands.send(Command::Kill);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("replica thread ends");
        }
    }
}

/// Polls `probe` until true, failing after [`T`] with `what`.
async fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let start = Instant::now();
    while !probe() {
        assert!(start.elapsed() < T, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn members_are(replicas: &[&Replica], expected: &[&str]) {
    eventually(&format!("{:?} all see members {expected:?}", replicas.iter().map(|r| &r.name).collect::<Vec<_>>()), || {
        replicas.iter().all(|r| r.membership.members() == expected)
    })
    .await;
}

async fn set_phase(api: &Api<ConfigMap>, phase: u64) {
    for i in 0..KEYS {
        api.patch(&format!("cm-{i}"), &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"phase": phase.to_string()}}})))
            .await
            .expect("patch");
    }
}

async fn all_done(record: &Record, phase: u64) {
    eventually(&format!("every key reconciled at phase {phase}"), || record.completed(phase) == KEYS).await;
}

async fn sim_with_keys() -> (kcache_loadgen::sim::SimHandle, Api<ConfigMap>) {
    let sim = SimServer::builder().start().await.expect("sim starts");
    let api: Api<ConfigMap> = Api::namespaced(sim.client().expect("client"), NS);
    for i in 0..KEYS {
        sim.create("configmaps", json!({"metadata": {"namespace": NS, "name": format!("cm-{i}"), "labels": {"phase": "0"}}})).expect("create");
    }
    (sim, api)
}

/// No key's runs on two replicas overlap in time.
fn assert_no_overlap(record: &Record) {
    let runs = record.runs();
    let mut by_key: HashMap<&str, Vec<&Run>> = HashMap::new();
    for run in &runs {
        by_key.entry(run.key.as_str()).or_default().push(run);
    }
    for (key, runs) in by_key {
        for a in &runs {
            for b in &runs {
                if a.replica != b.replica {
                    assert!(a.last < b.first || b.last < a.first, "{key} reconciled at once by {} (run {}, phase {}) and {} (run {}, phase {})", a.replica, a.run, a.phase, b.replica, b.run, b.phase);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_keys_and_never_reconcile_one_at_once_through_join_leave_kill_and_pause() {
    let (sim, api) = sim_with_keys().await;
    let record = Arc::new(Record::default());
    let step = Arc::new(Mutex::new(Duration::from_millis(10)));
    let start = |name: &str| Replica::start(name, sim.addr(), Arc::clone(&record), Arc::clone(&step), None);

    // Two replicas share the keys.
    let mut a = start("a");
    let b = start("b");
    members_are(&[&a, &b], &["a", "b"]).await;
    set_phase(&api, 1).await;
    all_done(&record, 1).await;

    // A third joins and gets a share.
    let c = start("c");
    members_are(&[&a, &b, &c], &["a", "b", "c"]).await;
    set_phase(&api, 2).await;
    all_done(&record, 2).await;
    assert!(record.done.lock().unwrap().values().any(|(p, r)| *p == 2 && r == "c"), "the joiner reconciles its share");

    // b leaves gracefully: it releases its lease and reconciles nothing after.
    let (left, has_left) = std::sync::mpsc::channel();
    b.send(Command::Leave(left));
    tokio::task::spawn_blocking(move || has_left.recv_timeout(T)).await.unwrap().expect("b left");
    let left_at = Instant::now();
    let lease = |name: &str| sim.get("leases.coordination.k8s.io", NS, &format!("{RING}-{name}")).expect("leases are served").expect("the lease exists");
    let b_lease = lease("b");
    assert_eq!(b_lease["metadata"]["labels"][RING_LABEL], RING);
    assert!(b_lease["spec"]["holderIdentity"].as_str().unwrap_or("").is_empty(), "b released its lease: {b_lease}");
    members_are(&[&a, &c], &["a", "c"]).await;
    set_phase(&api, 3).await;
    all_done(&record, 3).await;
    assert!(record.touches.lock().unwrap().iter().all(|t| t.replica != "b" || t.at < left_at), "b reconciles nothing after leaving");

    // a is killed (no release): c takes its keys once a's lease expires; d joins.
    a.kill();
    let killed = Instant::now();
    members_are(&[&c], &["c"]).await;
    assert_eq!(lease("a")["spec"]["holderIdentity"], "a", "a killed keeps its lease until it expires");
    eprintln!("takeover after a kill with a {:?} lease: {:?}", timing().lease_duration, killed.elapsed());
    let d = start("d");
    members_are(&[&c, &d], &["c", "d"]).await;
    set_phase(&api, 4).await;
    all_done(&record, 4).await;

    // c is paused in the middle of reconciles, past its lease: d takes its keys; c,
    // resumed, runs nothing further of the reconciles it had started.
    *step.lock().unwrap() = Duration::from_millis(150);
    let touches_before = record.touches.lock().unwrap().len();
    set_phase(&api, 5).await;
    eventually("c is reconciling a phase-5 key", || {
        record.touches.lock().unwrap()[touches_before..].iter().any(|t| t.replica == "c" && t.phase == 5)
    })
    .await;
    let (resume, resumed) = std::sync::mpsc::channel();
    c.send(Command::Pause(resumed));
    let paused_at = Instant::now();
    members_are(&[&d], &["d"]).await;
    all_done(&record, 5).await;
    let resume_at = Instant::now();
    resume.send(()).unwrap();
    members_are(&[&c, &d], &["c", "d"]).await;
    *step.lock().unwrap() = Duration::from_millis(10);
    set_phase(&api, 6).await;
    all_done(&record, 6).await;

    let interrupted: Vec<Run> = record.runs().into_iter().filter(|r| r.replica == "c" && r.phase == 5 && r.first < paused_at).collect();
    assert!(!interrupted.is_empty(), "c had phase-5 reconciles running when it was paused");
    for run in &interrupted {
        assert!(run.last < resume_at, "c went on with {}'s reconcile after it resumed", run.key);
    }
    assert!(record.done.lock().unwrap().values().all(|(p, _)| *p == 6));

    for mut replica in [b, c, d] {
        replica.kill();
    }
    assert_no_overlap(&record);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_stops_every_replica_within_the_renew_deadline() {
    let (sim, _api) = sim_with_keys().await;
    let record = Arc::new(Record::default());
    let step = Arc::new(Mutex::new(Duration::from_millis(10)));
    // Reconciles run continuously: every key comes back 100 ms after each reconcile.
    let start = |name: &str| Replica::start(name, sim.addr(), Arc::clone(&record), Arc::clone(&step), Some(Duration::from_millis(100)));
    let a = start("a");
    let b = start("b");
    members_are(&[&a, &b], &["a", "b"]).await;
    all_done(&record, 0).await;

    // Every answer now takes longer than the renew deadline (the client gives up at it).
    let outage = Instant::now();
    sim.set_latency(Duration::from_secs(8));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restored = Instant::now();
    sim.set_latency(Duration::ZERO);
    let quiet_from = outage + timing().renew_deadline + Duration::from_secs(1);
    let during: Vec<Touch> = record.touches.lock().unwrap().iter().filter(|t| t.at > quiet_from && t.at < restored).cloned().collect();
    assert!(during.is_empty(), "reconciles ran while no renew could succeed: {:?}", &during[..during.len().min(5)]);

    // Once the server answers again, reconciles resume.
    eventually("reconciles resume after the outage", || record.touches.lock().unwrap().iter().any(|t| t.at > restored)).await;
    for mut replica in [a, b] {
        replica.kill();
    }
    assert_no_overlap(&record);
    sim.shutdown().await;
}
