"""Acceptance 6: h2load drives 100,000 requests through the proxy with 0 failures.

The upstream is nginx with HTTP/2 over cleartext (prior knowledge), which can
take the load here; the proxy decodes every frame and HPACK block on the way
(`protocol: http2`) and must count every request it relayed.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.peers import ProxyThread, connect_when_listening, free_port
from tests.tools import require_tool

REQUESTS = 100_000


@pytest.fixture(scope="module")
def nginx_h2c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """nginx answering every request with a tiny body over h2c."""
    nginx = require_tool("nginx")
    d = tmp_path_factory.mktemp("nginx")
    port = free_port()
    temp = " ".join(
        f"{k}_temp_path {d};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (d / "nginx.conf").write_text(
        f"""
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  {temp}
  server {{
    listen 127.0.0.1:{port} http2;
    location / {{ return 200 "ok"; }}
  }}
}}
"""
    )
    proc = subprocess.Popen(
        [nginx, "-c", str(d / "nginx.conf"), "-p", str(d)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        connect_when_listening(port, proc, what=f"nginx did not listen on {port}").close()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def h2load(port: int, requests: int, clients: int = 4, streams: int = 16) -> dict[str, int]:
    out = subprocess.run(
        [
            require_tool("h2load"),
            "-n",
            str(requests),
            "-c",
            str(clients),
            "-m",
            str(streams),
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    ).stdout
    m = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
    )
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert m and codes, out
    keys = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    result = dict(zip(keys, map(int, m.groups()), strict=True))
    result["2xx"] = int(codes.group(1))
    return result


def test_h2load_100k_requests_zero_failures(nginx_h2c: int) -> None:
    config = {
        "admin": {"enabled": False},
        "listeners": [
            {"name": "h2", "listen": "127.0.0.1:0", "protocol": "http2", "upstream": "web"}
        ],
        "upstreams": [{"name": "web", "endpoints": [f"127.0.0.1:{nginx_h2c}"]}],
    }
    with ProxyThread(config) as proxy:
        result = h2load(proxy.port("h2"), REQUESTS)
        assert result["failed"] == result["errored"] == result["timeout"] == 0, result
        assert result["succeeded"] == result["2xx"] == REQUESTS, result

        def counted() -> tuple[float, float]:
            app = proxy.app
            assert app is not None
            fam = app.http.http_requests
            h2 = {k: v for k, v in fam.values.items() if k[0] == "h2"}
            return sum(h2.values()), h2.get(
                ("h2", f"127.0.0.1:{proxy.port('h2')}", "GET", "2xx"), 0
            )

        total, ok = proxy.run(counted)
        assert total == ok == REQUESTS
        errors = proxy.run(lambda: proxy.proxy.metrics.decode_errors.total())  # type: ignore[union-attr]
        assert errors == 0


def test_nginx_upstream_is_http2(nginx_h2c: int) -> None:
    """Guard: the figure above means nothing if nginx fell back to HTTP/1."""
    result = h2load(nginx_h2c, 100, clients=1, streams=1)
    assert result["succeeded"] == 100
