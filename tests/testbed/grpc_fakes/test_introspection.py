"""Health and server reflection of a user's fake, through the proxy: what
grpc_health_probe, grpcurl and IDEs ask before the first real call."""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from testbed.threaded import TestbedThread

from .conftest import TIMEOUT


def reflect(channel: grpc.Channel, **request: str) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=TIMEOUT
    )
    reply: reflection_pb2.ServerReflectionResponse = next(iter(replies))
    return reply


def test_reflection_lists_and_describes_the_users_service(shop: TestbedThread) -> None:
    with grpc.insecure_channel(shop.address("shop")) as channel:
        listed = reflect(channel, list_services="")
        names = {s.name for s in listed.list_services_response.service}
        assert names == {
            "shop.v1.Catalog",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        found = reflect(channel, file_containing_symbol="shop.v1.Catalog")
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in found.file_descriptor_response.file_descriptor_proto
        ]
        shop_file = next(f for f in files if f.name == "shop/v1/shop.proto")
        assert [m.name for m in shop_file.service[0].method] == [
            "GetItem",
            "ListItems",
            "RecordPrices",
            "Chat",
        ]
        assert "google/protobuf/timestamp.proto" in shop_file.dependency
        health_file = reflect(channel, file_containing_symbol="grpc.health.v1.Health")
        assert health_file.file_descriptor_response.file_descriptor_proto
    # reflection and health are not the user's calls
    assert shop.journal.grpc().count() == 0


def test_health_says_serving_for_the_service_and_the_server(shop: TestbedThread) -> None:
    with grpc.insecure_channel(shop.address("shop")) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "shop.v1.Catalog"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        try:
            health.Check(health_pb2.HealthCheckRequest(service="shop.v1.Nope"), timeout=TIMEOUT)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
        else:
            raise AssertionError("health answered for a service the fake does not have")
