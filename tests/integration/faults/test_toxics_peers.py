"""Real peers for the fault tests: blocking-socket servers on threads, and the proxy.

Blocking sockets on their own threads keep the proxy's event loop the only
asyncio code in the path, so what a test measures is the toxic, not a
second event loop competing for the same two cores. (No tests here; the
name only keeps the file within this area's test_toxics* paths.)
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from tests.peers import ProxyThread, ThreadedServer

Handler = Callable[[socket.socket], None]


class Server(ThreadedServer):
    """Accept connections and run `handler(sock)` for each on its own thread."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received: list[bytes] = []
        self.errors: list[BaseException] = []
        super().__init__()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            self.handler(conn)
        except OSError as exc:
            self.errors.append(exc)
        finally:
            conn.close()


def echo(conn: socket.socket) -> None:
    """Echo until EOF, then half-close back."""
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)


def reply_and_close(payload: bytes) -> Handler:
    """On the first bytes, send `payload`, then close (FIN) at once."""

    def handler(conn: socket.socket) -> None:
        if conn.recv(65536):
            conn.sendall(payload)

    return handler


def sink(into: list[bytes], reads: list[tuple[float, int]] | None = None) -> Handler:
    """Read everything until EOF or reset; record it (and each read's time and size)."""

    def handler(conn: socket.socket) -> None:
        buf = bytearray()
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                if reads is not None:
                    reads.append((time.monotonic(), len(data)))
                buf += data
        finally:
            into.append(bytes(buf))

    return handler


def tcp_config(upstream: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "admin": {"listen": "127.0.0.1:0"},
        "listeners": [{"name": "t", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}],
        "upstreams": [{"name": "u", "endpoints": [upstream]}],
        "seed": 7,
    }
    cfg.update(extra)
    return cfg


@contextlib.contextmanager
def proxied(handler: Handler, **extra: Any) -> Iterator[tuple[ProxyThread, Server]]:
    server = Server(handler)
    try:
        with ProxyThread(tcp_config(server.address, **extra)) as proxy:
            yield proxy, server
    finally:
        server.close()


def connect(proxy: ProxyThread, listener: str = "t") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port(listener)), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += data
    return bytes(buf)


def read_to_eof(sock: socket.socket) -> tuple[bytes, list[tuple[float, int]]]:
    """Everything until EOF, and (arrival time, size) of every read."""
    buf = bytearray()
    reads: list[tuple[float, int]] = []
    while True:
        data = sock.recv(262144)
        if not data:
            return bytes(buf), reads
        reads.append((time.monotonic(), len(data)))
        buf += data


def rtt(sock: socket.socket, payload: bytes = b"ping") -> float:
    t0 = time.monotonic()
    sock.sendall(payload)
    assert read_exactly(sock, len(payload)) == payload
    return time.monotonic() - t0


def faults(proxy: ProxyThread) -> Any:
    from protoproxy.faults.api import Faults

    assert proxy.app is not None
    return Faults(proxy.app)


def add_toxic(proxy: ProxyThread, type: str, **kw: Any) -> Any:
    return proxy.run(lambda: faults(proxy).toxic("t", type, **kw))


def remove(proxy: ProxyThread, name: str) -> None:
    proxy.run(lambda: faults(proxy).remove(name))
