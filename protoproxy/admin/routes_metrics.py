"""/metrics (Prometheus text) and /stats (the same numbers as JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..observe.prometheus import CONTENT_TYPE, Exporter

if TYPE_CHECKING:
    from ..proxy import Proxy


def routes(proxy: Proxy, exporter: Exporter) -> list[web.RouteDef]:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=exporter.render(), headers={"Content-Type": CONTENT_TYPE})

    async def stats(request: web.Request) -> web.Response:
        snap = proxy.stats.snapshot()
        live = exporter.collector.live() if exporter.collector.live is not None else {}
        for name, extra in live.items():
            rows = snap.get(name)
            if not isinstance(rows, list):
                continue
            by_key = {tuple(r["labels"].values()): r for r in rows}
            for key, amount in extra.items():
                row = by_key.get(key)
                if row is None:
                    fam = proxy.stats.families[name]
                    rows.append(
                        {"labels": dict(zip(fam.labelnames, key, strict=True)), "value": amount}
                    )
                else:
                    row["value"] += amount
        return web.json_response(snap)

    return [web.get("/metrics", metrics), web.get("/stats", stats)]
