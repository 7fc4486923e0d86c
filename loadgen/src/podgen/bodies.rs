//! LIST and watch bodies around pods already serialised, as an API server sends them.

/// A `PodList` body holding `pods`, with list `metadata.resourceVersion` `resource_version`.
///
/// ```
/// let body = kcache_loadgen::podgen::list_body(&[b"{}".to_vec(), b"{}".to_vec()], "7");
/// assert_eq!(body, br#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{},{}]}"#);
/// ```
pub fn list_body(pods: &[Vec<u8>], resource_version: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(pods.iter().map(|p| p.len() + 1).sum::<usize>() + 128);
    out.extend_from_slice(br#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":""#);
    out.extend_from_slice(resource_version.as_bytes());
    out.extend_from_slice(br#""},"items":["#);
    for (i, p) in pods.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"]}");
    out
}

/// A watch body: one `{"type":event_type,"object":pod}` line per pod.
///
/// ```
/// let body = kcache_loadgen::podgen::watch_body(&[b"{}".to_vec()], "ADDED");
/// assert_eq!(body, b"{\"type\":\"ADDED\",\"object\":{}}\n");
/// ```
pub fn watch_body(pods: &[Vec<u8>], event_type: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pods {
        out.extend_from_slice(br#"{"type":""#);
        out.extend_from_slice(event_type.as_bytes());
        out.extend_from_slice(br#"","object":"#);
        out.extend_from_slice(p);
        out.extend_from_slice(b"}\n");
    }
    out
}
