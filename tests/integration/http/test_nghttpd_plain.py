"""Acceptance 7b: gRPC-shaped POSTs to nghttpd serving a plain file.

A real HTTP/2 server that knows nothing of gRPC answers `content-type:
application/grpc` POSTs with a file. Whatever it answers directly must come
through the proxy the same, as it does through HAProxy in h2 mode, and the
proxy must count each one as an HTTP/2 exchange: the file is not read as
length-prefixed gRPC messages (it starts like a 4 GB one), so nothing ends in
a decode error. `test_answers.py` covers the same shape with a minimal `h2`
server; this one is the acceptance's own peer.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.peers import ProxyThread, connect_when_listening, free_port
from tests.tools import require_tool

#: Starts like a 4 GB gRPC message: read as one, it would end the connection.
FILE = b"\xf7\xe1\x02\x03\x11<html>not gRPC</html>" + b"x" * 3000
REQUESTS = 10
BIND_TRIES = 5


def _start_on_free_port(
    start: Callable[[int], subprocess.Popen[bytes]], what: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a child on a port chosen just before, retrying when another process took
    it in between (the child then exits at bind; `connect_when_listening` sees that)."""
    for _ in range(BIND_TRIES):
        port = free_port()
        proc = start(port)
        try:
            connect_when_listening(port, proc, what=f"{what} did not listen on {port}").close()
        except AssertionError:
            proc.kill()
            proc.wait(10)
            continue
        return proc, port
    raise AssertionError(f"{what} could not bind a free port in {BIND_TRIES} tries")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module")
def nghttpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """nghttpd over cleartext HTTP/2 serving a directory holding `/file`."""
    exe = require_tool("nghttpd")
    docs = tmp_path_factory.mktemp("nghttpd")
    (docs / "file").write_bytes(FILE)

    def start(port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [exe, "--no-tls", "-a", "127.0.0.1", "-d", str(docs), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    proc, port = _start_on_free_port(start, "nghttpd")
    try:
        yield port
    finally:
        _stop(proc)


@pytest.fixture()
def body(tmp_path: Path) -> Path:
    path = tmp_path / "request"
    path.write_bytes(b"\0\0\0\0\4ping")  # one well-formed 4-byte gRPC message
    return path


def h2load(port: int, body: Path) -> dict[str, int]:
    """h2load's request and status-class counts for REQUESTS gRPC-shaped POSTs."""
    out = subprocess.run(
        [
            require_tool("h2load"),
            "-n",
            str(REQUESTS),
            "-c",
            "1",
            "-H",
            "content-type: application/grpc",
            "-d",
            str(body),
            f"http://127.0.0.1:{port}/file",
        ],
        capture_output=True,
        text=True,
        timeout=60,
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
    result.update(zip(("2xx", "3xx", "4xx", "5xx"), map(int, codes.groups()), strict=True))
    return result


def _assert_all_answered(result: dict[str, int]) -> None:
    assert result["succeeded"] == REQUESTS, result
    assert result["errored"] == result["timeout"] == 0, result


def _status_classes(result: dict[str, int]) -> dict[str, int]:
    return {k: result[k] for k in ("2xx", "3xx", "4xx", "5xx")}


def test_direct_answers_every_post(nghttpd: int, body: Path) -> None:
    """Guard: the comparisons below mean nothing if nghttpd itself did not answer."""
    direct = h2load(nghttpd, body)
    _assert_all_answered(direct)
    assert sum(_status_classes(direct).values()) == REQUESTS, direct


def test_through_proxy_as_direct_and_counted_as_http2(nghttpd: int, body: Path) -> None:
    direct = h2load(nghttpd, body)
    config = {
        "admin": {"enabled": False},
        "listeners": [
            {"name": "h2", "listen": "127.0.0.1:0", "protocol": "http2", "upstream": "up"}
        ],
        "upstreams": [{"name": "up", "endpoints": [f"127.0.0.1:{nghttpd}"]}],
    }
    with ProxyThread(config) as proxy:
        through = h2load(proxy.port("h2"), body)
        _assert_all_answered(through)
        assert _status_classes(through) == _status_classes(direct), (direct, through)

        def counted() -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
            http = proxy.app.http
            return dict(http.http_requests.values), dict(http.grpc_finished.values)

        requests, grpc_finished = proxy.run(counted)
        assert sum(requests.values()) == REQUESTS, requests
        # Every exchange is a POST whose status class is what nghttpd answered directly.
        by_class: dict[str, float] = {}
        for key, n in requests.items():
            assert key[2] == "POST", requests
            by_class[key[3]] = by_class.get(key[3], 0) + n
        assert by_class == {k: v for k, v in _status_classes(direct).items() if v}, by_class
        # The answer is not gRPC (text content-type, no grpc-status), so no exchange is
        # counted as a gRPC call, least of all one ended on the file's bogus prefix.
        assert grpc_finished == {}, grpc_finished
        errors = proxy.run(lambda: proxy.app.proxy.metrics.decode_errors.total())
        assert errors == 0


def test_through_haproxy_as_direct(nghttpd: int, body: Path) -> None:
    """The reference: HAProxy in h2 mode relays the same answers."""
    exe = require_tool("haproxy")
    direct = h2load(nghttpd, body)
    with tempfile.TemporaryDirectory() as d:

        def start(port: int) -> subprocess.Popen[bytes]:
            cfg = Path(d) / "haproxy.cfg"
            cfg.write_text(
                "\n".join(
                    [
                        "global",
                        "  nbthread 1",
                        "defaults",
                        "  timeout connect 5s",
                        "  timeout client 60s",
                        "  timeout server 60s",
                        "frontend f_h2",
                        "  mode http",
                        f"  bind 127.0.0.1:{port} proto h2",
                        "  default_backend b_h2",
                        "backend b_h2",
                        "  mode http",
                        f"  server s1 127.0.0.1:{nghttpd} proto h2",
                    ]
                )
                + "\n"
            )
            return subprocess.Popen(
                [exe, "-f", str(cfg), "-db"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        proc, port = _start_on_free_port(start, "haproxy")
        try:
            through = h2load(port, body)
        finally:
            _stop(proc)
    _assert_all_answered(through)
    assert _status_classes(through) == _status_classes(direct), (direct, through)
