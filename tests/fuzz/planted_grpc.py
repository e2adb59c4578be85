"""A grpcio service with a planted bug: the gRPC driver's test subject.

`planted.v1.Notes` (tests/fuzz/protos/planted.proto, compiled at start: no
generated code) answers every call OK, except (the bug, unless fixed) ``Save``
of a note whose text is longer than 300 characters and which has a tag: that
one aborts with INTERNAL. The minimal failing case is therefore one ``Save`` of
``text="0" * 301, tags=[""]``, every other field default. The server also runs
the standard health service, SERVING unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from protoproxy.fuzz.driver import Target
from protoproxy.record.schema import Schema, compile_protos

PROTO = Path(__file__).resolve().parent / "protos" / "planted.proto"
SERVICE = "planted.v1.Notes"


def _types() -> tuple[Any, Any]:
    schema = Schema(compile_protos([PROTO], []), str(PROTO))
    note = schema.pool.FindMessageTypeByName("planted.v1.Note")
    saved = schema.pool.FindMessageTypeByName("planted.v1.Saved")
    return message_factory.GetMessageClass(note), message_factory.GetMessageClass(saved)


class PlantedServer:
    """``with PlantedServer(fixed=False) as srv: srv.target``; grpcio's sync server."""

    def __init__(self, fixed: bool = False, serving: bool = True) -> None:
        self.fixed = fixed
        self.calls = 0
        note, saved = _types()
        self._saved = saved

        def save(req: Any, ctx: grpc.ServicerContext) -> Any:
            self.calls += 1
            if len(req.text) > 300 and len(req.tags) and not self.fixed:
                ctx.abort(grpc.StatusCode.INTERNAL, "note too long to index")
            return self._answer(req)

        def watch(req: Any, ctx: grpc.ServicerContext) -> Iterator[Any]:
            self.calls += 1
            yield self._answer(req)
            yield self._answer(req)

        def import_(reqs: Iterator[Any], ctx: grpc.ServicerContext) -> Any:
            self.calls += 1
            return saved(length=sum(len(r.text) for r in reqs))

        def sync(reqs: Iterator[Any], ctx: grpc.ServicerContext) -> Iterator[Any]:
            self.calls += 1
            for r in reqs:
                yield self._answer(r)

        rpc = grpc
        handlers = {
            "Save": rpc.unary_unary_rpc_method_handler(save, note.FromString, _serialize),
            "Watch": rpc.unary_stream_rpc_method_handler(watch, note.FromString, _serialize),
            "Import": rpc.stream_unary_rpc_method_handler(import_, note.FromString, _serialize),
            "Sync": rpc.stream_stream_rpc_method_handler(sync, note.FromString, _serialize),
        }
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(SERVICE, handlers)]
        )
        self.health = health.HealthServicer()
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else (health_pb2.HealthCheckResponse.NOT_SERVING)
        )
        self.health.set("", status)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _answer(self, req: Any) -> Any:
        return self._saved(length=len(req.text), tags=len(req.tags))

    @property
    def target(self) -> Target:
        return Target("127.0.0.1", self.port)

    def __enter__(self) -> PlantedServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None).wait(5)


def _serialize(msg: Any) -> bytes:
    return bytes(msg.SerializeToString())
