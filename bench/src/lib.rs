//! Shared helpers for kcache's criterion benches, and the comparison runner
//! ([`compare`], behind the `compare` binary).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod compare;
pub mod pods;
pub mod simload;

pub use pods::{list_body, realistic_pods, watch_body};
