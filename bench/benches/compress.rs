//! zstd compression of single objects, with the dictionary the engine trains
//! (`kcache::compress`) against none: generated realistic pods (`loadgen::podgen`)
//! and pods captured from a real kube-apiserver (`fixtures/real-apiserver`).
//!
//! Besides criterion's means it prints, per set, the compression ratios and the
//! p99 of reading a pod's body as a `Pod` (decompress + typed decode) against the
//! typed decode of the uncompressed object.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use k8s_openapi::api::core::v1::Pod;
use kcache::Obj;
use kcache::arena::Arena;
use kcache::compress::{Codec, Dictionary, ZstdConfig, compress_plain, decompress_plain};
use kcache::wire::{Decoder, DecoderConfig};

const LEVEL: i32 = 3;

/// Decodes `train` through a compressing arena (the engine's path) and returns the
/// dictionary it trained, with `test` decoded after it (compressed) and plain.
fn setup(train: &[Vec<u8>], test: &[Vec<u8>]) -> (Arc<Dictionary>, Vec<Obj>, Vec<Obj>) {
    let config = ZstdConfig { sample_objects: train.len(), sample_bytes: usize::MAX, level: LEVEL, ..ZstdConfig::default() };
    let mut d = Decoder::with_arena(DecoderConfig::default(), Arena::new().with_codec(Codec::new(config)));
    for doc in train {
        d.decode_object(doc).expect("pod");
    }
    let codec = d.arena().codec().cloned().expect("codec");
    let started = Instant::now();
    codec.list_done();
    assert!(codec.wait_idle(Duration::from_secs(120)));
    println!("trained on {} objects in {:.0} ms (the sample filled on the last decode)", train.len(), started.elapsed().as_secs_f64() * 1000.0);
    let dict = codec.current().expect("a dictionary was trained");
    let compressed: Vec<Obj> = test.iter().map(|doc| d.decode_object(doc).expect("pod")).collect();
    let mut plain = Decoder::new(DecoderConfig::default());
    let plain: Vec<Obj> = test.iter().map(|doc| plain.decode_object(doc).expect("pod")).collect();
    (dict, compressed, plain)
}

fn p99(objs: &[Obj], rounds: usize) -> f64 {
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..rounds {
        for o in objs {
            let t = Instant::now();
            black_box(o.decode::<Pod>().expect("pod"));
            h.record(t.elapsed().as_nanos() as u64).expect("record");
        }
    }
    h.value_at_quantile(0.99) as f64 / 1000.0
}

fn report(name: &str, dict: &Dictionary, test: &[Vec<u8>], compressed: &[Obj], plain: &[Obj]) {
    let raw: usize = test.iter().map(Vec::len).sum();
    let framed: usize = compressed.iter().map(|o| o.stored_bytes().len()).sum();
    let none: usize = test.iter().map(|p| compress_plain(p, LEVEL).expect("zstd").len()).sum();
    let all = compressed.iter().all(Obj::is_compressed);
    let rounds = (4000 / test.len()).max(1);
    let (pz, pp) = (p99(compressed, rounds), p99(plain, rounds));
    println!(
        "{name}: {} objects, {:.0} B each; dictionary {} B (trained ratio {:.1}x); per object with dictionary {:.1}x{}, without {:.1}x; \
         body read p99 compressed {pz:.1} µs vs uncompressed typed decode {pp:.1} µs ({:.2}x)",
        test.len(),
        raw as f64 / test.len() as f64,
        dict.raw_bytes(),
        dict.trained_ratio(),
        raw as f64 / framed as f64,
        if all { "" } else { " (some stored plain)" },
        raw as f64 / none as f64,
        pz / pp,
    );
}

fn bench_set(c: &mut Criterion, name: &str, train: &[Vec<u8>], test: &[Vec<u8>]) {
    let (dict, compressed, plain) = setup(train, test);
    report(name, &dict, test, &compressed, &plain);
    let frames: Vec<Vec<u8>> = test.iter().map(|p| dict.compress(p).expect("zstd")).collect();
    let bare: Vec<Vec<u8>> = test.iter().map(|p| compress_plain(p, LEVEL).expect("zstd")).collect();
    let mut g = c.benchmark_group(format!("compress/{name}"));
    let mut i = 0;
    g.bench_function("compress, dictionary", |b| {
        b.iter(|| {
            i = (i + 1) % test.len();
            black_box(dict.compress(&test[i]).expect("zstd"))
        })
    });
    g.bench_function("compress, none", |b| {
        b.iter(|| {
            i = (i + 1) % test.len();
            black_box(compress_plain(&test[i], LEVEL).expect("zstd"))
        })
    });
    g.bench_function("decompress, dictionary", |b| {
        b.iter(|| {
            i = (i + 1) % test.len();
            black_box(dict.decompress(&frames[i], test[i].len()).expect("frame"))
        })
    });
    g.bench_function("decompress, none", |b| {
        b.iter(|| {
            i = (i + 1) % test.len();
            black_box(decompress_plain(&bare[i], test[i].len()).expect("frame"))
        })
    });
    g.bench_function("Obj::decode::<Pod>, compressed", |b| {
        b.iter(|| {
            i = (i + 1) % test.len();
            black_box(compressed[i].decode::<Pod>().expect("pod"))
        })
    });
    g.bench_function("Obj::decode::<Pod>, uncompressed", |b| {
        b.iter(|| {
            i = (i + 1) % test.len();
            black_box(plain[i].decode::<Pod>().expect("pod"))
        })
    });
    g.finish();
}

fn real_pods() -> Vec<Vec<u8>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/real-apiserver/list-50-pods.json");
    let body = std::fs::read(path).expect("the real-apiserver fixtures");
    let list: serde_json::Value = serde_json::from_slice(&body).expect("a list");
    list["items"].as_array().expect("items").iter().map(|p| serde_json::to_vec(p).expect("pod")).collect()
}

fn benches(c: &mut Criterion) {
    let pods = kcache_loadgen::podgen::realistic_pods(3000, 7);
    bench_set(c, "loadgen pods", &pods[..1000], &pods[1000..]);
    let real = real_pods();
    // 50 pods: train on 40, measure on the 10 the dictionary never saw.
    bench_set(c, "real-apiserver pods", &real[..40], &real[40..]);
}

criterion_group! {
    name = compress;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(compress);
