"""THE crash boundary on a real proxy: a bug in one connection's path ends that
connection only, counted once as ``internal_error`` and logged once with its
traceback; a second connection on the same listener keeps working.
"""

from __future__ import annotations

import contextlib
import logging
import socket

import pytest

from protoproxy.connection import Connection
from protoproxy.pipeline import FilterSlot
from protoproxy_codecs.base import Direction, Message
from tests.peers import ProxyThread, ThreadedServer


class EchoServer(ThreadedServer):
    """Echoes what each connection sends, until its EOF."""

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(65536):
                conn.sendall(data)


class BuggyFilter:
    """Raises on requests that carry ``boom`` (a filter with a bug)."""

    def on_messages(
        self, conn: Connection, direction: Direction, messages: list[Message]
    ) -> list[Message]:
        if direction is Direction.UPSTREAM and any(b"boom" in m.raw for m in messages):
            raise RuntimeError("filter bug")
        return messages


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def test_a_bug_ends_only_its_connection(caplog: pytest.LogCaptureFixture) -> None:
    server = EchoServer()
    config = {
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}],
        "upstreams": [{"name": "u", "endpoints": [server.address]}],
    }
    caplog.set_level(logging.ERROR, "protoproxy.connection")
    with ProxyThread(
        config, setup=lambda p: p.pipeline.add_filter(FilterSlot.FAULTS, lambda conn: BuggyFilter())
    ) as proxy:
        port = proxy.port("l")
        good = socket.create_connection(("127.0.0.1", port), timeout=10)
        bad = socket.create_connection(("127.0.0.1", port), timeout=10)
        with good, bad:
            good.sendall(b"ping-1")
            assert recv_exactly(good, 6) == b"ping-1"
            bad.sendall(b"boom")
            with contextlib.suppress(ConnectionResetError):
                assert bad.recv(100) == b""  # closed by the proxy, nothing echoed
            good.sendall(b"ping-2")  # the other connection did not notice
            assert recv_exactly(good, 6) == b"ping-2"
            good.shutdown(socket.SHUT_WR)
            assert good.recv(100) == b""
        assert proxy.proxy is not None
        errors = proxy.proxy.metrics.connection_errors
        assert proxy.run(lambda: errors.get(("l", "internal_error"))) == 1
    server.close()
    records = [r for r in caplog.records if "internal_error" in r.getMessage()]
    assert len(records) == 1
    [record] = records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "filter bug" in record.getMessage()


def test_a_bug_in_the_connect_task_is_caught_there(caplog: pytest.LogCaptureFixture) -> None:
    """The upstream connect is the boundary's other entry: an upstream observer raising."""
    server = EchoServer()
    config = {
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}],
        "upstreams": [{"name": "u", "endpoints": [server.address]}],
    }

    def broken(conn: Connection) -> None:
        if conn.id % 2:
            raise KeyError("observer bug")

    caplog.set_level(logging.ERROR, "protoproxy.connection")
    with ProxyThread(config, setup=lambda p: p.upstream_observers.append(broken)) as proxy:
        port = proxy.port("l")
        outcomes = []
        for _ in range(2):  # one odd connection id, one even
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(b"ping")
                try:
                    outcomes.append(recv_exactly(sock, 4))
                except ConnectionResetError:
                    outcomes.append(b"")
        assert sorted(outcomes) == [b"", b"ping"]
        assert proxy.proxy is not None
        errors = proxy.proxy.metrics.connection_errors
        assert proxy.run(lambda: errors.get(("l", "internal_error"))) == 1
    server.close()
    [record] = [r for r in caplog.records if "internal_error" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is KeyError
