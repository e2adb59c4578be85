"""The testbed's own admin API routes, under ``/testbed/``: the journal.

They join the proxy's admin API (same port, same browser guard and token),
so a user reads what the fakes received where they read what the proxy saw.
The fakes' live-control routes (stubs, mappings, topics) are added by each
fake's setup module next to these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .harness import Testbed

#: query parameters of GET /testbed/journal, each an exact-match filter
JOURNAL_FILTERS = ("protocol", "service", "method", "path", "topic", "operation")


def journal_routes(tb: Testbed) -> list[web.RouteDef]:
    async def show(request: web.Request) -> web.Response:
        unknown = sorted(set(request.query) - set(JOURNAL_FILTERS))
        if unknown:
            return web.json_response(
                {
                    "error": f"unknown query parameter(s) {', '.join(unknown)}; "
                    f"filters are {', '.join(JOURNAL_FILTERS)}"
                },
                status=400,
            )
        query = {k: request.query[k] for k in JOURNAL_FILTERS if k in request.query}
        entries = await _off_loop(tb, query)
        return web.json_response(tb.journal.to_json(entries))

    async def clear(request: web.Request) -> web.Response:
        tb.journal.clear()
        return web.Response(status=204)

    return [web.get("/testbed/journal", show), web.delete("/testbed/journal", clear)]


async def _off_loop(tb: Testbed, query: dict[str, str]) -> list:  # type: ignore[type-arg]
    """The query in a thread: a fake in a child process answers over a blocking
    control socket, which must not stall the proxy's loop."""
    import asyncio

    return await asyncio.to_thread(tb.journal.query, **query)
