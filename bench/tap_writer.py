"""A tap's writer thread alone: CPU µs per request, redacting and not, side by side.

    python bench/tap_writer.py [--conversation grpc|get] [--requests 2000] [--repeat 3]
    python bench/tap_writer.py --kafka [--requests 5000]

bench/tap_cost.py measures whole proxies, where the machine's load moves the
figures by several points. This feeds one tap's writer (`TapFiles._batch`,
on this thread) the events a tapped connection would queue, and reads the
process CPU: each read becomes two events, one on the leg it was read from
and one on the leg it was written to. `--conversation` replays the recorded
h2load connection of bench/h2_decode.py (cached under /tmp); `--kafka` a
2.4 KB Produce request and a 100-byte response per request, on both legs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from protoproxy.capture import writer as w
from protoproxy_codecs.base import now_ns

ADDRESSES = [(("127.0.0.1", 5000), ("127.0.0.1", 6000)), (("127.0.0.1", 6001), ("127.0.0.1", 7000))]


class _Inline(w.TapFiles):
    """A tap whose thread does nothing: the bench calls `_batch` itself."""

    def _run(self) -> None:
        pass


def _tap(protocol: str, redact: bool, folder: Path) -> tuple[_Inline, w.TappedConn]:
    limits = w.Limits(
        max_file_bytes=1 << 40, max_files=2, max_bytes=1 << 42,
        queue=1 << 30, queue_bytes=1 << 40, redact=redact,
    )  # fmt: skip
    tap = _Inline("bench", folder, limits, 0)
    conn = w.TappedConn(id=1, protocol=protocol, addresses=ADDRESSES, notes=["", ""])
    ts = now_ns()
    tap.put((w.OPEN, conn, w.CLIENT_LEG, 0, ts, None, 0), 0)
    tap.put((w.OPEN, conn, w.UPSTREAM_LEG, 0, ts, None, 0), 0)
    return tap, conn


def _queue(tap: _Inline, conn: w.TappedConn, leg: int, side: int, data: bytes) -> None:
    offsets = conn.offsets[leg]
    tap.put((w.DATA, conn, leg, side, now_ns(), data, offsets[side]), len(data))
    offsets[side] += len(data)


def writer_cpu(protocol: str, reads: list[tuple[int, bytes]], redact: bool) -> float:
    """CPU seconds for the writer to turn `reads` (direction, bytes) into packets."""
    with tempfile.TemporaryDirectory() as d:
        tap, conn = _tap(protocol, redact, Path(d))
        for direction, data in reads:
            if direction == 0:  # client -> upstream: read on the client leg, written upstream
                _queue(tap, conn, w.CLIENT_LEG, 0, data)
                _queue(tap, conn, w.UPSTREAM_LEG, 0, data)
            else:
                _queue(tap, conn, w.UPSTREAM_LEG, 1, data)
                _queue(tap, conn, w.CLIENT_LEG, 1, data)
        t0 = time.process_time()
        while tap.events:
            tap._batch()
        spent = time.process_time() - t0
        tap._close_file()
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversation", choices=["get", "grpc"], default="grpc")
    ap.add_argument("--kafka", action="store_true", help="Produce-sized reads instead")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.kafka:
        protocol, what = "kafka", f"Kafka: {args.requests} 2.4 KB requests, 100 B responses"
        request, response = os.urandom(2400), os.urandom(100)
        reads = [(d, b) for _ in range(args.requests) for d, b in ((0, request), (1, response))]
    else:
        import h2_decode

        protocol = "http2"
        reads = h2_decode.conversation(args.conversation, args.requests)
        what = f"HTTP/2 {args.conversation}: {args.requests} requests, {len(reads)} reads"
    raw = min(writer_cpu(protocol, reads, False) for _ in range(args.repeat))
    red = min(writer_cpu(protocol, reads, True) for _ in range(args.repeat))
    n = args.requests
    print(
        f"{what}; writer CPU µs per request, best of {args.repeat}: "
        f"redact: false {raw / n * 1e6:.2f}, redacting {red / n * 1e6:.2f} "
        f"({red / raw:.2f}x)"
    )


if __name__ == "__main__":
    main()
