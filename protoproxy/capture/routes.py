"""The taps' admin routes: POST/GET /captures, DELETE /captures/{id}, GET /captures/{id}.pcap.

Built and secured like every admin route (protoproxy/admin/server.py): the
browser guard and the bearer token apply before these run, a POST's body is
read by `read_json` (bounded) and validated by the config's own model, so a
mistake names its field as a config file's would. A download streams the
tap's kept files (each a pcapng section, so their concatenation is one
capture), each up to the last block the writer completed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import ValidationError

from ..admin.body import BodyError, read_json
from ..config import CaptureTap
from ..config_errors import format_errors
from .taps import TapError

if TYPE_CHECKING:
    from .taps import Captures

CHUNK = 256 * 1024


def _error(message: str | list[str], status: int) -> web.Response:
    problems = [message] if isinstance(message, str) else message
    return web.json_response({"error": "; ".join(problems), "problems": problems}, status=status)


def routes(captures: Captures) -> list[web.RouteDef]:
    async def index(request: web.Request) -> web.Response:
        return web.json_response({"captures": [t.describe() for t in captures.list()]})

    async def create(request: web.Request) -> web.Response:
        try:
            data = await read_json(request)
        except BodyError as exc:
            return _error(str(exc), exc.status)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return _error(
                "body must be a JSON object: listener, protocol, peer (all optional)", 400
            )
        try:
            spec = CaptureTap.model_validate(data)
        except ValidationError as exc:
            return _error(format_errors(exc), 400)
        if spec.keylog is not None:
            return _error("keylog: set in the config file only (the API writes no key files)", 400)
        try:
            tap = captures.start(spec)
        except TapError as exc:
            return _error(str(exc), exc.status)
        return web.json_response({"id": tap.id, **tap.describe()}, status=201)

    async def delete(request: web.Request) -> web.Response:
        try:
            tap = captures.stop(request.match_info["id"])
        except TapError as exc:
            return _error(str(exc), exc.status)
        await tap.wait_stopped()
        return web.json_response(tap.describe())

    async def download(request: web.Request) -> web.StreamResponse:
        try:
            tap = captures.get(request.match_info["id"])
        except TapError as exc:
            return _error(str(exc), exc.status)
        resp = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.tcpdump.pcap",
                "Content-Disposition": f'attachment; filename="{tap.id}.pcapng"',
            }
        )
        await resp.prepare(request)
        for path, size in tap.files.parts():
            try:
                with path.open("rb") as f:
                    left = size
                    while left > 0:
                        chunk = f.read(min(CHUNK, left))
                        if not chunk:
                            break
                        left -= len(chunk)
                        await resp.write(chunk)
            except FileNotFoundError:
                continue  # rotated away while we streamed the ones before
        await resp.write_eof()
        return resp

    async def show(request: web.Request) -> web.Response:
        try:
            return web.json_response(captures.get(request.match_info["id"]).describe())
        except TapError as exc:
            return _error(str(exc), exc.status)

    return [
        web.get("/captures", index),
        web.post("/captures", create),
        web.get("/captures/{id}.pcap", download),
        web.get("/captures/{id}", show),
        web.delete("/captures/{id}", delete),
    ]
