"""A connection flood on one listener must not take the others, or the admin API, with it.

Real proxy, ephemeral ports, small caps: the flooded listener admits its
``max_connections`` and refuses the rest quickly (counted, no upstream dial,
a bounded number of WARNING lines); the other listeners and the admin API
keep answering meanwhile. The EMFILE tests run the proxy in a child process
with a low RLIMIT_NOFILE, never lowering this process's own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protoproxy.proxy import WARNING_BURST
from tests.peers import (
    ChildStderr,
    ProxyThread,
    Script,
    ScriptedServer,
    ThreadedServer,
    exchange,
    listener_port,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
CAP = 50
FLOOD = 300  # connections held open on the flooded listener
HTTP_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class HttpServer(ThreadedServer):
    """Answers each request's head with a 200: an upstream that waits to be asked."""

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                got += chunk
            conn.sendall(HTTP_REPLY)


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read()


@contextlib.contextmanager
def _held(port: int, n: int) -> Iterator[list[socket.socket]]:
    """`n` client connections to `port`, held open until the block ends."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            with contextlib.suppress(OSError):  # a connect the kernel refused is fine
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        yield socks
    finally:
        for s in socks:
            s.close()


def _http_get(port: int) -> bytes:
    return exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", [1 << 16])


def test_a_flood_on_one_listener_leaves_the_others_and_the_admin_api_answering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="protoproxy")
    held = ScriptedServer(default=Script(b""))  # admitted flood connections stay open
    echo = ScriptedServer(default=Script(b"hi"))
    web = HttpServer()
    cfg: dict[str, Any] = {
        "admin": {"listen": "127.0.0.1:0"},
        "listeners": [
            {
                "name": "flood",
                "listen": "127.0.0.1:0",
                "protocol": "tcp",
                "upstream": "held",
                "max_connections": CAP,
            },
            {"name": "echo", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "echo"},
            {"name": "web", "listen": "127.0.0.1:0", "protocol": "http", "upstream": "web"},
        ],
        "upstreams": [
            {"name": "held", "endpoints": [held.address]},
            {"name": "echo", "endpoints": [echo.address]},
            {"name": "web", "endpoints": [web.address]},
        ],
    }
    with ProxyThread(cfg) as proxy:
        assert proxy.proxy is not None
        metrics = proxy.proxy.metrics

        def rejected() -> float:
            return proxy.run(lambda: metrics.rejected.get(("flood", "listener_max_connections")))

        with _held(proxy.port("flood"), FLOOD) as socks:
            assert len(socks) == FLOOD
            assert wait_for(lambda: rejected() == FLOOD - CAP, 60), rejected()
            assert proxy.run(lambda: proxy.proxy.conn_limits.active.get("flood")) == CAP
            # while the flood is held: every other way in still works
            assert exchange(proxy.port("echo"), b"x", [1]) == b"hi"
            assert _http_get(proxy.port("web")).endswith(b"ok")
            assert _get(proxy.admin_url + "/healthz")[0] == 200
            status, body = _get(proxy.admin_url + "/metrics")
            assert status == 200
            text = body.decode()
            assert (
                'protoproxy_connections_rejected_total{listener="flood",'
                f'reason="listener_max_connections"}} {FLOOD - CAP}'
            ) in text
            # refused quickly: no upstream dial for a refused one
            assert wait_for(lambda: held.accepted >= CAP, 30)
            assert held.accepted == CAP
            assert wait_for(lambda: _suppressed("flood", caplog), 30)
        assert wait_for(lambda: proxy.run(lambda: proxy.proxy.conn_limits.total) == 0, 30)
        assert exchange(proxy.port("echo"), b"x", [1]) == b"hi"
    lines = [r.getMessage() for r in caplog.records if "listener=flood" in r.getMessage()]
    # a burst, then one line per second, whatever the flood: 250 refusals, a handful of lines
    rejections = [line for line in lines if "ended: rejected" in line]
    assert 1 <= len(rejections) <= WARNING_BURST + 5, rejections
    for server in (held, echo, web):
        server.close()


def _suppressed(listener: str, caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        "suppressed" in r.getMessage() and f"({listener} rejected)" in r.getMessage()
        for r in caplog.records
    )


# -- EMFILE in a child with a low RLIMIT_NOFILE --------------------------------------

NOFILE = 96

ASYNCIO_CHILD = textwrap.dedent(
    """
    import asyncio, json, logging, sys
    from protoproxy.app import App
    from protoproxy.config import from_dict

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(App(from_dict(json.loads(sys.argv[1]))).serve_forever())
    """
)


#: The child lowers its own fd limit, soft and hard (so raising to hard gains
#: nothing), first thing. Not a preexec_fn: that runs between fork and exec in
#: a parent with threads (grpc's, in a pytest worker that ran gRPC tests),
#: where grpc's fork handlers can break the child before it ever starts.
_LOW_NOFILE = f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({NOFILE}, {NOFILE}))\n"
#: `python -c _RUN_MODULE MODULE ARGS...`: run a module, as -m would, under that limit
_RUN_MODULE = (
    _LOW_NOFILE + "import runpy, sys; sys.argv = sys.argv[1:]; "
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def _child_config(upstream: str) -> dict[str, Any]:
    return {
        "admin": {"listen": "127.0.0.1:0"},
        "limits": {"admin_reserve": 4},
        "listeners": [
            {"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"},
        ],
        "upstreams": [{"name": "u", "endpoints": [upstream]}],
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "codecs")])
    return env


@contextlib.contextmanager
def _child(argv: list[str]) -> Iterator[tuple[subprocess.Popen[str], ChildStderr]]:
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=_env())
    stderr = ChildStderr(proc)
    try:
        yield proc, stderr
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _admin_port(stderr: ChildStderr) -> int:
    return int(stderr.wait_for(r"admin API on http://\S+:(\d+)").group(1))


def _burst_until(port: int, done: Any, rounds: int = 20) -> bool:
    """Bursts of held connections (more than the child has fds) until `done()`."""
    for _ in range(rounds):
        with _held(port, 3 * NOFILE):
            if wait_for(done, 3):
                return True
    return False


def test_emfile_on_accept_is_counted_and_logged_rate_limited_asyncio() -> None:
    upstream = ScriptedServer(default=Script(b"hi"))
    code = _LOW_NOFILE + ASYNCIO_CHILD
    argv = [sys.executable, "-c", code, json.dumps(_child_config(upstream.address))]
    with _child(argv) as (_proc, stderr):
        port = listener_port(stderr, "l")
        admin = _admin_port(stderr)
        assert _burst_until(port, lambda: "accept() failed" in "".join(stderr.lines))
        with _held(port, 3 * NOFILE):
            assert wait_for(lambda: _admin_answers(admin), 30)  # the reserve, while held
        # the flood is over: the listener and the admin API serve again
        assert wait_for(lambda: _answers(port), 30)
        _, body = _get(f"http://127.0.0.1:{admin}/metrics")
        m = re.search(
            r'protoproxy_accept_errors_total\{errno="EMFILE",listener="l"\} (\d+)', body.decode()
        )
        assert m is not None and int(m.group(1)) >= 1, body.decode()
        text = "".join(stderr.lines)
    upstream.close()
    # asyncio's own ERROR ("socket.accept() out of system resource") is claimed
    assert "out of system resource" not in text
    # the configured 10000 connections cannot fit in 96 fds: said once
    assert len(re.findall(r"limits.max_connections=10000 needs", text)) == 1, text


def test_a_listener_survives_fd_exhaustion_under_uvloop(tmp_path: Path) -> None:
    """uvloop (what `protoproxy run` uses) drops connections at EMFILE inside libuv
    and tells nobody: the counter cannot count them, but the listener and the
    admin API must come through."""
    pytest.importorskip("uvloop")
    upstream = ScriptedServer(default=Script(b"hi"))
    config = tmp_path / "proxy.yaml"
    config.write_text(json.dumps(_child_config(upstream.address)))
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN_MODULE, "protoproxy", "run", str(config)],
        stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    stderr = ChildStderr(proc)
    try:
        port = listener_port(stderr, "l")
        admin = _admin_port(stderr)
        with _held(port, 3 * NOFILE):
            # refusals closed, the admitted ones held: the admin reserve is free
            assert wait_for(lambda: _admin_answers(admin), 30)
        assert wait_for(lambda: _answers(port), 30)
        assert _get(f"http://127.0.0.1:{admin}/healthz")[0] == 200
    finally:
        proc.terminate()
        proc.wait(10)
        upstream.close()


def _admin_answers(port: int) -> bool:
    try:
        return _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    except OSError:
        return False


def _answers(port: int) -> bool:
    try:
        return exchange(port, b"x", [1]) == b"hi"
    except OSError:
        return False
