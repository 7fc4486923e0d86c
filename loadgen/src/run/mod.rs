//! `loadgen run`: the main job. Creates pods, syncs an engine, drives writes,
//! verifies the cache against the server, and measures everything in the
//! [`Report`](crate::report::Report).
//!
//! # Steps
//! 1. Target: the simulated API server in a child process (`loadgen sim`, the
//!    default, so RSS and CPU figures are this process's alone), in-process, or a
//!    real cluster through a kubeconfig (guarded, see [`crate::guard`]).
//! 2. Create `--namespaces` namespaces and `--pods` realistic pods, named and
//!    labelled with the run's id ([`RunConfig::run_id`]) so that nothing else is touched,
//!    not even a previous run's namespaces that are still terminating (or, with `--preload`, let the
//!    simulator bulk-load them into one namespace; see [`RunConfig::preload`]).
//!    Pods are created, and writes driven, by a `loadgen write` child process
//!    by default ([`WriterKind`]), so this process holds the engine alone.
//! 3. Start the engine with the chosen handler style; time its sync. With
//!    `--profile NAME`, sample this process's stacks from here to the end of the
//!    write phase (see [`crate::profile`]).
//! 4. For `--duration`, write at `--write-qps`: 90% merge-patches stamping the
//!    send time, 5% creates, 5% deletes.
//! 5. Wait for the cache to converge; compare it with the server's state at a
//!    resourceVersion the cache has reached, which other writers may have
//!    changed since ([`verify`] states the rule), and check that every key's
//!    last write of the run reached the handlers. Event latency and counts are
//!    the run's own writes' (matched by resourceVersion); other writers' events
//!    are counted apart.
//! 6. Cache Get / List(namespace) are timed during the writes by `--readers`
//!    threads (see [`ReadLoad`]); direct GET / LIST after them.
//!
//! With `--replicas N` (N > 1), steps 3 to 6 are [`replicas`]'s instead: N engine
//! processes share the pods through a ring of Leases.

mod config;
mod engines;
mod error;
mod raw_watch;
mod reads;
mod recorder;
mod replica_process;
pub mod replicas;
mod scenario;
mod target;
pub mod verify;
mod write_mix;
mod writer_process;

pub use config::{PRELOAD_SELECTOR, RUN_LABEL, RunConfig, namespace_name, new_run_id};
pub use engines::{CacheReader, Engine, EngineKind, EngineSettings, HandlerStyle};
pub use error::{RunError, chain, describe_kube_error, describe_status};
pub use reads::{CacheReads, ReadLoad, key_in_hand};
pub use replica_process::{ReplicaMessage, ReplicaPlan, leader_timing, serve_replica, timing_for};
pub use recorder::{Recorder, SENT_AT, SENT_AT_POINTER, Seen};
pub use scenario::run;
pub use target::{Connection, Preload, Target, TargetKind};
pub use write_mix::{WriteStats, Writer};
pub use writer_process::{WritePlan, WriterKind, WriterMessage, Writes, serve_child};

pub use crate::cleanup::OWNED_LABEL;
