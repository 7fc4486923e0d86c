//! Property: whatever the ops and however handlers are delayed, each key's observed
//! notifications are a valid history (no update or delete of an absent object, no
//! add of a present one, resourceVersions only move forward) ending in the last
//! pushed state; and the store equals a model of the applied history.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};

use kcache::Obj;
use kcache::fifo::{Delta, Fifo, Handler};
use kcache::object::testing::pod;
use kcache::store::{StoreConfig, store};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Upsert(u8, u8),
    Delete(u8),
    Replace(Vec<(u8, u8)>),
    Block,
    Unblock,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, 0u8..3).prop_map(|(k, l)| Op::Upsert(k, l)),
        2 => (0u8..4).prop_map(Op::Delete),
        1 => proptest::collection::vec((0u8..4, 0u8..3), 0..4).prop_map(Op::Replace),
        1 => Just(Op::Block),
        1 => Just(Op::Unblock),
    ]
}

#[derive(Default)]
struct View {
    /// key -> (exists, last rv seen)
    keys: Mutex<HashMap<String, (bool, u64)>>,
    errors: Mutex<Vec<String>>,
    gate: Mutex<bool>,
    cv: Condvar,
}

impl View {
    fn wait(&self) {
        let mut g = self.gate.lock().unwrap();
        while *g {
            g = self.cv.wait(g).unwrap();
        }
    }
    fn set_gate(&self, closed: bool) {
        *self.gate.lock().unwrap() = closed;
        self.cv.notify_all();
    }
    fn see(&self, o: &Obj, want_exists: bool, now_exists: bool, what: &str) {
        let rv: u64 = o.resource_version().parse().unwrap_or(0);
        let mut keys = self.keys.lock().unwrap();
        let e = keys.entry(o.name().to_owned()).or_insert((false, 0));
        if e.0 != want_exists {
            self.errors.lock().unwrap().push(format!("{what} of {} while exists={}", o.name(), e.0));
        }
        if rv < e.1 {
            self.errors.lock().unwrap().push(format!("{what} of {} went back from rv {} to {rv}", o.name(), e.1));
        }
        *e = (now_exists, rv.max(e.1));
    }
}

impl Handler for View {
    fn on_add(&self, o: &Obj, _: bool) {
        self.wait();
        self.see(o, false, true, "add");
    }
    fn on_update(&self, old: &Obj, new: &Obj) {
        self.wait();
        if old.name() != new.name() {
            self.errors.lock().unwrap().push("update across keys".into());
        }
        self.see(new, true, true, "update");
    }
    fn on_delete(&self, o: &Obj, _: bool) {
        self.wait();
        self.see(o, true, false, "delete");
    }
}

fn obj(k: u8, rv: u64, label: u8) -> Obj {
    pod(if k.is_multiple_of(2) { "even" } else { "odd" }, &format!("k{k}"), &rv.to_string(), &[("l", &label.to_string())])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn handlers_see_a_valid_history_ending_in_the_last_pushed_state(ops in proptest::collection::vec(op(), 1..60), shards in 1usize..4) {
        let (reader, writer) = store(StoreConfig::default().shards(shards));
        let mut fifo = Fifo::spawn(writer).unwrap();
        let view = Arc::new(View::default());
        fifo.add_handler(view.clone()).unwrap();
        // key -> (rv, label) of the model store.
        let mut model: BTreeMap<u8, (u64, u8)> = BTreeMap::new();
        let mut rv = 0u64;
        for op in &ops {
            match op {
                Op::Upsert(k, l) => {
                    rv += 1;
                    let d = if model.contains_key(k) { Delta::Updated(obj(*k, rv, *l)) } else { Delta::Added(obj(*k, rv, *l)) };
                    fifo.push(d).unwrap();
                    model.insert(*k, (rv, *l));
                }
                Op::Delete(k) => {
                    rv += 1;
                    if model.remove(k).is_some() {
                        fifo.push(Delta::Deleted(obj(*k, rv, 0))).unwrap();
                    }
                }
                Op::Replace(items) => {
                    rv += 1;
                    let mut list: BTreeMap<u8, (u64, u8)> = BTreeMap::new();
                    for (k, l) in items {
                        // An unchanged object keeps its rv; a changed one gets the list rv.
                        let v = match model.get(k) { Some(&(r, ol)) if ol == *l => r, _ => rv };
                        list.insert(*k, (v, *l));
                    }
                    fifo.replace(list.iter().map(|(k, (r, l))| obj(*k, *r, *l)).collect(), &rv.to_string()).unwrap();
                    model = list;
                }
                Op::Block => view.set_gate(true),
                Op::Unblock => view.set_gate(false),
            }
        }
        view.set_gate(false);
        fifo.close();
        let errors = view.errors.lock().unwrap().clone();
        prop_assert!(errors.is_empty(), "{errors:?}");
        let keys = view.keys.lock().unwrap().clone();
        for k in 0u8..4 {
            let seen = keys.get(&format!("k{k}")).copied().unwrap_or((false, 0));
            match model.get(&k) {
                Some(&(r, _)) => prop_assert_eq!(seen, (true, r), "k{}", k),
                None => prop_assert!(!seen.0, "k{} should be gone", k),
            }
        }
        // The store equals the model.
        let mut got: Vec<(String, String)> = reader.list().iter().map(|o| (o.name().to_owned(), o.resource_version().to_owned())).collect();
        got.sort();
        let want: Vec<(String, String)> = model.iter().map(|(k, (r, _))| (format!("k{k}"), r.to_string())).collect();
        prop_assert_eq!(got, want);
        let s = fifo.stats();
        prop_assert_eq!(s.pushed, s.applied + s.coalesced);
    }
}
