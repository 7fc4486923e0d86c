//! An embedded, in-memory, wire-compatible Kubernetes API server.
