"""Reading an admin request's JSON body, bounded: the one place every route reads one.

The admin API takes JSON from curl, Toxiproxy clients and scripts. Two bodies
used to get past the routes' own checks: a deeply nested document
(``[[[[...]]]]`` 100,000 deep) made `json.loads` raise RecursionError, which
no route caught, so the client got a 500 and the log a traceback; and a body
of any size was read into memory first. `read_json` bounds both before
anything is decoded and says what was wrong in a `BodyError`, which each route
turns into its own error shape (the native ``{"error", "problems"}``, Toxiproxy's
``{"error", "status"}``), so clients keep the shapes they already parse.

The depth is measured on the raw text (brackets outside strings) before
`json.loads` runs: the decoder's recursion is never entered for a document it
would not survive, whatever the interpreter's recursion limit is.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

#: The largest body read (bytes): a fault spec, a listener entry or a Toxiproxy
#: `/populate` list of hundreds of proxies is a few KiB to a few hundred KiB.
MAX_BYTES = 1024 * 1024
#: The deepest nesting accepted: a fault spec is about 5 levels deep.
MAX_DEPTH = 64

#: How much of a refused body is read and dropped, as a multiple of the limit.
DRAIN_FACTOR = 16
_CHUNK = 64 * 1024
#: A JSON string (escapes included), or one bracket: what the depth scan steps over.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


class BodyError(ValueError):
    """A body that is not read: too large (413), too deep or not JSON (400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def read_json(
    request: web.Request, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """The decoded body, or None when there is none; `BodyError` when it is too
    large, nested deeper than `max_depth`, or not JSON."""
    raw = await read_bounded(request, max_bytes)
    if not raw:
        return None
    depth = nesting_depth(raw, max_depth)
    if depth > max_depth:
        raise BodyError(f"body is nested deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise BodyError(f"body is not JSON: {exc}") from None


async def read_bounded(request: web.Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `max_bytes`: by its
    Content-Length before reading, or while reading a chunked one."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise await _refused(request, max_bytes, 0)
    body = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise await _refused(request, max_bytes, len(body))
    return bytes(body)


def nesting_depth(raw: bytes, limit: int) -> int:
    """The deepest bracket nesting of `raw`, counting only brackets outside JSON
    strings; stops counting once past `limit` (the answer is then limit + 1)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        if len(token) != 1:
            continue  # a string: brackets inside it do not nest
        if token[0] in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        else:
            depth -= 1
    return deepest


async def _refused(request: web.Request, max_bytes: int, seen: int) -> BodyError:
    """The 413 for a body past `max_bytes`. The rest of the body is read and
    dropped (never kept) up to `DRAIN_FACTOR` times the limit, so that a client
    still uploading reads the 413 instead of a connection reset; past that, the
    connection closes after the response."""
    budget = DRAIN_FACTOR * max_bytes - seen
    while budget > 0:
        chunk = await request.content.read(min(_CHUNK, budget))
        if not chunk:
            break
        budget -= len(chunk)
    else:
        protocol = request.protocol
        if protocol is not None:
            protocol.force_close()
    return BodyError(f"body is larger than {max_bytes} bytes", 413)
