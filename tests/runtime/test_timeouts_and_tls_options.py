"""Idle and connect timeouts, the connection limit, mTLS and ALPN carry-through."""

from __future__ import annotations

import socket
import ssl

import pytest

from tests.peers import ProxyThread, Script, ScriptedServer, ThreadedServer, exchange, wait_for
from tests.runtime.conftest import client_context, server_context


def _errors(proxy: ProxyThread) -> dict:
    return proxy.run(lambda: dict(proxy.proxy.metrics.connection_errors.values))


def _tcp(server: ScriptedServer, **extra) -> dict:
    return {
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}],
        "upstreams": [{"name": "u", "endpoints": [server.address]}],
        **extra,
    }


class _Silent(ThreadedServer):
    """Accepts connections and holds them open without a byte either way."""

    def __init__(self) -> None:
        self.held: list[socket.socket] = []
        super().__init__()

    def _handle(self, conn: socket.socket) -> None:
        self.held.append(conn)

    def close(self) -> None:
        super().close()
        for s in self.held:
            s.close()


def test_idle_connection_is_closed():
    server = _Silent()
    with ProxyThread(_tcp(server, timeouts={"idle": "300ms"})) as proxy:
        s = socket.create_connection(("127.0.0.1", proxy.port("l")))
        s.sendall(b"x")
        s.settimeout(10)
        assert s.recv(10) == b""  # closed by the proxy, not by the silent upstream
        assert wait_for(lambda: _errors(proxy).get(("l", "idle_timeout")) == 1, 30)
        s.close()
    server.close()


def test_connect_timeout_counts_and_closes():
    # A TLS upstream that accepts TCP but never answers the handshake.
    silent = _Silent()
    cfg = {
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}],
        "upstreams": [
            {
                "name": "u",
                "endpoints": [silent.address],
                "connect_timeout": "300ms",
                "tls": {"insecure": True},
            }
        ],
    }
    with ProxyThread(cfg) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port("l"))) as s:
            s.settimeout(5)
            assert s.recv(10) == b""
        assert wait_for(lambda: _errors(proxy).get(("l", "connect_timeout")) == 1, 30)
    silent.close()


def test_max_connections_refuses_the_extra_one():
    server = ScriptedServer(default=Script(b"hi"))
    with ProxyThread(_tcp(server, limits={"max_connections": 1})) as proxy:
        first = socket.create_connection(("127.0.0.1", proxy.port("l")))
        assert wait_for(lambda: proxy.run(lambda: len(proxy.proxy.connections)) == 1, 30)
        with socket.create_connection(("127.0.0.1", proxy.port("l"))) as second:
            second.settimeout(5)
            assert second.recv(10) == b""
        rejected = proxy.run(lambda: proxy.proxy.metrics.rejected.get(("l", "max_connections")))
        assert rejected == 1
        first.close()
        assert wait_for(lambda: proxy.run(lambda: len(proxy.proxy.connections)) == 0, 30)
        assert exchange(proxy.port("l"), b"x", [1]) == b"hi"
    server.close()


def test_mtls_requires_a_client_certificate(ca, certs):
    server = ScriptedServer(default=Script(b"authenticated"))
    cfg = _tcp(server)
    cfg["listeners"][0]["tls"] = {
        "cert": str(certs["proxy.test"]),
        "key": str(certs["proxy.test.key"]),
        "client_ca": str(certs["ca"]),
        "require_client_cert": True,
    }
    with ProxyThread(cfg) as proxy:
        port = proxy.port("l")
        anonymous = client_context(certs)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            exchange(port, b"x", [1], tls=anonymous, server_hostname="proxy.test")
        with_cert = client_context(certs)
        ca.issue_cert("client@example").configure_cert(with_cert)
        assert (
            exchange(port, b"x", [1], tls=with_cert, server_hostname="proxy.test")
            == b"authenticated"
        )
        failures = proxy.run(lambda: dict(proxy.proxy.metrics.tls_failures.values))
        assert sum(v for (lst, side, _), v in failures.items() if side == "downstream") == 1
    server.close()


def test_alpn_negotiated_downstream_is_offered_upstream(certs):
    upstream_ctx = server_context(certs, "upstream.test")
    upstream_ctx.set_alpn_protocols(["h2", "http/1.1", "kafka"])
    seen: list[str | None] = []

    class AlpnServer(ScriptedServer):
        def _handle(self, conn):  # record what the proxy offered and got
            ctx_conn = upstream_ctx.wrap_socket(conn, server_side=True)
            seen.append(ctx_conn.selected_alpn_protocol())
            ctx_conn.close()

    server = AlpnServer()
    cfg = _tcp(server)
    cfg["listeners"][0]["tls"] = {
        "cert": str(certs["proxy.test"]),
        "key": str(certs["proxy.test.key"]),
        "alpn": ["http/1.1", "h2"],
    }
    cfg["upstreams"][0]["tls"] = {"ca": str(certs["ca"]), "server_name": "upstream.test"}
    with ProxyThread(cfg) as proxy:
        cases = [(["h2"], "h2"), (["http/1.1"], "http/1.1"), (["h2", "http/1.1"], "http/1.1")]
        for i, (offered, expected) in enumerate(cases):
            ctx = client_context(certs, alpn=offered)
            with (
                socket.create_connection(("127.0.0.1", proxy.port("l"))) as raw,
                ctx.wrap_socket(raw, server_hostname="proxy.test") as tls_sock,
            ):
                assert tls_sock.selected_alpn_protocol() == expected
                tls_sock.settimeout(5)
                try:
                    tls_sock.recv(10)
                except (ssl.SSLError, OSError):
                    pass
            assert wait_for(lambda i=i: len(seen) > i, 30)
    assert seen == ["h2", "http/1.1", "http/1.1"]
    server.close()
