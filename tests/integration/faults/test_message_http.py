"""HTTP/1.1 message faults through the proxy: statuses in pipeline order, drops, delays.

A plain socket client pipelines requests so the order of responses is seen
byte for byte; the upstream is Python's threading HTTP server.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.peers import ProxyThread


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyThread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream = f"127.0.0.1:{server.server_address[1]}"
    cfg = {
        "admin": {"enabled": False},
        "listeners": [
            {"name": "web", "listen": "127.0.0.1:0", "protocol": "http", "upstream": "web"}
        ],
        "upstreams": [{"name": "web", "endpoints": [upstream]}],
    }
    with ProxyThread(cfg) as p:
        yield p
    server.shutdown()
    server.server_close()


@pytest.fixture
def faults(proxy: ProxyThread) -> Iterator[Any]:
    from protoproxy.faults.api import Faults

    f = Faults(proxy.app)
    yield f
    proxy.run(f.reset)


def _pipeline(port: int, requests: list[bytes], timeout: float = 5) -> bytes:
    """Send all requests at once, read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(requests))
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except TimeoutError:
            pass
        return out


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def test_abort_answers_in_pipeline_order_then_closes(proxy, faults):
    proxy.run(
        lambda: faults.add(
            name="teapot",
            match={"protocol": "http", "path_prefix": "/fail"},
            action={"abort": {"status": 503, "body": "down"}},
        )
    )
    out = _pipeline(proxy.port("web"), [_get("/a"), _get("/fail/1"), _get("/b")])
    first, rest = out.split(b"\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.0 200") or first.startswith(b"HTTP/1.1 200")
    assert rest.startswith(b"/a")
    assert rest[2:].startswith(b"HTTP/1.1 503 Service Unavailable")
    assert rest.endswith(b"\r\n\r\ndown")  # and nothing for /b: the connection closed
    assert proxy.run(lambda: faults.injected("teapot")) == 1


def test_header_match_and_drop(proxy, faults):
    proxy.run(
        lambda: faults.add(
            name="drop",
            match={"protocol": "http", "header": {"x-chaos": "drop"}},
            action={"drop": {}},
        )
    )
    plain = _pipeline(
        proxy.port("web"), [b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
    )
    assert plain.endswith(b"/ok")
    dropped = _pipeline(
        proxy.port("web"), [b"GET /x HTTP/1.1\r\nHost: x\r\nX-Chaos: drop\r\n\r\n"], timeout=0.5
    )
    assert dropped == b""  # never answered: the client's timeout is what ends it


def test_delay_keeps_order(proxy, faults):
    proxy.run(
        lambda: faults.add(
            name="slow",
            match={"protocol": "http", "path_prefix": "/slow"},
            action={"delay": "150ms"},
        )
    )
    reqs = [_get("/slow/1"), _get("/fast/2"), _get("/slow/3"), _get("/fast/4")]
    reqs.append(b"GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = _pipeline(proxy.port("web"), reqs)
    bodies = [part.split(b"HTTP/1.")[0] for part in out.split(b"\r\n\r\n")[1:]]
    assert bodies == [b"/slow/1", b"/fast/2", b"/slow/3", b"/fast/4", b"/end"]
    fault = proxy.run(lambda: faults.engine.get("slow"))
    assert fault.injected == 2 and fault.active == 0


def test_corrupt_body_keeps_framing(proxy, faults):
    proxy.run(
        lambda: faults.add(
            name="flip",
            match={"protocol": "http", "method": "POST"},
            action={"corrupt": {"bytes": 4}},
        )
    )
    body = b"A" * 1000
    req = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n" + body
    # The fault matches the head and flips bits in the body that follows;
    # Content-Length framing stays intact, so the server echoes 1000 bytes.
    out = _pipeline(proxy.port("web"), [req])
    head, echoed = out.split(b"\r\n\r\n", 1)
    assert b" 200 " in head.split(b"\r\n")[0]
    assert len(echoed) == 1000 and echoed != body
    assert sum(a != b for a, b in zip(echoed, body, strict=True)) <= 4


def _filters(proxy: ProxyThread) -> list[list[str]]:
    return proxy.run(
        lambda: [[type(f).__name__ for f in c.filters] for c in proxy.proxy.connections.values()]
    )


def test_no_filter_without_faults_and_live_faults_reach_open_connections(proxy, faults):
    with socket.create_connection(("127.0.0.1", proxy.port("web")), timeout=5) as s:
        s.sendall(_get("/one"))
        first = b""
        while not first.endswith(b"/one"):
            chunk = s.recv(65536)
            assert chunk, first
            first += chunk
        assert all("MessageFaultFilter" not in names for names in _filters(proxy))
        # A fault on another listener or protocol does not attach either.
        proxy.run(lambda: faults.add(name="k", match={"protocol": "kafka"}, action={"drop": {}}))
        assert all("MessageFaultFilter" not in names for names in _filters(proxy))
        proxy.run(
            lambda: faults.add(
                name="live", match={"protocol": "http"}, action={"abort": {"status": 429}}
            )
        )
        assert any("MessageFaultFilter" in names for names in _filters(proxy))
        s.sendall(_get("/two"))
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 429 Too Many Requests")
