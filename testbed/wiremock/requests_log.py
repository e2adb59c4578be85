"""WireMock's request journal: serve events in the JSON shapes `/__admin/requests` returns.

A serve event is what WireMock logs per request: the `LoggedRequest`, the
response definition chosen, the response sent, whether a stub matched, the
timing and the stub. The journal is a bounded deque (newest `limit` kept) and
lists newest first, as WireMock does; `dropped` counts what fell off.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import MappingError
from .request_pattern import RequestView


def iso_millis(moment: dt.datetime) -> str:
    return (
        moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z"
    )


def multi_map(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """WireMock's header JSON: one value as a string, repeated names as a list."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            previous = out[name]
            out[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[name] = value
    return out


def _text_or_empty(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return ""


@dataclass
class ServeEvent:
    id: str
    view: RequestView
    client_ip: str
    absolute_url: str
    logged: dt.datetime
    matched: bool
    status: int = 404
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""
    response_definition: dict[str, Any] = field(default_factory=dict)
    stub_mapping: dict[str, Any] | None = None
    added_delay_ms: int = 0

    def logged_request(self) -> dict[str, Any]:
        """WireMock's `LoggedRequest` JSON."""
        v = self.view
        millis = int(self.logged.timestamp() * 1000)
        return {
            "url": v.url,
            "absoluteUrl": self.absolute_url or f"http://localhost{v.url}",
            "method": v.method,
            "clientIp": self.client_ip,
            "headers": multi_map(v.headers),
            "cookies": {k: (vals[0] if len(vals) == 1 else vals) for k, vals in v.cookies.items()},
            "browserProxyRequest": False,
            "loggedDate": millis,
            "bodyAsBase64": base64.b64encode(v.body).decode(),
            "body": _text_or_empty(v.body),
            "scheme": "http",
            "protocol": "HTTP/1.1",
            "loggedDateString": iso_millis(self.logged),
            "queryParams": {k: {"key": k, "values": vals} for k, vals in v.query.items()},
            "formParams": {},
        }

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "request": self.logged_request(),
            "responseDefinition": self.response_definition,
            "response": {
                "status": self.status,
                "headers": multi_map(self.response_headers),
                "bodyAsBase64": base64.b64encode(self.response_body).decode(),
                "body": _text_or_empty(self.response_body),
            },
            "wasMatched": self.matched,
            "timing": {
                "addedDelay": self.added_delay_ms,
                "processTime": 0,
                "responseSendTime": 0,
                "serveTime": 0,
                "totalTime": self.added_delay_ms,
            },
            "subEvents": [],
        }
        if self.stub_mapping is not None:
            out["stubMapping"] = self.stub_mapping
        return out


class RequestJournal:
    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("journal_limit must be >= 0")
        self.limit = limit
        self._events: deque[ServeEvent] = deque(maxlen=limit)
        self.dropped = 0

    def add(self, event: ServeEvent) -> None:
        if len(self._events) == self.limit:
            self.dropped += 1
        self._events.append(event)

    def newest_first(self) -> Iterator[ServeEvent]:
        return reversed(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def clear(self) -> None:
        self._events.clear()

    def get(self, event_id: str) -> ServeEvent | None:
        return next((e for e in self._events if e.id == event_id), None)

    def remove_where(self, keep: Callable[[ServeEvent], bool]) -> list[ServeEvent]:
        removed = [e for e in self._events if not keep(e)]
        survivors = [e for e in self._events if keep(e)]
        self._events.clear()
        self._events.extend(survivors)
        return removed


def parse_date(since: str | dt.datetime) -> dt.datetime:
    if isinstance(since, dt.datetime):
        return since if since.tzinfo else since.replace(tzinfo=dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise MappingError("since", f"not an ISO-8601 date: {since!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def view_from_logged(logged: dict[str, Any]) -> RequestView:
    """A LoggedRequest JSON (as near-misses/request receives it) back into a request."""
    if not isinstance(logged, dict):
        raise MappingError("", "a logged request is an object")
    headers: list[tuple[str, str]] = []
    raw_headers = logged.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise MappingError("headers", "must be an object")
    for name, value in raw_headers.items():
        for v in value if isinstance(value, list) else [value]:
            headers.append((str(name), str(v)))
    cookies = logged.get("cookies") or {}
    if isinstance(cookies, dict) and cookies and not any(k.lower() == "cookie" for k, _ in headers):
        headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items())))
    if logged.get("bodyAsBase64"):
        try:
            body = base64.b64decode(str(logged["bodyAsBase64"]))
        except ValueError:
            body = str(logged.get("body") or "").encode()
    else:
        body = str(logged.get("body") or "").encode()
    return RequestView(str(logged.get("method", "GET")), str(logged.get("url", "/")), headers, body)
