"""Kafka captures: agreement with tshark, golden fixture, mid-stream resync."""

from __future__ import annotations

import subprocess
from pathlib import Path

from protoproxy.decode.decoder import decode, rows
from tests.tools import require_tshark

from .relay import Chunk, packets, write


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
