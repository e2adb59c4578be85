"""/messages: the latest decoded messages, and `?follow=1` as server-sent events."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import web

from ..observe.render import Query, collect_secrets, dumps, entry_text, scrub_literals
from ..observe.tail import newest_within

if TYPE_CHECKING:
    from ..observe.tail import MessageTail

KEEPALIVE = 15.0
POLL = 0.5  # seconds between checks that the client is still there
MAX_LIMIT = 10000
MAX_SECRETS = 10000  # credential values remembered per follower


def routes(tail: MessageTail) -> list[web.RouteDef]:
    async def messages(request: web.Request) -> web.StreamResponse:
        try:
            query = Query.from_params(request.query)
            limit = min(int(request.query.get("limit", "100")), MAX_LIMIT)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if request.query.get("follow") in ("1", "true", "yes"):
            return await _follow(request, tail, query)
        picked = [e for e in tail.entries() if query.matches(e)]
        if limit >= 0:
            picked = picked[-limit:] if limit else []
        secrets = collect_secrets(tail.entries(), set())
        texts, omitted = newest_within(
            picked, lambda e: entry_text(e, query.decode, tail.catalog), tail.render_budget
        )
        more = f',"omitted":{omitted}' if omitted else ""
        text = f'{{"tail":{dumps(tail.info())},"messages":[{",".join(texts)}]{more}}}'
        return web.Response(text=scrub_literals(text, secrets), content_type="application/json")

    async def clear(request: web.Request) -> web.Response:
        tail.clear()
        return web.json_response(tail.info())

    return [web.get("/messages", messages), web.delete("/messages", clear)]


async def _follow(request: web.Request, tail: MessageTail, query: Query) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    follower = tail.follow()
    reported = 0
    secrets = collect_secrets(tail.entries(), set())
    try:
        await resp.write(f"event: hello\ndata: {json.dumps(tail.info())}\n\n".encode())
        idle = 0.0
        while not follower.closed:
            try:
                async with asyncio.timeout(POLL):
                    entry = await follower.queue.get()
            except TimeoutError:
                # aiohttp does not cancel a handler whose client left; notice it here.
                if request.transport is None or request.transport.is_closing():
                    break
                idle += POLL
                if idle >= KEEPALIVE:
                    idle = 0.0
                    await resp.write(b": keepalive\n\n")
                continue
            if entry is None:
                break
            # Drain what is already queued into one write.
            batch = entry.entries()
            while not follower.queue.empty() and len(batch) < 256:
                nxt = follower.queue.get_nowait()
                if nxt is None:
                    follower.closed = True
                    break
                batch += nxt.entries()
            chunks = []
            collect_secrets(batch, secrets)
            if len(secrets) > MAX_SECRETS:
                secrets = collect_secrets(tail.entries(), set())
            for e in batch:
                if query.matches(e):
                    data = scrub_literals(entry_text(e, query.decode, tail.catalog), secrets)
                    chunks.append(f"id: {e.seq}\nevent: message\ndata: {data}\n\n")
            if follower.dropped != reported:
                reported = follower.dropped
                chunks.append(f"event: dropped\ndata: {follower.dropped}\n\n")
            if chunks:
                await resp.write("".join(chunks).encode())
    except ConnectionResetError:
        pass  # the client went away; aiohttp may also cancel us, which propagates
    finally:
        tail.unfollow(follower)
    return resp
