"""Requests/s of passive HTTP/1.1 decoding: our parser vs. driving h11 Connections.

Run: python bench/http1_decode.py [N]

Workload: N small keep-alive GET/200 exchanges, each request and each response
arriving as one read, as they do on a loopback proxy. Both contenders see both
directions and must report heads and body chunks; the h11 driver is the
"reuse h11 as is" design (a SERVER-role Connection parses requests, a
CLIENT-role one parses responses and is told about each request), which has to
re-send every event on the opposite Connection to keep the two in step.
"""

from __future__ import annotations

import sys
import time

import h11

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.http1 import Http1Codec

REQUEST = (
    b"GET /api/items/42?x=1 HTTP/1.1\r\nHost: example.test\r\n"
    b"User-Agent: bench/1.0\r\nAccept: */*\r\nCookie: session=abc\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: fake\r\nContent-Type: application/json\r\n"
    b"Content-Length: 17\r\nDate: Thu, 26 Nov 2026 21:00:00 GMT\r\n\r\n"
    b'{"id":42,"ok":ok}'
)


def run_codec(n: int) -> int:
    codec = Http1Codec()
    messages = 0
    for _ in range(n):
        messages += len(codec.feed(UPSTREAM, REQUEST))
        messages += len(codec.feed(DOWNSTREAM, RESPONSE))
        codec.take_exchanges()
    return messages


def run_h11(n: int) -> int:
    server = h11.Connection(h11.SERVER)  # parses what the client sends
    client = h11.Connection(h11.CLIENT)  # parses what the server sends
    messages = 0
    for _ in range(n):
        server.receive_data(REQUEST)
        while True:
            event = server.next_event()
            if event is h11.NEED_DATA:
                break
            messages += 1
            client.send(event)  # tell the client side what was requested
            if type(event) is h11.EndOfMessage:
                break
        client.receive_data(RESPONSE)
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                break
            messages += 1
            server.send(event)  # and the server side what was answered
            if type(event) is h11.EndOfMessage:
                break
        server.start_next_cycle()
        client.start_next_cycle()
    return messages


def trickle(size: int) -> float:
    """Seconds to parse one `size`-byte head fed one byte at a time (must stay linear)."""
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(size // 1010))
    head = b"GET / HTTP/1.1\r\nHost: a\r\n" + lines + b"\r\n"
    codec = Http1Codec()
    t0 = time.perf_counter()
    for i in range(len(head)):
        codec.feed(UPSTREAM, head[i : i + 1])
    return time.perf_counter() - t0


def measure(fn, n: int) -> float:
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        fn(n)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    assert run_codec(10) == 10 * 5 and run_h11(10) == 10 * 5
    ours = measure(run_codec, n)
    theirs = measure(run_h11, n)
    print(f"Http1Codec   : {ours:10.0f} exchanges/s ({1e6 / ours:.1f} us per exchange)")
    print(f"h11 driver   : {theirs:10.0f} exchanges/s ({1e6 / theirs:.1f} us per exchange)")
    print(f"ratio        : {ours / theirs:.1f}x")
    for size in (32_000, 128_000):
        print(f"{size // 1000:3d} kB head fed 1 byte per read: {trickle(size) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
