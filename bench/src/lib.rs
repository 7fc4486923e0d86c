//! Shared helpers for kcache's criterion benches and comparison runner.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod pods;

pub use pods::{list_body, realistic_pods, watch_body};
