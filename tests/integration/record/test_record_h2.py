"""Plain HTTP/2 (not gRPC) through a recording listener: WireMock mappings too.

nghttpd serves a binary file over cleartext HTTP/2; curl asks for it with
prior knowledge through the proxy.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from protoproxy.app import App
from protoproxy.config import from_dict
from tests.integration.http.test_nghttpd_plain import FILE, nghttpd  # noqa: F401 (fixture)
from tests.tools import require_tool

from .conftest import files


async def _curl(curl: str, url: str) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        curl,
        "-s",
        "--http2-prior-knowledge",
        "-w",
        "\n%{http_code}",
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    body, _, code = out.rpartition(b"\n")
    return int(code), body


async def test_http2_requests_become_mappings(tmp_path: Path, nghttpd: int) -> None:  # noqa: F811
    curl = require_tool("curl")
    rec = tmp_path / "rec"
    cfg = from_dict(
        {
            "admin": {"enabled": False},
            "listeners": [
                {
                    "name": "h2",
                    "listen": "127.0.0.1:0",
                    "protocol": "http2",
                    "upstream": "u",
                    "record": {"dir": str(rec)},
                }
            ],
            "upstreams": [{"name": "u", "endpoints": [f"127.0.0.1:{nghttpd}"]}],
        }
    )
    app = App(cfg)
    await app.start()
    try:
        base = f"http://127.0.0.1:{app.proxy.listeners['h2'].port}"
        assert await _curl(curl, f"{base}/file") == (200, FILE)
        code, _ = await _curl(curl, f"{base}/missing")
        assert code == 404
    finally:
        await app.stop(drain=0)
    mappings = {}
    for p in files(rec / "http" / "mappings", "*.json"):
        m = json.loads(p.read_text())
        mappings[m["request"]["url"]] = m
    assert sorted(mappings) == ["/file", "/missing"]
    got = mappings["/file"]
    assert got["request"]["method"] == "GET"
    assert got["response"]["status"] == 200
    assert base64.b64decode(got["response"]["base64Body"]) == FILE
    assert mappings["/missing"]["response"]["status"] == 404
