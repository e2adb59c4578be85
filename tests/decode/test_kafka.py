"""Kafka captures: agreement with tshark, golden fixture, mid-stream resync."""

from __future__ import annotations

import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

from protoproxy.decode.decoder import decode, rows
from protoproxy_codecs.kafka import framing
from protoproxy_codecs.strategies import BatchSpec, RecordSpec, encode_batch
from tests.tools import require_tshark

from .relay import Chunk, Relay, packets, write


def _tshark_kafka(path: Path) -> list[tuple[int, int, int, str]]:
    tshark = require_tshark()
    out = subprocess.run(
        [tshark, "-r", str(path), "-d", "tcp.port==9092,kafka",
         "-T", "fields", "-e", "kafka.api_key", "-e", "kafka.api_version", "-e", "kafka.correlation_id",
         "-e", "kafka.client_id"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    reqs = []
    for line in out.splitlines():
        key, ver, corr, cid = [*line.split("\t"), "", "", ""][:4]
        if key and ver:  # requests carry the version; tshark's response lines do not
            reqs.append((int(key), int(ver), int(corr), cid))
    return reqs


def test_agrees_with_tshark(kafka_log: list[Chunk], tmp_path: Path) -> None:
    path = tmp_path / "k.pcap"
    write(str(path), packets(kafka_log))
    ours = [
        (r["api_key"], r["api_version"], r["correlation_id"], r["client_id"])
        for r in rows(decode(path))
    ]
    assert ours, "nothing decoded"
    assert ours == _tshark_kafka(path)


def test_mid_stream_start_resyncs(kafka_log: list[Chunk], tmp_path: Path) -> None:
    """Drop the handshake and the first request's first segment: decode resumes at the next proved frame."""
    pkts = packets(kafka_log)
    full = list(rows(decode(_w(tmp_path / "full.pcap", pkts))))
    # packets: SYN, SYN-ACK, then data; cut the handshake and the first request
    first_req = next(i for i, p in enumerate(pkts) if p.haslayer("Raw") and p["TCP"].dport == 9092)
    # keep a few bytes of the first request's tail so the capture starts mid-frame
    cut = pkts[first_req].copy()
    raw = bytes(cut["Raw"].load)
    cut["TCP"].seq += 5
    cut["Raw"].load = raw[5:]
    del cut["IP"].len, cut["IP"].chksum, cut["TCP"].chksum
    mid = [cut, *pkts[first_req + 1 :]]
    streams = decode(_w(tmp_path / "mid.pcap", mid))
    got = list(rows(streams))
    assert [r["correlation_id"] for r in got] == [r["correlation_id"] for r in full[1:]]
    assert streams[0].protocol == "kafka"


def _w(path: Path, pkts: list) -> Path:
    write(str(path), pkts)
    return path


#: Produce and Fetch at versions tshark 4.0 dissects (Produce v0-8, Fetch v0-11: it says
#: "Unsupported Produce version. Supports v0-8." of v9 and marks the rest malformed),
#: then at the first flexible versions, which only protoproxy decodes.
VERSIONS = [(0, 8), (1, 11), (0, 3), (0, 9), (1, 12)]
TSHARK_DISSECTS = 3


def _produce_fetch_log(testbed: Any) -> list[Chunk]:
    """A Produce (two partitions) and a Fetch, sent raw through the relay: a client
    library would send them to the partition leader, around the relay."""
    batch = encode_batch(BatchSpec(2, (RecordSpec(b"k", b"hello"),)))
    produce = {
        "transactional_id": None, "acks": 1, "timeout_ms": 1000,
        "topic_data": [{"name": "decode-topics", "partition_data": [
            {"index": 0, "records": batch}, {"index": 2, "records": batch}]}],
    }  # fmt: skip
    fetch = {
        "replica_id": -1, "max_wait_ms": 10, "min_bytes": 1, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": "decode-topics", "partitions": [{
            "partition": 1, "current_leader_epoch": -1, "fetch_offset": 0,
            "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}],
        "forgotten_topics_data": [], "rack_id": "",
    }  # fmt: skip
    host, port = testbed.kafka_bootstrap.split(",")[0].rsplit(":", 1)
    relay = Relay((host, int(port)))
    rh, rp = relay.address.rsplit(":", 1)
    with socket.create_connection((rh, int(rp)), timeout=30) as s, s.makefile("rb") as f:
        for corr, (key, ver) in enumerate(VERSIONS, 1):
            body = produce if key == 0 else fetch
            s.sendall(framing.encode_request(key, ver, corr, "decode-topics", body))
            (n,) = struct.unpack(">i", f.read(4))
            assert framing.decode_response(key, ver, f.read(n))[0] == corr
    relay.close()
    return relay.conns[0]


def test_topics_and_partitions_agree_with_tshark(testbed: Any, tmp_path: Path) -> None:
    path = tmp_path / "pf.pcap"
    write(str(path), packets(_produce_fetch_log(testbed)))
    ours = [r for r in rows(decode(path)) if r["api_key"] in (0, 1)]
    assert [(r["api_key"], r["api_version"]) for r in ours] == VERSIONS
    produced, fetched = {"decode-topics": [0, 2]}, {"decode-topics": [1]}
    assert [r["partitions"] for r in ours] == [produced, fetched, produced, produced, fetched]
    tshark = require_tshark()
    out = subprocess.run(
        [tshark, "-r", str(path), "-d", "tcp.port==9092,kafka", "-Y", "kafka.request_frame == 0 || kafka.api_version",
         "-T", "fields", "-e", "kafka.api_key", "-e", "kafka.api_version",
         "-e", "kafka.topic_name", "-e", "kafka.partition_id"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    theirs = []
    for line in out.splitlines():
        key, ver, topics, parts = [*line.split("\t"), "", "", "", ""][:4]
        if key in ("0", "1") and ver and topics:
            theirs.append(
                {t: sorted(int(p) for p in parts.split(",")) for t in set(topics.split(","))}
            )
    assert theirs == [r["partitions"] for r in ours[:TSHARK_DISSECTS]]
