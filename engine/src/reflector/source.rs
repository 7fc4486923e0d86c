//! Where a reflector's bytes come from: the API server (through kube-client) or memory.
//!
//! A [`Source`] hands back raw bytes — a whole LIST page, or the chunked body of a
//! WATCH — so that the decoder sees exactly what the server sent, whichever source
//! it is. The HTTP source ([`KubeSource`]) and the in-memory one
//! ([`crate::testing::MemorySource`]) sit behind the same trait, which is how the
//! engine's own tests exercise the reflector without a network.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::BodyExt;
use kube::api::{ListParams, WatchParams};
use kube::core::{ApiResource, DynamicObject, Resource};

use super::{ShardField, ShardRange, ShardSelector};

/// The chunks of a WATCH response body, in order.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, SourceError>> + Send>>;

/// Lists and watches one resource collection.
pub trait Source: Send + Sync + 'static {
    /// One LIST request; resolves to the whole response body.
    fn list(&self, params: &ListParams) -> impl Future<Output = Result<Bytes, SourceError>> + Send;

    /// One WATCH request from `resource_version`; resolves once the server has
    /// answered with a success status, to the body's chunks.
    fn watch(
        &self,
        params: &WatchParams,
        resource_version: &str,
    ) -> impl Future<Output = Result<BodyStream, SourceError>> + Send;

    /// One LIST request of only `selector`'s slice, in place of any shard selector
    /// the source sends itself: what a scoped relist lists
    /// ([`RelistScope`](super::RelistScope)). The default answers
    /// [`SourceError::ScopedListUnsupported`], and the watcher relists everything.
    fn list_shard(&self, params: &ListParams, selector: &ShardSelector) -> impl Future<Output = Result<Bytes, SourceError>> + Send {
        let _ = (params, selector);
        std::future::ready(Err(SourceError::ScopedListUnsupported))
    }
}

/// A failed list or watch request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The server answered with a Kubernetes `Status` failure (or a non-2xx code).
    #[error("api server answered {code} {reason}: {message}")]
    Api {
        /// HTTP status code (410 means the requested resourceVersion is gone).
        code: u16,
        /// The Status `reason` (e.g. `Expired`, `NotFound`), or the HTTP reason phrase.
        reason: String,
        /// The Status `message`.
        message: String,
    },
    /// The request could not be built or sent, or the connection broke.
    #[error("request to the api server failed")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A response body grew past the configured limit.
    #[error("response body exceeds {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A LIST sent with a shard selector came back without
    /// `metadata.shardInfo`: the server ignored the selector (no
    /// `ShardedListAndWatch` gate, or an older server) and answered with the
    /// whole collection, which is not kept.
    #[error("the api server ignored the shard selector {selector:?} (no ShardedListAndWatch feature gate?)")]
    ShardSelectorIgnored {
        /// The selector sent.
        selector: String,
    },
    /// The source cannot list one shard selector's slice ([`Source::list_shard`]).
    #[error("this source does not list a shard selector's slice on its own")]
    ScopedListUnsupported,
}

impl SourceError {
    /// Whether the server said the requested resourceVersion is too old (410 Gone/Expired):
    /// the reflector must relist.
    pub fn is_expired(&self) -> bool {
        matches!(self, SourceError::Api { code: 410, .. })
    }

    /// Whether the server said the requested resourceVersion is newer than any
    /// it has (504 "Too large resource version", cause `ResourceVersionTooLarge`):
    /// its cache has not caught up. client-go's reflector matches the message
    /// too (`isTooLargeResourceVersionError` in `tools/cache/reflector.go`),
    /// which is all a [`SourceError::Api`] keeps.
    pub fn is_too_large_resource_version(&self) -> bool {
        matches!(self, SourceError::Api { message, .. } if message.contains("Too large resource version"))
    }

    /// Builds an [`SourceError::Api`] from a status code and a (possibly non-Status) body.
    pub fn from_status_body(code: u16, body: &[u8]) -> Self {
        #[derive(serde::Deserialize, Default)]
        struct Status {
            #[serde(default)]
            reason: String,
            #[serde(default)]
            message: String,
        }
        let status: Status = serde_json::from_slice(body).unwrap_or_default();
        let reason = if status.reason.is_empty() {
            http::StatusCode::from_u16(code)
                .ok()
                .and_then(|c| c.canonical_reason())
                .unwrap_or("Unknown")
                .to_owned()
        } else {
            status.reason
        };
        let message = if status.message.is_empty() {
            String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned()
        } else {
            status.message
        };
        SourceError::Api { code, reason, message }
    }
}

/// A [`Source`] that talks to a Kubernetes API server through kube-client,
/// streaming raw response bytes so that they reach the decoder untouched.
///
/// The watcher retries and backs off on its own. A client built with
/// kube-client's default `Config::default_retry = true` also retries every
/// 429/503/504 beneath it, up to 15 times with exponential backoff: a relist
/// at a version the server's watch cache has not reached (504 "Too large
/// resource version" after the server's 3 s wait) then takes minutes to reach
/// the watcher, which would otherwise relist at once with `""` (measured
/// against the simulator: about 240 s with the default, 3 s without). Build the
/// informers' client with `default_retry = false`:
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = kube::Config::infer().await?;
/// config.default_retry = false;
/// let client = kube::Client::try_from(config)?;
/// # Ok(()) }
/// ```
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use kcache::reflector::KubeSource;
/// use k8s_openapi::api::core::v1::Pod;
/// let client = kube::Client::try_default().await?;
/// let pods = KubeSource::for_type::<Pod>(client, None);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KubeSource {
    client: kube::Client,
    request: kube::core::Request,
    metadata_only: bool,
    max_list_bytes: usize,
    /// Size of the last LIST page body: the first guess for the next one when
    /// the server sends no Content-Length (chunked encoding).
    last_list_bytes: Arc<AtomicUsize>,
    /// `shardSelector` sent on every LIST and WATCH (KEP-5866).
    shard_selector: Option<String>,
}

impl KubeSource {
    /// A source for any resource, all namespaces (`namespace = None`) or one.
    pub fn new(client: kube::Client, resource: &ApiResource, namespace: Option<&str>) -> Self {
        let url = DynamicObject::url_path(resource, namespace);
        KubeSource {
            client,
            request: kube::core::Request::new(url),
            metadata_only: false,
            max_list_bytes: 256 << 20,
            last_list_bytes: Arc::new(AtomicUsize::new(0)),
            shard_selector: None,
        }
    }

    /// A source for a k8s-openapi type, e.g. `Pod`.
    pub fn for_type<K>(client: kube::Client, namespace: Option<&str>) -> Self
    where
        K: Resource<DynamicType = ()>,
    {
        Self::new(client, &ApiResource::erase::<K>(&()), namespace)
    }

    /// Requests `PartialObjectMetadata` instead of whole objects.
    #[must_use]
    pub fn metadata_only(mut self, yes: bool) -> Self {
        self.metadata_only = yes;
        self
    }

    /// The largest LIST page body accepted (default 256 MiB).
    #[must_use]
    pub fn max_list_bytes(mut self, limit: usize) -> Self {
        self.max_list_bytes = limit;
        self
    }

    /// Sends `shardSelector=<selector>` on every LIST and WATCH, so the
    /// server returns only the selector's slice of the collection (KEP-5866).
    /// A server without the `ShardedListAndWatch` gate ignores the parameter
    /// and sends everything: ask [`KubeSource::supports_shard_selector`] first.
    /// Every LIST page must then say it is a slice (`metadata.shardInfo`);
    /// one that does not is refused with [`SourceError::ShardSelectorIgnored`]
    /// (the watcher reports it and retries after backoff), so a replica never
    /// caches the whole collection because the server lost the gate. A
    /// streaming list (`sendInitialEvents`) has no list metadata to check.
    #[must_use]
    pub fn shard_selector(self, selector: &ShardSelector) -> Self {
        self.shard_selector_expression(selector.expression())
    }

    /// As [`KubeSource::shard_selector`], with the expression as written
    /// (for example `shardRange(object.metadata.uid, '0x…', '0x…')`).
    #[must_use]
    pub fn shard_selector_expression(mut self, expression: impl Into<String>) -> Self {
        self.shard_selector = Some(expression.into());
        self
    }

    /// Whether the server filters by this source's shard selector (or, without
    /// one, by any): one LIST with `limit=1` and the selector (the whole hash
    /// space of `object.metadata.uid` when none is set), answered with
    /// `metadata.shardInfo` exactly when the server applied it. A v1.36 server
    /// with the `ShardedListAndWatch` gate sets `shardInfo` on every sharded
    /// list (k8s.io/apiserver/pkg/storage/selection_predicate.go
    /// `SetShardInfoOnList`); with the gate off, or an older server, the
    /// parameter is ignored and the list has no `shardInfo`.
    ///
    /// # Errors
    /// The LIST's [`SourceError`], such as the 500 `invalid shard selector: …`
    /// a server with the gate answers to a selector it cannot parse.
    pub async fn supports_shard_selector(&self) -> Result<bool, SourceError> {
        #[derive(serde::Deserialize)]
        struct List {
            metadata: ListMeta,
        }
        #[derive(serde::Deserialize)]
        struct ListMeta {
            #[serde(rename = "shardInfo")]
            shard_info: Option<serde::de::IgnoredAny>,
        }
        let probe = match &self.shard_selector {
            Some(s) => s.clone(),
            None => ShardSelector::new(ShardField::Uid, vec![ShardRange::ALL])
                .map(|s| s.expression())
                .unwrap_or_default(),
        };
        let req = self.request.list(&ListParams::default().limit(1)).map_err(build_error)?;
        let req = with_shard_selector(req, Some(&probe))?;
        let body = self.send(req).await?.into_body().collect().await;
        let body = body.map_err(|e| SourceError::Transport(Box::new(e)))?.to_bytes();
        let list: List = serde_json::from_slice(&body).map_err(|e| SourceError::Transport(Box::new(e)))?;
        Ok(list.metadata.shard_info.is_some())
    }

    async fn send(&self, req: http::Request<Vec<u8>>) -> Result<http::Response<kube::client::Body>, SourceError> {
        let resp = self
            .client
            .send(req.map(kube::client::Body::from))
            .await
            .map_err(|e| SourceError::Transport(Box::new(e)))?;
        let code = resp.status();
        if code.is_success() {
            return Ok(resp);
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(SourceError::from_status_body(code.as_u16(), &body))
    }
}

fn build_error(e: kube::core::request::Error) -> SourceError {
    SourceError::Transport(Box::new(e))
}

/// Whether a list body's metadata carries `shardInfo`. The server writes
/// `metadata` before `items`, so only the bytes before the first `"items":` are
/// searched (an item's own fields cannot fake it).
fn has_shard_info(body: &[u8]) -> bool {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let head = find(body, br#""items":"#).map_or(body, |at| &body[..at]);
    find(head, br#""shardInfo":"#).is_some()
}

/// Adds `shardSelector` to a request's query.
fn with_shard_selector(mut req: http::Request<Vec<u8>>, selector: Option<&str>) -> Result<http::Request<Vec<u8>>, SourceError> {
    let Some(selector) = selector else { return Ok(req) };
    let mut encoded = String::with_capacity(selector.len() * 2);
    for b in selector.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let uri = req.uri();
    let path_and_query = match uri.query() {
        Some(q) if !q.is_empty() => format!("{}?{q}&shardSelector={encoded}", uri.path()),
        _ => format!("{}?shardSelector={encoded}", uri.path()),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().map_err(|e: http::uri::InvalidUri| SourceError::Transport(Box::new(e)))?);
    *req.uri_mut() = http::Uri::from_parts(parts).map_err(|e| SourceError::Transport(Box::new(e)))?;
    Ok(req)
}

impl Source for KubeSource {
    async fn list(&self, params: &ListParams) -> Result<Bytes, SourceError> {
        let req = if self.metadata_only {
            self.request.list_metadata(params)
        } else {
            self.request.list(params)
        }
        .map_err(build_error)?;
        let req = with_shard_selector(req, self.shard_selector.as_deref())?;
        let mut body = self.send(req).await?.into_body();
        // A page is ~2.5 MiB at the default 500 items; growing a buffer to that
        // by doubling allocates and frees twice the page, which the allocator
        // then keeps resident after the sync (measured: ~6 MiB of RSS for 10k
        // pods). Allocate once: the Content-Length, else the last page's size
        // (pages of one list are alike) plus an eighth, at most 64 MiB.
        let expected = match usize::try_from(http_body::Body::size_hint(&body).lower()).unwrap_or(usize::MAX) {
            0 => {
                let last = self.last_list_bytes.load(Relaxed);
                last.saturating_add(last / 8).min(64 << 20)
            }
            n => n,
        };
        let mut buf = bytes::BytesMut::with_capacity(expected.min(self.max_list_bytes));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| SourceError::Transport(Box::new(e)))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > self.max_list_bytes {
                    return Err(SourceError::TooLarge { limit: self.max_list_bytes });
                }
                buf.extend_from_slice(&data);
            }
        }
        self.last_list_bytes.store(buf.len(), Relaxed);
        if let Some(selector) = &self.shard_selector
            && !has_shard_info(&buf)
        {
            return Err(SourceError::ShardSelectorIgnored { selector: selector.clone() });
        }
        Ok(buf.freeze())
    }

    async fn watch(&self, params: &WatchParams, resource_version: &str) -> Result<BodyStream, SourceError> {
        let req = if self.metadata_only {
            self.request.watch_metadata(params, resource_version)
        } else {
            self.request.watch(params, resource_version)
        }
        .map_err(build_error)?;
        let req = with_shard_selector(req, self.shard_selector.as_deref())?;
        let body = self.send(req).await?.into_body();
        let stream = body.into_data_stream().map(|r| r.map_err(|e| SourceError::Transport(Box::new(e))));
        Ok(Box::pin(stream))
    }

    async fn list_shard(&self, params: &ListParams, selector: &ShardSelector) -> Result<Bytes, SourceError> {
        self.clone().shard_selector(selector).list(params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bodies_become_api_errors_with_their_reason() {
        let body = include_bytes!("../../../fixtures/real-apiserver/status-410-continue.json");
        let e = SourceError::from_status_body(410, body);
        assert!(e.is_expired());
        match e {
            SourceError::Api { reason, .. } => assert_eq!(reason, "Expired"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_shard_selector_is_appended_to_the_query_percent_encoded() {
        let req = kube::core::Request::new("/api/v1/pods").list(&ListParams::default().limit(5)).expect("request");
        let sel = "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')";
        let req = with_shard_selector(req, Some(sel)).expect("uri");
        let query = req.uri().query().expect("a query");
        assert!(query.contains("limit=5&"), "{query}");
        assert!(
            query.ends_with("&shardSelector=shardRange%28object.metadata.uid%2C%20%270x0000000000000000%27%2C%20%270x8000000000000000%27%29"),
            "{query}"
        );
        let bare = http::Request::get("/api/v1/pods").body(Vec::new()).expect("request");
        let bare = with_shard_selector(bare, Some("x")).expect("uri");
        assert_eq!(bare.uri().to_string(), "/api/v1/pods?shardSelector=x");
    }

    #[test]
    fn shard_info_counts_only_in_the_list_metadata() {
        assert!(has_shard_info(br#"{"kind":"PodList","metadata":{"resourceVersion":"5","shardInfo":{"selector":"x"}},"items":[]}"#));
        assert!(!has_shard_info(br#"{"kind":"PodList","metadata":{"resourceVersion":"5"},"items":[{"metadata":{"annotations":{"a":"\"shardInfo\":"}}}]}"#));
        assert!(!has_shard_info(br#"{"kind":"PodList","metadata":{"resourceVersion":"5"},"items":[{"shardInfo":{}}]}"#));
    }

    #[test]
    fn non_status_bodies_fall_back_to_the_http_reason() {
        let e = SourceError::from_status_body(503, b"upstream connect error");
        match e {
            SourceError::Api { code, reason, message } => {
                assert_eq!((code, reason.as_str()), (503, "Service Unavailable"));
                assert_eq!(message, "upstream connect error");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
