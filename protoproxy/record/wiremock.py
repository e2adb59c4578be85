"""A recorded HTTP exchange as a WireMock stub mapping.

The request is matched on method, ``url`` (path and query as sent) and, when
there is a body, one body pattern: ``equalToJson`` for a JSON body,
``equalTo`` for other text, ``binaryEqualTo`` (base64) for bytes. The response
has the status, the headers minus hop-by-hop ones (and ``content-length``,
which the fake computes), and the body inline (``body`` for text,
``base64Body`` for bytes) or, past ``record.inline_body_bytes``, in
``__files/`` by ``bodyFileName``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from .model import HttpExchange
from .redact import Redactor

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
    }
)


def exchange_key(ex: HttpExchange) -> str:
    h = hashlib.sha256(f"{ex.method} {ex.url}\n".encode())
    h.update(ex.request_body)
    return h.hexdigest()


def _text(body: bytes) -> str | None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(c.isprintable() or c in "\t\r\n" for c in text):
        return text
    return None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def build_mapping(
    ex: HttpExchange, redactor: Redactor, inline_limit: int, body_file: str
) -> tuple[dict[str, Any], bytes | None]:
    """(mapping, bytes for ``__files/<body_file>`` or None when the body is inline)."""
    request: dict[str, Any] = {"method": ex.method, "url": ex.url}
    if ex.request_body:
        text = _text(ex.request_body)
        if text is None:
            pattern: dict[str, Any] = {"binaryEqualTo": base64.b64encode(ex.request_body).decode()}
        elif (parsed := _json(text)) is not None and isinstance(parsed, (dict, list)):
            pattern = {"equalToJson": parsed}
        else:
            pattern = {"equalTo": text}
        request["bodyPatterns"] = [pattern]
    response: dict[str, Any] = {"status": ex.status}
    headers: dict[str, Any] = {}
    for k, v in ex.response_headers:
        if k.startswith(":") or k in HOP_BY_HOP:
            continue
        v = redactor.value(k, v)
        if k in headers:
            prev = headers[k]
            headers[k] = [*prev, v] if isinstance(prev, list) else [prev, v]
        else:
            headers[k] = v
    if headers:
        response["headers"] = headers
    file_bytes = None
    body = ex.response_body
    if body:
        if len(body) > inline_limit:
            response["bodyFileName"] = body_file
            file_bytes = body
        elif (text := _text(body)) is not None:
            response["body"] = text
        else:
            response["base64Body"] = base64.b64encode(body).decode()
    return {"request": request, "response": response}, file_bytes
