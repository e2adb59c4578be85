"""The client calls made through the recording proxy, then against the replay.

Each returns what a client sees, in bytes: response messages undecoded, the
status code and message, the rich error details, HTTP status, content type
and body. The record-and-replay test compares the two lists.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from grpc import aio

from .servers import SERVICE

GrpcResult = tuple[str, list[bytes], str, str, bytes | None]
HttpResult = tuple[str, int, str, bytes]


def _details(md: Any) -> bytes | None:
    for k, v in md or ():
        if k == "grpc-status-details-bin":
            return bytes(v)
    return None


async def grpc_calls(address: str, Req: Any) -> list[GrpcResult]:
    ser = Req.SerializeToString
    out: list[GrpcResult] = []
    async with aio.insecure_channel(address) as ch:

        def path(m: str) -> str:
            return f"/{SERVICE}/{m}"

        async def unary(method: str, req: Any) -> None:
            call = ch.unary_unary(path(method), request_serializer=ser)(req)
            try:
                resp = await call
                msgs = [resp]
            except aio.AioRpcError:
                msgs = []
            code = await call.code()
            out.append(
                (
                    method,
                    msgs,
                    code.name,
                    await call.details() or "",
                    _details(await call.trailing_metadata()),
                )
            )

        await unary("Unary", Req(name="ann", n=3, blob=b"\x00\x01\xff"))
        await unary("Unary", Req(name="bob", n=1))
        await unary("Unary", Req(name="ann", n=3, blob=b"\x00\x01\xff"))  # a repeat
        await unary("Fail", Req(name="widget"))

        ss = ch.unary_stream(path("ServerStream"), request_serializer=ser)(Req(name="s", n=3))
        msgs = [m async for m in ss]
        out.append(("ServerStream", msgs, (await ss.code()).name, "", None))

        async def reqs(*names: str) -> Any:
            for i, n in enumerate(names):
                yield Req(name=n, n=i)

        cs = ch.stream_unary(path("ClientStream"), request_serializer=ser)(reqs("a", "b", "c"))
        out.append(("ClientStream", [await cs], (await cs.code()).name, "", None))

        bd = ch.stream_stream(path("Bidi"), request_serializer=ser)(reqs("x", "y"))
        msgs = [m async for m in bd]
        out.append(("Bidi", msgs, (await bd.code()).name, "", None))
    return out


async def http_calls(base: str) -> list[HttpResult]:
    out: list[HttpResult] = []
    async with aiohttp.ClientSession() as s:
        for method, path, kwargs in [
            ("GET", "/items?id=7", {}),
            ("POST", "/echo", {"json": {"b": [1, 2], "a": "x"}}),
            ("POST", "/text", {"data": b"hi there"}),
            ("GET", "/binary", {}),
            ("GET", "/missing", {}),
        ]:
            async with s.request(method, base + path, **kwargs) as r:
                out.append((f"{method} {path}", r.status, r.content_type, await r.read()))
    return out
