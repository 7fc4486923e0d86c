//! Hostile bodies: the framer's size caps, `max_object_bytes` and the nesting
//! limit hold, and memory stays bounded while they are enforced.
//!
//! Memory is measured as the growth of the process's peak resident set
//! (`VmHWM` in `/proc/self/status`, reset through `/proc/self/clear_refs`)
//! over each scenario. The scenarios run one after another inside a single
//! test, and the tests of this file hold [`SERIAL`], so that no other test of
//! this binary allocates meanwhile (`cargo test` runs them on threads of one
//! process).

use bytes::Bytes;
use kcache::wire::{DEFAULT_MAX_FRAME_BYTES, DecodeError, Decoder, DecoderConfig, FrameError, Framer, WatchEvent};

/// Held by every test here: the memory measurements are process-wide.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const MIB: usize = 1 << 20;
const HUNDRED_MB: usize = 100_000_000;

fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB")
}

/// Runs `f` and returns how many bytes the peak RSS grew above the RSS before it.
fn peak_growth(f: impl FnOnce()) -> usize {
    // "5" resets the peak RSS to the current RSS (Linux 4.0+).
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    let before = status_kib("VmRSS:");
    f();
    let grew = status_kib("VmHWM:").saturating_sub(before) * 1024;
    eprintln!("peak RSS growth: {:.1} MiB", grew as f64 / MIB as f64);
    grew
}

/// A `{"metadata":{"name":"big"},"data":"xxx…"}` object of `total` bytes.
fn big_object(prefix: &[u8], total: usize, suffix: &[u8]) -> Vec<u8> {
    let head = br#"{"metadata":{"name":"big","namespace":"ns"},"data":""#;
    let mut v = Vec::with_capacity(total + prefix.len() + suffix.len());
    v.extend_from_slice(prefix);
    v.extend_from_slice(head);
    v.resize(prefix.len() + total - 2, b'x');
    v.extend_from_slice(b"\"}");
    v.extend_from_slice(suffix);
    v
}

fn hostile_watch_line_is_capped(limit: usize, bound: usize) {
    // 100 MB of one line, arriving in 64 KiB chunks that share one buffer (so
    // the input itself costs nothing), then a good event.
    let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
    let mut framer = Framer::watch_with_limit(limit);
    let mut errors = Vec::new();
    let grew = peak_growth(|| {
        for _ in 0..HUNDRED_MB / chunk.len() {
            framer.push(chunk.clone());
            while let Some(r) = framer.next_document() {
                errors.push(r);
            }
        }
    });
    assert_eq!(errors.len(), 1, "one TooLarge for the whole line");
    assert!(matches!(errors[0], Err(FrameError::TooLarge { limit: l, .. }) if l == limit), "{:?}", errors[0]);
    assert!(grew < bound, "framing a 100 MB line with a {limit}-byte cap grew the peak RSS by {grew} bytes");
    framer.push(Bytes::from_static(b"\n{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"after\"}}}\n"));
    let doc = framer.next_document().expect("the next line").expect("a good line");
    let ev = Decoder::default().decode_event(&doc).expect("decodes");
    assert!(matches!(ev, WatchEvent::Added(o) if o.name() == "after"));
}

fn hostile_list_body_is_capped() {
    // 300 MB LIST body against the 256 MiB default: chunks are dropped, not kept.
    let chunk = Bytes::from(vec![b' '; MIB]);
    let mut framer = Framer::document();
    let grew = peak_growth(|| {
        for _ in 0..300 {
            framer.push(chunk.clone());
        }
    });
    assert!(framer.is_poisoned());
    assert!(matches!(framer.finish(), Err(FrameError::TooLarge { size, .. }) if size == 300 * MIB));
    assert!(grew < 8 * MIB, "a poisoned 300 MB body grew the peak RSS by {grew} bytes");
}

fn hundred_mb_objects_are_refused_without_a_copy() {
    let mut dec = Decoder::default();
    let doc = big_object(b"", HUNDRED_MB, b"");
    let mut got = None;
    let grew = peak_growth(|| got = Some(dec.decode_object(&doc).map(|_| ())));
    assert_eq!(got, Some(Err(DecodeError::ObjectTooLarge { size: HUNDRED_MB, limit: 16 * MIB })));
    assert!(grew < 8 * MIB, "refusing a 100 MB object grew the peak RSS by {grew} bytes");
    drop(doc);

    let doc = big_object(br#"{"type":"MODIFIED","object":"#, HUNDRED_MB, b"}");
    let mut got = None;
    let grew = peak_growth(|| got = Some(dec.decode_event(&doc).map(|_| ())));
    assert_eq!(got, Some(Err(DecodeError::ObjectTooLarge { size: HUNDRED_MB, limit: 16 * MIB })));
    assert!(grew < 8 * MIB, "refusing a 100 MB event grew the peak RSS by {grew} bytes");
    drop(doc);

    let doc = big_object(br#"{"kind":"PodList","metadata":{"resourceVersion":"1"},"items":["#, HUNDRED_MB, b"]}");
    let mut got = None;
    let grew = peak_growth(|| got = Some(dec.decode_list(&doc).map(|_| ())));
    assert_eq!(got, Some(Err(DecodeError::ObjectTooLarge { size: HUNDRED_MB, limit: 16 * MIB })));
    assert!(grew < 8 * MIB, "refusing a 100 MB list item grew the peak RSS by {grew} bytes");
}

#[test]
fn hostile_sizes_are_refused_within_bounded_memory() {
    let _serial = serial();
    // Default 16 MiB watch cap: the partial line may grow to the cap (the
    // buffer doubles, so up to twice that while it is reallocated), never to 100 MB.
    hostile_watch_line_is_capped(DEFAULT_MAX_FRAME_BYTES, 3 * DEFAULT_MAX_FRAME_BYTES);
    hostile_watch_line_is_capped(MIB, 8 * MIB);
    hostile_list_body_is_capped();
    hundred_mb_objects_are_refused_without_a_copy();
}

#[test]
fn max_object_bytes_counts_the_stored_bytes() {
    let _serial = serial();
    let managed = format!(r#","managedFields":[{{"manager":"{}"}}]"#, "m".repeat(2000));
    let doc = format!(r#"{{"metadata":{{"name":"a"{managed}}},"spec":{{}}}}"#);
    let small = |strip| Decoder::new(DecoderConfig { max_object_bytes: 1000, strip_managed_fields: strip, ..DecoderConfig::default() });
    assert_eq!(
        small(false).decode_object(doc.as_bytes()).map(|_| ()),
        Err(DecodeError::ObjectTooLarge { size: doc.len(), limit: 1000 })
    );
    // Stripped, the object fits: the limit applies to what is stored.
    let obj = small(true).decode_object(doc.as_bytes()).expect("fits once managedFields are cut");
    assert_eq!(obj.json(), br#"{"metadata":{"name":"a"},"spec":{}}"#);
}

#[test]
fn a_million_levels_of_nesting_are_refused_at_the_limit() {
    let _serial = serial();
    const LEVELS: usize = 1_000_000;
    let arrays = "[".repeat(LEVELS) + &"]".repeat(LEVELS);
    let objects = r#"{"a":"#.repeat(LEVELS) + "1" + &"}".repeat(LEVELS);
    let in_metadata = format!(r#"{{"metadata":{{"name":"n","labels":{}}}}}"#, r#"{"a":"#.repeat(LEVELS));
    let in_spec = format!(r#"{{"metadata":{{"name":"n"}},"spec":{}}}"#, arrays);
    let event = format!(r#"{{"type":"ADDED","object":{in_spec}}}"#);
    let list = format!(r#"{{"items":[{in_spec}]}}"#);
    let mut dec = Decoder::new(DecoderConfig { index_fields: vec!["/spec/0/0/0".into()], ..DecoderConfig::default() });
    let too_deep = |r: Result<(), DecodeError>| matches!(r, Err(DecodeError::TooDeep { limit: 128, .. }));
    for (what, doc) in [("arrays", &arrays), ("objects", &objects), ("spec", &in_spec)] {
        assert!(too_deep(dec.decode_object(doc.as_bytes()).map(|_| ())), "{what}");
        assert!(too_deep(kcache::wire::decode_status(doc.as_bytes()).map(|_| ())), "{what} as a status");
    }
    // Labels must be strings: refused by shape before depth matters.
    assert_eq!(dec.decode_object(in_metadata.as_bytes()).map(|_| ()), Err(DecodeError::WrongShape("a label value is not a string")));
    assert!(too_deep(dec.decode_event(event.as_bytes()).map(|_| ())), "event");
    assert!(too_deep(dec.decode_list(list.as_bytes()).map(|_| ())), "list");
    // 127 levels under the object are fine (128 with the object itself).
    let ok = format!(r#"{{"metadata":{{"name":"n"}},"spec":{}{}}}"#, "[".repeat(127), "]".repeat(127));
    assert!(dec.decode_object(ok.as_bytes()).is_ok());
    let over = format!(r#"{{"metadata":{{"name":"n"}},"spec":{}{}}}"#, "[".repeat(128), "]".repeat(128));
    assert!(too_deep(dec.decode_object(over.as_bytes()).map(|_| ())));
}
