"""Taps through the admin API: POST, GET, DELETE, the download; HTTP/1 redaction; drops.

The proxy runs with its real admin API on loopback, in front of a threaded
echo server (TCP) and Python's http.server (HTTP/1). Downloads are read back
with `protoproxy decode`'s reader and, for the drop test, with tshark.
"""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protoproxy.decode.pcap import segments
from tests.peers import ProxyThread, wait_for

from .tshark import dump

TOKEN = "Bearer s3cr3t-t0ken-QWERTY"


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _Http(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Set-Cookie", "sid=SESSION-ID-7777; HttpOnly")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(server: socketserver.TCPServer) -> socketserver.TCPServer:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyThread]:
    socketserver.ThreadingTCPServer.daemon_threads = True
    echo = _serve(socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo))
    web = _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Http))
    config = {
        "admin": {"listen": "127.0.0.1:0"},
        "captures": {"dir": str(tmp_path_factory.mktemp("taps"))},
        "listeners": [
            {"name": "tcp", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "echo"},
            {"name": "web", "listen": "127.0.0.1:0", "protocol": "http", "upstream": "web"},
        ],
        "upstreams": [
            {"name": "echo", "endpoints": [f"127.0.0.1:{echo.server_address[1]}"]},
            {"name": "web", "endpoints": [f"127.0.0.1:{web.server_address[1]}"]},
        ],
    }
    with ProxyThread(config) as p:
        yield p
    echo.shutdown()
    web.shutdown()


def _api(proxy: ProxyThread, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(proxy.admin_url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            status = resp.status
            kind = resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raw, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
    return status, json.loads(raw) if "json" in kind else raw


def _echo(proxy: ProxyThread, messages: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port("tcp")), timeout=10) as s:
        for m in messages:
            s.sendall(m)
            got = b""
            while len(got) < len(m):
                got += s.recv(65536)
            assert got == m
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b""


def _idle(proxy: ProxyThread) -> None:
    assert wait_for(lambda: proxy.run(lambda: not proxy.app.proxy.connections), 10)


def test_post_list_delete_download(proxy: ProxyThread, tmp_path: Path) -> None:
    status, made = _api(proxy, "POST", "/captures", {})
    assert status == 201 and made["id"] and made["filters"] == {}
    tap = made["id"]
    _echo(proxy, [b"ping-%d" % i for i in range(5)])
    _idle(proxy)
    status, listing = _api(proxy, "GET", "/captures")
    mine = next(c for c in listing["captures"] if c["id"] == tap)
    assert mine["state"] == "running" and mine["connections"] == 1
    status, stopped = _api(proxy, "DELETE", f"/captures/{tap}")
    assert status == 200 and stopped["state"] == "stopped"
    assert stopped["packets"] > 0 and stopped["bytes"] > 0 and stopped["dropped"] == 0
    status, pcap = _api(proxy, "GET", f"/captures/{tap}.pcap")
    assert status == 200 and pcap[:4] == b"\x0a\x0d\x0d\x0a"  # a pcapng section
    path = tmp_path / "tap.pcapng"
    path.write_bytes(pcap)
    sent = b"".join(s.payload for s, _ in segments(path) if s.dport == proxy.port("tcp"))
    assert sent == b"".join(b"ping-%d" % i for i in range(5))
    status, listing = _api(proxy, "GET", "/captures")
    assert status == 200 and any(c["id"] == tap for c in listing["captures"])
    assert _api(proxy, "DELETE", "/captures/nope")[0] == 404


def test_bad_requests_name_the_problem(proxy: ProxyThread) -> None:
    status, err = _api(proxy, "POST", "/captures", {"protocol": "smtp"})
    assert status == 400 and "protocol" in err["error"]
    status, err = _api(proxy, "POST", "/captures", {"peer": "not-an-ip"})
    assert status == 400 and "peer" in err["error"]
    status, err = _api(proxy, "POST", "/captures", {"listener": "nope"})
    assert status == 404 and "nope" in err["error"]
    status, err = _api(proxy, "POST", "/captures", {"keylog": "/tmp/keys"})
    assert status == 400 and "keylog" in err["error"]
    status, err = _api(proxy, "POST", "/captures", [1])
    assert status == 400
    # the browser rules apply as on every admin route: a form post is refused
    req = urllib.request.Request(
        proxy.admin_url + "/captures", data=b"listener=tcp", method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 403


def test_filters_pick_the_connections(proxy: ProxyThread) -> None:
    _, by_listener = _api(proxy, "POST", "/captures", {"listener": "web"})
    _, by_peer = _api(proxy, "POST", "/captures", {"peer": "10.0.0.0/8"})
    _, by_proto = _api(proxy, "POST", "/captures", {"protocol": "tcp"})
    _echo(proxy, [b"x"])
    _idle(proxy)
    counts = {c["id"]: c["connections"] for c in _api(proxy, "GET", "/captures")[1]["captures"]}
    assert counts[by_listener["id"]] == 0
    assert counts[by_peer["id"]] == 0  # the client is 127.0.0.1
    assert counts[by_proto["id"]] == 1
    for t in (by_listener, by_peer, by_proto):
        _api(proxy, "DELETE", f"/captures/{t['id']}")


def test_http1_credentials_are_redacted(proxy: ProxyThread, tmp_path: Path) -> None:
    _, tap = _api(proxy, "POST", "/captures", {"listener": "web"})
    url = f"http://127.0.0.1:{proxy.port('web')}/"
    req = urllib.request.Request(url, headers={"Authorization": TOKEN, "Cookie": "a=COOKIE-42"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.read() == b"hello"
        assert "SESSION-ID-7777" in resp.headers["Set-Cookie"]
    _idle(proxy)
    _api(proxy, "DELETE", f"/captures/{tap['id']}")
    pcap = _api(proxy, "GET", f"/captures/{tap['id']}.pcap")[1]
    for secret in (b"s3cr3t-t0ken", b"COOKIE-42", b"SESSION-ID-7777"):
        assert secret not in pcap
    path = tmp_path / "web.pcapng"
    path.write_bytes(pcap)
    port = proxy.port("web")
    request = b"".join(s.payload for s, _ in segments(path) if s.dport == port)
    response = b"".join(s.payload for s, _ in segments(path) if s.sport == port)
    assert b"\r\nAuthorization: " + b"*" * (len(TOKEN)) + b"\r\n" in request
    assert request.startswith(b"GET / HTTP/1.1\r\n") and request.endswith(b"\r\n\r\n")
    assert response.endswith(b"\r\n\r\nhello") and b"Set-Cookie: ****" in response


def test_a_full_queue_drops_and_counts(proxy: ProxyThread, tmp_path: Path) -> None:
    app = proxy.app

    async def start() -> Any:
        return app.captures.start(name="tiny", listener="tcp", queue=4)

    tap = proxy.call(start)
    tap.files.lock.acquire()  # the writer's next batch waits: a stalled disk
    try:
        _echo(proxy, [b"chunk-%03d" % i for i in range(50)])
        _idle(proxy)
    finally:
        tap.files.lock.release()

    async def stop() -> dict[str, Any]:
        app.captures.stop("tiny")
        await tap.wait_stopped()
        return dict(app.proxy.stats.families["protoproxy_capture_dropped_total"].values)

    dropped = proxy.call(stop)
    listing = {c["id"]: c for c in _api(proxy, "GET", "/captures")[1]["captures"]}["tiny"]
    assert listing["dropped"] > 0 and listing["dropped"] == tap.files.dropped
    assert dropped[("tiny", "queue_full")] == listing["dropped"]
    path = tmp_path / "tiny.pcapng"
    path.write_bytes(_api(proxy, "GET", "/captures/tiny.pcap")[1])
    # tshark reads what was kept. Whether it flags the hole ("previous segment
    # not captured") depends on which events the race with the writer dropped:
    # a hole with no later segment in its direction is not flagged, so a clean
    # CI run failed on `assert lost`. The counts above are the test.
    assert dump(path, ())
