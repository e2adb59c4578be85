"""Programmable routes of the fake HTTP service, and its built-in defaults.

A route maps (method, path) to a `Reply` or to an async handler that builds
one from the request. The defaults cover what proxy tests keep needing: an
echo of the request, any status, any body size, a delay, a chunked body.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

#: Bodies the defaults will produce on request; a bound, not a target.
MAX_DEFAULT_BODY = 256 * 1024 * 1024


@dataclass(slots=True)
class Request:
    """A request as the service received it (body fully read)."""

    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    http_version: str

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def header(self, name: bytes) -> bytes | None:
        for n, v in self.headers:
            if n == name:
                return v
        return None


@dataclass(slots=True)
class Reply:
    """What to answer. `body_size` fills a body of that many bytes without storing it."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    body_size: int | None = None
    chunked: bool = False
    chunk_size: int = 16 * 1024
    latency: float = 0.0  # seconds before the head is sent

    @property
    def length(self) -> int:
        return self.body_size if self.body_size is not None else len(self.body)

    def chunks(self) -> list[bytes] | None:
        """Body pieces to send, or None for a generated `body_size` body (see `pattern`)."""
        if self.body_size is not None:
            return None
        step = max(1, self.chunk_size)
        return [self.body[i : i + step] for i in range(0, len(self.body), step)]


Handler = Callable[[Request], Awaitable[Reply]]


def pattern(offset: int, size: int) -> bytes:
    """Deterministic body bytes: a client can check any slice without the whole body."""
    block = bytes(range(256))
    start = offset % 256
    reps = (start + size) // 256 + 1
    return (block * reps)[start : start + size]


@dataclass(slots=True)
class Route:
    method: str  # "*" for any
    path: str
    reply: Reply | None = None
    handler: Handler | None = None


_STATUS = re.compile(r"/status/([1-5][0-9][0-9])")
_BYTES = re.compile(r"/bytes/([0-9]{1,12})")
_DELAY = re.compile(r"/delay/([0-9]{1,9})")
_CHUNKED = re.compile(r"/chunked/([0-9]{1,12})")


def echo_body(req: Request) -> bytes:
    doc = {
        "method": req.method,
        "target": req.target,
        "path": req.path,
        "query": req.query,
        "http_version": req.http_version,
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in req.headers],
        "body": req.body.decode("latin-1"),
        "body_length": len(req.body),
    }
    return json.dumps(doc).encode()


async def default_reply(req: Request) -> Reply:
    """The built-in routes; anything else is a 404."""
    path = req.path
    if path == "/echo":
        return Reply(200, [("content-type", "application/json")], echo_body(req))
    if m := _STATUS.fullmatch(path):
        code = int(m.group(1))
        if code < 200:
            return Reply(400, [], b"/status/ takes a final status (200-599)\n")
        body = b"" if code in (204, 304) else f"{code}\n".encode()
        return Reply(code, [("content-type", "text/plain")], body)
    if m := _BYTES.fullmatch(path):
        size = int(m.group(1))
        if size > MAX_DEFAULT_BODY:
            return Reply(413, [], b"too large\n")
        return Reply(200, [("content-type", "application/octet-stream")], body_size=size)
    if m := _DELAY.fullmatch(path):
        await asyncio.sleep(int(m.group(1)) / 1000)
        return Reply(200, [("content-type", "text/plain")], b"ok\n")
    if m := _CHUNKED.fullmatch(path):
        size = int(m.group(1))
        if size > MAX_DEFAULT_BODY:
            return Reply(413, [], b"too large\n")
        return Reply(
            200,
            [("content-type", "application/octet-stream")],
            pattern(0, size),
            chunked=True,
            chunk_size=_query_int(req.query, "size", 1024),
        )
    return Reply(404, [("content-type", "text/plain")], b"not found\n")


def _query_int(query: str, name: str, default: int) -> int:
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == name and value.isdigit():
            return max(1, min(int(value), 1 << 20))
    return default
