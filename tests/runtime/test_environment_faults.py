"""Faults of the environment end one connection cleanly; the proxy carries on."""

from __future__ import annotations

import logging
import socket
import struct

from tests.peers import (
    ProxyThread,
    Script,
    ScriptedServer,
    ThreadedServer,
    exchange,
    refused_port,
    wait_for,
)


def _errors(proxy: ProxyThread) -> dict:
    return proxy.run(lambda: dict(proxy.proxy.metrics.connection_errors.values))


def test_upstream_refused_then_next_endpoint_and_new_connections(caplog):
    caplog.set_level(logging.WARNING, logger="protoproxy")
    with refused_port() as dead:
        good = ScriptedServer(default=Script(b"ok"))
        cfg = {
            "listeners": [
                {"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}
            ],
            "upstreams": [
                {"name": "u", "endpoints": [f"127.0.0.1:{dead}"]},
                {"name": "rr", "endpoints": [f"127.0.0.1:{dead}", good.address]},
            ],
        }
        with ProxyThread(cfg) as proxy:
            with socket.create_connection(("127.0.0.1", proxy.port("l"))) as s:
                s.settimeout(5)
                assert s.recv(10) == b""  # closed: nothing to connect to
            assert wait_for(lambda: _errors(proxy).get(("l", "upstream_refused")) == 1, 30)
            assert any("upstream_refused" in r.getMessage() for r in caplog.records)
        # With a second endpoint, the refused connect is retried on the next one.
        cfg["listeners"][0]["upstream"] = "rr"
        with ProxyThread(cfg) as proxy:
            for _ in range(4):
                assert exchange(proxy.port("l"), b"x", [1]) == b"ok"
            failures = proxy.run(lambda: proxy.proxy.metrics.upstream_failures.total())
            assert failures == 2  # round robin starts on the dead endpoint every other time
        good.close()


class _Resetter(ThreadedServer):
    """Accepts, reads a little, then resets the connection (SO_LINGER 0)."""

    def _handle(self, conn: socket.socket) -> None:
        conn.recv(10)
        conn.sendall(b"partial")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


def test_upstream_reset_mid_stream_ends_that_connection_only(caplog):
    caplog.set_level(logging.WARNING, logger="protoproxy")
    resetter = _Resetter()
    good = ScriptedServer(default=Script(b"fine"))
    cfg = {
        "listeners": [
            {"name": "bad", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "r"},
            {"name": "good", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "g"},
        ],
        "upstreams": [
            {"name": "r", "endpoints": [resetter.address]},
            {"name": "g", "endpoints": [good.address]},
        ],
    }
    with ProxyThread(cfg) as proxy:
        # a long-lived healthy connection stays up across the reset
        healthy = socket.create_connection(("127.0.0.1", proxy.port("good")))
        with socket.create_connection(("127.0.0.1", proxy.port("bad"))) as s:
            s.settimeout(5)
            s.sendall(b"hello")
            got = b""
            try:
                while chunk := s.recv(100):
                    got += chunk
            except ConnectionResetError:
                pass
            assert got in (b"", b"partial")
        assert wait_for(lambda: _errors(proxy).get(("bad", "upstream_reset")) == 1, 30)
        assert any("upstream_reset" in r.getMessage() for r in caplog.records)
        healthy.sendall(b"still here")
        healthy.shutdown(socket.SHUT_WR)
        healthy.settimeout(5)
        assert healthy.recv(100) == b"fine"
        healthy.close()
        assert good.received.get(timeout=5) == b"still here"
        assert exchange(proxy.port("good"), b"new", [3]) == b"fine"
    good.close()


def test_client_reset_ends_the_connection_cleanly(caplog):
    caplog.set_level(logging.WARNING, logger="protoproxy")
    server = ScriptedServer(default=Script(b"x" * 10_000_000, [65536]))
    cfg = {
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}],
        "upstreams": [{"name": "u", "endpoints": [server.address]}],
    }
    with ProxyThread(cfg) as proxy:
        s = socket.create_connection(("127.0.0.1", proxy.port("l")))
        s.sendall(b"some bytes")
        s.recv(1000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST
        assert wait_for(lambda: _errors(proxy).get(("l", "downstream_reset")) == 1, 30)
        assert wait_for(lambda: proxy.run(lambda: len(proxy.proxy.connections)) == 0, 30)
        assert any("downstream_reset" in r.getMessage() for r in caplog.records)
        # the upstream side was closed too, and new connections work
        server.default = Script(b"again")
        assert exchange(proxy.port("l"), b"x", [1]) == b"again"
    server.close()
