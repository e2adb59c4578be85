"""The Toxiproxy HTTP API on the admin port, so existing Toxiproxy clients work.

Paths, methods, status codes and JSON shapes follow Toxiproxy 2.x: 201 for
a created proxy, 204 for deletes and /reset, errors as
``{"error": ..., "status": ...}`` with 400/404/409 (the codes clients map to
InvalidToxic, NotFound and ProxyExists). The work is done by
`protoproxy.faults.toxiproxy_listeners.ProxyDirectory` over the one fault engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..admin.body import BodyError, read_json
from .toxiproxy_listeners import TOXIPROXY_VERSION, ApiError, ProxyDirectory

if TYPE_CHECKING:
    from ..proxy import Proxy
    from .engine import FaultEngine

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)


async def _body(request: web.Request, kind: type = dict) -> Any:
    try:
        data = await read_json(request)
    except BodyError as exc:
        raise ApiError(f"bad request body: {exc}", exc.status) from None
    if data is None:
        return kind()
    if not isinstance(data, kind):
        raise ApiError(f"bad request body: a JSON {kind.__name__} expected", 400)
    return data


def _api(fn: Handler) -> Handler:
    """Turn ApiError into Toxiproxy's error JSON."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except ApiError as exc:
            return _error(exc.status, str(exc))

    return wrapped


def routes(proxy: Proxy, engine: FaultEngine) -> list[web.RouteDef]:
    d = ProxyDirectory(proxy, engine)

    @_api
    async def proxies(request: web.Request) -> web.Response:
        return web.json_response(d.all())

    @_api
    async def create(request: web.Request) -> web.Response:
        body = await _body(request)
        lst = await d.create(
            str(body.get("name") or ""),
            str(body.get("upstream") or ""),
            body.get("listen"),
            bool(body.get("enabled", True)),
            str(body.get("protocol") or "tcp"),
        )
        return web.json_response(d.proxy_json(lst), status=201)

    @_api
    async def populate(request: web.Request) -> web.Response:
        body = await _body(request, list)
        created = await d.populate(body)
        return web.json_response({"proxies": [d.proxy_json(p) for p in created]}, status=201)

    @_api
    async def show(request: web.Request) -> web.Response:
        return web.json_response(d.proxy_json(d.get(request.match_info["proxy"])))

    @_api
    async def update(request: web.Request) -> web.Response:
        lst = await d.update(request.match_info["proxy"], await _body(request))
        return web.json_response(d.proxy_json(lst))

    @_api
    async def delete(request: web.Request) -> web.Response:
        await d.delete(request.match_info["proxy"])
        return web.Response(status=204)

    @_api
    async def toxics(request: web.Request) -> web.Response:
        name = request.match_info["proxy"]
        d.get(name)
        return web.json_response([d.toxic_json(name, f) for f in d.toxics(name)])

    @_api
    async def toxic_create(request: web.Request) -> web.Response:
        name = request.match_info["proxy"]
        fault = d.add_toxic(name, await _body(request))
        return web.json_response(d.toxic_json(name, fault))

    @_api
    async def toxic_show(request: web.Request) -> web.Response:
        name = request.match_info["proxy"]
        return web.json_response(
            d.toxic_json(name, d.find_toxic(name, request.match_info["toxic"]))
        )

    @_api
    async def toxic_update(request: web.Request) -> web.Response:
        name = request.match_info["proxy"]
        body = await _body(request)
        fault = d.update_toxic(name, request.match_info["toxic"], body)
        return web.json_response(d.toxic_json(name, fault))

    @_api
    async def toxic_delete(request: web.Request) -> web.Response:
        d.remove_toxic(request.match_info["proxy"], request.match_info["toxic"])
        return web.Response(status=204)

    @_api
    async def reset(request: web.Request) -> web.Response:
        await d.reset()
        return web.Response(status=204)

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"version": TOXIPROXY_VERSION})

    return [
        web.get("/proxies", proxies),
        web.post("/proxies", create),
        web.post("/populate", populate),
        web.get("/proxies/{proxy}", show),
        web.post("/proxies/{proxy}", update),
        web.patch("/proxies/{proxy}", update),
        web.delete("/proxies/{proxy}", delete),
        web.get("/proxies/{proxy}/toxics", toxics),
        web.post("/proxies/{proxy}/toxics", toxic_create),
        web.get("/proxies/{proxy}/toxics/{toxic}", toxic_show),
        web.post("/proxies/{proxy}/toxics/{toxic}", toxic_update),
        web.patch("/proxies/{proxy}/toxics/{toxic}", toxic_update),
        web.delete("/proxies/{proxy}/toxics/{toxic}", toxic_delete),
        web.post("/reset", reset),
        web.get("/version", version),
    ]
