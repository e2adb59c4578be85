"""/metrics (Prometheus text) and /stats (the same numbers as JSON).

Both are streamed: the body is written a chunk at a time with the event loop
run between chunks (``asyncio.sleep(0)``), so however many series the store
holds, a scrape delays the proxy's connections by one chunk's rendering at a
time, and never holds more than one chunk of text besides the store itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..observe.prometheus import CONTENT_TYPE, Exporter
from ..observe.stats import Counter, Histogram

if TYPE_CHECKING:
    from ..proxy import Proxy

#: /stats rows per chunk.
STATS_CHUNK_ROWS = 500


def routes(proxy: Proxy, exporter: Exporter) -> list[web.RouteDef]:
    async def metrics(request: web.Request) -> web.StreamResponse:
        return await stream(request, exporter.chunks(), CONTENT_TYPE)

    async def stats(request: web.Request) -> web.StreamResponse:
        live = exporter.collector.live() if exporter.collector.live is not None else {}
        return await stream(request, stats_chunks(proxy, live), "application/json")

    return [web.get("/metrics", metrics), web.get("/stats", stats)]


async def stream(
    request: web.Request, chunks: Iterator[bytes], content_type: str
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": content_type})
    await resp.prepare(request)
    for chunk in chunks:
        await resp.write(chunk)
        await asyncio.sleep(0)  # let the proxy's connections run between chunks
    await resp.write_eof()
    return resp


def _rows(
    fam: Counter | Histogram, extra: dict[tuple[str, ...], float] | None
) -> Iterator[dict[str, Any]]:
    names = fam.labelnames
    if isinstance(fam, Histogram):
        scale = fam.scale
        for key, s in list(fam.series.items()):
            yield {
                "labels": dict(zip(names, key, strict=True)),
                "count": s.count,
                "sum": s.sum / scale if scale != 1 else s.sum,
            }
        return
    values = fam.values
    if extra:
        values = dict(values)
        for key, amount in extra.items():
            values[key] = values.get(key, 0) + amount
    for key, v in list(values.items()):
        yield {"labels": dict(zip(names, key, strict=True)), "value": v}


def stats_chunks(
    proxy: Proxy, live: dict[str, dict[tuple[str, ...], float]], rows: int = STATS_CHUNK_ROWS
) -> Iterator[bytes]:
    """The JSON object of `Stats.snapshot` (live byte counts added), a few rows at a time."""
    dumps = json.dumps
    buf: list[str] = ["{"]
    n = 0
    for f, fam in enumerate(list(proxy.stats)):
        buf.append(f"{', ' if f else ''}{dumps(fam.name)}: [")
        for r, row in enumerate(_rows(fam, live.get(fam.name))):
            buf.append(f"{', ' if r else ''}{dumps(row)}")
            n += 1
            if n >= rows:
                yield "".join(buf).encode()
                buf = []
                n = 0
        buf.append("]")
    buf.append("}")
    yield "".join(buf).encode()
