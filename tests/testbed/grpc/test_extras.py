"""Health, reflection, TLS details and the generated code of the fake service."""

from __future__ import annotations

import asyncio
import filecmp
import ssl
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protoproxy_codecs.tls import parse_client_hello
from testbed.grpc import SERVICE, FakeGrpcService, ServerTls, gen_protos
from testbed.grpc.client import AioClient, channel_credentials

from .conftest import Pki, Target


async def _health(channel: aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    return reply.status


async def test_health_check(target: Target) -> None:
    async with target.aio() as client:
        assert await _health(client.channel, "") == health_pb2.HealthCheckResponse.SERVING
        assert await _health(client.channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING
        await target.service.set_serving(False)
        assert await _health(client.channel, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_and_describes_the_service(target: Target) -> None:
    async with target.aio() as client:
        stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE),
        ]
        replies = [reply async for reply in stub.ServerReflectionInfo(iter(requests), timeout=10)]
    names = {s.name for s in replies[0].list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names
    (blob,) = replies[1].file_descriptor_response.file_descriptor_proto
    file = descriptor_pb2.FileDescriptorProto.FromString(blob)
    (svc,) = file.service
    assert [m.name for m in svc.method] == ["Unary", "ServerStream", "ClientStream", "Bidi"]


async def test_tls_server_selects_h2(pki: Pki) -> None:
    async with FakeGrpcService(tls=pki.server) as service:
        ctx = ssl.create_default_context(cadata=pki.root.decode())
        ctx.set_alpn_protocols(["http/1.1", "h2"])
        _, writer = await asyncio.open_connection(
            "127.0.0.1", service.port, ssl=ctx, server_hostname="localhost"
        )
        try:
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def test_grpc_client_offers_h2(pki: Pki) -> None:
    """A TCP relay reads the grpc client's ClientHello in the clear on its way through."""
    hellos = []

    async with FakeGrpcService(tls=pki.server) as service:

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = b""
            while (hello := parse_client_hello(head)) is None:
                chunk = await reader.read(4096)
                if not chunk:
                    writer.close()
                    return
                head += chunk
            hellos.append(hello)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", service.port)
            up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        server = await asyncio.start_server(relay, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            client = AioClient.connect(f"127.0.0.1:{port}", credentials=pki.credentials())
            async with client:
                assert (await client.unary(timeout=10)).ok
        finally:
            server.close()
    assert hellos and "h2" in hellos[0].alpn


async def test_mutual_tls(pki: Pki) -> None:
    client_leaf = pki.ca.issue_cert("client@testbed")
    mtls = ServerTls(pki.server.cert_chain, pki.server.private_key, client_ca=pki.root)
    async with FakeGrpcService(tls=mtls) as service:
        anonymous = AioClient.connect(service.address, credentials=pki.credentials())
        async with anonymous:
            assert not (await anonymous.unary(timeout=10)).ok
        creds = channel_credentials(
            pki.root,
            client_leaf.private_key_pem.bytes(),
            b"".join(pem.bytes() for pem in client_leaf.cert_chain_pems),
        )
        async with AioClient.connect(service.address, credentials=creds) as known:
            assert (await known.unary(timeout=10)).ok


async def test_fixed_port_is_not_shared() -> None:
    async with FakeGrpcService() as first:
        with pytest.raises(OSError):  # grpc refuses rather than silently sharing
            async with FakeGrpcService(port=first.port):
                pass


def test_generated_code_is_current(tmp_path: Path) -> None:
    """The committed modules and descriptor set match what the .proto generates."""
    desc = tmp_path / "testbed.desc"
    gen_protos.generate(tmp_path / "protos", desc)
    for path in (tmp_path / "protos").glob("*_pb2*"):
        committed = gen_protos.OUT_DIR / path.name
        assert filecmp.cmp(path, committed, shallow=False), f"{path.name} is stale; run gen_protos"
    assert desc.read_bytes() == gen_protos.DESCRIPTOR_SET.read_bytes()


def test_generated_stub_imports_from_the_package() -> None:
    from testbed.grpc.protos import testbed_pb2_grpc

    assert testbed_pb2_grpc.testbed__pb2.__name__ == "testbed.grpc.protos.testbed_pb2"
