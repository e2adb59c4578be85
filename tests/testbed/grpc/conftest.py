"""Fixtures: the fake gRPC service over h2c and TLS, and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import trustme

from testbed.grpc import FakeGrpcService, ServerTls
from testbed.grpc.client import AioClient, SyncClient, channel_credentials


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    server: ServerTls

    @property
    def root(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def credentials(self) -> grpc.ChannelCredentials:
        return channel_credentials(self.root)


@pytest.fixture(scope="session")
def pki() -> Pki:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    chain = b"".join(pem.bytes() for pem in leaf.cert_chain_pems)
    return Pki(ca, ServerTls(chain, leaf.private_key_pem.bytes()))


@dataclass
class Target:
    """A running service and how to reach it."""

    service: FakeGrpcService
    credentials: grpc.ChannelCredentials | None

    def aio(self) -> AioClient:
        return AioClient.connect(self.service.address, credentials=self.credentials)

    def sync(self) -> SyncClient:
        return SyncClient.connect(self.service.address, credentials=self.credentials)


@pytest.fixture(params=["h2c", "tls"])
async def target(request: pytest.FixtureRequest, pki: Pki) -> AsyncIterator[Target]:
    tls = request.param == "tls"
    async with FakeGrpcService(tls=pki.server if tls else None) as service:
        yield Target(service, pki.credentials() if tls else None)


@pytest.fixture
async def service() -> AsyncIterator[FakeGrpcService]:
    """h2c only: for behaviour tests where the transport does not matter."""
    async with FakeGrpcService() as svc:
        yield svc


@pytest.fixture
async def client(service: FakeGrpcService) -> AsyncIterator[AioClient]:
    async with AioClient.connect(service.address) as c:
        yield c
