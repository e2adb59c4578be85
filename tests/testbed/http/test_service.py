"""The fake HTTP/1.1 service against real clients: an h11 client, raw sockets, curl."""

from __future__ import annotations

import asyncio
import json

import pytest

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.http1 import Http1Codec
from testbed.http import FakeHttpService, Reply, Request, pattern

from .client import H11Client, curl


async def test_defaults_over_one_keep_alive_connection() -> None:
    async with FakeHttpService() as svc:
        client = await H11Client.connect(svc.address)
        r = await client.request("POST", "/echo?x=1", [("X-Test", "yes")], b"payload")
        doc = json.loads(r.body)
        assert (r.status, doc["method"], doc["path"], doc["query"]) == (200, "POST", "/echo", "x=1")
        assert doc["body"] == "payload" and ["x-test", "yes"] in doc["headers"]
        r = await client.request("GET", "/status/503")
        assert (r.status, r.body) == (503, b"503\n")
        r = await client.request("GET", "/status/204")
        assert (r.status, r.body, r.header(b"content-length")) == (204, b"", None)
        r = await client.request("GET", "/status/304")
        assert (r.status, r.body) == (304, b"")
        r = await client.request("GET", "/bytes/100000")
        assert r.body == pattern(0, 100000)
        r = await client.request("HEAD", "/bytes/5000")
        assert (r.status, r.body, r.header(b"content-length")) == (200, b"", b"5000")
        r = await client.request("GET", "/chunked/3000?size=1000")
        assert r.header(b"transfer-encoding") == b"chunked" and r.body == pattern(0, 3000)
        r = await client.request("GET", "/delay/10")
        assert r.body == b"ok\n"
        r = await client.request("GET", "/nowhere")
        assert r.status == 404
        await client.close()
        assert svc.connections == 1
        assert [q.path for q in svc.requests][:2] == ["/echo", "/status/503"]


async def test_programmed_routes() -> None:
    async with FakeHttpService() as svc:
        svc.route("GET", "/fixed", status=418, headers=[("x-tea", "pot")], body=b"short and stout")
        svc.route("*", "/big", body_size=70000, chunked=True)

        async def handler(req: Request) -> Reply:
            return Reply(201, body=req.body[::-1])

        svc.route("PUT", "/rev", handler=handler)
        client = await H11Client.connect(svc.address)
        r = await client.request("GET", "/fixed")
        assert (r.status, r.header(b"x-tea"), r.body) == (418, b"pot", b"short and stout")
        r = await client.request("DELETE", "/big")
        assert r.header(b"transfer-encoding") == b"chunked" and r.body == pattern(0, 70000)
        r = await client.request("PUT", "/rev", body=b"abc")
        assert (r.status, r.body) == (201, b"cba")
        await client.close()


async def test_expect_100_continue() -> None:
    async with FakeHttpService() as svc:
        client = await H11Client.connect(svc.address)
        r = await client.request(
            "PUT", "/echo", [("Expect", "100-continue")], b"x" * 1000, wait_for_continue=True
        )
        assert r.interim == [100] and json.loads(r.body)["body_length"] == 1000
        await client.close()


async def _read_until_eof(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 10)


async def test_pipelining_answers_in_order() -> None:
    """Three requests in one write; the codec pairs the three answers."""
    async with FakeHttpService() as svc:
        reader, writer = await asyncio.open_connection(*svc.address)
        reqs = (
            b"GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\n"
            b"HEAD /bytes/10 HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /chunked/10 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        writer.write(reqs)
        data = await _read_until_eof(reader)
        writer.close()
        codec = Http1Codec()
        codec.feed(UPSTREAM, reqs)
        out = codec.feed(DOWNSTREAM, data) + codec.eof(DOWNSTREAM)
        assert b"".join(m.raw for m in out) == data
        assert [e.status for e in codec.take_exchanges()] == ["201", "200", "200"]


async def test_upgrade_echo_tunnel() -> None:
    async with FakeHttpService() as svc:
        reader, writer = await asyncio.open_connection(*svc.address)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nearly"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert await asyncio.wait_for(reader.readexactly(5), 10) == b"early"
        writer.write(b"\x00\xffbinary")
        assert await asyncio.wait_for(reader.readexactly(8), 10) == b"\x00\xffbinary"
        writer.write_eof()
        assert await _read_until_eof(reader) == b""
        writer.close()


async def test_connect_echo_and_relay() -> None:
    async with FakeHttpService() as svc, FakeHttpService(connect="relay") as proxy:
        reader, writer = await asyncio.open_connection(*svc.address)
        writer.write(b"CONNECT x:1 HTTP/1.1\r\nHost: x:1\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 ")
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
        writer.close()

        # Relay mode: CONNECT through one fake service to another one.
        reader, writer = await asyncio.open_connection(*proxy.address)
        host, port = svc.address
        writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        client = H11Client(reader, writer)
        r = await client.request("GET", "/status/202")
        assert r.status == 202
        await client.close()


async def test_bad_request_gets_400() -> None:
    async with FakeHttpService() as svc:
        reader, writer = await asyncio.open_connection(*svc.address)
        writer.write(b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n")
        data = await _read_until_eof(reader)
        assert data.startswith(b"HTTP/1.1 400 ")
        writer.close()


async def test_curl_keep_alive_head_and_continue() -> None:
    async with FakeHttpService() as svc:
        base = svc.url
        code, out, err = await curl(
            "-w",
            "%{http_code} %{num_connects}\\n",
            *("-o", "/dev/null", f"{base}/status/200"),
            *("-o", "/dev/null", f"{base}/bytes/1000"),
            *("-o", "/dev/null", f"{base}/chunked/5000"),
        )
        assert code == 0, err
        # Three answers, one TCP connection: keep-alive works with a real client.
        assert out.split(b"\n")[:3] == [b"200 1", b"200 0", b"200 0"]
        assert svc.connections == 1

        code, out, err = await curl("-I", f"{base}/bytes/123")
        assert code == 0 and b"content-length: 123" in out.lower()

        code, out, err = await curl(
            "-H", "Expect: 100-continue", "--data-binary", "x" * 2000, f"{base}/echo"
        )
        assert code == 0, err
        assert json.loads(out)["body_length"] == 2000

        code, out, err = await curl("-o", "-", f"{base}/bytes/70000")
        assert out == pattern(0, 70000)


@pytest.mark.parametrize("path", ["/status/204", "/status/304"])
async def test_curl_bodiless(path: str) -> None:
    async with FakeHttpService() as svc:
        code, out, err = await curl("-w", "%{http_code}", f"{svc.url}{path}")
        assert code == 0, err
        assert out == path[-3:].encode()
