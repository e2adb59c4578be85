"""Originating TLS: verification is on by default; `insecure: true` opts out."""

from __future__ import annotations

import logging
import socket

import pytest

from tests.peers import ProxyThread, Script, ScriptedServer, exchange
from tests.runtime.conftest import server_context


@pytest.fixture
def tls_upstream(certs):
    server = ScriptedServer(tls=server_context(certs, "upstream.test"), default=Script(b"secret"))
    yield server
    server.close()


def _config(server, tls):
    return {
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}],
        "upstreams": [{"name": "u", "endpoints": [server.address], "tls": tls}],
    }


def _reset_or_empty(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"hello")
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def test_wrong_ca_fails_with_a_clear_reason(certs, tls_upstream, caplog):
    caplog.set_level(logging.WARNING, logger="protoproxy")
    tls = {"ca": str(certs["other-ca"]), "server_name": "upstream.test"}
    with ProxyThread(_config(tls_upstream, tls)) as proxy:
        assert _reset_or_empty(proxy.port("l")) == b""
        failures = proxy.run(
            lambda: dict(proxy.proxy.metrics.upstream_failures.values)  # type: ignore[union-attr]
        )
    assert failures == {("u", tls_upstream.address, "tls_certificate_verify_failed"): 1}
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        "certificate verify failed" in line and "tls_certificate_verify_failed" in line
        for line in lines
    ), lines


def test_wrong_server_name_fails(certs, tls_upstream):
    tls = {"ca": str(certs["ca"]), "server_name": "someone-else.test"}
    with ProxyThread(_config(tls_upstream, tls)) as proxy:
        assert _reset_or_empty(proxy.port("l")) == b""


def test_right_ca_and_insecure_let_it_through(certs, tls_upstream):
    for tls in (
        {"ca": str(certs["ca"]), "server_name": "upstream.test"},
        {"ca": str(certs["other-ca"]), "insecure": True},
        {"insecure": True},
    ):
        with ProxyThread(_config(tls_upstream, tls)) as proxy:
            assert exchange(proxy.port("l"), b"hello", [5]) == b"secret"
