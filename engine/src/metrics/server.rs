//! The optional `/metrics` HTTP endpoint (feature `metrics-server`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The Content-Type of the exposition: prometheus-client writes OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a shutdown waits for requests in flight before closing their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the endpoint did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// [`serve`] binds loopback addresses only; use [`serve_non_loopback`] to
    /// expose the metrics beyond this machine.
    #[error("{addr} is not a loopback address; use serve_non_loopback to expose metrics on it")]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
}

/// Serves `registry` at `GET /metrics` on `addr`, a loopback address
/// (`127.0.0.1:0` picks a free port): the scrape sees only this machine, as a
/// sidecar or `kubectl port-forward` does. Other addresses are refused with
/// [`ServeError::NotLoopback`]; [`serve_non_loopback`] takes any.
///
/// Answers: `200` with the OpenMetrics text of the registry
/// ([`OPENMETRICS_CONTENT_TYPE`]) for `GET /metrics` (any query string), `405`
/// for another method on `/metrics`, `404` for any other path. Must be called
/// within a Tokio runtime; the endpoint runs on a task of its own until
/// [`MetricsServer::shutdown`] or the drop of the [`MetricsServer`].
///
/// ```
/// use std::sync::Arc;
/// use prometheus_client::registry::Registry;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use kcache::metrics::{Metrics, serve};
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let mut registry = Registry::default();
/// let metrics = Metrics::register(&mut registry);
/// let server = serve(Arc::new(registry), "127.0.0.1:0".parse().unwrap()).await.unwrap();
/// metrics.controller("pods").set_max_concurrent_reconciles(4);
///
/// let mut conn = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
/// conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
/// let mut answer = String::new();
/// conn.read_to_string(&mut answer).await.unwrap();
/// assert!(answer.starts_with("HTTP/1.1 200 OK"));
/// assert!(answer.contains(r#"controller_runtime_max_concurrent_reconciles{controller="pods"} 4"#));
/// server.shutdown().await;
/// # });
/// ```
pub async fn serve(registry: Arc<Registry>, addr: SocketAddr) -> Result<MetricsServer, ServeError> {
    if !addr.ip().is_loopback() {
        return Err(ServeError::NotLoopback { addr });
    }
    serve_non_loopback(registry, addr).await
}

/// As [`serve`], on any address, `0.0.0.0:port` included: for a metrics port
/// that a Prometheus elsewhere in the cluster scrapes. The endpoint has no
/// authentication; expose it only where the network is trusted.
pub async fn serve_non_loopback(registry: Arc<Registry>, addr: SocketAddr) -> Result<MetricsServer, ServeError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
    let (stop, stopped) = watch::channel(());
    let task = tokio::spawn(accept_loop(listener, registry, stopped));
    Ok(MetricsServer { local_addr, stop: Some(stop), task: Some(task) })
}

/// A running `/metrics` endpoint. Dropping it stops the endpoint as
/// [`shutdown`](Self::shutdown) does, without waiting.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Option<watch::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address the endpoint listens on (with the port picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets the requests in flight finish (up to
    /// 5 s), closes the connections, and returns once all of it is done.
    pub async fn shutdown(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        // Dropping the sender wakes the accept loop and every connection.
        drop(self.stop.take());
    }
}

async fn accept_loop(listener: TcpListener, registry: Arc<Registry>, mut stopped: watch::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, Arc::clone(&registry), stopped.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: retrying at once would spin.
                    tracing::warn!(%error, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        connections.shutdown().await;
    }
}

async fn connection(stream: TcpStream, registry: Arc<Registry>, mut stopped: watch::Receiver<()>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&registry, request.method(), request.uri().path());
        async move { Ok::<_, Infallible>(response) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped.changed() => {
            // Finishes the request in flight, if any, then closes.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn respond(registry: &Registry, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if path != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found; metrics are at /metrics\n");
    }
    if method != Method::GET {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return response;
    }
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(%error, "metrics endpoint: encoding the registry failed");
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding the metrics failed\n");
    }
    if let Some(family) = described_twice(&text) {
        // Prometheus rejects the whole scrape; say why where the operator looks.
        tracing::warn!(family, "metrics endpoint: a family is described twice; register one kcache::metrics::Metrics per registry");
    }
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE));
    response
}

/// The first family with more than one `# TYPE` line in `text`, if any.
fn described_twice(text: &str) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .find(|name| !seen.insert(*name))
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::described_twice;

    #[test]
    fn a_family_described_twice_is_found() {
        let once = "# TYPE a counter\na_total 1\n# TYPE b gauge\nb 2\n# EOF\n";
        assert_eq!(described_twice(once), None);
        let twice = "# TYPE a counter\na_total 1\n# TYPE b gauge\n# TYPE a counter\na_total 2\n# EOF\n";
        assert_eq!(described_twice(twice), Some("a"));
    }
}
