//! A minimal raw HTTP/1.1 client for tests and benches: exact bytes in and out,
//! no Kubernetes semantics in between (kube-client hides status bodies and frames).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::{Result, SimError};

/// One keep-alive HTTP/1.1 connection to the simulator.
pub struct RawClient {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

/// A complete response.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl RawResponse {
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

fn http_err(addr: SocketAddr, what: impl std::fmt::Display) -> SimError {
    SimError::Http {
        addr,
        what: what.to_string(),
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| http_err(addr, e))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http_err(addr, e))?;
    tokio::spawn(async move {
        // The connection ends when the server closes it or the sender is dropped.
        let _ = conn.await;
    });
    Ok(sender)
}

fn build(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body)).map_err(|e| http_err(addr, e))
}

impl RawClient {
    /// Opens a connection.
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        Ok(RawClient {
            addr,
            sender: connect(addr).await?,
        })
    }

    /// Sends one request and reads the whole response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<RawResponse> {
        let req = build(self.addr, method, path, headers, body.into())?;
        if self.sender.ready().await.is_err() {
            self.sender = connect(self.addr).await?;
        }
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| http_err(self.addr, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| http_err(self.addr, e))?
            .to_bytes();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// `GET path` with no extra headers.
    pub async fn get(&mut self, path: &str) -> Result<RawResponse> {
        self.request("GET", path, &[], Bytes::new()).await
    }

    /// Opens a streaming request (a WATCH) on its own connection.
    pub async fn stream(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<RawStream> {
        let mut sender = connect(addr).await?;
        let req = build(addr, "GET", path, headers, Bytes::new())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| http_err(addr, e))?;
        Ok(RawStream {
            status: resp.status().as_u16(),
            body: resp.into_body(),
            buf: BytesMut::new(),
            _sender: sender,
        })
    }
}

/// A streaming response read line by line.
pub struct RawStream {
    /// HTTP status code.
    pub status: u16,
    body: Incoming,
    buf: BytesMut,
    _sender: SendRequest<Full<Bytes>>,
}

/// What [`RawStream::next_line`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// One line, without its newline.
    Line(Bytes),
    /// The stream ended cleanly (trailing bytes without a newline are dropped).
    End,
    /// The connection failed (e.g. the server dropped it).
    Broken(String),
    /// Nothing arrived within the timeout.
    Timeout,
}

impl RawStream {
    /// Waits up to `timeout` for the next complete line.
    pub async fn next_line(&mut self, timeout: Duration) -> Line {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                return Line::Line(line.freeze().slice(..pos));
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return Line::Timeout,
                Ok(None) => return Line::End,
                Ok(Some(Err(e))) => return Line::Broken(e.to_string()),
                Ok(Some(Ok(f))) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Reads lines until `pred` holds for one (returned), the stream ends, or the timeout.
    pub async fn until(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_line(left).await {
                Line::Line(l) => {
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&l)
                        && pred(&v)
                    {
                        return Some(v);
                    }
                }
                _ => return None,
            }
        }
    }
}
