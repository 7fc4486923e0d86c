//! Shared helpers for kcache's criterion benches, and the comparison runner
//! ([`compare`], behind the `compare` binary). The benches' pods come from
//! `kcache_loadgen::podgen`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod compare;
pub mod simload;
