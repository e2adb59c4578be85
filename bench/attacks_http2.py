"""HTTP/2 floods against a proxy in its own process: what each costs, how it ends.

    python bench/attacks_http2.py [--seconds 5] [--rules on|off] [--only h2_ping_flood]

(bench/attacks.py runs these rows in its one table; this entry point keeps
`--rules off` for the comparison.)

Each attack runs on its own connection to the `h2` listener for at most
`--seconds`, as fast as one Python writer goes; an h2 upstream (h2, the
library) in this process counts what reaches it. Meanwhile a prober sends
one request at a time through a second listener (`health`) and records its
latency. Printed per attack: the frame rate written, the proxy's RSS
(VmRSS) before / peak during / after, the prober's median and worst
latency, and the reaction (GOAWAY code after how many frames; what the
upstream saw). `--rules off` sets every `limits.http2` rule to 0 for the
comparison.
"""

from __future__ import annotations

import argparse
import itertools
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import hpack
from common import free_port, protoproxy, rss, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protoproxy_codecs.http2 import PREFACE, ErrorCode
from protoproxy_codecs.http2 import frames as F
from tests.adversarial.h2peers import CountingServer, goaway_code

REQUEST = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "a")]
Batches = Iterator[tuple[bytes, int]]  # (bytes to write, frames in them)


def rapid_reset() -> tuple[bytes, Batches]:
    enc = hpack.Encoder()

    def batches() -> Batches:
        for first in itertools.count(1, 2000):
            out = []
            for sid in range(first, first + 2000, 2):
                out.append(F.build_header_block(sid, enc.encode(REQUEST), end_stream=True))
                out.append(F.build_rst_stream(sid, ErrorCode.CANCEL))
            yield b"".join(out), 2000

    return b"", batches()


def ping_flood() -> tuple[bytes, Batches]:
    chunk = F.build_ping() * 4000
    return b"", ((chunk, 4000) for _ in itertools.count())


def window_update_flood() -> tuple[bytes, Batches]:
    chunk = F.build_window_update(0, 1) * 4000
    return b"", ((chunk, 4000) for _ in itertools.count())


def settings_flood() -> tuple[bytes, Batches]:
    chunk = F.build_settings() * 4000
    return b"", ((chunk, 4000) for _ in itertools.count())


def empty_data_flood() -> tuple[bytes, Batches]:
    """Empty DATA on one open stream: no flow-control window spent."""
    opening = F.build_header_block(1, hpack.Encoder().encode(REQUEST), end_stream=False)
    chunk = F.frame(F.DATA, 0, 1, b"") * 4000
    return opening, ((chunk, 4000) for _ in itertools.count())


def continuation_flood() -> tuple[bytes, Batches]:
    block = hpack.Encoder().encode([*REQUEST, ("x", "y" * 50)])
    opening = F.frame(F.HEADERS, F.FLAG_END_STREAM, 1, block)
    chunk = F.frame(F.CONTINUATION, 0, 1, b"\0") * 4000
    return opening, ((chunk, 4000) for _ in itertools.count())


def hpack_bomb() -> tuple[bytes, Batches]:
    enc = hpack.Encoder()
    first = F.build_header_block(1, enc.encode([*REQUEST, ("bomb", "b" * 4000)]), end_stream=True)
    bomb = enc.encode(REQUEST) + bytes([0x80 | 62]) * 60

    def batches() -> Batches:
        for start in itertools.count(3, 400):
            yield (
                b"".join(
                    F.build_header_block(sid, bomb, end_stream=True)
                    for sid in range(start, start + 400, 2)
                ),
                200,
            )

    return first, batches()


def request_burst() -> tuple[bytes, Batches]:
    enc = hpack.Encoder()

    def batches() -> Batches:
        for start in itertools.count(1, 6000):
            yield (
                b"".join(
                    F.build_header_block(sid, enc.encode(REQUEST), end_stream=True)
                    for sid in range(start, start + 6000, 2)
                ),
                3000,
            )

    return b"", batches()


#: name (for --only) -> (label in the table, attack)
ATTACKS: dict[str, tuple[str, Callable[[], tuple[bytes, Batches]]]] = {
    "h2_rapid_reset": ("rapid reset (HEADERS+RST)", rapid_reset),
    "h2_ping_flood": ("PING flood", ping_flood),
    "h2_window_update_flood": ("WINDOW_UPDATE flood", window_update_flood),
    "h2_settings_flood": ("SETTINGS flood", settings_flood),
    "h2_empty_data_flood": ("empty DATA flood", empty_data_flood),
    "h2_continuation_flood": ("CONTINUATION flood", continuation_flood),
    "h2_hpack_bomb": ("HPACK bomb (242 KB/block)", hpack_bomb),
    "h2_request_burst": ("request burst (3000/write)", request_burst),
}


class Prober(threading.Thread):
    """One request at a time through the health listener, latency recorded."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.latencies: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.settimeout(30)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        while not self.stop.is_set():
            sid = conn.get_next_available_stream_id()
            started = time.perf_counter()
            conn.send_headers(sid, REQUEST, end_stream=True)
            sock.sendall(conn.data_to_send())
            done = False
            try:
                while not done:
                    data = sock.recv(65536)
                    if not data:
                        self.failures += 1
                        return
                    for event in conn.receive_data(data):
                        if isinstance(event, h2.events.StreamEnded) and event.stream_id == sid:
                            done = True
                    sock.sendall(conn.data_to_send())
            except OSError:
                self.failures += 1
                return
            self.latencies.append(time.perf_counter() - started)
            self.stop.wait(0.02)
        sock.close()


def run_attack(
    port: int, make: Callable[[], tuple[bytes, Batches]], seconds: float
) -> tuple[int, float, int | None, int]:
    """(frames written, seconds, GOAWAY code or None, frames written before it)."""
    preamble, batches = make()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(seconds + 5)
    got = bytearray()
    goaway: list[int] = []
    at_goaway: list[int] = []
    frames = 0

    def reader() -> None:
        try:
            while data := sock.recv(65536):
                got.extend(data)
                code = goaway_code(bytes(got))
                if code is not None:
                    goaway.append(code)
                    at_goaway.append(frames)
                    return
        except OSError:
            return

    sock.sendall(PREFACE + F.build_settings() + preamble)
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    started = time.perf_counter()
    try:
        for chunk, n in batches:
            if goaway or time.perf_counter() - started > seconds:
                break
            sock.sendall(chunk)
            frames += n
    except OSError:
        pass
    elapsed = time.perf_counter() - started
    thread.join(2)
    sock.close()
    return frames, elapsed, goaway[0] if goaway else None, at_goaway[0] if at_goaway else frames


HEADER = (
    "attack",
    "frames/s written",
    "RSS before/peak/after MiB",
    "health p50/max ms",
    "reaction",
)


def run(seconds: float, rules: str = "on", only: list[str] | None = None) -> list[tuple[str, ...]]:
    """One row per attack in `ATTACKS` (those in `only`, if given), against one
    proxy child; `rules` off sets every `limits.http2` rule to 0."""
    extra = ""
    if rules == "off":
        keys = ("max_reset_ratio", "reset_check_after", "control_frames_per_s")
        keys += ("max_continuations", "header_bytes_per_s", "max_requests_per_read")
        extra = "limits: {http2: {" + ", ".join(f"{k}: 0" for k in keys) + "}}"
    rows: list[tuple[str, ...]] = []
    with CountingServer().running() as upstream:
        h2_port, health_port = free_port(), free_port()
        listeners = [("h2", h2_port, upstream.port, "http2")]
        listeners.append(("health", health_port, upstream.port, "http2"))
        with protoproxy(listeners, extra) as proc:
            for key, (name, make) in ATTACKS.items():
                if only and key not in only:
                    continue
                upstream.seen.clear()
                time.sleep(0.2)
                before = rss(proc.pid)
                prober = Prober(health_port)
                prober.start()
                peak = [before]
                sampling = threading.Event()

                def sample(peak: list[int] = peak, sampling: threading.Event = sampling) -> None:
                    while not sampling.is_set():
                        peak[0] = max(peak[0], rss(proc.pid))
                        sampling.wait(0.01)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                frames, elapsed, code, at = run_attack(h2_port, make, seconds)
                time.sleep(0.3)
                prober.stop.set()
                prober.join(10)
                sampling.set()
                sampler.join()
                after = rss(proc.pid)
                lat = prober.latencies or [float("nan")]
                upstream.seen["requests"] -= len(prober.latencies)  # the prober's own
                seen = ", ".join(f"{k} {v}" for k, v in sorted(upstream.seen.items()) if v)
                reaction = (
                    f"GOAWAY {ErrorCode(code).name} in {elapsed:.2f} s, {at} frames written"
                    if code is not None
                    else f"none in {elapsed:.1f} s"
                )
                rows.append(
                    (
                        name,
                        f"{frames / elapsed:,.0f} frames/s",
                        f"{before / 2**20:.0f}/{peak[0] / 2**20:.0f}/{after / 2**20:.0f}",
                        f"{statistics.median(lat) * 1e3:.1f}/{max(lat) * 1e3:.1f}"
                        + (f" ({prober.failures} failed)" if prober.failures else ""),
                        f"{reaction}; upstream saw {seen or 'nothing'}",
                    )
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rules", choices=("on", "off"), default="on")
    parser.add_argument("--only", action="append", choices=sorted(ATTACKS))
    args = parser.parse_args()
    rows = run(args.seconds, args.rules, args.only)
    print(f"rules {args.rules}, {args.seconds:.0f} s per attack at most")
    print(table([HEADER, *rows]))


if __name__ == "__main__":
    main()
