"""``POST /config/reload``: re-read the config file and apply it (`protoproxy.reload`).

It takes no body: what it applies is the file the proxy was started with. It
is a write route like the others, so the server's middlewares apply the same
rules to it (the browser rules of `protoproxy.admin.guard`, then the bearer
token when one is set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from ..reload import Reloader


def routes(reloader: Reloader) -> list[web.RouteDef]:
    async def reload(request: web.Request) -> web.Response:
        outcome = await reloader.reload()
        return web.json_response(outcome.to_json(), status=outcome.status)

    return [web.post("/config/reload", reload)]
