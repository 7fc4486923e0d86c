//! Decode throughput: kcache's one-pass decoder (ready to store, arena copy
//! included) against serde_json and simd-json typed `Pod` decoding, on LIST
//! bodies and watch event streams of realistic pods (see `kcache_loadgen::podgen`).
#![forbid(unsafe_code)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent as K8sWatchEvent;
use kcache::wire::{Decoder, DecoderConfig, Framer};
use kcache_loadgen::podgen::{list_body, realistic_pods, store_memory, watch_body};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn decoder(strip: bool) -> Decoder {
    Decoder::new(DecoderConfig {
        index_fields: vec!["/spec/nodeName".into(), "/status/phase".into()],
        strip_managed_fields: strip,
        ..DecoderConfig::default()
    })
}

fn bench_decode(c: &mut Criterion) {
    let pods = realistic_pods(1000, 42);
    let list = list_body(&pods, "12345");
    let watch = watch_body(&pods, "MODIFIED");

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(list.len() as u64));
    g.bench_function("list_1000_pods/kcache", |b| {
        let mut dec = decoder(false);
        b.iter(|| black_box(dec.decode_list(black_box(&list)).map(|l| l.items.len())))
    });
    g.bench_function("list_1000_pods/kcache_strip_managed_fields", |b| {
        let mut dec = decoder(true);
        b.iter(|| black_box(dec.decode_list(black_box(&list)).map(|l| l.items.len())))
    });
    g.bench_function("list_1000_pods/serde_json_typed", |b| {
        b.iter(|| black_box(serde_json::from_slice::<k8s_openapi::List<Pod>>(black_box(&list)).map(|l| l.items.len())))
    });
    g.bench_function("list_1000_pods/simd_json_typed", |b| {
        // simd-json parses in place: the copy of the body is set up outside the timing.
        b.iter_batched_ref(
            || list.clone(),
            |buf| black_box(simd_json::serde::from_slice::<k8s_openapi::List<Pod>>(buf).map(|l| l.items.len())),
            BatchSize::LargeInput,
        )
    });

    g.throughput(Throughput::Bytes(watch.len() as u64));
    let body = Bytes::from(watch.clone());
    g.bench_function("watch_1000_events/kcache_framed", |b| {
        let mut dec = decoder(false);
        b.iter(|| {
            let mut f = Framer::watch();
            f.push(body.clone());
            let mut n = 0;
            while let Some(Ok(doc)) = f.next_document() {
                n += dec.decode_event(&doc).is_ok() as usize;
            }
            black_box(n)
        })
    });
    let lines: Vec<&[u8]> = watch.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
    g.bench_function("watch_1000_events/serde_json_typed", |b| {
        b.iter(|| {
            let mut n = 0;
            for l in &lines {
                n += serde_json::from_slice::<K8sWatchEvent<Pod>>(l).is_ok() as usize;
            }
            black_box(n)
        })
    });
    g.bench_function("watch_1000_events/simd_json_typed", |b| {
        let mut buf = Vec::new();
        b.iter(|| {
            let mut n = 0;
            for l in &lines {
                // The in-place parser needs a mutable copy of each line; counted here
                // because a client cannot parse the shared HTTP bytes in place.
                buf.clear();
                buf.extend_from_slice(l);
                n += simd_json::serde::from_slice::<K8sWatchEvent<Pod>>(&mut buf).is_ok() as usize;
            }
            black_box(n)
        })
    });
    g.finish();
}

fn main() {
    for strip in [false, true] {
        let m = store_memory(10_000, strip);
        println!(
            "store memory, 10,000 pods, strip_managed_fields={strip}: wire {} B, arena segments {} B + meta {} B = {:.3}x wire",
            m.wire_bytes,
            m.segment_bytes,
            m.meta_bytes,
            m.ratio()
        );
    }
    let mut c = Criterion::default().configure_from_args();
    bench_decode(&mut c);
    c.final_summary();
}
