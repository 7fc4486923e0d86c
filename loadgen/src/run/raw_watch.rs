//! The floor under a run's event latency: the run's pods watched on the raw
//! wire, in the writer's process, while the writes run.
//!
//! Every engine's event latency includes the API server's work per write, the
//! loopback (or network) hops, and the scheduling of three busy processes on
//! the machine's cores. A watch of the same pods that only finds the
//! [`SENT_AT`](super::recorder::SENT_AT) stamp in each event's bytes (no
//! decode, no store, no handler) pays all of that and nothing of an engine's,
//! so its latency is the floor both engines stand on. As for the engine, only
//! events at a resourceVersion one of the run's own writes was answered with
//! are timed: another writer's update keeps the pod's last stamp. It runs in the writer's
//! process (a `loadgen write` child by default), so the engine's process holds
//! nothing of it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, StreamExt};
use kube::api::{ListParams, WatchParams};
use kube::core::Request;

use super::error::RunError;
use super::recorder::{Recorder, SENT_AT, now_nanos};
use crate::report::Percentiles;

/// How long [`RawWatch::finish`] waits for the last writes' events.
const DRAIN: Duration = Duration::from_secs(3);

/// A raw watch of the run's pods, timing each stamped ADDED or MODIFIED event
/// from the write's stamp to the moment its line was read.
pub struct RawWatch {
    recorder: Arc<Recorder>,
    task: tokio::task::JoinHandle<()>,
}

/// The stamp in one watch line, if it is an ADDED or MODIFIED event carrying
/// one. `key` is `"<SENT_AT>":"`, as the API server writes it (compact JSON).
fn stamp_of<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    if !(line.starts_with(r#"{"type":"ADDED""#) || line.starts_with(r#"{"type":"MODIFIED""#)) {
        return None;
    }
    string_after(line, key)
}

/// The string value that follows `key` (`"name":"`) in `line`.
fn string_after<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    let at = line.find(key)? + key.len();
    let rest = &line[at..];
    let end = rest.find('"')?;
    Some(&rest[..end])
}

/// The event object's resourceVersion: the first `resourceVersion` of the
/// line is its metadata's (no field before metadata carries one).
fn resource_version_of(line: &str) -> &str {
    string_after(line, r#""resourceVersion":""#).unwrap_or("")
}

/// Lists the pods `selector` picks (one item) for the current resourceVersion
/// and opens a watch there: no initial events.
async fn open_stream(
    client: &kube::Client,
    selector: &str,
) -> Result<impl futures::AsyncBufRead + use<>, RunError> {
    let pods = Request::new("/api/v1/pods");
    let list = pods
        .list(&ListParams::default().labels(selector).limit(1))
        .map_err(|e| RunError::Target(format!("cannot build the raw watch's list: {e}")))?;
    let listed: k8s_openapi::List<k8s_openapi::api::core::v1::Pod> = client
        .request(list)
        .await
        .map_err(|source| RunError::api("listing for the raw watch", source))?;
    let rv = listed.metadata.resource_version.unwrap_or_default();
    // The API server ends a watch after its timeout; the loop in `open` reopens it.
    let watch = pods
        .watch(&WatchParams::default().labels(selector).timeout(290), &rv)
        .map_err(|e| RunError::Target(format!("cannot build the raw watch: {e}")))?;
    client
        .request_stream(watch)
        .await
        .map_err(|source| RunError::api("opening the raw watch", source))
}

impl RawWatch {
    /// Opens the watch at the current resourceVersion of the pods `selector`
    /// picks (so no initial events); [`RawWatch::start`] starts the timing.
    ///
    /// # Errors
    /// [`RunError::Api`] when the list or the watch request fails.
    pub async fn open(client: &kube::Client, selector: &str) -> Result<RawWatch, RunError> {
        let first = open_stream(client, selector).await?;
        // Nothing is timed before `start`.
        let recorder = Arc::new(Recorder::default());
        let task = {
            let (recorder, client, selector) = (Arc::clone(&recorder), client.clone(), selector.to_owned());
            tokio::spawn(async move {
                let key = format!("\"{SENT_AT}\":\"");
                let mut stream = Some(first);
                loop {
                    let lines = match stream.take() {
                        Some(s) => s,
                        // Events between two watches are not timed; none are owed.
                        None => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            match open_stream(&client, &selector).await {
                                Ok(s) => s,
                                Err(e) => {
                                    tracing::warn!("raw watch ended: {e}");
                                    return;
                                }
                            }
                        }
                    };
                    let mut lines = lines.lines();
                    while let Some(Ok(line)) = lines.next().await {
                        if let Some(stamp) = stamp_of(&line, &key) {
                            recorder.observe(Some(stamp), resource_version_of(&line), String::new);
                        }
                    }
                }
            })
        };
        Ok(RawWatch { recorder, task })
    }

    /// Times stamps sent from now on (the write phase's start).
    pub fn start(&self) {
        self.recorder.start_at(now_nanos());
    }

    /// Waits (up to a few seconds) until the events of the writes answered
    /// with the resourceVersions `own` were read, then stops; their latencies
    /// in milliseconds (other writers' events are not timed).
    pub async fn finish(self, own: &HashSet<u64>) -> Percentiles {
        let deadline = Instant::now() + DRAIN;
        let mine = |recorder: &Recorder| {
            let mut h = super::reads::histogram();
            for seen in recorder.log().iter().filter(|s| own.contains(&s.rv)) {
                if let Some(us) = seen.latency_us {
                    let _ = h.record(us);
                }
            }
            h
        };
        while (mine(&self.recorder).len() as usize) < own.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.task.abort();
        Percentiles::from_histogram(&mine(&self.recorder), 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_from_added_and_modified_lines_only() {
        let key = format!("\"{SENT_AT}\":\"");
        let stamp_of = |l: &str| stamp_of(l, &key).map(str::to_owned);
        let line = |ty: &str, stamp: &str| {
            format!(r#"{{"type":"{ty}","object":{{"metadata":{{"annotations":{{"{SENT_AT}":"{stamp}"}},"name":"p"}}}}}}"#)
        };
        assert_eq!(stamp_of(&line("MODIFIED", "123")).as_deref(), Some("123"));
        assert_eq!(stamp_of(&line("ADDED", "7")).as_deref(), Some("7"));
        assert_eq!(stamp_of(&line("DELETED", "7")), None);
        assert_eq!(stamp_of(&line("BOOKMARK", "7")), None);
        assert_eq!(stamp_of(r#"{"type":"MODIFIED","object":{"metadata":{}}}"#), None);
        let line = r#"{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"p","resourceVersion":"42","uid":"u"}}}"#;
        assert_eq!(resource_version_of(line), "42");
        assert_eq!(resource_version_of(r#"{"type":"BOOKMARK"}"#), "");
    }
}
