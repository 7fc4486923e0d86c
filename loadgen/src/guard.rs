//! The safety guard for real clusters: loadgen writes thousands of pods, so it
//! only talks to throw-away local clusters unless told otherwise.
//!
//! A context is accepted when its name starts with `kind-` **and** its server
//! is a loopback address (127.0.0.0/8, ::1 or `localhost`) — what `kind create
//! cluster` writes. Anything else needs `--allow-remote`.

use kube::config::Kubeconfig;

/// Why loadgen refused to use a kubeconfig context.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuardError {
    /// The kubeconfig has no such context (or no current context).
    #[error("context {0:?} is not in the kubeconfig; pick one with --context")]
    NoContext(String),
    /// The context names a cluster the kubeconfig lacks.
    #[error("context {context:?} refers to cluster {cluster:?}, which the kubeconfig does not define")]
    NoCluster {
        /// The context.
        context: String,
        /// The missing cluster.
        cluster: String,
    },
    /// The context is not a local kind cluster.
    #[error(
        "refusing context {context:?} (server {server}): loadgen creates and deletes thousands of pods, so it only \
         runs against local kind clusters (context name `kind-*`, loopback server). Pass --allow-remote if this \
         cluster is really disposable"
    )]
    NotLocalKind {
        /// The context.
        context: String,
        /// Its server URL.
        server: String,
    },
}

/// Checks that `context` (or the current context) of `config` is safe to load.
/// Returns the context name used.
pub fn check_context(config: &Kubeconfig, context: Option<&str>, allow_remote: bool) -> Result<String, GuardError> {
    let name = context
        .map(str::to_owned)
        .or_else(|| config.current_context.clone())
        .ok_or_else(|| GuardError::NoContext(String::new()))?;
    let ctx = config
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| GuardError::NoContext(name.clone()))?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| GuardError::NoCluster { context: name.clone(), cluster: ctx.cluster.clone() })?;
    let server = cluster.server.clone().unwrap_or_default();
    if allow_remote || (name.starts_with("kind-") && is_loopback_url(&server)) {
        Ok(name)
    } else {
        Err(GuardError::NotLocalKind { context: name, server })
    }
}

/// Whether a server URL's host is a loopback address.
pub fn is_loopback_url(server: &str) -> bool {
    let Ok(uri) = server.parse::<http::Uri>() else { return false };
    let Some(host) = uri.host() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(context: &str, server: &str) -> Kubeconfig {
        let yaml = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {context}\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: {context}\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: secret-token\n"
        );
        Kubeconfig::from_yaml(&yaml).unwrap()
    }

    #[test]
    fn a_kind_context_on_loopback_is_accepted() {
        let k = kubeconfig("kind-kcache", "https://127.0.0.1:41234");
        assert_eq!(check_context(&k, None, false), Ok("kind-kcache".to_owned()));
        let k6 = kubeconfig("kind-x", "https://[::1]:6443");
        assert!(check_context(&k6, None, false).is_ok());
    }

    #[test]
    fn a_remote_or_non_kind_context_is_refused_without_allow_remote() {
        let prod = kubeconfig("prod-eu", "https://10.0.0.1:6443");
        let err = check_context(&prod, None, false).unwrap_err();
        assert!(matches!(err, GuardError::NotLocalKind { .. }));
        assert!(err.to_string().contains("--allow-remote"));
        // A kind- name pointing somewhere else is still refused.
        let disguised = kubeconfig("kind-prod", "https://api.example.com:6443");
        assert!(check_context(&disguised, None, false).is_err());
        // Loopback but not kind (e.g. an ssh tunnel to production) is refused too.
        let tunnel = kubeconfig("prod-tunnel", "https://127.0.0.1:6443");
        assert!(check_context(&tunnel, None, false).is_err());
        assert!(check_context(&prod, None, true).is_ok());
    }

    #[test]
    fn a_missing_context_is_reported_by_name() {
        let k = kubeconfig("kind-a", "https://127.0.0.1:1");
        assert_eq!(check_context(&k, Some("nope"), false), Err(GuardError::NoContext("nope".into())));
    }

    #[test]
    fn the_refusal_never_prints_the_token() {
        let prod = kubeconfig("prod-eu", "https://10.0.0.1:6443");
        let err = check_context(&prod, None, false).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("secret-token"));
    }
}
