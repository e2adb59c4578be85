"""SNI routing: one listener, two hostnames, two upstreams; terminate and passthrough."""

from __future__ import annotations

import logging
import socket
import ssl

import pytest

from tests.peers import ProxyThread, Script, ScriptedServer, exchange
from tests.runtime.conftest import client_context, server_context


@pytest.fixture
def upstreams(request, certs):
    tls = request.param == "passthrough"
    servers = {
        name: ScriptedServer(
            tls=server_context(certs, name) if tls else None,
            default=Script(f"I am {name}".encode()),
        )
        for name in ("a.example", "b.example")
    }
    yield servers
    for s in servers.values():
        s.close()


def _config(mode, certs, servers, default=True):
    listener = {
        "name": "sni",
        "listen": "127.0.0.1:0",
        "routes": [
            {"sni": "a.example", "upstream": "a"},
            {"sni": "b.example", "upstream": "b"},
        ],
    }
    if mode == "terminate":
        listener["tls"] = {
            "certs": [
                {"cert": str(certs[n]), "key": str(certs[n + ".key"])}
                for n in ("a.example", "b.example", "proxy.test")
            ]
        }
    else:
        listener["tls"] = {"mode": "passthrough"}
    if default:
        listener["upstream"] = "a"
    return {
        "listeners": [listener],
        "upstreams": [
            {"name": "a", "endpoints": [servers["a.example"].address]},
            {"name": "b", "endpoints": [servers["b.example"].address]},
        ],
    }


@pytest.mark.parametrize("upstreams", ["terminate", "passthrough"], indirect=True)
def test_two_hostnames_reach_two_upstreams(request, certs, upstreams):
    mode = request.node.callspec.params["upstreams"]
    with ProxyThread(_config(mode, certs, upstreams)) as proxy:
        port = proxy.port("sni")
        for name in ("a.example", "b.example", "a.example"):
            got = exchange(port, b"hi", [2], tls=client_context(certs), server_hostname=name)
            assert got == f"I am {name}".encode()
        # The certificate presented is the one for the name asked for (in
        # passthrough it is the upstream's own, in terminate the proxy's).
        for name in ("a.example", "b.example"):
            ctx = client_context(certs)
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                ctx.wrap_socket(raw, server_hostname=name) as tls_sock,
            ):
                assert tls_sock.getpeercert()["subjectAltName"][0] == ("DNS", name)


@pytest.mark.parametrize("upstreams", ["terminate", "passthrough"], indirect=True)
def test_unknown_sni_takes_the_default_route(request, certs, upstreams):
    mode = request.node.callspec.params["upstreams"]
    with ProxyThread(_config(mode, certs, upstreams, default=True)) as proxy:
        ctx = client_context(certs)
        if mode == "passthrough":
            # The default upstream (a) answers with its own certificate.
            got = exchange(proxy.port("sni"), b"x", [1], tls=ctx, server_hostname="a.example")
            assert got == b"I am a.example"
            ctx.check_hostname = False
        got = exchange(proxy.port("sni"), b"x", [1], tls=ctx, server_hostname="proxy.test")
        assert got == b"I am a.example"


@pytest.mark.parametrize("upstreams", ["terminate", "passthrough"], indirect=True)
def test_unknown_sni_without_default_is_refused_and_logged(request, certs, upstreams, caplog):
    mode = request.node.callspec.params["upstreams"]
    caplog.set_level(logging.WARNING, logger="protoproxy")
    with ProxyThread(_config(mode, certs, upstreams, default=False)) as proxy:
        ctx = client_context(certs)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            exchange(proxy.port("sni"), b"x", [1], tls=ctx, server_hostname="nobody.example")
        errors = proxy.run(lambda: proxy.proxy.metrics.connection_errors.get(("sni", "no_route")))
        assert errors == 1
        # the named server still works
        got = exchange(
            proxy.port("sni"), b"x", [1], tls=client_context(certs), server_hostname="b.example"
        )
        assert got == b"I am b.example"
    assert any(
        "no_route" in r.getMessage() and "nobody.example" in r.getMessage() for r in caplog.records
    )
    assert upstreams["a.example"].accepted + upstreams["b.example"].accepted == 1
