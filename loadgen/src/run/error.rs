//! Why a run stopped, each reason readable on one line with what to do next.
//!
//! # Guarantees
//! * [`RunError`]'s `Display` is the whole message: a caller prints `{e}` once
//!   and never walks the source chain, so no error is printed twice and no
//!   Status struct is ever dumped with `{:?}`.
//! * [`describe_kube_error`] turns any `kube::Error` into one line; an API
//!   error shows its code, the reason (the cause's reason where the server
//!   gave one), the message and a hint.

use std::time::Duration;

use kube::core::Status;

use crate::profile::ProfileError;

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The target (simulator or cluster) could not be reached or started.
    #[error("could not set up the target: {0}")]
    Target(String),
    /// An API call the run depends on failed.
    #[error("{during}: {}", describe_kube_error(error))]
    Api {
        /// What the run was doing (`creating namespace loadgen-3`).
        during: String,
        /// The error (not a `source`: the message already renders it).
        error: kube::Error,
    },
    /// The engine could not be started.
    #[error("could not start the engine: {0}")]
    Engine(#[from] kcache::InformerError),
    /// `--preload` needs a simulator target.
    #[error("--preload needs the simulator (it bulk-loads pods itself); it cannot preload a real cluster")]
    PreloadNeedsSim,
    /// The profiler could not be started or its output written.
    #[error("profiling failed: {0}")]
    Profile(#[from] ProfileError),
    /// The writer (a `loadgen write` child by default) failed; the text says
    /// what it was doing (the child's own error, passed on as it said it).
    #[error("{0}")]
    Writer(String),
    /// A replica of `--replicas N` (a `loadgen replica` child) failed; the text
    /// says which and why.
    #[error("{0}")]
    Replica(String),
    /// The engine did not sync in time.
    #[error("{engine} did not sync {pods} pods within {timeout:?}")]
    SyncTimeout {
        /// Engine name.
        engine: &'static str,
        /// Pods expected.
        pods: usize,
        /// How long it was given.
        timeout: Duration,
    },
}

impl RunError {
    /// An API error while doing `during`.
    pub fn api(during: impl Into<String>, error: kube::Error) -> RunError {
        RunError::Api { during: during.into(), error }
    }
}

/// The standard phrase of an HTTP status code (`403` → `Forbidden`).
fn phrase(code: u16) -> &'static str {
    http::StatusCode::from_u16(code).ok().and_then(|c| c.canonical_reason()).unwrap_or("")
}

/// What to do about an API error, by its code and (cause) reason.
fn hint(code: u16, reason: &str) -> Option<&'static str> {
    Some(match (code, reason) {
        (_, "NamespaceTerminating") => {
            "wait for the namespace to go (`kubectl get ns`) or run 'loadgen cleanup'"
        }
        (401, _) => "the kubeconfig's credentials were refused; refresh them (`kubectl get ns` should work)",
        (403, _) => "the kubeconfig's user may not do this; loadgen needs to create and delete namespaces and pods",
        (404, _) => "the object or namespace is gone; another writer or 'loadgen cleanup' may have deleted it",
        (409, "AlreadyExists") => "an object of that name exists; run 'loadgen cleanup' to remove a previous run's leftovers",
        (409, _) => "another writer changed or is deleting the object; run again",
        (410, _) => "the resourceVersion was compacted; run again",
        (422, _) => "the server refused the object as invalid; this is a loadgen bug",
        (429, _) => "the API server is throttling; lower --write-qps or raise its max-requests-inflight",
        (500..=599, _) => "the API server failed; check its health (`kubectl get --raw /readyz`) and run again",
        _ => return None,
    })
}

/// One line for a Status: `403 Forbidden (NamespaceTerminating): namespace x is
/// being terminated; <hint>`. The first cause, when the server gave one, is
/// more precise than the Status's own reason and message.
pub fn describe_status(s: &Status) -> String {
    let cause = s.details.as_ref().and_then(|d| d.causes.iter().find(|c| !c.reason.is_empty() || !c.message.is_empty()));
    let reason = cause.map(|c| c.reason.as_str()).filter(|r| !r.is_empty()).unwrap_or(s.reason.as_str());
    let message = cause.map(|c| c.message.as_str()).filter(|m| !m.is_empty()).unwrap_or(s.message.as_str());
    let mut out = s.code.to_string();
    let phrase = phrase(s.code);
    if !phrase.is_empty() {
        out.push(' ');
        out.push_str(phrase);
    }
    if !reason.is_empty() && reason != phrase.replace(' ', "") {
        out.push_str(&format!(" ({reason})"));
    }
    if !message.is_empty() {
        out.push_str(": ");
        out.push_str(&one_line(message));
    }
    if let Some(h) = hint(s.code, reason) {
        out.push_str("; ");
        out.push_str(h);
    }
    out
}

/// One line for any kube error: [`describe_status`] for an API error, else the
/// error and its sources joined by ": ", with a hint for connection failures.
pub fn describe_kube_error(e: &kube::Error) -> String {
    if let kube::Error::Api(status) = e {
        return describe_status(status);
    }
    let mut out = chain(e);
    if matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_)) {
        out.push_str("; is the API server reachable? check the kubeconfig's server (`kubectl cluster-info`)");
    }
    out
}

/// `e` and its sources joined by ": ", skipping a source whose text the
/// previous one already contains (kube's errors repeat their source).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = one_line(&e.to_string());
    let mut source = e.source();
    while let Some(s) = source {
        let text = one_line(&s.to_string());
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn terminating() -> Status {
        Status::failure(
            "pods \"p\" is forbidden: unable to create new content in namespace loadgen-3 because it is being terminated",
            "Forbidden",
        )
        .with_code(403)
        .with_details(StatusDetails {
            name: "p".into(),
            group: String::new(),
            kind: "pods".into(),
            uid: String::new(),
            causes: vec![StatusCause {
                reason: "NamespaceTerminating".into(),
                message: "namespace loadgen-3 is being terminated".into(),
                field: "metadata.namespace".into(),
            }],
            retry_after_seconds: 0,
        })
    }

    #[test]
    fn a_terminating_namespace_reads_as_one_line_with_what_to_do() {
        let e = RunError::api("creating namespace loadgen-3", kube::Error::Api(terminating().boxed()));
        assert_eq!(
            e.to_string(),
            "creating namespace loadgen-3: 403 Forbidden (NamespaceTerminating): namespace loadgen-3 is being terminated; \
             wait for the namespace to go (`kubectl get ns`) or run 'loadgen cleanup'"
        );
        // Nothing else to print: the Display is the whole message.
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn a_status_without_causes_uses_its_reason_and_message() {
        let s = Status::failure("pods \"x\" not found", "NotFound").with_code(404);
        let line = describe_status(&s);
        assert!(line.starts_with("404 Not Found: pods \"x\" not found; "), "{line}");
        let gone = Status::failure("too old resource version: 5 (9)", "Expired").with_code(410);
        assert!(describe_status(&gone).starts_with("410 Gone (Expired): too old resource version: 5 (9); "), "{}", describe_status(&gone));
        let odd = Status::failure("multi\n  line", "").with_code(599);
        assert_eq!(describe_status(&odd).lines().count(), 1);
        assert!(!describe_status(&odd).contains("Status {"), "never a struct dump");
    }

    #[test]
    fn other_kube_errors_are_one_line_without_repeats() {
        let e = kube::Error::SerdeError(serde_json::from_str::<u8>("x").unwrap_err());
        let line = describe_kube_error(&e);
        assert_eq!(line.lines().count(), 1);
        assert_eq!(line.matches("expected value").count(), 1, "{line}");
    }
}
