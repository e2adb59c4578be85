"""Fixtures for HTTP/gRPC through the proxy: certificates, an App on the test's loop.

The proxy, the fake services and the grpcio aio clients all run on the test's
event loop, as in the Testbed; grpcio's C-core does its own I/O on its own
threads, so the proxy is still the only Python on the data path.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme

from protoproxy.app import App
from protoproxy.config import from_dict
from protoproxy.http.metrics import HttpMetrics
from testbed.grpc import ServerTls
from testbed.grpc.client import channel_credentials


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    cert: Path  # leaf for localhost / 127.0.0.1, used by proxy and services alike
    key: Path
    ca_file: Path

    @property
    def root(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def credentials(self) -> grpc.ChannelCredentials:
        return channel_credentials(self.root)

    def server_tls(self) -> ServerTls:
        return ServerTls.from_files(self.cert, self.key)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("http-certs")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert, key, ca_file = d / "leaf.pem", d / "leaf.key", d / "ca.pem"
    cert.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return Pki(ca, cert, key, ca_file)


@contextlib.asynccontextmanager
async def running_app(
    listeners: list[dict[str, Any]], upstreams: list[dict[str, Any]], **extra: Any
) -> AsyncIterator[App]:
    """An App (proxy + components, no admin server) on the current loop."""
    cfg = from_dict(
        {"admin": {"enabled": False}, "listeners": listeners, "upstreams": upstreams, **extra}
    )
    app = App(cfg)
    await app.start()
    try:
        yield app
    finally:
        await app.stop(drain=0)


def address(app: App, listener: str) -> str:
    return f"127.0.0.1:{app.proxy.listeners[listener].port}"


def http_metrics(app: App) -> HttpMetrics:
    metrics = app.http
    assert isinstance(metrics, HttpMetrics)
    return metrics
