//! The HTTP/1.1 front end: accept loop, routing, verbs, discovery and the admin API.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::discovery;
use super::faults::{Counters, FaultRequest, Faults};
use super::selector::{FieldSelector, LabelSelector, ShardSelector};
use super::status::ApiError;
use super::store::{
    ApplyRequest, DeleteOptions, DeleteOutcome, ListQuery, PatchKind, ResourceId, Store,
    returns_deleted_object,
};
use super::watch;

/// Request bodies larger than this answer 413 (the real server's limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Settings fixed at start.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub bookmark_interval: Duration,
}

/// Everything request handlers share.
pub(crate) struct Shared {
    pub store: Store,
    pub faults: Faults,
    pub counters: Counters,
    pub config: Config,
    /// The `ShardedListAndWatch` feature gate (KEP-5866 `shardSelector`).
    pub sharded_list_and_watch: std::sync::atomic::AtomicBool,
}

/// A response body: one buffer, or a stream of watch chunks.
pub(crate) enum SimBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            SimBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, SimBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            SimBody::Full(None) => SizeHint::with_exact(0),
            SimBody::Stream(_) => SizeHint::default(),
        }
    }
}

fn respond(code: StatusCode, body: impl Into<Bytes>) -> Response<SimBody> {
    let mut r = Response::new(SimBody::Full(Some(body.into())));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response<SimBody> {
    let mut r = respond(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.to_bytes(),
    );
    // k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/writers.go
    // `ErrorNegotiated`: a Status with `retryAfterSeconds` sets Retry-After.
    if let Some(secs) = e
        .details
        .as_ref()
        .and_then(|d| d.get("retryAfterSeconds"))
        .and_then(Value::as_u64)
        .filter(|s| *s > 0)
    {
        r.headers_mut().insert(header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    r
}

/// Accepts connections until `shutdown` fires. Each connection is dropped at once
/// when the current restart generation is cancelled.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            // Accept errors (e.g. too many open files) are transient; back off briefly.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        shared.counters.connections.fetch_add(1, Relaxed);
        let generation = shared.faults.current_generation();
        let conn_cancel = generation.child_token();
        let shutdown = shutdown.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc_shared = shared.clone();
            let svc_cancel = conn_cancel.clone();
            let svc = service_fn(move |req| {
                let shared = svc_shared.clone();
                let cancel = svc_cancel.clone();
                async move { Ok::<_, Infallible>(handle(shared, req, cancel).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                () = conn_cancel.cancelled() => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// Decodes `application/x-www-form-urlencoded` query components.
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parsed query parameters (last value wins).
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Query(
            q.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (url_decode(k), url_decode(v))
                })
                .collect(),
        )
    }
    /// The last value of parameter `k`.
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    /// A boolean parameter the way the real server reads one (`1`, `true`, `True` or empty).
    pub(crate) fn flag(&self, k: &str) -> Option<bool> {
        self.get(k).map(|v| matches!(v, "1" | "true" | "True" | ""))
    }
}

/// A routed API path.
pub(crate) struct Target {
    pub(crate) res: ResourceId,
    pub(crate) def: Arc<super::resource::ResourceDef>,
    /// Empty for a cluster-scoped path or an all-namespaces list.
    pub(crate) namespace: String,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

enum Route {
    Api(Target),
    Discovery(Value),
    Admin(String),
    NotFound,
}

fn route(shared: &Shared, path: &str) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["_sim", rest @ ..] => return Route::Admin(rest.join("/")),
        ["version"] => {
            return Route::Discovery(json!({
                "major": "1", "minor": "36", "gitVersion": "v1.36.2-kcache-sim", "gitCommit": "", "gitTreeState": "clean",
                "buildDate": "2026-11-23T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"
            }));
        }
        ["api"] => {
            return Route::Discovery(json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}]
            }));
        }
        ["apis"] => return Route::Discovery(discovery::api_group_list(shared)),
        ["api", "v1"] => return Route::Discovery(discovery::resource_list(shared, "", "v1")),
        ["apis", g, v] => return Route::Discovery(discovery::resource_list(shared, g, v)),
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::NotFound,
    };
    let lookup = |plural: &str| shared.store.lookup(group, version, plural);
    // `namespaces/{ns}/{plural}/...` is namespaced when {plural} is a namespaced
    // resource; otherwise `namespaces/{name}/{sub}` addresses a Namespace.
    let (namespace, plural, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if lookup(plural).is_some_and(|(_, d)| d.namespaced) =>
        {
            (*ns, *plural, tail)
        }
        [plural, tail @ ..] => ("", *plural, tail),
        [] => return Route::NotFound,
    };
    let Some((res, def)) = lookup(plural) else {
        return Route::NotFound;
    };
    let (name, subresource) = match tail {
        [] => (None, None),
        [name] => (Some((*name).to_owned()), None),
        [name, sub] => (Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return Route::NotFound,
    };
    if subresource.as_deref().is_some_and(|s| s != "status") {
        return Route::NotFound;
    }
    if !def.namespaced && !namespace.is_empty() {
        return Route::NotFound;
    }
    Route::Api(Target {
        res,
        def,
        namespace: namespace.to_owned(),
        name,
        subresource,
    })
}

fn accept_is_metadata(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("as=PartialObjectMetadata") && v.contains("g=meta.k8s.io"))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > MAX_BODY
    {
        return Err(ApiError::too_large(MAX_BODY));
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large(MAX_BODY))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "error reading the request body: {e}"
        ))),
    }
}

fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })
}

/// `DeleteOptions` from the query, overlaid by those of the body (the delete
/// handler decodes both, the body last).
fn delete_options(query: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Preconditions {
        uid: Option<String>,
        resource_version: Option<String>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        grace_period_seconds: Option<i64>,
        preconditions: Option<Preconditions>,
        propagation_policy: Option<String>,
        orphan_dependents: Option<bool>,
    }
    let mut opts = DeleteOptions {
        grace_period_seconds: match query.get("gracePeriodSeconds").filter(|g| !g.is_empty()) {
            Some(g) => Some(g.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid gracePeriodSeconds: {g:?}: not an integer"))
            })?),
            None => None,
        },
        propagation_policy: query.get("propagationPolicy").map(str::to_owned),
        orphan_dependents: query.flag("orphanDependents"),
        ..DeleteOptions::default()
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(opts);
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| {
        let go = serde_json::from_slice::<Value>(body).ok().and_then(|v| go_type_error(&v));
        ApiError::bad_request(go.unwrap_or_else(|| {
            format!("the body of the request could not be decoded as DeleteOptions: {e}")
        }))
    })?;
    if b.grace_period_seconds.is_some() {
        opts.grace_period_seconds = b.grace_period_seconds;
    }
    if b.propagation_policy.is_some() {
        opts.propagation_policy = b.propagation_policy;
    }
    if b.orphan_dependents.is_some() {
        opts.orphan_dependents = b.orphan_dependents;
    }
    if let Some(p) = b.preconditions {
        opts.uid = p.uid;
        opts.resource_version = p.resource_version;
    }
    Ok(opts)
}

/// The message Go's encoding/json gives when a `DeleteOptions` field has a
/// JSON type its Go field cannot take, e.g. `json: cannot unmarshal string into
/// Go struct field DeleteOptions.gracePeriodSeconds of type int64` (what
/// kube-apiserver v1.36 answers, with 400 BadRequest).
fn go_type_error(body: &Value) -> Option<String> {
    fn json_kind(v: &Value) -> String {
        match v {
            Value::String(_) => "string".into(),
            Value::Number(n) => format!("number {n}"),
            Value::Bool(_) => "bool".into(),
            Value::Array(_) => "array".into(),
            Value::Object(_) => "object".into(),
            Value::Null => "null".into(),
        }
    }
    fn fits(v: &Value, go: &str) -> bool {
        match go {
            "int64" => v.is_i64() || v.is_null(),
            "bool" => v.is_boolean() || v.is_null(),
            "[]string" => v.is_null() || v.as_array().is_some_and(|a| a.iter().all(|x| x.is_string() || x.is_null())),
            "v1.Preconditions" => v.is_object() || v.is_null(),
            _ => v.is_string() || v.is_null(),
        }
    }
    const FIELDS: [(&str, &str); 5] = [
        ("gracePeriodSeconds", "int64"),
        ("orphanDependents", "bool"),
        ("propagationPolicy", "v1.DeletionPropagation"),
        ("dryRun", "[]string"),
        ("preconditions", "v1.Preconditions"),
    ];
    let obj = body.as_object()?;
    for (field, go) in FIELDS {
        if let Some(v) = obj.get(field)
            && !fits(v, go)
        {
            // Go names a number by its text only when it is a number of the wrong kind.
            let kind = if go == "int64" { json_kind(v) } else { json_kind(v).split(' ').next()?.to_owned() };
            return Some(format!("json: cannot unmarshal {kind} into Go struct field DeleteOptions.{field} of type {go}"));
        }
    }
    let pre = obj.get("preconditions")?.as_object()?;
    for (field, go) in [("uid", "types.UID"), ("resourceVersion", "string")] {
        if let Some(v) = pre.get(field)
            && !v.is_string()
            && !v.is_null()
        {
            let kind = json_kind(v);
            let kind = kind.split(' ').next()?;
            return Some(format!("json: cannot unmarshal {kind} into Go struct field Preconditions.preconditions.{field} of type {go}"));
        }
    }
    None
}

/// The answer to a DELETE: the object, or for kinds whose registry does not
/// return it a `Status` of Success (store.go `finalizeDelete`); 202 only when a
/// deletion that has not finished was asked for with `orphanDependents=false`
/// (k8s.io/apiserver/pkg/endpoints/handlers/delete.go).
fn delete_response(target: &Target, opts: &DeleteOptions, outcome: &DeleteOutcome) -> Response<SimBody> {
    match outcome {
        DeleteOutcome::Removed(o) if !returns_deleted_object(&target.def) => {
            let uid = o.to_value().pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
            let mut details = serde_json::Map::new();
            details.insert("name".into(), Value::from(o.name.clone()));
            if !target.def.group.is_empty() {
                details.insert("group".into(), Value::from(target.def.group.clone()));
            }
            details.insert("kind".into(), Value::from(target.def.plural.clone()));
            details.insert("uid".into(), uid);
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details});
            respond(StatusCode::OK, serde_json::to_vec(&status).unwrap_or_default())
        }
        DeleteOutcome::Removed(o) => respond(StatusCode::OK, o.body.clone()),
        DeleteOutcome::Marked(o) => {
            let code = if opts.orphan_dependents == Some(false) {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            respond(code, o.body.clone())
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    cancel: CancellationToken,
) -> Response<SimBody> {
    let latency = shared.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = match dispatch(&shared, req, cancel).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    if !resp.status().is_success() {
        shared.counters.errors.fetch_add(1, Relaxed);
    }
    resp
}

async fn dispatch(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    cancel: CancellationToken,
) -> Result<Response<SimBody>, ApiError> {
    let path = req.uri().path().to_owned();
    let query = Query::parse(req.uri().query());
    let c = &shared.counters;
    let target = match route(shared, &path) {
        Route::Api(t) => t,
        Route::Discovery(v) => {
            c.other.fetch_add(1, Relaxed);
            return if req.method() == Method::GET {
                Ok(respond(
                    StatusCode::OK,
                    serde_json::to_vec(&v).unwrap_or_default(),
                ))
            } else {
                Err(ApiError::method_not_allowed())
            };
        }
        Route::Admin(what) => {
            c.other.fetch_add(1, Relaxed);
            return admin(shared, req, &what).await;
        }
        Route::NotFound => {
            c.other.fetch_add(1, Relaxed);
            return Err(ApiError::no_route());
        }
    };
    let metadata_only = accept_is_metadata(req.headers());
    let status_only = target.subresource.is_some();
    let method = req.method().clone();
    match (method, target.name.clone()) {
        (Method::GET, None) if query.flag("watch").unwrap_or(false) => {
            c.watch.fetch_add(1, Relaxed);
            watch::start(shared, &target, &query, metadata_only, cancel)
        }
        (Method::GET, None) => {
            c.list.fetch_add(1, Relaxed);
            let q = ListQuery {
                namespace: (!target.namespace.is_empty()).then(|| target.namespace.clone()),
                labels: LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?,
                fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))?,
                limit: match query.get("limit").filter(|l| !l.is_empty()) {
                    Some(l) => Some(
                        l.parse::<usize>()
                            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?,
                    ),
                    None => None,
                },
                continue_token: query.get("continue").map(str::to_owned),
                resource_version: query.get("resourceVersion").map(str::to_owned),
                resource_version_match: query.get("resourceVersionMatch").map(str::to_owned),
                metadata_only,
                shards: ShardSelector::from_param(shared.sharded_list_and_watch.load(Relaxed), query.get("shardSelector"))?,
            };
            let body = shared.store.serve_list(target.res, &q).await?;
            Ok(respond(StatusCode::OK, body))
        }
        (Method::GET, Some(name)) => {
            c.get.fetch_add(1, Relaxed);
            let o = shared
                .store
                .get(target.res, &target.namespace, &name)
                .ok_or_else(|| ApiError::not_found(&target.def, &name))?;
            if metadata_only {
                let mut out = Vec::new();
                o.write_partial(&mut out);
                Ok(respond(StatusCode::OK, out))
            } else {
                Ok(respond(StatusCode::OK, o.body.clone()))
            }
        }
        (Method::POST, None) => {
            c.create.fetch_add(1, Relaxed);
            let ct = content_type(req.headers());
            if !ct.is_empty() && !ct.starts_with("application/json") && !ct.starts_with("*/*") {
                return Err(ApiError::unsupported_body(&ct));
            }
            let body = read_body(req).await?;
            let v = parse_json_body(&body)?;
            let o = shared.store.create(target.res, &target.namespace, v)?;
            Ok(respond(StatusCode::CREATED, o.body.clone()))
        }
        (Method::PUT, Some(name)) => {
            c.update.fetch_add(1, Relaxed);
            let ct = content_type(req.headers());
            if !ct.is_empty() && !ct.starts_with("application/json") && !ct.starts_with("*/*") {
                return Err(ApiError::unsupported_body(&ct));
            }
            let body = read_body(req).await?;
            let v = parse_json_body(&body)?;
            let o = shared
                .store
                .update(target.res, &target.namespace, &name, v, status_only)?;
            Ok(respond(StatusCode::OK, o.body.clone()))
        }
        (Method::PATCH, Some(name)) => {
            c.patch.fetch_add(1, Relaxed);
            let ct = content_type(req.headers());
            if ct.split(';').next().unwrap_or("").trim() == "application/apply-patch+yaml" {
                let body = read_body(req).await?;
                let apply = ApplyRequest {
                    body: &body,
                    manager: query.get("fieldManager"),
                    force: query.flag("force").unwrap_or(false),
                    status_only,
                };
                let (o, created) = shared.store.apply(target.res, &target.namespace, &name, &apply)?;
                let code = if created { StatusCode::CREATED } else { StatusCode::OK };
                return Ok(respond(code, o.body.clone()));
            }
            let kind = match ct.split(';').next().unwrap_or("").trim() {
                "application/merge-patch+json" => PatchKind::Merge,
                "application/json-patch+json" => PatchKind::Json,
                _ => return Err(ApiError::unsupported_patch()),
            };
            let body = read_body(req).await?;
            let o = shared.store.patch(
                target.res,
                &target.namespace,
                &name,
                kind,
                &body,
                status_only,
            )?;
            Ok(respond(StatusCode::OK, o.body.clone()))
        }
        (Method::DELETE, Some(name)) if !status_only => {
            c.delete.fetch_add(1, Relaxed);
            let body = read_body(req).await?;
            let opts = delete_options(&query, &body)?;
            let outcome = shared
                .store
                .delete(target.res, &target.namespace, &name, &opts)?;
            Ok(delete_response(&target, &opts, &outcome))
        }
        (Method::DELETE, None) if !status_only => {
            c.delete.fetch_add(1, Relaxed);
            if target.def.namespaced && target.namespace.is_empty() {
                return Err(ApiError::method_not_allowed());
            }
            let body = read_body(req).await?;
            let opts = delete_options(&query, &body)?;
            opts.validate()?;
            let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
            let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))?;
            let q = ListQuery {
                namespace: (!target.namespace.is_empty()).then(|| target.namespace.clone()),
                labels: labels.clone(),
                fields: fields.clone(),
                limit: None,
                continue_token: None,
                resource_version: None,
                resource_version_match: None,
                metadata_only: false,
                // DeleteCollection lists through the registry's List, shard selector included.
                shards: ShardSelector::from_param(shared.sharded_list_and_watch.load(Relaxed), query.get("shardSelector"))?,
            };
            // The registry's DeleteCollection answers the list it was about to
            // delete, then deletes each item by the ordinary rules.
            let listed = shared.store.list(target.res, &q)?;
            let ns = (!target.namespace.is_empty()).then_some(target.namespace.as_str());
            for o in shared.store.snapshot(target.res, ns) {
                if !o.matches(&labels, &fields) || q.shards.as_ref().is_some_and(|s| !o.in_shard(s)) {
                    continue;
                }
                match shared.store.delete(target.res, &o.namespace, &o.name, &opts) {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(respond(StatusCode::OK, listed))
        }
        _ => {
            c.other.fetch_add(1, Relaxed);
            Err(ApiError::method_not_allowed())
        }
    }
}

async fn admin(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    what: &str,
) -> Result<Response<SimBody>, ApiError> {
    match (req.method().clone(), what) {
        (Method::GET, "stats") => {}
        (Method::POST, "faults") => {
            let body = read_body(req).await?;
            let f: FaultRequest = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("invalid fault request: {e}")))?;
            apply_faults(shared, &f);
        }
        (_, "stats" | "faults") => return Err(ApiError::method_not_allowed()),
        _ => return Err(ApiError::no_route()),
    }
    let stats = shared.counters.snapshot(
        shared.store.resource_version(),
        shared.store.total_objects() as u64,
    );
    Ok(respond(
        StatusCode::OK,
        serde_json::to_vec(&stats).unwrap_or_default(),
    ))
}

/// Applies a fault request (shared by the admin endpoint and the handle).
pub(crate) fn apply_faults(shared: &Shared, f: &FaultRequest) {
    if let Some(n) = f.close_watches_every {
        shared.faults.close_every.store(n, Relaxed);
    }
    if let Some(ms) = f.latency_ms {
        shared.faults.set_latency(Duration::from_millis(ms));
    }
    if f.expire_history {
        shared.store.expire_history();
    }
    if let Some(on) = f.expire_every_watch {
        shared.faults.expire_every_watch.store(on, Relaxed);
    }
    if f.inject_malformed_frame {
        shared.faults.malformed.send_modify(|g| *g += 1);
    }
    if f.restart {
        shared.counters.restarts.fetch_add(1, Relaxed);
        shared.faults.restart();
    }
}

#[cfg(test)]
mod tests {
    use super::url_decode;

    #[test]
    fn query_components_decode_like_forms() {
        assert_eq!(url_decode("app+in+%28a%2Cb%29"), "app in (a,b)");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz"), "%zz");
    }
}
