//! Property test: for random add/get/done sequences, the queue agrees with a
//! direct model of client-go's rules (queue slice + dirty set + processing set).

use std::collections::{HashSet, VecDeque};

use kcache::queue::WorkQueue;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Add(u8),
    Get,
    /// Done on the n-th (mod len) processing key, or on a random key if none.
    Done(usize),
    /// Done on a key that may not be processing at all (misuse is ignored).
    StrayDone(u8),
    /// client-go ShutDown: later adds are ignored, queued keys still come out.
    Shutdown,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6).prop_map(Op::Add),
        3 => Just(Op::Get),
        3 => any::<usize>().prop_map(Op::Done),
        1 => (0u8..6).prop_map(Op::StrayDone),
        1 => Just(Op::Shutdown),
    ]
}

/// client-go's queue.go, transcribed (with the stray-done guard kcache adds).
#[derive(Default)]
struct Model {
    queue: VecDeque<u8>,
    dirty: HashSet<u8>,
    processing: HashSet<u8>,
    shutting_down: bool,
}

impl Model {
    fn add(&mut self, k: u8) {
        if self.shutting_down || !self.dirty.insert(k) {
            return;
        }
        if self.processing.contains(&k) {
            return;
        }
        self.queue.push_back(k);
    }
    fn get(&mut self) -> Option<u8> {
        let k = self.queue.pop_front()?;
        self.processing.insert(k);
        self.dirty.remove(&k);
        Some(k)
    }
    fn take(&mut self, k: u8) -> bool {
        // For the sharded queue: the model hands out the key the queue chose.
        let Some(pos) = self.queue.iter().position(|&q| q == k) else { return false };
        self.queue.remove(pos);
        self.processing.insert(k);
        self.dirty.remove(&k);
        true
    }
    fn done(&mut self, k: u8) {
        if !self.processing.remove(&k) {
            return;
        }
        if self.dirty.contains(&k) {
            self.queue.push_back(k);
        }
    }
}

fn run(ops: &[Op], shards: usize) -> Result<(), TestCaseError> {
    let q: WorkQueue<u8> = WorkQueue::builder().shards(shards).build();
    let mut m = Model::default();
    let mut handed: Vec<u8> = Vec::new();
    for op in ops {
        match *op {
            Op::Add(k) => {
                q.add(k);
                m.add(k);
            }
            Op::Get => {
                let got = q.try_get();
                if shards == 1 {
                    prop_assert_eq!(got, m.get());
                } else {
                    match got {
                        Some(k) => prop_assert!(m.take(k), "queue handed out {} not queued in the model", k),
                        None => prop_assert!(m.queue.is_empty()),
                    }
                }
                if let Some(k) = got {
                    prop_assert!(!handed.contains(&k), "{} handed out twice", k);
                    handed.push(k);
                }
            }
            Op::Done(i) => {
                if !handed.is_empty() {
                    let k = handed.remove(i % handed.len());
                    q.done(&k);
                    m.done(k);
                }
            }
            Op::Shutdown => {
                q.shutdown();
                m.shutting_down = true;
            }
            Op::StrayDone(k) => {
                if !handed.contains(&k) {
                    q.done(&k);
                    m.done(k);
                }
            }
        }
        prop_assert_eq!(q.len(), m.queue.len());
        prop_assert_eq!(q.is_shutting_down(), m.shutting_down);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_queue_agrees_with_the_client_go_model(ops in prop::collection::vec(op(), 0..200)) {
        run(&ops, 1)?;
    }

    #[test]
    fn a_sharded_queue_agrees_with_the_model_up_to_order(ops in prop::collection::vec(op(), 0..200)) {
        run(&ops, 3)?;
    }
}
