"""curl through the real proxy runtime with the HTTP/1.1 codec, in front of the fake service."""

from __future__ import annotations

import json

import pytest

from protoproxy.app import App
from protoproxy.config import from_dict
from protoproxy_codecs.base import Exchange
from testbed.http import FakeHttpService, pattern

from .client import curl


@pytest.mark.parametrize("protocol", ["http", "auto"])
async def test_curl_through_the_proxy(protocol: str) -> None:
    async with FakeHttpService() as svc:
        host, port = svc.address
        config = from_dict(
            {
                "admin": {"enabled": False},
                "listeners": [
                    {"name": "web", "listen": "127.0.0.1:0", "protocol": protocol, "upstream": "u"}
                ],
                "upstreams": [{"name": "u", "endpoints": [f"{host}:{port}"]}],
            }
        )
        app = App(config)
        seen: list[Exchange] = []
        app.proxy.exchange_observers.append(lambda conn, exchanges: seen.extend(exchanges))
        await app.start()
        try:
            base = f"http://127.0.0.1:{app.proxy.listeners['web'].port}"
            code, out, err = await curl(
                *("-o", "/dev/null", f"{base}/status/404"),
                *("-o", "/dev/null", f"{base}/chunked/3000"),
                *("-o", "-", f"{base}/bytes/50000"),
            )
            assert code == 0, err
            assert out == pattern(0, 50000)
            code, out, err = await curl(
                "-H", "Expect: 100-continue", "--data-binary", "z" * 1500, f"{base}/echo"
            )
            assert code == 0, err
            assert json.loads(out)["body_length"] == 1500
        finally:
            await app.stop(drain=0)
    assert [(e.protocol, e.operation, e.status) for e in seen] == [
        ("http", "GET /status/404", "404"),
        ("http", "GET /chunked/3000", "200"),
        ("http", "GET /bytes/50000", "200"),
        ("http", "POST /echo", "200"),
    ]
