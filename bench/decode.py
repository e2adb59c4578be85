"""MB/s of capture `protoproxy decode` gets through, for Kafka Produce traffic, on one core.

Builds a pcap of N Produce v9 requests (1 KiB records, 9 KiB frames split into
1448-byte segments) and their responses, encoded by the codecs' own Kafka
framing, then times decode() over it. Usage: python3 bench/decode.py [N]
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
import time

from protoproxy.decode.decoder import decode, rows
from protoproxy_codecs.kafka import framing

_PCAP_HDR = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 101)  # DLT_RAW


def _ip_tcp(
    src: bytes, dst: bytes, sport: int, dport: int, seq: int, flags: int, payload: bytes
) -> bytes:
    tcp = struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0, 64, 6, 0, src, dst)
    return ip + tcp + payload


def build(path: str, n: int) -> int:
    produce = framing.encode_request(0, 9, 1, "bench", {
        "acks": 1, "timeout_ms": 1000,
        "topic_data": [{"name": "orders", "partition_data": [{"index": 0, "records": b"\0" * 9000}]}],
    })  # fmt: skip
    c, s = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    seq = [1000, 5000]
    t = 0
    with open(path, "wb") as f:
        f.write(_PCAP_HDR)

        def pkt(d: int, flags: int, payload: bytes) -> None:
            nonlocal t
            t += 10
            src, dst, sp, dp = (c, s, 40000, 9092) if d == 0 else (s, c, 9092, 40000)
            frame = _ip_tcp(src, dst, sp, dp, seq[d], flags, payload)
            f.write(
                struct.pack(
                    "<IIII", 1_700_000_000 + t // 1_000_000, t % 1_000_000, len(frame), len(frame)
                )
            )
            f.write(frame)
            seq[d] += len(payload) + (1 if flags & 0x03 else 0)

        pkt(0, 0x02, b"")
        pkt(1, 0x12, b"")
        for corr in range(1, n + 1):
            req = produce[:8] + struct.pack(">i", corr) + produce[12:]
            for i in range(0, len(req), 1448):
                pkt(0, 0x18, req[i : i + 1448])
            resp = framing.encode_response(0, 9, corr, {
                "responses": [{"name": "orders", "partition_responses": [{"index": 0}]}],
            })  # fmt: skip
            pkt(1, 0x18, resp)
    return os.path.getsize(path)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "produce.pcap")
        size = build(path, n)
        t0 = time.perf_counter()
        got = sum(1 for _ in rows(decode(path)))
        dt = time.perf_counter() - t0
    assert got == n, (got, n)
    print(f"{size / 1e6:.1f} MB, {n} Produce exchanges in {dt:.2f} s: {size / 1e6 / dt:.1f} MB/s")


if __name__ == "__main__":
    main()
