//! Property: after any sequence of deltas and relists through the fifo, the store
//! equals a model map and every index equals the index recomputed from scratch.

#[path = "store_support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use kcache::Obj;
use kcache::fifo::{Delta, Fifo};
use kcache::store::{Indexer, Store, StoreConfig, store};
use proptest::prelude::*;
use kcache::object::testing::pod_full;

#[derive(Clone, Debug)]
struct Spec {
    ns: u8,
    app: u8,
    tier: Option<u8>,
    owner: Option<u8>,
    node: Option<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (0u8..2, 0u8..3, proptest::option::of(0u8..2), proptest::option::of(0u8..2), proptest::option::of(0u8..3))
        .prop_map(|(ns, app, tier, owner, node)| Spec { ns, app, tier, owner, node })
}

#[derive(Clone, Debug)]
enum Op {
    Upsert(u8, Spec),
    Delete(u8),
    Replace(Vec<(u8, Spec)>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, spec()).prop_map(|(k, s)| Op::Upsert(k, s)),
        2 => (0u8..12).prop_map(Op::Delete),
        1 => proptest::collection::vec((0u8..12, spec()), 0..8).prop_map(Op::Replace),
    ]
}

/// Objects are named by key number only (namespace is part of the spec, so a key
/// number maps to one name per namespace; the model key is the full key).
fn build(k: u8, s: &Spec, rv: u64) -> Obj {
    let app = format!("a{}", s.app);
    let tier = s.tier.map(|t| format!("t{t}"));
    let mut labels = vec![("app", app.as_str())];
    if let Some(t) = &tier {
        labels.push(("tier", t.as_str()));
    }
    let owner = s.owner.map(|o| format!("owner-{o}"));
    let owners: Vec<&str> = owner.iter().map(String::as_str).collect();
    let node = s.node.map(|n| format!("node-{n}"));
    pod_full(&format!("ns{}", s.ns), &format!("k{k}"), &rv.to_string(), &labels, &owners, node.as_deref())
}

fn index_of(objs: &[Obj], f: impl Fn(&Obj) -> Vec<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in objs {
        for v in f(o) {
            m.entry(v).or_default().insert(format!("{}@{}", o.key(), o.resource_version()));
        }
    }
    m
}

fn store_index(store: &Store, name: &str) -> BTreeMap<String, BTreeSet<String>> {
    store
        .index_values(name)
        .unwrap()
        .into_iter()
        .map(|v| {
            let snap = store.index(name, &v).unwrap();
            let members: BTreeSet<String> = snap.iter().map(|o| format!("{}@{}", o.key(), o.resource_version())).collect();
            assert_eq!(members.len(), snap.len(), "snapshot len matches its members");
            (v, members)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_store_and_its_indexes_equal_the_applied_history(ops in proptest::collection::vec(op(), 1..80), shards in 1usize..4) {
        let config = StoreConfig::default().shards(shards).indexer(Indexer::labels()).indexer(Indexer::owners()).indexer(Indexer::field("spec.nodeName", 0));
        let (reader, writer) = store(config);
        let mut fifo = Fifo::spawn(writer).unwrap();
        // full key -> object
        let mut model: BTreeMap<String, Obj> = BTreeMap::new();
        let mut rv = 0u64;
        let mut expect_rv: Option<u64> = None;
        for op in &ops {
            rv += 1;
            match op {
                Op::Upsert(k, s) => {
                    let o = build(*k, s, rv);
                    fifo.push(Delta::Updated(o.clone())).unwrap();
                    model.insert(o.key(), o);
                    expect_rv = Some(rv);
                }
                Op::Delete(k) => {
                    let gone: Vec<String> = model.keys().filter(|key| key.ends_with(&format!("/k{k}"))).cloned().collect();
                    for key in gone {
                        let o = model.remove(&key).unwrap();
                        // A watch DELETED event carries a new resourceVersion.
                        let last = kcache::object::testing::pod(o.namespace().unwrap_or(""), o.name(), &rv.to_string(), &[]);
                        fifo.push(Delta::Deleted(last)).unwrap();
                        expect_rv = Some(rv);
                    }
                }
                Op::Replace(items) => {
                    let mut list: BTreeMap<String, Obj> = BTreeMap::new();
                    for (k, s) in items {
                        let o = build(*k, s, rv);
                        list.insert(o.key(), o);
                    }
                    fifo.replace(list.values().cloned().collect(), &rv.to_string()).unwrap();
                    model = list;
                    expect_rv = Some(rv);
                }
            }
        }
        fifo.close();
        prop_assert_eq!(reader.resource_version(), expect_rv.map(|r| r.to_string()));
        let objs: Vec<Obj> = model.values().cloned().collect();
        let mut got: Vec<String> = reader.list().iter().map(|o| format!("{}@{}", o.key(), o.resource_version())).collect();
        got.sort();
        let mut want: Vec<String> = objs.iter().map(|o| format!("{}@{}", o.key(), o.resource_version())).collect();
        want.sort();
        prop_assert_eq!(got, want);
        prop_assert_eq!(store_index(&reader, "namespace"), index_of(&objs, |o| vec![o.namespace().unwrap_or("").to_owned()]));
        prop_assert_eq!(store_index(&reader, "label"), index_of(&objs, |o| o.labels().map(|(k, v)| format!("{k}={v}")).collect()));
        prop_assert_eq!(store_index(&reader, "owner"), index_of(&objs, |o| o.owner_references().map(|r| r.uid.to_owned()).collect()));
        prop_assert_eq!(store_index(&reader, "spec.nodeName"), index_of(&objs, |o| o.field(0).map(str::to_owned).into_iter().collect()));
        let stats = reader.stats();
        prop_assert_eq!(stats.objects as usize, objs.len());
        prop_assert_eq!(stats.json_bytes as usize, objs.iter().map(|o| o.json().len()).sum::<usize>());
    }
}
