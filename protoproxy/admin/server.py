"""The admin HTTP server and its security rules.

Loopback only by default. Off loopback a bearer token is mandatory (the
process refuses to start without one); with a token set, every non-GET
route needs it always, and every route needs it off loopback. Before the
token, `guard.BrowserGuard` refuses what a web page could have made a
browser send (a foreign Host, Origin or Sec-Fetch-Site; a write whose body
is not JSON): a token is optional on loopback, and a browser on the same
machine reaches loopback.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from aiohttp import web

from ..addresses import is_loopback
from ..config import Admin
from ..listener import ListenError
from .guard import BrowserGuard, Refusal, RequestFacts

if TYPE_CHECKING:
    from ..proxy import Proxy

log = logging.getLogger("protoproxy.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROXY_KEY = web.AppKey("proxy", object)


class AdminSecurityError(Exception):
    pass


class AdminServer:
    def __init__(self, proxy: Proxy, config: Admin) -> None:
        if not is_loopback(config.listen.host) and not config.token:
            raise AdminSecurityError(
                f"refusing to start the admin API on non-loopback {config.listen.host} "
                "without a token: set admin.token"
            )
        self.proxy = proxy
        self.config = config
        self.token = config.token
        self.require_all = not is_loopback(config.listen.host)
        self.guard = BrowserGuard(config)
        self.refused = proxy.stats.counter(
            "protoproxy_admin_refused_total",
            "Admin API requests refused, by reason (host, origin, fetch_site, content_type, token)",
            ("reason",),
        )
        self.app = web.Application(middlewares=[self._browser_guard, self._auth])
        self.app.on_response_prepare.append(self._cors)
        self.app[PROXY_KEY] = proxy
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/ready", self._ready)
        self.runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Components (observability, faults, kafka...) register their routes here."""
        self.app.router.add_routes(list(routes))

    @web.middleware
    async def _browser_guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = request.headers
        refusal = self.guard.refusal(
            RequestFacts(
                method=request.method,
                host=headers.get("Host"),
                origin=headers.get("Origin"),
                fetch_site=headers.get("Sec-Fetch-Site"),
                content_type=headers.get("Content-Type"),
                has_body=request.body_exists,
            )
        )
        if refusal is not None:
            return self._refuse(refusal)
        preflight = self.guard.preflight_headers(request.method, headers)
        if preflight:
            return web.Response(status=204, headers=preflight)
        return await handler(request)

    def _refuse(self, refusal: Refusal) -> web.Response:
        self.refused.inc((refusal.reason,))
        log.debug("admin API refused a request (%s)", refusal.reason)
        # `status` too: the shape Toxiproxy clients read an error from
        body = {"error": refusal.error, "reason": refusal.reason, "status": 403}
        return web.json_response(body, status=403)

    async def _cors(self, request: web.Request, response: web.StreamResponse) -> None:
        """CORS headers for admin.cors_origins only, on every answer (errors, SSE too)."""
        response.headers.update(self.guard.cors_headers(request.headers.get("Origin")))

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        needs = self.token is not None and (
            self.require_all or request.method not in ("GET", "HEAD")
        )
        if needs:
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            assert self.token is not None
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                self.refused.inc(("token",))
                return web.json_response(
                    {"error": "missing or wrong bearer token"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="protoproxy"'},
                )
        return await handler(request)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, request: web.Request) -> web.Response:
        ready = self.proxy.accepting and all(
            lst.server is not None for lst in self.proxy.listeners.values() if lst.enabled
        )
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        host, port = self.config.listen.host, self.config.listen.port
        site = web.TCPSite(self.runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            self.runner = None
            raise ListenError("the admin API", host, port, exc) from exc
        bound = self.runner.addresses
        self.address = (str(bound[0][0]), int(bound[0][1])) if bound else None
        log.info("admin API on http://%s:%d", *(self.address or ("?", 0)))

    @property
    def url(self) -> str:
        assert self.address is not None
        return f"http://{self.address[0]}:{self.address[1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
