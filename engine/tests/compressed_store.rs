//! The compressed object store: bodies as zstd frames with a trained dictionary,
//! metadata uncompressed, bad input refused or stored uncompressed.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kcache::arena::Arena;
use kcache::compress::{Codec, Compression, ZstdConfig};
use kcache::informer::{Informer, InformerConfig};
use kcache::object::testing::corrupt_frame;
use kcache::store::{Indexer, NAMESPACE_INDEX, StoreConfig, store};
use kcache::testing::MemorySource;
use kcache::wire::{Decoder, DecoderConfig};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// A pod shaped like a Deployment's, different in every identifying field.
fn pod_value(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("web-7c9f8d-{i:05}"), "namespace": format!("ns-{}", i % 7),
            "uid": format!("6f1c2a3b-{i:04x}-4e5f-8a9b-0c1d2e3f{i:04x}"), "resourceVersion": format!("{}", 1000 + i),
            "generation": 1, "creationTimestamp": "2026-12-01T10:00:00Z",
            "labels": { "app": "web", "pod-template-hash": "7c9f8d", "tier": if i.is_multiple_of(2) { "front" } else { "back" } },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c9f8d",
                "uid": "0a1b2c3d-0000-4e5f-8a9b-0c1d2e3f4a5b", "controller": true, "blockOwnerDeletion": true }]
        },
        "spec": {
            "nodeName": format!("node-{}", i % 13),
            "containers": [{ "name": "web", "image": "registry.example.com/web:1.4.2",
                "ports": [{ "containerPort": 8080, "protocol": "TCP" }],
                "resources": { "requests": { "cpu": "100m", "memory": "128Mi" }, "limits": { "memory": "256Mi" } },
                "env": [{ "name": "MODE", "value": "production" }, { "name": "REPLICA", "value": format!("{i}") }],
                "volumeMounts": [{ "name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true }],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent" }],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "schedulerName": "default-scheduler",
            "tolerations": [{ "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 }]
        },
        "status": {
            "phase": "Running", "podIP": format!("10.1.{}.{}", i / 250, i % 250), "hostIP": format!("192.168.0.{}", i % 13),
            "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T10:00:05Z" },
                           { "type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-01T10:00:01Z" }],
            "containerStatuses": [{ "name": "web", "ready": true, "restartCount": 0, "image": "registry.example.com/web:1.4.2",
                "containerID": format!("containerd://{i:064x}"), "started": true }]
        }
    })
}

fn pod_bytes(i: usize) -> Vec<u8> {
    serde_json::to_vec(&pod_value(i)).unwrap()
}

fn zstd(sample: usize) -> ZstdConfig {
    ZstdConfig { sample_objects: sample, ..ZstdConfig::default() }
}

fn decoder(config: ZstdConfig) -> Decoder {
    let cfg = DecoderConfig { index_fields: vec!["/spec/nodeName".into()], ..DecoderConfig::default() };
    Decoder::with_arena(cfg, Arena::new().with_codec(Codec::new(config)))
}

fn codec(d: &Decoder) -> Codec {
    d.arena().codec().cloned().expect("a compressing arena")
}

/// Decodes `n` pods; once the first `sample` trained a dictionary, the rest are frames.
fn trained_decoder(sample: usize) -> Decoder {
    let mut d = decoder(zstd(sample));
    for i in 0..sample {
        let o = d.decode_object(&pod_bytes(i)).unwrap();
        assert!(!o.is_compressed() && o.awaits_compression(), "no dictionary yet");
    }
    assert!(codec(&d).wait_idle(WAIT));
    assert_eq!(codec(&d).stats().dictionary_version, 1, "{:?}", codec(&d).stats());
    d
}

#[test]
fn every_object_reads_back_byte_identical() {
    let mut d = trained_decoder(200);
    let z = codec(&d);
    let mut frames = 0;
    let mut raw = 0;
    let mut kept = Vec::new();
    for i in 200..1200 {
        let src = pod_bytes(i);
        let o = d.decode_object(&src).unwrap();
        kept.push(o.clone());
        assert!(o.is_compressed(), "pod {i}");
        assert_eq!(o.json(), src, "pod {i}");
        assert_eq!(o.json_len(), src.len());
        assert_eq!(o.decode::<Pod>().unwrap().metadata.name.as_deref(), Some(format!("web-7c9f8d-{i:05}").as_str()));
        assert_eq!(o.pointer("/status/podIP"), Some(json!(format!("10.1.{}.{}", i / 250, i % 250))));
        frames += o.stored_bytes().len();
        raw += src.len();
    }
    let stats = z.stats();
    assert!(raw > 8 * frames, "compressed {raw} bytes into {frames}");
    assert!(stats.trained_ratio > 4.0, "{stats:?}");
    assert_eq!(stats.corrupt_frames, 0);
    let a = d.arena().stats();
    assert!(a.compressed_bytes > 0 && a.uncompressed_bytes > 8 * a.compressed_bytes, "{a:?}");
    assert!(stats.dictionary_bytes > 0 && stats.live_dictionaries == 1, "{stats:?}");
}

#[test]
fn metadata_get_list_and_indexes_never_decompress() {
    let mut d = trained_decoder(100);
    let z = codec(&d);
    let (reader, mut writer) = store(StoreConfig::default().shards(1).indexer(Indexer::labels()).indexer(Indexer::owners()).indexer(Indexer::field("node", 0)));
    let objs: Vec<_> = (100..400).map(|i| d.decode_object(&pod_bytes(i)).unwrap()).collect();
    let before = z.stats().decompressions;
    for (o, i) in objs.iter().zip(100..) {
        assert!(o.is_compressed());
        writer.upsert(o.clone());
        assert_eq!(o.name(), format!("web-7c9f8d-{i:05}"));
        assert_eq!(o.namespace(), Some(format!("ns-{}", i % 7).as_str()));
        assert_eq!(o.uid(), format!("6f1c2a3b-{i:04x}-4e5f-8a9b-0c1d2e3f{i:04x}"));
        assert_eq!(o.resource_version(), format!("{}", 1000 + i));
        assert_eq!(o.generation(), Some(1));
        assert_eq!(o.deletion_timestamp(), None);
        assert_eq!(o.label("pod-template-hash"), Some("7c9f8d"));
        assert_eq!(o.labels().len(), 3);
        let owner = o.owner_references().next().unwrap();
        assert_eq!((owner.kind, owner.name, owner.controller), ("ReplicaSet", "web-7c9f8d", true));
        assert_eq!(o.field(0), Some(format!("node-{}", i % 13).as_str()));
        assert_eq!(o.key(), format!("ns-{}/web-7c9f8d-{i:05}", i % 7));
    }
    let got = reader.get_by_key("ns-3/web-7c9f8d-00101");
    assert!(got.is_some(), "{:?}", reader.list().iter().map(|o| o.key()).filter(|k| k.contains("0010")).collect::<Vec<_>>());
    let got = got.unwrap();
    assert_eq!(got.resource_version(), "1101");
    assert_eq!(reader.list().len(), 300);
    assert_eq!(reader.index(NAMESPACE_INDEX, "ns-3").unwrap().len(), objs.iter().filter(|o| o.namespace() == Some("ns-3")).count());
    assert_eq!(reader.index("label", "tier=front").unwrap().len(), 150);
    assert_eq!(reader.index("owner", "0a1b2c3d-0000-4e5f-8a9b-0c1d2e3f4a5b").unwrap().len(), 300);
    assert_eq!(reader.index("node", "node-5").unwrap().len(), objs.iter().filter(|o| o.field(0) == Some("node-5")).count());
    let stats = reader.stats();
    assert_eq!(stats.compressed_objects, 300);
    assert!(stats.uncompressed_bytes > 8 * stats.json_bytes, "{stats:?}");
    assert_eq!(z.stats().decompressions, before, "metadata reads, get, list and indexes decompressed a body");
    let _ = got.json();
    assert_eq!(z.stats().decompressions, before + 1, "a body read decompresses once");
}

#[test]
fn a_corrupt_frame_is_refused_and_counted_never_another_object() {
    let mut d = trained_decoder(100);
    let z = codec(&d);
    let o = d.decode_object(&pod_bytes(500)).unwrap();
    for at in [0, 3, 7, 40, o.stored_bytes().len() / 2, o.stored_bytes().len() - 1] {
        let bad = corrupt_frame(&o, at).unwrap();
        let before = z.stats().corrupt_frames;
        let err = bad.try_json().unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert!(bad.json().is_empty(), "a corrupt frame reads as empty, byte {at}");
        let decode = bad.decode::<Pod>().unwrap_err().to_string();
        assert!(decode.contains("corrupt"), "{decode}");
        assert_eq!(bad.pointer("/metadata/name"), None);
        assert!(z.stats().corrupt_frames >= before + 3, "byte {at}: {:?}", z.stats());
        // The metadata is not in the frame: still readable.
        assert_eq!(bad.name(), "web-7c9f8d-00500");
        assert_ne!(bad, o);
    }
    assert_eq!(o.json(), pod_bytes(500));
}

#[test]
fn an_object_that_compresses_badly_is_stored_uncompressed_and_counted() {
    let mut d = decoder(ZstdConfig { sample_objects: 50, keep_below: 0.5, ..ZstdConfig::default() });
    for i in 0..50 {
        d.decode_object(&pod_bytes(i)).unwrap();
    }
    assert!(codec(&d).wait_idle(WAIT));
    let mut noisy = pod_value(77);
    let random: String = (0..6000).map(|_| char::from(b'!' + rand::random_range(0..94u8))).filter(|c| *c != '"' && *c != '\\').collect();
    noisy["metadata"]["annotations"] = json!({ "noise": random });
    let src = serde_json::to_vec(&noisy).unwrap();
    let o = d.decode_object(&src).unwrap();
    assert!(!o.is_compressed() && !o.awaits_compression());
    assert_eq!(o.json(), src);
    assert_eq!(codec(&d).stats().incompressible_objects, 1);
    let ok = d.decode_object(&pod_bytes(78)).unwrap();
    assert!(ok.is_compressed(), "the next ordinary pod still compresses");
}

#[test]
fn a_kind_whose_objects_share_nothing_is_not_compressed() {
    let mut d = decoder(zstd(100));
    let objs: Vec<_> = (0..150)
        .map(|i| {
            // 64 symbols: six bits of entropy in each eight-bit byte.
            let data: String = (0..3000).map(|_| char::from(b'0' + rand::random_range(0..64u8))).filter(|c| *c != '\\').collect();
            let src = serde_json::to_vec(&json!({ "metadata": { "name": format!("r{i}") }, "d": data })).unwrap();
            (d.decode_object(&src).unwrap(), src)
        })
        .collect();
    assert!(codec(&d).wait_idle(WAIT));
    let stats = codec(&d).stats();
    assert_eq!((stats.rejected_dictionaries, stats.dictionary_version), (1, 0), "{stats:?}");
    let later = d.decode_object(br#"{"metadata":{"name":"later"},"d":"x"}"#).unwrap();
    assert!(!later.is_compressed() && !later.awaits_compression());
    for (o, src) in &objs {
        assert_eq!(o.json(), *src);
    }
}

#[test]
fn a_tiny_sample_trains_nothing_and_objects_stay_readable() {
    let mut d = decoder(ZstdConfig { sample_objects: 100, min_sample_objects: 16, ..ZstdConfig::default() });
    let objs: Vec<_> = (0..3).map(|i| (d.decode_object(&pod_bytes(i)).unwrap(), pod_bytes(i))).collect();
    codec(&d).list_done();
    assert!(codec(&d).wait_idle(WAIT));
    assert_eq!(codec(&d).stats().dictionary_version, 0);
    // Allowed to train from 3: zstd refuses so small a sample, counted, no panic.
    let mut d2 = decoder(ZstdConfig { sample_objects: 100, min_sample_objects: 2, ..ZstdConfig::default() });
    let tiny: Vec<_> = (0..3).map(|i| d2.decode_object(format!(r#"{{"metadata":{{"name":"t{i}"}}}}"#).as_bytes()).unwrap()).collect();
    codec(&d2).list_done();
    assert!(codec(&d2).wait_idle(WAIT));
    let s = codec(&d2).stats();
    assert_eq!(s.trainings + s.train_failures + s.rejected_dictionaries, 1, "{s:?}");
    for (o, src) in objs {
        assert_eq!(o.json(), src);
    }
    for (i, o) in tiny.iter().enumerate() {
        assert_eq!(o.name(), format!("t{i}"));
        assert_eq!(o.json(), format!(r#"{{"metadata":{{"name":"t{i}"}}}}"#).as_bytes());
    }
}

#[test]
fn objects_larger_than_the_window_are_stored_plain_or_round_trip() {
    let mut big = pod_value(1);
    let blob: String = (0..3_000_000).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
    big["metadata"]["annotations"] = json!({ "blob": blob });
    let src = serde_json::to_vec(&big).unwrap();
    let mut d = trained_decoder(50);
    let o = d.decode_object(&src).unwrap();
    assert!(!o.is_compressed());
    assert_eq!(codec(&d).stats().too_large_objects, 1);
    assert_eq!(o.json(), src);
    let cfg = DecoderConfig { max_object_bytes: 16 << 20, ..DecoderConfig::default() };
    let mut d = Decoder::with_arena(cfg, Arena::new().with_codec(Codec::new(ZstdConfig { sample_objects: 50, max_object_bytes: 16 << 20, ..ZstdConfig::default() })));
    for i in 0..50 {
        d.decode_object(&pod_bytes(i)).unwrap();
    }
    assert!(codec(&d).wait_idle(WAIT));
    let o = d.decode_object(&src).unwrap();
    assert!(o.is_compressed(), "3 MB over a 64 KiB dictionary still compresses");
    assert_eq!(o.json(), src);
}

#[test]
fn a_falling_ratio_retrains_and_old_objects_keep_their_dictionary() {
    let cfg = ZstdConfig { sample_objects: 100, retrain_window: 256, ..ZstdConfig::default() };
    let mut d = decoder(cfg);
    for i in 0..100 {
        d.decode_object(&pod_bytes(i)).unwrap();
    }
    let z = codec(&d);
    assert!(z.wait_idle(WAIT));
    let old: Vec<_> = (100..200).map(|i| d.decode_object(&pod_bytes(i)).unwrap()).collect();
    assert!(old.iter().all(|o| o.dictionary_version() == Some(1)));
    // Objects of another shape: the first dictionary knows none of their strings.
    let other = |i: usize| {
        let keys: serde_json::Map<String, Value> =
            (0..60).map(|k| (format!("setting.{k}.{}", k * 31 % 17), json!(format!("value-{}-{}", k * 7, i % 5)))).collect();
        serde_json::to_vec(&json!({ "kind": "ConfigMap", "metadata": { "name": format!("cm-{i}") }, "data": keys })).unwrap()
    };
    let mut i = 0;
    let deadline = std::time::Instant::now() + WAIT;
    while z.stats().dictionary_version < 2 {
        assert!(std::time::Instant::now() < deadline, "no retraining: {:?}", z.stats());
        let src = other(i);
        assert_eq!(d.decode_object(&src).unwrap().json(), src);
        i += 1;
        if i.is_multiple_of(500) {
            z.wait_idle(WAIT);
        }
    }
    let s = z.stats();
    assert!(s.retrains >= 1 && s.trainings >= 2, "{s:?}");
    let newer = d.decode_object(&other(i + 1)).unwrap();
    assert_eq!(newer.dictionary_version(), Some(2));
    assert_eq!(z.stats().live_dictionaries, 2, "the old dictionary lives while objects use it");
    for (o, n) in old.iter().zip(100..) {
        assert_eq!(o.json(), pod_bytes(n));
    }
    drop(old);
    assert_eq!(z.stats().live_dictionaries, 1, "and is freed with its last object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informer_compresses_its_store_and_compaction_converts_the_first_objects() {
    let source = MemorySource::new("Pod");
    for i in 0..600 {
        source.apply(pod_value(i));
    }
    // Training on a thread of its own: the list is stored uncompressed and compaction converts it.
    let config = InformerConfig { compression: Compression::Zstd(ZstdConfig { train_inline: false, ..zstd(200) }), ..InformerConfig::default() };
    let informer = Informer::spawn(source.clone(), config).unwrap();
    assert!(informer.wait_for_sync(WAIT).await);
    let store = informer.store();
    let deadline = std::time::Instant::now() + WAIT;
    while store.stats().compressed_objects < 600 {
        assert!(std::time::Instant::now() < deadline, "not all compressed: {:?} {:?}", store.stats(), informer.compression_stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in (0..600).step_by(37) {
        let key = format!("ns-{}/web-7c9f8d-{i:05}", i % 7);
        let o = store.get_by_key(&key).unwrap();
        let v: Value = serde_json::from_slice(&o.json()).unwrap();
        assert_eq!(v["spec"], pod_value(i)["spec"], "{key}");
        assert_eq!(o.decode::<Pod>().unwrap().status.unwrap().phase.as_deref(), Some("Running"));
    }
    let z = informer.compression_stats().unwrap();
    assert!(z.dictionary_version >= 1 && z.dictionary_bytes > 0, "{z:?}");
    let s = store.stats();
    assert!(s.uncompressed_bytes > 5 * s.json_bytes, "{s:?}");
    // An update after training is compressed as it is decoded.
    let mut changed = pod_value(3);
    changed["status"]["phase"] = json!("Succeeded");
    source.apply(changed);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let o = store.get_by_key("ns-3/web-7c9f8d-00003").unwrap();
        if o.pointer("/status/phase") == Some(json!("Succeeded")) {
            assert!(o.is_compressed());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "update not applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    informer.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_a_first_list_trains_on_is_compressed_before_the_list_reaches_the_store() {
    let source = MemorySource::new("Pod");
    for i in 0..600 {
        source.apply(pod_value(i));
    }
    // Trained inline on the first 200 objects: they were stored uncompressed, and
    // are compressed by the sink before it hands the list on, not later by
    // compaction.
    let config = InformerConfig { compression: Compression::Zstd(zstd(200)), ..InformerConfig::default() };
    let informer = Informer::spawn(source.clone(), config).unwrap();
    assert!(informer.wait_for_sync(WAIT).await);
    let store = informer.store();
    let plain: Vec<String> = store.list().iter().filter(|o| !o.is_compressed()).map(kcache::Obj::key).collect();
    assert!(plain.is_empty(), "{} objects uncompressed at sync: {:?}", plain.len(), &plain[..plain.len().min(5)]);
    assert_eq!(store.stats().compressed_objects, 600);
    for i in (0..600).step_by(41) {
        let o = store.get_by_key(&format!("ns-{}/web-7c9f8d-{i:05}", i % 7)).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&o.json()).unwrap()["spec"], pod_value(i)["spec"]);
    }
    informer.shutdown();
}
