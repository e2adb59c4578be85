"""Live stub control on the admin API: ``/testbed/grpc/{service}/stubs``.

GripMock has ``POST /api/stubs`` on its own admin port; the testbed has one
admin API for every fake, so the route names the fake. A request that reaches
the child process goes through `StubControl.arequest`, off the proxy's loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from protoproxy.admin.body import BodyError, read_json

from .handle import GrpcFake

#: The most stubs one POST may add (the body is bounded by read_json too).
MAX_STUBS_PER_REQUEST = 10_000


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


def stub_routes(fakes: Mapping[str, GrpcFake]) -> list[web.RouteDef]:
    def fake_of(request: web.Request) -> GrpcFake | None:
        return fakes.get(request.match_info["service"])

    def unknown(request: web.Request) -> web.Response:
        name = request.match_info["service"]
        known = ", ".join(sorted(fakes)) or "none"
        return _error(f"no gRPC fake named {name!r} (the scenario has {known})", 404)

    async def add(request: web.Request) -> web.Response:
        fake = fake_of(request)
        if fake is None:
            return unknown(request)
        try:
            body: Any = await read_json(request)
        except BodyError as exc:
            return _error(str(exc), exc.status)
        if not isinstance(body, dict | list) or (isinstance(body, list) and not body):
            return _error("the body is a stub (a JSON object) or a non-empty list of stubs", 400)
        if isinstance(body, list) and len(body) > MAX_STUBS_PER_REQUEST:
            return _error(f"at most {MAX_STUBS_PER_REQUEST} stubs per request", 413)
        try:
            ids = await fake.stubs.arequest("stubs_add", stubs=body)
        except (ValueError, TypeError, KeyError) as exc:  # StubError, a schema mismatch
            return _error(str(exc) if not isinstance(exc, KeyError) else str(exc.args[0]), 400)
        return web.json_response({"ids": ids}, status=201)

    async def show(request: web.Request) -> web.Response:
        fake = fake_of(request)
        if fake is None:
            return unknown(request)
        stubs = await fake.stubs.arequest("stubs_list")
        return web.json_response({"stubs": stubs, "total": len(stubs)})

    async def remove(request: web.Request) -> web.Response:
        fake = fake_of(request)
        if fake is None:
            return unknown(request)
        ident = request.match_info["id"]
        if not await fake.stubs.arequest("stubs_remove", id=ident):
            return _error(f"no stub {ident!r} in gRPC fake {fake.name!r}", 404)
        return web.Response(status=204)

    async def clear(request: web.Request) -> web.Response:
        fake = fake_of(request)
        if fake is None:
            return unknown(request)
        await fake.stubs.arequest("stubs_clear")
        return web.Response(status=204)

    base = "/testbed/grpc/{service}/stubs"
    return [
        web.post(base, add),
        web.get(base, show),
        web.delete(base, clear),
        web.delete(base + "/{id}", remove),
    ]
