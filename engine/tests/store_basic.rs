//! Store reads, indexes, snapshots, resource versions and stats.

#[path = "store_support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kcache::object::testing::pod;
use kcache::store::{Indexer, StoreConfig, StoreError, shard_for_key, store};
use kcache::{Obj, ObjectRef};
use kcache::object::testing::pod_full;

fn names(objs: impl IntoIterator<Item = Obj>) -> Vec<String> {
    let mut v: Vec<String> = objs.into_iter().map(|o| o.name().to_owned()).collect();
    v.sort();
    v
}

fn config() -> StoreConfig {
    StoreConfig::default()
        .shards(3)
        .indexer(Indexer::labels())
        .indexer(Indexer::owners())
        .indexer(Indexer::field("spec.nodeName", 0))
        .indexer(Indexer::new("first-letter", |o: &Obj| o.name().get(..1).map(|s| vec![s.to_owned()]).unwrap_or_default()))
}

#[test]
fn get_list_and_len_see_the_latest_write() {
    let (r, mut w) = store(config());
    assert!(r.is_empty());
    w.upsert(pod("a", "x", "1", &[]));
    w.upsert(pod("b", "y", "2", &[]));
    w.upsert(pod("", "node-1", "3", &[]));
    let old = w.upsert(pod("a", "x", "4", &[]));
    assert_eq!(old.map(|o| o.resource_version().to_owned()).as_deref(), Some("1"));
    assert_eq!(r.len(), 3);
    assert_eq!(r.get(&ObjectRef::new_namespaced("a", "x")).map(|o| o.resource_version().to_owned()).as_deref(), Some("4"));
    assert_eq!(r.get_by_key("node-1").map(|o| o.name().to_owned()).as_deref(), Some("node-1"));
    assert!(r.get(&ObjectRef::new_namespaced("b", "x")).is_none());
    assert_eq!(names(r.list()), ["node-1", "x", "y"]);
    assert!(w.delete("a/x").is_some());
    assert!(w.delete("a/x").is_none());
    assert_eq!(r.len(), 2);
}

#[test]
fn builtin_and_user_indexes_file_each_object_under_every_value() {
    let (r, mut w) = store(config());
    w.upsert(pod_full("ns1", "web-0", "1", &[("app", "web"), ("tier", "fe")], &["rs-1"], Some("node-a")));
    w.upsert(pod_full("ns1", "web-1", "2", &[("app", "web")], &["rs-1", "other"], Some("node-b")));
    w.upsert(pod_full("ns2", "db-0", "3", &[("app", "db")], &[], None));
    assert_eq!(names(r.index("namespace", "ns1").unwrap().to_vec()), ["web-0", "web-1"]);
    assert_eq!(names(r.index("label", "app=web").unwrap().to_vec()), ["web-0", "web-1"]);
    assert_eq!(names(r.index("label", "tier=fe").unwrap().to_vec()), ["web-0"]);
    assert_eq!(names(r.index("owner", "rs-1").unwrap().to_vec()), ["web-0", "web-1"]);
    assert_eq!(names(r.index("owner", "other").unwrap().to_vec()), ["web-1"]);
    assert_eq!(names(r.index("spec.nodeName", "node-b").unwrap().to_vec()), ["web-1"]);
    assert_eq!(names(r.index("first-letter", "d").unwrap().to_vec()), ["db-0"]);
    assert!(r.index("label", "app=none").unwrap().is_empty());
    assert_eq!(r.index_values("spec.nodeName").unwrap(), ["node-a", "node-b"]);
    assert_eq!(r.index("nope", "x").unwrap_err(), StoreError::UnknownIndex { index: "nope".into() });
}

#[test]
fn changing_and_deleting_an_object_moves_and_removes_its_index_entries() {
    let (r, mut w) = store(config());
    w.upsert(pod_full("ns", "p", "1", &[("app", "a")], &["o1"], Some("n1")));
    w.upsert(pod_full("ns", "p", "2", &[("app", "b")], &["o2"], Some("n2")));
    assert!(r.index("label", "app=a").unwrap().is_empty());
    assert_eq!(r.index("label", "app=b").unwrap().iter().map(|o| o.resource_version()).collect::<Vec<_>>(), ["2"]);
    assert!(r.index("owner", "o1").unwrap().is_empty());
    assert!(r.index("spec.nodeName", "n1").unwrap().is_empty());
    // Unchanged values re-file the new handle.
    assert_eq!(r.index("namespace", "ns").unwrap().iter().map(|o| o.resource_version()).collect::<Vec<_>>(), ["2"]);
    w.delete("ns/p");
    for (i, v) in [("namespace", "ns"), ("label", "app=b"), ("owner", "o2"), ("spec.nodeName", "n2")] {
        assert!(r.index(i, v).unwrap().is_empty(), "{i}={v}");
        assert!(r.index_values(i).unwrap().is_empty(), "{i} keeps no empty value");
    }
    assert_eq!(r.stats().index_entries, 0);
}

#[test]
fn an_index_snapshot_does_not_change_after_it_is_taken() {
    let (r, mut w) = store(config());
    for i in 0..100 {
        w.upsert(pod("ns", &format!("p{i}"), "1", &[("app", "x")]));
    }
    let snap = r.index("label", "app=x").unwrap();
    for i in 0..50 {
        w.delete(&format!("ns/p{i}"));
    }
    for i in 50..100 {
        w.upsert(pod("ns", &format!("p{i}"), "2", &[("app", "x")]));
    }
    w.upsert(pod("ns", "new", "2", &[("app", "x")]));
    assert_eq!(snap.len(), 100);
    assert_eq!(snap.iter().count(), 100);
    assert!(snap.iter().all(|o| o.resource_version() == "1"));
    let now = r.index("label", "app=x").unwrap();
    assert_eq!(now.len(), 51);
    assert!(now.iter().all(|o| o.resource_version() == "2"));
}

#[test]
fn a_shard_writer_refuses_a_key_of_another_shard() {
    let (_r, w) = store(StoreConfig::default().shards(4));
    let (_b, mut shards) = w.into_parts();
    let o = pod("ns", "x", "1", &[]);
    let owner = shard_for_key("ns/x", 4);
    let other = (owner + 1) % 4;
    let err = shards[other].upsert(o.clone()).unwrap_err();
    assert_eq!(err, StoreError::WrongShard { key: "ns/x".into(), shard: other, owner });
    assert!(shards[owner].upsert(o).unwrap().is_none());
    assert_eq!(shards[owner].len(), 1);
}

#[test]
fn stats_count_objects_json_bytes_and_index_entries() {
    // One shard: index values are counted per shard.
    let (r, mut w) = store(StoreConfig::default().shards(1).indexer(Indexer::labels()));
    let a = pod("ns", "a", "1", &[("x", "1"), ("y", "2")]);
    let b = pod("ns", "b", "1", &[("x", "1")]);
    let json = (a.json().len() + b.json().len()) as u64;
    w.upsert(a);
    w.upsert(b);
    let s = r.stats();
    assert_eq!(s.objects, 2);
    assert_eq!(s.json_bytes, json);
    // namespace (2) + labels (3) entries; values: ns, x=1, y=2.
    assert_eq!(s.index_entries, 5);
    assert_eq!(s.index_values, 3);
    assert!(s.overhead_bytes > s.meta_bytes);
    w.delete("ns/a");
    w.delete("ns/b");
    let s = r.stats();
    assert_eq!((s.objects, s.json_bytes, s.meta_bytes, s.index_entries, s.index_values), (0, 0, 0, 0, 0));
}

#[test]
fn the_default_store_keeps_the_namespace_index_and_the_others_on_request() {
    let (r, mut w) = store(StoreConfig::default().shards(2));
    w.upsert(pod_full("ns", "a", "1", &[("app", "x")], &["rs-1"], None));
    assert_eq!(r.index("namespace", "ns").unwrap().len(), 1);
    for index in ["label", "owner"] {
        assert_eq!(r.index(index, "app=x").unwrap_err(), StoreError::UnknownIndex { index: index.into() });
    }
    assert_eq!(r.stats().index_entries, 1, "one entry: the namespace index's");
    let (r, mut w) = store(StoreConfig::default().shards(2).indexer(Indexer::labels()).indexer(Indexer::owners()));
    w.upsert(pod_full("ns", "a", "1", &[("app", "x")], &["rs-1"], None));
    assert_eq!((r.index("label", "app=x").unwrap().len(), r.index("owner", "rs-1").unwrap().len()), (1, 1));
    let (r, _w) = store(StoreConfig::default().indexer(Indexer::labels()).without_builtin_indexes());
    assert!(r.index("namespace", "ns").is_err() && r.index("label", "app=x").is_err());
}

#[test]
fn resource_version_and_wait_for_follow_the_writer() {
    let (r, mut w) = store(StoreConfig::default().shards(2));
    assert_eq!(r.resource_version(), None);
    assert!(!r.has_synced());
    w.upsert(pod("ns", "a", "5", &[]));
    w.set_resource_version("5");
    w.mark_synced();
    assert!(r.has_synced());
    assert_eq!(r.resource_version().as_deref(), Some("5"));
    assert!(r.wait_for_blocking("4", Duration::from_millis(1)).is_ok());
    let err = r.wait_for_blocking("6", Duration::from_millis(20)).unwrap_err();
    assert_eq!(err, StoreError::Timeout { want: "6".into(), have: Some("5".into()) });
    // Opaque versions only match by equality.
    w.set_resource_version("abc");
    assert!(r.wait_for_blocking("abc", Duration::from_millis(1)).is_ok());
    assert!(r.wait_for_blocking("5", Duration::from_millis(1)).is_err());
    let r2 = r.clone();
    let waiter = std::thread::spawn(move || r2.wait_for_blocking("10", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(20));
    w.set_resource_version("10");
    assert!(waiter.join().unwrap().is_ok());
}

#[tokio::test]
async fn async_wait_for_resolves_when_the_version_is_reached() {
    let (r, mut w) = store(StoreConfig::default().shards(2));
    let r2 = r.clone();
    let task = tokio::spawn(async move { r2.wait_for("7").await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!task.is_finished());
    w.set_resource_version("7");
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
}

#[test]
fn readers_on_other_threads_see_consistent_objects_and_snapshots_while_a_writer_runs() {
    let (r, mut w) = store(StoreConfig::default().shards(2).indexer(Indexer::labels()));
    for i in 0..200 {
        w.upsert(pod("ns", &format!("p{i}"), "0", &[("app", "x")]));
    }
    let stop = Arc::new(AtomicBool::new(false));
    // The writer starts once both readers read: on a busy machine a reader
    // thread may otherwise first run after the writer is done.
    let reading = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (r, stop, reading) = (r.clone(), Arc::clone(&stop), Arc::clone(&reading));
            std::thread::spawn(move || {
                let mut last = vec![0u64; 200];
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for (i, seen) in last.iter_mut().enumerate() {
                        let o = r.get_by_key(&format!("ns/p{i}")).expect("never deleted");
                        let rv: u64 = o.resource_version().parse().unwrap();
                        assert!(rv >= *seen, "reader {t}: p{i} went back from {seen} to {rv}");
                        *seen = rv;
                        reads += 1;
                    }
                    if reads == 200 {
                        reading.fetch_add(1, Ordering::Relaxed);
                    }
                    let snap = r.index("label", "app=x").unwrap();
                    let keys: HashSet<&str> = snap.iter().map(|o| o.name()).collect();
                    assert_eq!(keys.len(), 200, "a snapshot has every member exactly once");
                    assert_eq!(snap.len(), 200);
                }
                reads
            })
        })
        .collect();
    while reading.load(Ordering::Relaxed) < 2 {
        std::thread::yield_now();
    }
    for round in 1..=50u64 {
        for i in 0..200 {
            w.upsert(pod("ns", &format!("p{i}"), &round.to_string(), &[("app", "x")]));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in readers {
        assert!(t.join().unwrap() > 0);
    }
    assert!(r.list().iter().all(|o| o.resource_version() == "50"));
}
