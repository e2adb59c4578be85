"""Peers for the adversarial tests: well-behaved upstreams, and attackers.

The upstreams run on one asyncio loop in a thread (hundreds of upstream
connections would be hundreds of threads otherwise); attacks run with
`asyncio.run` on the test's thread; the proxy is a `ProxyThread`. Every wait
is a poll of a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import LoopThread, ProxyThread, wait_for

HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Upstreams(LoopThread):
    """An echo server, a Kafka broker that answers ApiVersions v0 (error 0, no
    APIs) to any request, and an HTTP/1 server (200 ok per head)."""

    def __init__(self) -> None:
        super().__init__()
        self.start_loop()
        self.echo_port, self.http_port, self.kafka_port, self.sink_port = self.call(self._start)

    async def _start(self) -> tuple[int, ...]:
        self.servers = [
            await asyncio.start_server(handler, "127.0.0.1", 0)
            for handler in (self._echo, self._http, self._kafka, self._sink)
        ]
        return tuple(s.sockets[0].getsockname()[1] for s in self.servers)

    @staticmethod
    async def _sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Reads and never answers (an HTTP/2 server that waits for a complete request)."""
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass
        writer.close()

    @staticmethod
    async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    @staticmethod
    async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(HTTP_OK)
                await writer.drain()
        writer.close()

    @staticmethod
    async def _kafka(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                size = int.from_bytes(await reader.readexactly(4), "big")
                body = await reader.readexactly(size)
                answer = body[4:8] + b"\x00\x00" + b"\x00\x00\x00\x00"
                writer.write(len(answer).to_bytes(4, "big") + answer)
                await writer.drain()
        writer.close()

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()

        with contextlib.suppress(Exception):
            self.call(stop, timeout=5)
        self.stop_loop()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    ups = Upstreams()
    yield ups
    ups.close()


def config(ups: Upstreams, **extra: Any) -> dict[str, Any]:
    """One listener per protocol, all on ephemeral ports, small limits (fast tests)."""
    echo = [f"127.0.0.1:{ups.echo_port}"]
    http = [f"127.0.0.1:{ups.http_port}"]
    kafka = [f"127.0.0.1:{ups.kafka_port}"]
    sink = [f"127.0.0.1:{ups.sink_port}"]
    cfg: dict[str, Any] = {
        "admin": {"enabled": False},
        "listeners": [
            {"name": "kafka", "listen": "127.0.0.1:0", "protocol": "kafka", "upstream": "broker"},
            {"name": "tcp", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "echo"},
            {"name": "http", "listen": "127.0.0.1:0", "protocol": "http", "upstream": "web"},
            {"name": "auto", "listen": "127.0.0.1:0", "protocol": "auto", "upstream": "web"},
            {"name": "h2", "listen": "127.0.0.1:0", "protocol": "http2", "upstream": "sink"},
        ],
        "upstreams": [
            {"name": "echo", "endpoints": echo},
            {"name": "web", "endpoints": http},
            {"name": "broker", "endpoints": kafka},
            {"name": "sink", "endpoints": sink},
        ],
        "limits": {"memory": "32MiB"},
        "timeouts": {"header": "1s", "frame": "60s"},
    }
    for key, value in extra.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    return cfg


def rss() -> int:
    """This process's resident set (the proxy runs in it), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def kafka_frame(correlation_id: int = 1) -> bytes:
    """An ApiVersions v0 request."""
    body = b"\x00\x12\x00\x00" + correlation_id.to_bytes(4, "big") + b"\x00\x04test"
    return len(body).to_bytes(4, "big") + body


def kafka_answer(correlation_id: int) -> bytes:
    """What the broker stand-in answers to `kafka_frame(correlation_id)`."""
    answer = correlation_id.to_bytes(4, "big") + b"\x00\x00\x00\x00\x00\x00"
    return len(answer).to_bytes(4, "big") + answer


def tcp_roundtrip(port: int, payload: bytes, expect: bytes, timeout: float = 10) -> bytes:
    """Send `payload`, read until `expect` arrived (or the deadline), return what came."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(expect):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def every_listener_answers(proxy: ProxyThread) -> None:
    """A normal request on each listener gets its normal answer."""
    answer = kafka_answer(7)
    assert tcp_roundtrip(proxy.port("kafka"), kafka_frame(7), answer) == answer
    assert tcp_roundtrip(proxy.port("tcp"), b"ping", b"ping") == b"ping"
    head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert tcp_roundtrip(proxy.port("http"), head, HTTP_OK) == HTTP_OK
    assert tcp_roundtrip(proxy.port("auto"), head, HTTP_OK) == HTTP_OK


def counter(proxy: ProxyThread, name: str) -> dict[tuple[str, ...], float]:
    def read() -> dict[tuple[str, ...], float]:
        assert proxy.proxy is not None
        fam = proxy.proxy.stats.families.get(name)
        return dict(fam.values) if fam is not None else {}

    return proxy.run(read)


def poll(pred: Any, timeout: float = 20) -> bool:
    return wait_for(pred, timeout)
