//! A leader whose whole process is paused past its lease (its runtime blocked, as a
//! stopped VM or a long GC pause would) must not reconcile when it wakes up until it
//! has renewed again, while another replica took over in the meantime.

mod lease_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kcache::controller::KeyController;
use kcache::lease::LeaderElector;
use kcache_loadgen::sim::{SimHandle, SimServer};
use lease_support::*;

enum Command {
    /// Block the replica's runtime until the sender is dropped or sends.
    Pause(std::sync::mpsc::Receiver<()>, tokio::sync::oneshot::Sender<Instant>),
    Stop,
}

/// Replica "a" on its own single-threaded runtime and thread, so that blocking
/// that thread pauses its elector, its controller and its HTTP connections at once.
struct PausableReplica {
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    started_leading: Arc<Mutex<Vec<Instant>>>,
    leadership: kcache::lease::Leadership,
    thread: std::thread::JoinHandle<()>,
}

fn client_for(url: &str) -> kube::Client {
    let mut config = kube::Config::new(url.parse().expect("uri"));
    config.default_namespace = NS.to_owned();
    kube::Client::try_from(config).expect("client")
}

fn start_pausable(sim: &SimHandle, recorder: &Recorder) -> PausableReplica {
    let (commands, mut inbox) = tokio::sync::mpsc::unbounded_channel::<Command>();
    let started_leading = Arc::new(Mutex::new(Vec::new()));
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (url, recorder, started) = (sim.url(), recorder.clone(), Arc::clone(&started_leading));
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let elector = LeaderElector::new(client_for(&url), config("a"))
                .expect("config")
                .on_started_leading(move || started.lock().unwrap().push(Instant::now()));
            let leadership = elector.leadership();
            handle_tx.send(leadership.clone()).expect("test waits");
            let (stop_elector, elector_stopped) = tokio::sync::oneshot::channel::<()>();
            let election = tokio::spawn(elector.run(async move {
                let _ = elector_stopped.await;
            }));
            let controller = KeyController::new().workers(2).leader_election(leadership);
            for key in keys() {
                controller.queue().add(key);
            }
            let (stop_controller, controller_stopped) = tokio::sync::oneshot::channel::<()>();
            let run = tokio::spawn(controller.run(recorder.reconcile("a", Duration::from_millis(20)), async move {
                let _ = controller_stopped.await;
            }));
            while let Some(command) = inbox.recv().await {
                match command {
                    Command::Pause(until, resumed) => {
                        // Blocks the only thread of this runtime: nothing of "a" runs.
                        let _ = until.recv();
                        let _ = resumed.send(Instant::now());
                    }
                    Command::Stop => break,
                }
            }
            let _ = stop_controller.send(());
            run.await.expect("controller");
            let _ = stop_elector.send(());
            election.await.expect("elector");
        });
    });
    let leadership = handle_rx.recv().expect("replica started");
    PausableReplica { commands, started_leading, leadership, thread }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_does_not_reconcile_until_it_renews() {
    let sim = SimServer::builder().start().await.expect("sim");
    let recorder = Recorder::default();
    let a = start_pausable(&sim, &recorder);
    wait_for("a to lead and reconcile", || a.leadership.is_leading() && recorder.runs().len() > 4).await;
    let b = Candidate::start(sim.client().expect("client"), config("b"));
    let (_b_stats, b_stop, b_run) = start_controller("b", b.leadership.clone(), &recorder);
    wait_for("b to see a", || b.leadership.leader().as_deref() == Some("a")).await;

    // Pause a (mid-reconcile, most likely) until b has led for a while.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (resumed_tx, resumed_rx) = tokio::sync::oneshot::channel();
    a.commands.send(Command::Pause(held, resumed_tx)).expect("a runs");
    wait_for("b to take over during the pause", || b.leadership.is_leading()).await;
    wait_for("b to reconcile", || recorder.runs().iter().any(|r| r.replica == "b")).await;
    tokio::time::sleep(LEASE).await;
    assert!(!a.leadership.is_leading(), "a's handle reads the deadline, not a's stalled elector");
    release.send(()).expect("a paused");
    let resumed = tokio::time::timeout(T, resumed_rx).await.expect("a resumes").expect("resume time");

    // a woke up believing nothing; it must not run reconcile code while b leads.
    never_two_leaders(&[&a.leadership, &b.leadership], 2 * LEASE).await;
    assert!(recorder.started_after("a", resumed).is_empty(), "a reconciled after waking, without renewing");
    assert_eq!(a.started_leading.lock().unwrap().len(), 1);

    // b steps down: a must renew (start leading again) before its next reconcile.
    b.stop().await;
    let b_stopped = Instant::now();
    wait_for("a to lead again", || a.leadership.is_leading()).await;
    wait_for("a to reconcile again", || !recorder.started_after("a", b_stopped).is_empty()).await;
    let led_again = a.started_leading.lock().unwrap().last().copied().expect("a led again");
    assert!(led_again > resumed);
    for run in recorder.started_after("a", resumed) {
        assert!(run.start >= led_again, "a reconciled {:?} before it renewed", run.key);
    }
    // No reconcile code of the two replicas ran at the same time.
    recorder.assert_no_overlap(until_code_ran);

    let _ = b_stop.send(());
    tokio::time::timeout(T, b_run).await.expect("b stops").expect("task");
    a.commands.send(Command::Stop).expect("a runs");
    tokio::task::spawn_blocking(move || a.thread.join().expect("a's thread")).await.expect("join");
}
