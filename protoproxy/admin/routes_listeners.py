"""Listeners at run time: GET/POST /listeners, GET/DELETE /listeners/{name}.

A POST body is a config file's listener entry, validated by the same model,
so an error names the field (``listen: port 70000 is out of range``). The
work is `protoproxy.runtime_listeners.ListenerDirectory`'s, shared with the
Toxiproxy-compatible `POST /proxies`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..runtime_listeners import ListenerApiError, ListenerDirectory, parse_listener
from .body import BodyError, read_json

if TYPE_CHECKING:
    from ..proxy import Proxy


def _error(exc: ListenerApiError) -> web.Response:
    return web.json_response({"error": str(exc), "problems": exc.problems}, status=exc.status)


def routes(proxy: Proxy) -> list[web.RouteDef]:
    directory = ListenerDirectory(proxy)

    async def index(request: web.Request) -> web.Response:
        return web.json_response({"listeners": directory.all()})

    async def create(request: web.Request) -> web.Response:
        try:
            try:
                data = await read_json(request)
            except BodyError as exc:
                raise ListenerApiError(str(exc), exc.status) from None
            lst = await directory.add(parse_listener(data))
        except ListenerApiError as exc:
            return _error(exc)
        return web.json_response(directory.describe(lst), status=201)

    async def show(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        lst = proxy.listeners.get(name)
        if lst is None:
            return _error(ListenerApiError(f"no listener named {name!r}", 404))
        return web.json_response(directory.describe(lst))

    async def delete(request: web.Request) -> web.Response:
        try:
            await directory.remove(request.match_info["name"])
        except ListenerApiError as exc:
            return _error(exc)
        return web.Response(status=204)

    return [
        web.get("/listeners", index),
        web.post("/listeners", create),
        web.get("/listeners/{name}", show),
        web.delete("/listeners/{name}", delete),
    ]
