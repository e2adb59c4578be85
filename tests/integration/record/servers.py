"""The real services recorded in these tests: a grpcio server and an aiohttp one.

The gRPC server is built from tests/integration/record/protos/recdemo.proto
at test time (protoc in-process, message classes from the descriptors), with
every call kind; its answers depend on the request, so a replay that answers
the wrong stub shows. Both servers send secret-looking headers, which the
recording must redact.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc import aio

from protoproxy.record.schema import Schema, compile_protos

PROTOS = Path(__file__).parent / "protos"
PROTO = PROTOS / "recdemo.proto"
SERVICE = "recdemo.v1.Demo"
BINARY_BODY = bytes(range(256)) * 40  # past inline_body_bytes: a __files/ body


def demo_schema() -> Schema:
    return Schema(compile_protos([PROTO], []), str(PROTO))


class DemoServicer:
    def __init__(self, schema: Schema) -> None:
        types = schema.method(f"/{SERVICE}/Unary")
        assert types is not None
        self.Req, self.Resp = types.request, types.response

    async def unary(self, req: Any, ctx: aio.ServicerContext) -> Any:
        await ctx.send_initial_metadata((("x-api-key", "s3cret-key"), ("x-trace", "t-1")))
        ctx.set_trailing_metadata((("x-served-by", "demo"), ("authorization", "Bearer tok")))
        return self.Resp(text=f"hello {req.name}", count=req.n * 2, blob=req.blob)

    async def server_stream(self, req: Any, ctx: aio.ServicerContext) -> AsyncIterator[Any]:
        for i in range(req.n):
            yield self.Resp(text=f"{req.name}-{i}", count=i)

    async def client_stream(self, reqs: AsyncIterator[Any], ctx: aio.ServicerContext) -> Any:
        names = [r.name async for r in reqs]
        return self.Resp(text="+".join(names), count=len(names), items=names)

    async def bidi(self, reqs: AsyncIterator[Any], ctx: aio.ServicerContext) -> AsyncIterator[Any]:
        async for r in reqs:
            yield self.Resp(text=f"echo {r.name}", count=r.n)

    async def fail(self, req: Any, ctx: aio.ServicerContext) -> Any:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason="OUT_OF_STOCK", domain="demo"))
        status = status_pb2.Status(
            code=grpc.StatusCode.FAILED_PRECONDITION.value[0],
            message=f"no {req.name}",
            details=[detail],
        )
        ctx.set_trailing_metadata(
            (("grpc-status-details-bin", status.SerializeToString()), ("x-served-by", "demo"))
        )
        await ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, status.message)

    def handler(self) -> grpc.GenericRpcHandler:
        de, se = self.Req.FromString, self.Resp.SerializeToString
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary, de, se),
                "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream, de, se),
                "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream, de, se),
                "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi, de, se),
                "Fail": grpc.unary_unary_rpc_method_handler(self.fail, de, se),
            },
        )


@contextlib.asynccontextmanager
async def grpc_server(schema: Schema, reflection: bool = False) -> AsyncIterator[int]:
    server = aio.server()
    server.add_generic_rpc_handlers((DemoServicer(schema).handler(),))
    if reflection:
        from grpc_reflection.v1alpha import reflection as refl

        # The demo's descriptors live in the schema's own pool, not the default one.
        refl.enable_server_reflection((SERVICE, refl.SERVICE_NAME), server, schema.pool)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


async def _items(request: web.Request) -> web.Response:
    item = request.query.get("id", "0")
    resp = web.json_response({"id": item, "name": f"item {item}"})
    resp.set_cookie("session", "abc123")
    resp.headers["X-Trace"] = "h-1"
    return resp


async def _echo(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"got": body}, status=201)


async def _text(request: web.Request) -> web.Response:
    return web.Response(text=f"plain {await request.text()}", content_type="text/plain")


async def _binary(request: web.Request) -> web.Response:
    return web.Response(body=BINARY_BODY, content_type="application/octet-stream")


async def _missing(request: web.Request) -> web.Response:
    return web.Response(status=404, text=json.dumps({"error": "nope"}))


@contextlib.asynccontextmanager
async def http_server() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/items", _items)
    app.router.add_post("/echo", _echo)
    app.router.add_post("/text", _text)
    app.router.add_get("/binary", _binary)
    app.router.add_get("/missing", _missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port
    finally:
        await runner.cleanup()
