"""Certificates and proxies shared by the runtime tests."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def certs(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """PEM files: a CA, and leaf certs for the proxy and the upstreams."""
    d = tmp_path_factory.mktemp("certs")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    out = {"ca": d / "ca.pem"}
    for name in ("proxy.test", "a.example", "b.example", "upstream.test", "localhost"):
        leaf = ca.issue_cert(name, "127.0.0.1")
        leaf.cert_chain_pems[0].write_to_path(str(d / f"{name}.pem"))
        leaf.private_key_pem.write_to_path(str(d / f"{name}.key"))
        out[name] = d / f"{name}.pem"
        out[name + ".key"] = d / f"{name}.key"
    other = trustme.CA()
    other.cert_pem.write_to_path(str(d / "other-ca.pem"))
    out["other-ca"] = d / "other-ca.pem"
    return out


def server_context(certs: dict[str, Path], name: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(certs[name]), str(certs[name + ".key"]))
    return ctx


def client_context(certs: dict[str, Path], alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(certs["ca"]))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx
