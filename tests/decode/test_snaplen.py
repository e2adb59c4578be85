"""A snaplen cut: the gap is reported with its size, the complete exchanges still decode."""

from __future__ import annotations

import struct
from pathlib import Path

from protoproxy.decode.decoder import decode, rows

FIXTURE = (
    Path(__file__).resolve().parents[2] / "fixtures" / "captures" / "kafka-python-producer.pcap"
)
SNAPLEN = 80  # Ethernet + IP + TCP headers are 54 bytes: 26 payload bytes survive


def _cut(src: bytes, which: int) -> tuple[bytes, int]:
    """`src` with record `which` cut to SNAPLEN captured bytes (orig_len kept), and the bytes cut."""
    out = bytearray(src[:24])
    pos, i, cut = 24, 0, 0
    while pos < len(src):
        sec, usec, incl, orig = struct.unpack_from("<IIII", src, pos)
        data = src[pos + 16 : pos + 16 + incl]
        if i == which and incl > SNAPLEN:
            cut = incl - SNAPLEN
            data = data[:SNAPLEN]
        out += struct.pack("<IIII", sec, usec, len(data), orig) + data
        pos += 16 + incl
        i += 1
    return bytes(out), cut


def test_truncated_response_is_a_gap(tmp_path: Path) -> None:
    full = list(rows(decode(FIXTURE)))
    assert [r["correlation_id"] for r in full] == [1, 2, 3]
    # record 7 is the last data packet: the Metadata v12 response (SYN, SYN-ACK, then 6 reads)
    data, cut = _cut(FIXTURE.read_bytes(), 7)
    assert cut > 0
    path = tmp_path / "cut.pcap"
    path.write_bytes(data)
    streams = decode(path)
    assert streams[0].gaps == [{"direction": "downstream", "bytes": cut}]
    assert [r["correlation_id"] for r in rows(streams)] == [1, 2]
