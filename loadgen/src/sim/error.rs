//! Errors of the simulator's Rust API.

use std::net::SocketAddr;

use super::status::ApiError;

/// What can go wrong starting, driving or talking to the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The bind address is not a loopback address; the simulator serves 127.0.0.0/8 and ::1 only.
    #[error("refusing to bind the simulated API server to non-loopback address {0}")]
    NonLoopback(SocketAddr),
    /// Binding the listener failed.
    #[error("cannot bind the simulated API server to {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No served resource has that name.
    #[error("unknown resource {0:?} (expected e.g. \"pods\" or \"deployments.apps\")")]
    UnknownResource(String),
    /// The store refused a write or read; carries the Status the HTTP API would send.
    #[error("api error {0}")]
    Api(#[from] ApiError),
    /// Building a kube client for the simulator failed.
    #[error("cannot build a kube client for {url}")]
    Client {
        /// The simulator's URL.
        url: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// A raw HTTP exchange with the simulator failed.
    #[error("http exchange with {addr} failed: {what}")]
    Http {
        /// The simulator's address.
        addr: SocketAddr,
        /// What failed.
        what: String,
    },
}

/// `Result` with [`SimError`].
pub type Result<T, E = SimError> = std::result::Result<T, E>;
