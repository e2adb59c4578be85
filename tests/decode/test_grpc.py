"""gRPC (HTTP/2) captures from grpcio: method, status, stream ids against tshark."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from protoproxy.decode.decoder import decode, frame_rows, rows
from tests.tools import require_tshark

from .relay import Chunk, packets, write


def test_grpc_calls_agree_with_tshark(grpc_log: list[Chunk], tmp_path: Path) -> None:
    path = tmp_path / "g.pcap"
    write(str(path), packets(grpc_log, sport=50051))
    ours = list(rows(decode(path)))
    assert [r["protocol"] for r in ours] == ["grpc", "grpc"]
    assert all(r["status"] == "OK" for r in ours)
    tshark = require_tshark()
    out = subprocess.run(
        [tshark, "-r", str(path), "-d", "tcp.port==50051,http2", "-T", "json",
         "-e", "http2.streamid", "-e", "http2.header.name", "-e", "http2.header.value"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    paths: dict[int, str] = {}
    statuses: dict[int, str] = {}
    for pkt in json.loads(out):
        layers = pkt["_source"]["layers"]
        names, values = layers.get("http2.header.name", []), layers.get("http2.header.value", [])
        sids = [int(s) for s in layers.get("http2.streamid", [])]
        headers = dict(zip(names, values, strict=False))
        sid = next((s for s in sids if s), 0)
        if ":path" in headers:
            paths[sid] = headers[":path"]
        if "grpc-status" in headers:
            statuses[sid] = headers["grpc-status"]
    assert [r["operation"] for r in ours] == [paths[r["stream_id"]] for r in ours]
    assert {statuses[r["stream_id"]] for r in ours} == {"0"}


def test_frames_agree_with_tshark(grpc_log: list[Chunk], tmp_path: Path) -> None:
    """--frames lists every HTTP/2 frame: stream id and type, in order, as tshark sees them."""
    path = tmp_path / "g.pcap"
    write(str(path), packets(grpc_log, sport=50051))
    ours = [(f["stream_id"], f["type"]) for f in frame_rows(decode(path, frames=True))]
    tshark = require_tshark()
    out = subprocess.run(
        [tshark, "-r", str(path), "-d", "tcp.port==50051,http2", "-T", "json",
         "-e", "http2.streamid", "-e", "http2.type"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    theirs: list[tuple[int, str]] = []
    for pkt in json.loads(out):
        layers = pkt["_source"]["layers"]
        sids, types = layers.get("http2.streamid", []), layers.get("http2.type", [])
        assert len(sids) == len(types)
        theirs += [(int(s), TSHARK_TYPES[int(t)]) for s, t in zip(sids, types, strict=True)]
    assert len(ours) > 10
    assert ours == theirs


TSHARK_TYPES = {
    0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS",
    5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION",
}  # fmt: skip
