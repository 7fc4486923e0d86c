#!/usr/bin/env python3
"""Writes the seed corpus of kcache's fuzz targets from fixtures/real-apiserver.

Usage: python3 fuzz/seed_corpus.py   (from the repository root or anywhere)

Seeds are real API server bytes, plus a few hand-made pods that exercise what
the captures lack: escaped strings, owner references, index fields, duplicate
and oddly ordered keys, deletion timestamps. Output: fuzz/corpus/<target>/, named by content hash, next to what fuzzing
added there (the committed corpus is both, minimized with `cargo fuzz cmin`);
rerunning the script only adds files.
"""

import hashlib
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "real-apiserver"
OUT = ROOT / "fuzz" / "corpus"

WATCH_HEADER_ONE_CHUNK = b"\x00\x00"
# Odd byte 0: a small limit (1 + 0x7f * 16 = 2033 bytes); then 3 chunk sizes.
WATCH_HEADER_CHUNKED = b"\xff\x03\x06\x40\xc7"


def write(target, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def pods():
    base = json.loads((FIX / "pod.json").read_bytes())
    out = []
    for i in range(4):
        p = json.loads(json.dumps(base))
        m = p["metadata"]
        m["name"] = f"pod-{i:05}"
        m["resourceVersion"] = str(1000 + i)
        m["labels"] = {"app": f"app-{i:03}", "tier": ["web", "api", "worker"][i % 3], "k8s.io/x": "é\"q"}
        m["ownerReferences"] = [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"rs-{i}",
            "uid": "0c5e0d6e-0000-4000-a000-00000000000%d" % i, "controller": i % 2 == 0,
            "blockOwnerDeletion": True,
        }]
        p["spec"]["nodeName"] = f"node-{i % 3}"
        p["a/b"] = i
        if i == 1:
            m["deletionTimestamp"] = "2026-11-23T18:20:22Z"
            m["namespace"] = None
        if i == 2:
            # managedFields first, so stripping must take the comma after it.
            m = {"managedFields": m.pop("managedFields"), **m}
            p["metadata"] = m
        if i == 3:
            p = {"spec": p["spec"], "metadata": p["metadata"]}
        out.append(json.dumps(p, separators=(",", ":"), ensure_ascii=(i == 3)).encode())
    return out


def main():
    objects = [(FIX / f).read_bytes() for f in
               ["pod.json", "pod-pretty.json", "create-resp.json", "delete-resp.json"]]
    statuses = [f.read_bytes() for f in sorted(FIX.glob("status-*.json"))]
    lists = [f.read_bytes() for f in sorted(FIX.glob("list-*.json"))]
    streams = [f.read_bytes() for f in sorted(FIX.glob("*.jsonl"))]
    lines = [l for s in streams for l in s.splitlines() if l.strip()]
    generated = pods()

    event_objects = []
    for l in lines:
        ev = json.loads(l)
        if ev["type"] in ("ADDED", "MODIFIED", "DELETED"):
            event_objects.append(json.dumps(ev["object"], separators=(",", ":")).encode())
    event_objects = event_objects[:4]

    for s in streams:
        write("framer_watch", WATCH_HEADER_ONE_CHUNK + s)
        write("framer_watch", WATCH_HEADER_CHUNKED + s)
    for l in lines:
        write("framer_watch", WATCH_HEADER_ONE_CHUNK + l + b"\n")
    for p in generated:
        ev = b'{"type":"MODIFIED","object":' + p + b"}\n"
        write("framer_watch", WATCH_HEADER_ONE_CHUNK + ev)
    # Object before type: the decoder's second scan.
    write("framer_watch", WATCH_HEADER_ONE_CHUNK + b'{"object":' + generated[0] + b',"type":"ADDED"}\r\n\n')

    for l in lists:
        write("decode_list", l)
    write("decode_list", b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"77"},"items":['
          + b",".join(generated) + b"]}")

    for target in ("decode_object", "decode_differential"):
        for o in objects + event_objects + generated:
            write(target, o)
    for s in statuses:
        write("decode_object", s)


if __name__ == "__main__":
    main()
