"""Http1Codec on live traffic: real clients, the fake service, a relay in between."""

from __future__ import annotations

import asyncio
import json

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from testbed.http import FakeHttpService, pattern

from .client import H11Client, curl
from .relay import CodecRelay


async def test_curl_through_the_codec() -> None:
    async with FakeHttpService() as svc, CodecRelay(svc.address) as relay:
        base = relay.url
        code, out, err = await curl(
            *("-o", "/dev/null", f"{base}/status/201"),
            *("-o", "/dev/null", f"{base}/chunked/5000?size=333"),
            *("-o", "/dev/null", "-H", "Authorization: Bearer s3cret", f"{base}/bytes/20000"),
        )
        assert code == 0, err
        code, out, err = await curl(
            "-H", "Expect: 100-continue", "--data-binary", "y" * 3000, f"{base}/echo"
        )
        assert code == 0 and json.loads(out)["body_length"] == 3000
        code, out, err = await curl("-I", f"{base}/bytes/99")
        assert code == 0 and b"200" in out

    # Transparent: every byte read was written, unchanged and in order.
    for direction in (UPSTREAM, DOWNSTREAM):
        assert relay.written[direction] == relay.read[direction]
    assert not relay.errors
    ops = [(e.operation, e.status) for e in relay.exchanges]
    assert ops == [
        ("GET /status/201", "201"),
        ("GET /chunked/5000", "200"),
        ("GET /bytes/20000", "200"),
        ("POST /echo", "200"),
        ("HEAD /bytes/99", "200"),
    ]
    by_op = {e.operation: e for e in relay.exchanges}
    assert by_op["GET /chunked/5000"].attrs["response_body_bytes"] == 5000
    assert by_op["GET /bytes/20000"].attrs["response_body_bytes"] == 20000
    assert by_op["POST /echo"].attrs["request_body_bytes"] == 3000
    assert by_op["HEAD /bytes/99"].attrs["response_body_bytes"] == 0
    interim = [m for m in relay.messages if m.kind == "head" and (m.info or {}).get("interim")]
    assert [m.info["status"] for m in interim] == [100]
    auth = [
        v
        for m in relay.messages
        if m.kind == "head"
        for n, v in m.info["headers"]
        if n == b"authorization"
    ]
    assert auth and set(auth) == {b"<redacted>"}
    assert b"s3cret" in relay.written[UPSTREAM]  # redaction never touches the forwarded bytes


async def test_h11_client_and_tunnel_through_the_codec() -> None:
    async with FakeHttpService() as svc, CodecRelay(svc.address, read_size=4096) as relay:
        host, port = relay.url.removeprefix("http://").split(":")
        client = await H11Client.connect((host, int(port)))
        r = await client.request("GET", "/bytes/100000")
        assert r.body == pattern(0, 100000)
        await client.close()

        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /t HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.write(b"through the tunnel")
        assert await asyncio.wait_for(reader.readexactly(18), 10) == b"through the tunnel"
        writer.close()
    tunnel = b"".join(
        m.raw for m in relay.messages if m.kind == "tunnel" and m.direction == UPSTREAM
    )
    assert tunnel == b"through the tunnel"
    assert [e.status for e in relay.exchanges] == ["200", "101"]


async def test_bad_request_answered_by_the_codec() -> None:
    async with FakeHttpService() as svc, CodecRelay(svc.address) as relay:
        code, out, err = await curl(
            *("-w", "%{http_code}", "-o", "/dev/null", "--request-target", "/a b"), relay.url
        )
    assert code == 0, err
    assert out == b"400"
    assert relay.errors and relay.errors[0].reason == "bad_request_line"
    assert not svc.requests  # the bad request never reached the service
