//! Shared helpers for kcache's criterion benches and comparison runner.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
