"""WireMock's admin API under ``/__admin/`` on the fake's own port.

The routes and their JSON are WireMock 3's, so WireMock's clients (the PyPI
`wiremock` client, WireMock's Java `WireMock` class, curl recipes) work
unchanged; the engine (engine.py) builds every answer's JSON, this module
only routes, parses query parameters and turns the engine's errors into
WireMock's ``{"errors": [...]}`` answers.

Two departures, both on purpose:

- ``POST /__admin/shutdown`` is refused (403): the fake's life is the
  testbed's, and a test that stopped it would break the other tests sharing
  the testbed. ``POST /__admin/mappings/save`` answers 200 and writes nothing:
  mappings live in the scenario's files, which the fake never rewrites.
- The browser rules of the proxy's own admin API (`protoproxy.admin.guard`)
  apply: a foreign ``Host`` (DNS rebinding), a foreign ``Origin`` or
  ``Sec-Fetch-Site``, and a write whose body is not ``application/json`` are
  refused with 403. Real WireMock answers any web page the user opens; the
  testbed runs on developers' laptops, so it does not.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from protoproxy.admin.guard import BrowserGuard, RequestFacts
from protoproxy.config import Admin

from .engine import HttpIn, MappingError

if TYPE_CHECKING:
    from .service import WireMockService

#: What GET /__admin/version and /__admin/health report: the WireMock API
#: version these routes follow, marked as the testbed's.
VERSION = "3.13.2-protoproxy-testbed"
#: Bounds on ?limit= and ?offset=: a count from outside, bounded.
MAX_QUERY_INT = 10_000_000
JSON_HEADERS = [("Content-Type", "application/json")]


@dataclass
class AdminReply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=lambda: list(JSON_HEADERS))


class AdminError(Exception):
    """An answer other than success, with WireMock's error JSON."""

    def __init__(self, status: int, title: str) -> None:
        super().__init__(title)
        self.status = status
        self.title = title


def _json(data: Any, status: int = 200) -> AdminReply:
    return AdminReply(status, json.dumps(data).encode())


def _empty(status: int = 200) -> AdminReply:
    return AdminReply(status, b"", [])


def _error(status: int, title: str) -> AdminReply:
    return _json({"errors": [{"code": 10, "title": title}]}, status)


@dataclass
class _Call:
    """One admin request, parsed once."""

    method: str
    parts: list[str]
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        if not self.body.strip():
            raise AdminError(422, "the request body is empty; a JSON document is expected")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AdminError(422, f"the request body is not JSON: {e}") from None

    def object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise AdminError(422, "the request body must be a JSON object")
        return data

    def int_param(self, name: str) -> int | None:
        values = self.query.get(name)
        if not values or values[0] == "":
            return None
        text = values[0]
        if not (text.isascii() and text.isdigit()) or int(text) > MAX_QUERY_INT:
            raise AdminError(400, f"?{name}={text!r} must be a whole number 0-{MAX_QUERY_INT}")
        return int(text)

    def str_param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


Route = Callable[["AdminApi", _Call], AdminReply]


class AdminApi:
    """The admin API of one `WireMockService`."""

    def __init__(self, service: WireMockService) -> None:
        self.service = service
        self.started = time.monotonic()
        self.guard = BrowserGuard(Admin(listen=f"{service.host}:{service.port or 1}"))

    def bind(self, host: str, port: int) -> None:
        """The guard's own address, once the service knows its port."""
        self.guard = BrowserGuard(Admin(listen=f"{host}:{port}"))

    @property
    def engine(self) -> Any:
        return self.service.engine

    # -- dispatch ------------------------------------------------------------------
    def handle(self, req: HttpIn) -> AdminReply:
        refusal = self.guard.refusal(_facts(req))
        if refusal is not None:
            return _error(403, refusal.error)
        parts_url = urlsplit(req.url)
        path = parts_url.path.removeprefix("/__admin").strip("/")
        parts = [unquote(p) for p in path.split("/")] if path else []
        call = _Call(
            req.method.upper(),
            parts,
            parse_qs(parts_url.query, keep_blank_values=True),
            req.body,
        )
        for method, pattern, route in ROUTES:
            if method != call.method and not (method == "GET" and call.method == "HEAD"):
                continue
            if _match(pattern, parts):
                try:
                    return route(self, call)
                except AdminError as e:
                    return _error(e.status, e.title)
                except MappingError as e:
                    return _error(422, str(e))
        known = any(_match(p, parts) for _, p, _ in ROUTES)
        if known:
            return _error(405, f"{call.method} is not allowed on /__admin/{path}")
        return _error(404, f"no admin route /__admin/{path} (see docs/testbed.md)")

    # -- mappings ------------------------------------------------------------------
    def list_mappings(self, c: _Call) -> AdminReply:
        return _json(self.engine.list_mappings(c.int_param("limit"), c.int_param("offset") or 0))

    def add_mapping(self, c: _Call) -> AdminReply:
        return _json(self.engine.add_mapping(c.object()), 201)

    def reset_mappings(self, c: _Call) -> AdminReply:
        self.engine.reset_mappings()
        return _empty()

    def delete_all_mappings(self, c: _Call) -> AdminReply:
        """Every mapping gone, the files' too (POST /mappings/reset brings those back)."""
        for mapping in self.engine.list_mappings().get("mappings", []):
            self.engine.remove_mapping(mapping.get("id") or mapping.get("uuid"))
        return _empty()

    def import_mappings(self, c: _Call) -> AdminReply:
        self.engine.import_mappings(c.object())
        return _empty()

    def save_mappings(self, c: _Call) -> AdminReply:
        return _empty()  # the scenario's files are the fake's source; never rewritten

    def remove_by_metadata(self, c: _Call) -> AdminReply:
        from .metadata import matching_ids

        pattern = c.object()
        listed = self.engine.list_mappings().get("mappings", [])
        for mapping_id in matching_ids(listed, pattern):  # a bad pattern: MappingError, 422
            self.engine.remove_mapping(mapping_id)
        return _empty()

    def get_mapping(self, c: _Call) -> AdminReply:
        return _json(_found(self.engine.get_mapping, c.parts[1]))

    def update_mapping(self, c: _Call) -> AdminReply:
        return _json(_found(self.engine.update_mapping, c.parts[1], c.object()))

    def remove_mapping(self, c: _Call) -> AdminReply:
        _found(self.engine.remove_mapping, c.parts[1])
        return _empty()

    # -- the request journal -------------------------------------------------------
    def list_requests(self, c: _Call) -> AdminReply:
        return _json(self.engine.requests(c.int_param("limit"), c.str_param("since")))

    def reset_requests(self, c: _Call) -> AdminReply:
        self.engine.reset_requests()
        return _empty()

    def get_request(self, c: _Call) -> AdminReply:
        return _json(_found(self.engine.get_request, c.parts[1]))

    def find_requests(self, c: _Call) -> AdminReply:
        return _json(self.engine.find_requests(c.object()))

    def count_requests(self, c: _Call) -> AdminReply:
        return _json(self.engine.count_requests(c.object()))

    def remove_requests(self, c: _Call) -> AdminReply:
        return _json(self.engine.remove_requests(c.object()))

    def unmatched(self, c: _Call) -> AdminReply:
        return _json(self.engine.unmatched())

    def unmatched_near_misses(self, c: _Call) -> AdminReply:
        return _json(self.engine.unmatched_near_misses())

    def near_misses_request(self, c: _Call) -> AdminReply:
        return _json(self.engine.near_misses_for_request(c.object()))

    def near_misses_pattern(self, c: _Call) -> AdminReply:
        return _json(self.engine.near_misses_for_pattern(c.object()))

    # -- everything else -----------------------------------------------------------
    def reset_all(self, c: _Call) -> AdminReply:
        self.engine.reset()
        self.service.global_delay_s = 0.0
        return _empty()

    def scenarios(self, c: _Call) -> AdminReply:
        return _json(self.engine.scenarios())

    def reset_scenarios(self, c: _Call) -> AdminReply:
        self.engine.reset_scenarios()
        return _empty()

    def set_scenario_state(self, c: _Call) -> AdminReply:
        body = c.object() if c.body.strip() else {}
        state = body.get("state", "Started")
        if not isinstance(state, str):
            raise AdminError(422, "state must be a string")
        _found(self.engine.set_scenario_state, c.parts[1], state)
        return _empty()

    def settings(self, c: _Call) -> AdminReply:
        body = c.object()
        settings = body.get("settings", body)
        if not isinstance(settings, dict):
            raise AdminError(422, "settings must be a JSON object")
        unknown = sorted(set(settings) - {"fixedDelay"})
        if unknown:
            raise AdminError(
                422, f"settings {', '.join(unknown)}: not supported by the testbed's fake"
            )
        delay = settings.get("fixedDelay") or 0
        if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= 600_000:
            raise AdminError(422, "settings.fixedDelay must be milliseconds 0-600000")
        self.service.global_delay_s = delay / 1000
        return _empty()

    def get_settings(self, c: _Call) -> AdminReply:
        delay = round(self.service.global_delay_s * 1000)
        return _json({"settings": {"fixedDelay": delay} if delay else {}})

    def health(self, c: _Call) -> AdminReply:
        return _json(
            {
                "status": "healthy",
                "message": "Wiremock is ok",
                "version": VERSION,
                "uptimeInSeconds": int(time.monotonic() - self.started),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )

    def version(self, c: _Call) -> AdminReply:
        return _json({"version": VERSION})

    def shutdown(self, c: _Call) -> AdminReply:
        raise AdminError(
            403,
            "the testbed's fake is not shut down through its admin API: it lives as long "
            "as the testbed, which other tests may share (stop the testbed instead)",
        )


def _found(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)`, or 404 when the engine says there is no such thing (None or KeyError)."""
    try:
        result = fn(*args)
    except KeyError:
        raise AdminError(404, f"no such {args[0]!r}") from None
    if result is None and fn.__name__ in ("get_mapping", "get_request", "update_mapping"):
        raise AdminError(404, f"no such {args[0]!r}")
    if result is False:
        raise AdminError(404, f"no such {args[0]!r}")
    return result


def _facts(req: HttpIn) -> RequestFacts:
    def header(name: str) -> str | None:
        return next((v for k, v in req.headers if k.lower() == name), None)

    return RequestFacts(
        method=req.method.upper(),
        host=header("host"),
        origin=header("origin"),
        fetch_site=header("sec-fetch-site"),
        content_type=header("content-type"),
        has_body=bool(req.body),
    )


_PARAM = re.compile(r"^\{\w+\}$")


def _match(pattern: tuple[str, ...], parts: list[str]) -> bool:
    return len(pattern) == len(parts) and all(
        _PARAM.match(p) is not None or p == got for p, got in zip(pattern, parts, strict=True)
    )


#: (method, path parts, handler), fixed paths before the {id} ones they shadow.
ROUTES: list[tuple[str, tuple[str, ...], Route]] = [
    ("GET", ("mappings",), AdminApi.list_mappings),
    ("POST", ("mappings",), AdminApi.add_mapping),
    ("DELETE", ("mappings",), AdminApi.delete_all_mappings),
    ("POST", ("mappings", "reset"), AdminApi.reset_mappings),
    ("POST", ("mappings", "import"), AdminApi.import_mappings),
    ("POST", ("mappings", "save"), AdminApi.save_mappings),
    ("POST", ("mappings", "remove-by-metadata"), AdminApi.remove_by_metadata),
    ("GET", ("mappings", "{id}"), AdminApi.get_mapping),
    ("PUT", ("mappings", "{id}"), AdminApi.update_mapping),
    ("DELETE", ("mappings", "{id}"), AdminApi.remove_mapping),
    ("GET", ("requests",), AdminApi.list_requests),
    ("DELETE", ("requests",), AdminApi.reset_requests),
    ("POST", ("requests", "reset"), AdminApi.reset_requests),
    ("POST", ("requests", "find"), AdminApi.find_requests),
    ("POST", ("requests", "count"), AdminApi.count_requests),
    ("POST", ("requests", "remove"), AdminApi.remove_requests),
    ("GET", ("requests", "unmatched"), AdminApi.unmatched),
    ("GET", ("requests", "unmatched", "near-misses"), AdminApi.unmatched_near_misses),
    ("GET", ("requests", "{id}"), AdminApi.get_request),
    ("POST", ("near-misses", "request"), AdminApi.near_misses_request),
    ("POST", ("near-misses", "request-pattern"), AdminApi.near_misses_pattern),
    ("POST", ("reset",), AdminApi.reset_all),
    ("GET", ("scenarios",), AdminApi.scenarios),
    ("POST", ("scenarios", "reset"), AdminApi.reset_scenarios),
    ("PUT", ("scenarios", "{name}", "state"), AdminApi.set_scenario_state),
    ("GET", ("settings",), AdminApi.get_settings),
    ("POST", ("settings",), AdminApi.settings),
    ("PUT", ("settings",), AdminApi.settings),
    ("GET", ("health",), AdminApi.health),
    ("GET", ("version",), AdminApi.version),
    ("POST", ("shutdown",), AdminApi.shutdown),
]
