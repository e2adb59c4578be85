"""Acceptance 4: HTTP/1.1 through the proxy to the fake HTTP service.

curl and h11 clients exercise keep-alive, pipelining, chunked bodies both
ways, HEAD, 204/304, `Expect: 100-continue`, an Upgrade to a tunnel and a
CONNECT tunnel. Every request must be paired with its own response in the
proxy's Exchanges, in order, per connection; and the HTTP metrics must count
each of them.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h11
import pytest

from protoproxy.app import App
from protoproxy.connection import Connection
from protoproxy_codecs.base import Exchange
from testbed.http import FakeHttpService
from testbed.http.routes import pattern
from tests.testbed.http.client import H11Client
from tests.tools import require_tool

from .conftest import http_metrics, running_app


@dataclass
class Proxied:
    app: App
    service: FakeHttpService
    port: int
    #: conn id -> its exchanges, in the order the proxy reported them
    exchanges: dict[int, list[Exchange]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pairs(self) -> list[list[tuple[str, str]]]:
        return [[(e.operation, e.status) for e in exs] for exs in self.exchanges.values()]


@pytest.fixture(params=["http", "auto"])
async def proxied(request: pytest.FixtureRequest) -> AsyncIterator[Proxied]:
    async with FakeHttpService() as service:
        host, port = service.address
        async with running_app(
            [{"name": "web", "listen": "127.0.0.1:0", "protocol": request.param, "upstream": "s"}],
            [{"name": "s", "endpoints": [f"{host}:{port}"]}],
        ) as app:
            p = Proxied(app, service, app.proxy.listeners["web"].port)

            def record(conn: Connection, exchanges: list[Exchange]) -> None:
                p.exchanges[conn.id].extend(exchanges)

            app.proxy.exchange_observers.append(record)
            yield p


async def _curl(*args: str, stdin: bytes | None = None) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        require_tool("curl"),
        "-sS",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    assert proc.returncode == 0, err.decode()
    return out


async def _closed(p: Proxied) -> None:
    """Exchanges are complete once the proxy has closed the connections."""
    async with asyncio.timeout(10):
        while p.app.proxy.connections:
            await asyncio.sleep(0.01)


async def test_curl_keepalive_head_status_chunked(proxied: Proxied) -> None:
    u = proxied.url
    paths = ("/echo?q=1", "/status/204", "/status/304", "/chunked/5000?size=100", "/bytes/3000")
    urls = [arg for path in paths for arg in ("-o", "/dev/null", u + path)]
    codes = await _curl("-w", "%{http_code} %{num_connects}\n", *urls)
    # one connection, reused for the next four requests
    assert codes.decode().split("\n")[:5] == ["200 1", "204 0", "304 0", "200 0", "200 0"]
    head = await _curl("-I", f"{u}/bytes/1234")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 1234" in head.lower()
    body = await _curl(f"{u}/chunked/5000?size=100")
    assert body == pattern(0, 5000)
    await _closed(proxied)
    assert proxied.pairs() == [
        [
            ("GET /echo", "200"),
            ("GET /status/204", "204"),
            ("GET /status/304", "304"),
            ("GET /chunked/5000", "200"),
            ("GET /bytes/3000", "200"),
        ],
        [("HEAD /bytes/1234", "200")],
        [("GET /chunked/5000", "200")],
    ]
    chunked = proxied.exchanges[min(proxied.exchanges)][3]
    assert chunked.attrs["response_body_bytes"] == 5000
    assert chunked.response_bytes > 5000  # chunk framing is counted on the wire


async def test_curl_chunked_upload_and_expect_continue(proxied: Proxied) -> None:
    u = proxied.url
    data = bytes(range(256)) * 40
    echoed = json.loads(
        await _curl("-T", "-", "-H", "Content-Type: application/x", f"{u}/echo", stdin=data)
    )
    assert echoed["method"] == "PUT" and echoed["body_length"] == len(data)
    assert ["transfer-encoding", "chunked"] in echoed["headers"]
    verbose = await _curl(
        "-v",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        "@-",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        f"{u}/echo",
        stdin=data,
    )
    assert verbose == b"200"
    await _closed(proxied)
    assert proxied.pairs() == [[("PUT /echo", "200")], [("POST /echo", "200")]]
    post = proxied.exchanges[max(proxied.exchanges)][0]
    assert post.attrs["request_body_bytes"] == len(data)


async def test_h11_client_keepalive_and_continue(proxied: Proxied) -> None:
    client = await H11Client.connect(("127.0.0.1", proxied.port))
    r1 = await client.request("GET", "/chunked/300?size=7")
    r2 = await client.request(
        "POST", "/echo", [("expect", "100-continue")], b"x" * 999, wait_for_continue=True
    )
    r3 = await client.request("HEAD", "/echo")
    r4 = await client.request("GET", "/status/404")
    await client.close()
    assert (r1.status, r1.body) == (200, pattern(0, 300))
    assert r2.interim == [100] and json.loads(r2.body)["body_length"] == 999
    assert (r3.status, r3.body) == (200, b"")
    assert r4.status == 404
    await _closed(proxied)
    assert proxied.pairs() == [
        [
            ("GET /chunked/300", "200"),
            ("POST /echo", "200"),
            ("HEAD /echo", "200"),
            ("GET /status/404", "404"),
        ]
    ]


async def test_pipelined_requests_pair_in_order(proxied: Proxied) -> None:
    plan = [
        ("GET", "/echo", b""),
        ("HEAD", "/bytes/50", b""),
        ("POST", "/echo", b"pipelined body"),
        ("GET", "/status/204", b""),
        ("GET", "/chunked/77?size=10", b""),
        ("GET", "/status/304", b""),
        ("GET", "/bytes/10", b""),
    ]
    parsers: list[h11.Connection] = []
    wire = bytearray()
    for i, (method, target, body) in enumerate(plan):
        conn = h11.Connection(h11.CLIENT)
        headers = [("host", "pipe.test")]
        if body:
            headers.append(("content-length", str(len(body))))
        if i == len(plan) - 1:
            headers.append(("connection", "close"))
        wire += conn.send(h11.Request(method=method, target=target, headers=headers)) or b""
        if body:
            wire += conn.send(h11.Data(data=body)) or b""
        wire += conn.send(h11.EndOfMessage()) or b""
        parsers.append(conn)

    reader, writer = await asyncio.open_connection("127.0.0.1", proxied.port)
    writer.write(bytes(wire))  # every request in one write
    await writer.drain()
    received = await reader.read()  # until the server closes after the last one
    writer.close()

    statuses = []
    rest = received
    for conn in parsers:
        conn.receive_data(rest)
        status, body = 0, bytearray()
        while True:
            ev = conn.next_event()
            assert ev is not h11.NEED_DATA, "response truncated"
            if isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                break
        statuses.append(status)
        rest = conn.trailing_data[0]
    assert statuses == [200, 200, 200, 204, 200, 304, 200]
    await _closed(proxied)
    assert proxied.pairs() == [
        [
            ("GET /echo", "200"),
            ("HEAD /bytes/50", "200"),
            ("POST /echo", "200"),
            ("GET /status/204", "204"),
            ("GET /chunked/77", "200"),
            ("GET /status/304", "304"),
            ("GET /bytes/10", "200"),
        ]
    ]


async def test_upgrade_and_connect_tunnels(proxied: Proxied) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxied.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: t.test\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    for chunk in (b"tunnel bytes", b"GET / HTTP/1.1\r\n\r\n", bytes(range(256))):
        writer.write(chunk)
        assert await reader.readexactly(len(chunk)) == chunk
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", proxied.port)
    writer.write(b"CONNECT db.test:5432 HTTP/1.1\r\nHost: db.test:5432\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    writer.write(b"\x00\x01binary")
    assert await reader.readexactly(8) == b"\x00\x01binary"
    writer.write_eof()
    assert await reader.read() == b""
    writer.close()

    await _closed(proxied)
    assert proxied.pairs() == [[("GET /ws", "101")], [("CONNECT db.test:5432", "200")]]
    upgrades = [exs[0].attrs.get("upgrade") for exs in proxied.exchanges.values()]
    assert upgrades == ["tunnel", "tunnel"]


async def test_metrics_count_every_request(proxied: Proxied) -> None:
    client = await H11Client.connect(("127.0.0.1", proxied.port))
    for path in ("/echo", "/status/503", "/status/404", "/echo", "/status/201"):
        await client.request("GET", path)
    await client.request("DELETE", "/echo")
    await client.close()
    await _closed(proxied)
    m = http_metrics(proxied.app)
    got = {k: v for k, v in m.http_requests.values.items() if k[0] == "web"}
    assert got == {
        ("web", "fake.test", "GET", "2xx"): 3,
        ("web", "fake.test", "GET", "5xx"): 1,
        ("web", "fake.test", "GET", "4xx"): 1,
        ("web", "fake.test", "DELETE", "2xx"): 1,
    }
    assert m.http_latency.count(("web", "fake.test", "GET", "2xx")) == 3
