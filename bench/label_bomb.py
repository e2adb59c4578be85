"""The label bomb of issue 12, against a proxy in its own process.

    python bench/label_bomb.py [--client-ids 10000] [--paths 5000]

10,000 Kafka requests (ApiVersions v0) with distinct 32 KiB client ids (the
int16 maximum) and 5,000 HTTP/1.1 requests with distinct 8 KiB paths go
through `protoproxy run` (admin on, tail on) to a one-broker fake Kafka
cluster and the fake HTTP service, which run on a loop in this process. Then
one /metrics scrape, one /stats and one /messages. Printed: the time to send
the bomb, each answer's size and time, and the proxy's RSS (VmRSS) before the
bomb, after it and after the scrapes, and its peak (VmHWM).

Before the fix the scrape was 1.87 GB in 22 s with the proxy's loop blocked
and a 5.7 GB peak; the acceptance is /metrics < 5 MB, scrape < 0.5 s and RSS
growth < 100 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from common import free_port, process, wait_port

from protoproxy_codecs.kafka import framing
from testbed.http import FakeHttpService
from testbed.kafka import FakeKafkaCluster

CLIENT_ID_BYTES = 32767
PATH_BYTES = 8 * 1024
MiB = 1024 * 1024


@contextlib.contextmanager
def peers() -> Iterator[tuple[str, str]]:
    """The fake Kafka cluster and HTTP service on a loop in a thread: (kafka, http)."""
    loop = asyncio.new_event_loop()
    ready: list[tuple[str, str]] = []
    started = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        async with FakeKafkaCluster(brokers=1, seed=1) as kafka, FakeHttpService() as http:
            host, port = http.address
            ready.append((str(kafka.bootstrap), f"{host}:{port}"))
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(30)
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def rss(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid`, bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) * 1024
    return out


def kafka_bomb(port: int, n: int, batch: int = 100) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    buf = bytearray()
    corr = 0
    sent = 0
    while sent < n:
        k = min(batch, n - sent)
        frames = []
        for i in range(k):
            corr += 1
            head = f"bomb-{sent + i:06d}-"
            cid = head + "x" * (CLIENT_ID_BYTES - len(head))
            frames.append(framing.encode_request(18, 0, corr, cid, {}))
        sock.sendall(b"".join(frames))
        got = 0
        while got < k:
            while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from(">i", buf)[0]:
                del buf[: 4 + struct.unpack_from(">i", buf)[0]]
                got += 1
            if got < k:
                data = sock.recv(1 << 20)
                if not data:
                    sys.exit("the proxy closed the Kafka connection")
                buf += data
        sent += k
    sock.close()


def http_bomb(port: int, n: int, batch: int = 50) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    buf = b""
    sent = 0
    while sent < n:
        k = min(batch, n - sent)
        reqs = []
        for i in range(k):
            head = f"/bomb/{sent + i:06d}/"
            path = head + "p" * (PATH_BYTES - len(head))
            reqs.append(f"GET {path} HTTP/1.1\r\nHost: bomb\r\n\r\n".encode())
        sock.sendall(b"".join(reqs))
        got = 0
        while got < k:
            data = sock.recv(1 << 20)
            if not data:
                sys.exit("the proxy closed the HTTP connection")
            buf += data
            while True:
                head_b, sep, rest = buf.partition(b"\r\n\r\n")
                if not sep:
                    break
                length = 0
                for line in head_b.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(rest) < length:
                    break
                buf = rest[length:]
                got += 1
        sent += k
    sock.close()


def fetch(url: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as resp:
        n = len(resp.read())
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--client-ids", type=int, default=10_000)
    ap.add_argument("--paths", type=int, default=5_000)
    args = ap.parse_args()
    admin, kport, hport = free_port(), free_port(), free_port()
    with peers() as (kafka_addr, http_addr), tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "bomb.yaml"
        cfg.write_text(
            f"admin: {{listen: '127.0.0.1:{admin}'}}\n"
            "tail: {enabled: true}\n"
            "listeners:\n"
            f"  - {{name: kafka, listen: '127.0.0.1:{kport}', protocol: kafka, upstream: kafka}}\n"
            f"  - {{name: web, listen: '127.0.0.1:{hport}', protocol: http, upstream: web}}\n"
            "upstreams:\n"
            f"  - {{name: kafka, endpoints: ['{kafka_addr}']}}\n"
            f"  - {{name: web, endpoints: ['{http_addr}']}}\n"
        )
        argv = [sys.executable, "-m", "protoproxy", "--log-level", "error", "run", str(cfg)]
        with process(argv) as proxy:
            for port in (admin, kport, hport):
                wait_port(port)
            base = f"http://127.0.0.1:{admin}"
            kafka_bomb(kport, 20)  # warm up: first series, first connections
            http_bomb(hport, 20)
            fetch(base + "/metrics")
            before = rss(proxy.pid)
            t0 = time.perf_counter()
            kafka_bomb(kport, args.client_ids)
            http_bomb(hport, args.paths)
            sent_s = time.perf_counter() - t0
            after_bomb = rss(proxy.pid)
            m_size, m_time = fetch(base + "/metrics")
            s_size, s_time = fetch(base + "/stats")
            q_size, q_time = fetch(base + "/messages?limit=10000")
            after = rss(proxy.pid)
    sent = args.client_ids * CLIENT_ID_BYTES + args.paths * PATH_BYTES
    print(f"bomb: {args.client_ids} x 32 KiB client ids + {args.paths} x 8 KiB paths")
    print(f"  = {sent / MiB:.0f} MiB of label values, sent in {sent_s:.2f} s")
    print(f"/metrics   {m_size / MiB:8.2f} MiB in {m_time:.3f} s")
    print(f"/stats     {s_size / MiB:8.2f} MiB in {s_time:.3f} s")
    print(f"/messages  {q_size / MiB:8.2f} MiB in {q_time:.3f} s")
    print(
        f"proxy RSS  before {before['VmRSS'] / MiB:.1f} MiB, after the bomb "
        f"{after_bomb['VmRSS'] / MiB:.1f} MiB, after the scrapes {after['VmRSS'] / MiB:.1f} MiB "
        f"(growth {(after['VmRSS'] - before['VmRSS']) / MiB:.1f} MiB), peak {after['VmHWM'] / MiB:.1f} MiB"
    )


if __name__ == "__main__":
    main()
