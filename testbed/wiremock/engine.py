"""The WireMock engine: stub mappings in, one request -> one response out, no I/O on the wire.

The HTTP server and the `/__admin/` routes (another module) call `handle` per
request and the admin methods per admin call; everything here is plain data,
so the matching semantics are tested without sockets and the server stays a
thin adapter. Admin methods take and return WireMock 3's JSON shapes so the
PyPI `wiremock` client's models read them unchanged.

Order of matching is WireMock's: lowest `priority` number first (default 5),
then the most recently added stub; a stub in a scenario matches only in its
`requiredScenarioState`, and a match moves the scenario to `newScenarioState`.
Randomness (ids, delays, `randomValue`) comes from Randoms seeded by `seed`,
so a run repeats.

Not thread-safe: the fake HTTP service calls it from its one event loop.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

from .diff import DiffLine, diff_lines
from .errors import MappingError
from .mapping import (
    MAX_MAPPING_FILE_BYTES,
    STARTED,
    StubMapping,
    check_body_file_name,
    parse_mapping,
    read_mapping_file,
)
from .near_miss import NO_STUBS, render_not_matched
from .request_pattern import RequestPattern, RequestView
from .requests_log import RequestJournal, ServeEvent, parse_date, view_from_logged
from .templating import RenderContext, Template, TemplateError

MAX_MAPPINGS = 10_000
#: Near misses listed per request, as WireMock's NearMissCalculator.NEAR_MISS_COUNT.
NEAR_MISS_COUNT = 3
MAX_IMPORT_MAPPINGS = MAX_MAPPINGS
#: Cached parsed templates (per mapping body/header/file name); cleared on any mapping change.
MAX_TEMPLATE_CACHE = 20_000


@dataclass
class HttpIn:
    method: str
    #: path and query as received
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    client: str = ""
    absolute_url: str = ""


@dataclass
class HttpOut:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    delay_s: float = 0.0
    #: one of mapping.FAULTS: the server then breaks the connection that way instead of answering
    fault: str | None = None
    mapping_id: str | None = None
    matched: bool = True
    status_message: str | None = None


@dataclass(frozen=True)
class NearMiss:
    distance: float
    stub: StubMapping | None
    event: ServeEvent | None
    pattern: RequestPattern | None = None


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class WireMockEngine:
    def __init__(
        self,
        seed: int = 0,
        files_root: Path | None = None,
        journal_limit: int = 10_000,
        *,
        global_templating: bool = False,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self._ids = Random(seed)
        self._delays = Random(seed + 1)
        self._template_rng = Random(seed + 2)
        #: serve-event ids draw apart, so a mapping's id does not depend on the traffic before it
        self._event_ids = Random(seed + 3)
        self.files_root = files_root
        self.global_templating = global_templating
        self.clock = clock
        self.journal = RequestJournal(journal_limit)
        self._stubs: dict[str, StubMapping] = {}
        self._order: dict[str, int] = {}
        self._counter = 0
        self._sorted: list[StubMapping] | None = None
        self._states: dict[str, str] = {}
        self._paths: list[Path] = []
        self._file_roots: list[Path] = [files_root] if files_root is not None else []
        self._file_mappings: list[StubMapping] = []
        self._templates: dict[tuple[str, str], Template] = {}

    # -- ids ---------------------------------------------------------------

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    # -- loading -----------------------------------------------------------

    def load_paths(self, paths: Iterable[Path]) -> int:
        """Load mapping files and folders; remembered so `reset()` brings them back. Returns the count."""
        loaded: list[StubMapping] = []
        for path in paths:
            path = Path(path)
            if path.is_dir():
                self._add_file_root(path / "__files")
                if path.name == "mappings":
                    self._add_file_root(path.parent / "__files")
                files = sorted(
                    p for p in path.rglob("*.json") if "__files" not in p.relative_to(path).parts
                )
            elif path.is_file():
                self._add_file_root(path.parent / "__files")
                if path.parent.name == "mappings":
                    self._add_file_root(path.parent.parent / "__files")
                files = [path]
            else:
                raise MappingError("", "no such file or folder", str(path))
            for file in files:
                loaded.extend(self._read_file(file))
            self._paths.append(path)
        if len(self._stubs) + len(loaded) > MAX_MAPPINGS:
            raise MappingError("", f"more than {MAX_MAPPINGS} mappings")
        for stub in loaded:
            self._file_mappings.append(stub)
            self._put(stub)
        return len(loaded)

    def _add_file_root(self, root: Path) -> None:
        if root not in self._file_roots:
            self._file_roots.append(root)

    def _read_file(self, file: Path) -> list[StubMapping]:
        items = read_mapping_file(file)
        if len(items) > MAX_MAPPINGS:
            raise MappingError("mappings", f"more than {MAX_MAPPINGS} mappings", str(file))
        several = len(items) > 1 or _is_wrapped(file)
        out = []
        for i, item in enumerate(items):
            where = f"mappings[{i}]" if several else ""
            try:
                stub = parse_mapping(item, self.new_id(), where, str(file))
                self._check_templates(stub)
            except MappingError as exc:
                raise exc.in_source(str(file)) from None
            out.append(stub)
        return out

    # -- the mapping store ---------------------------------------------------

    def _put(self, stub: StubMapping) -> None:
        if stub.id not in self._stubs and len(self._stubs) >= MAX_MAPPINGS:
            raise MappingError("", f"more than {MAX_MAPPINGS} mappings")
        self._stubs[stub.id] = stub
        self._counter += 1
        self._order[stub.id] = self._counter
        self._changed()
        if stub.scenario and stub.scenario not in self._states:
            self._states[stub.scenario] = STARTED

    def _changed(self) -> None:
        self._sorted = None
        self._templates.clear()
        live = {s.scenario for s in self._stubs.values() if s.scenario}
        for name in list(self._states):
            if name not in live:
                del self._states[name]

    def ordered(self) -> list[StubMapping]:
        """Stubs in matching order: priority, then newest first."""
        if self._sorted is None:
            self._sorted = sorted(
                self._stubs.values(), key=lambda s: (s.priority, -self._order[s.id])
            )
        return self._sorted

    def _parse_admin(self, m: Any, mapping_id: str | None = None) -> StubMapping:
        if isinstance(m, dict) and mapping_id is not None:
            m = {**m, "id": mapping_id}
            m.pop("uuid", None)
        stub = parse_mapping(m, self.new_id())
        self._check_templates(stub)
        return stub

    def add_mapping(self, m: dict[str, Any]) -> dict[str, Any]:
        """POST /__admin/mappings: the stored mapping (with its id)."""
        stub = self._parse_admin(m)
        self._put(stub)
        return stub.to_json()

    def get_mapping(self, mapping_id: str) -> dict[str, Any] | None:
        stub = self._stubs.get(mapping_id)
        return stub.to_json() if stub else None

    def update_mapping(self, mapping_id: str, m: dict[str, Any]) -> dict[str, Any] | None:
        if mapping_id not in self._stubs:
            return None
        stub = self._parse_admin(m, mapping_id)
        order = self._order[mapping_id]
        self._stubs[mapping_id] = stub
        self._order[mapping_id] = order
        self._changed()
        if stub.scenario and stub.scenario not in self._states:
            self._states[stub.scenario] = STARTED
        return stub.to_json()

    def remove_mapping(self, mapping_id: str) -> bool:
        if self._stubs.pop(mapping_id, None) is None:
            return False
        self._order.pop(mapping_id, None)
        self._changed()
        return True

    def list_mappings(self, limit: int | None = None, offset: int = 0) -> dict[str, Any]:
        """GET /__admin/mappings: in matching order (priority, then newest first), as WireMock's sorted store lists them."""
        everything = self.ordered()
        page = everything[offset:] if limit is None else everything[offset : offset + max(limit, 0)]
        return {"mappings": [s.to_json() for s in page], "meta": {"total": len(everything)}}

    def reset_mappings(self) -> None:
        """Back to the files' mappings (WireMock's POST /__admin/mappings/reset)."""
        self._stubs.clear()
        self._order.clear()
        self._states.clear()
        for stub in self._file_mappings:
            self._put(stub)

    def reset(self) -> None:
        """POST /__admin/reset: file mappings back, journal cleared, scenarios Started."""
        self.reset_mappings()
        self.journal.clear()
        self.reset_scenarios()

    def import_mappings(self, body: dict[str, Any]) -> None:
        """POST /__admin/mappings/import. Every mapping is parsed before any is stored."""
        if not isinstance(body, dict):
            raise MappingError("", "an import is an object with 'mappings'")
        items = body.get("mappings", [])
        if not isinstance(items, list):
            raise MappingError("mappings", "must be a list")
        if len(items) > MAX_IMPORT_MAPPINGS:
            raise MappingError("mappings", f"more than {MAX_IMPORT_MAPPINGS} mappings")
        options = body.get("importOptions") or {}
        if not isinstance(options, dict):
            raise MappingError("importOptions", "must be an object")
        policy = options.get("duplicatePolicy", "OVERWRITE")
        if policy not in ("OVERWRITE", "IGNORE"):
            raise MappingError("importOptions.duplicatePolicy", "must be OVERWRITE or IGNORE")
        delete_others = options.get("deleteAllNotInImport", False)
        if not isinstance(delete_others, bool):
            raise MappingError("importOptions.deleteAllNotInImport", "must be true or false")
        stubs = []
        for i, item in enumerate(items):
            try:
                stubs.append(self._parse_admin(item))
            except MappingError as exc:
                raise exc.under(f"mappings[{i}]") from None
        if delete_others:
            keep = {s.id for s in stubs}
            for mapping_id in [k for k in self._stubs if k not in keep]:
                self.remove_mapping(mapping_id)
        # WireMock imports in reverse so that the first in the file ends up the newest.
        for stub in reversed(stubs):
            if stub.id in self._stubs and policy == "IGNORE":
                continue
            if len(self._stubs) >= MAX_MAPPINGS and stub.id not in self._stubs:
                raise MappingError("mappings", f"more than {MAX_MAPPINGS} mappings")
            self._put(stub)

    # -- scenarios ---------------------------------------------------------

    def scenarios(self) -> dict[str, Any]:
        """GET /__admin/scenarios: WireMock names a scenario's id after it, and its
        possibleStates are the states its stubs name, in their order ("Started"
        only if a stub names it)."""
        out = []
        for name, state in self._states.items():
            stubs = [s for s in self.ordered_by_insertion() if s.scenario == name]
            possible: list[str] = []
            for s in stubs:
                for x in (s.required_state, s.new_state):
                    if x and x not in possible:
                        possible.append(x)
            out.append(
                {
                    "id": name,
                    "name": name,
                    "state": state,
                    "possibleStates": possible,
                    "mappings": [s.to_json() for s in stubs],
                }
            )
        return {"scenarios": out}

    def ordered_by_insertion(self) -> list[StubMapping]:
        return sorted(self._stubs.values(), key=lambda s: self._order[s.id])

    def reset_scenarios(self) -> None:
        for name in self._states:
            self._states[name] = STARTED

    def set_scenario_state(self, name: str, state: str) -> bool:
        """PUT /__admin/scenarios/{name}/state. False: no such scenario, or a state
        none of its stubs names (WireMock answers 422 then, even for "Started")."""
        if name not in self._states:
            return False
        scenario = next(s for s in self.scenarios()["scenarios"] if s["name"] == name)
        if state not in scenario["possibleStates"]:
            return False
        self._states[name] = state
        return True

    def _in_state(self, stub: StubMapping) -> bool:
        if not stub.scenario or stub.required_state is None:
            return True
        return self._states.get(stub.scenario, STARTED) == stub.required_state

    # -- serving -----------------------------------------------------------

    def handle(self, req: HttpIn) -> HttpOut:
        """Match, move the scenario, render, and log one request."""
        view = RequestView(req.method, req.url, list(req.headers), req.body)
        now = self.clock()
        event_id = str(uuid.UUID(int=self._event_ids.getrandbits(128), version=4))
        event = ServeEvent(event_id, view, req.client, req.absolute_url, now, matched=False)
        for stub in self.ordered():
            if not self._in_state(stub):
                continue
            if stub.request.is_match(view):
                out = self._serve(stub, view, req)
                if stub.scenario and stub.new_state:
                    self._states[stub.scenario] = stub.new_state
                event.matched = True
                event.status = out.status
                event.response_headers = out.headers
                event.response_body = out.body
                event.response_definition = stub.response.to_json()
                event.stub_mapping = stub.to_json()
                event.added_delay_ms = int(out.delay_s * 1000)
                self.journal.add(event)
                return out
        misses = self._near_misses_for_view(view, event=None)
        if misses and misses[0].stub is not None:
            closest = misses[0].stub
            body = render_not_matched(closest.spec.get("name"), self._diff(closest, view))
        else:
            body = NO_STUBS
        out = HttpOut(404, [("Content-Type", "text/plain")], body.encode(), matched=False)
        # WireMock journals an unmatched request with an empty response and a stand-in stub.
        event.status = 404
        event.response_definition = {"status": 404, "fromConfiguredStub": False}
        event.stub_mapping = {
            "id": event.id,
            "request": {"method": "ANY"},
            "response": {"status": 404, "fromConfiguredStub": False},
            "uuid": event.id,
        }
        self.journal.add(event)
        return out

    def _serve(self, stub: StubMapping, view: RequestView, req: HttpIn) -> HttpOut:
        r = stub.response
        delay_ms = r.delay.draw_ms(self._delays)
        headers = [(k, v) for k, v in r.headers]
        body = r.body or b""
        templated = r.templated or self.global_templating
        try:
            if templated:
                context = RenderContext(
                    view, self._template_rng, self.clock, req.client, req.absolute_url
                )
                headers = [
                    (k, self._template(stub, f"h:{i}", v).render(context))
                    for i, (k, v) in enumerate(headers)
                ]
                if r.body_text is not None:
                    body = self._template(stub, "body", r.body_text).render(context).encode()
            if r.body_file is not None:
                name = r.body_file
                if templated and "{{" in name:
                    name = self._template(stub, "file", name).render(context)
                raw = self._read_body_file(name)
                if raw is None:
                    return self._error(
                        stub, f"bodyFileName {name!r} not found under __files/", delay_ms
                    )
                body = raw
                if templated:
                    text = raw.decode("utf-8", "replace")
                    body = Template.parse(text, "response.bodyFileName").render(context).encode()
        except (TemplateError, MappingError) as exc:
            return self._error(stub, str(exc), delay_ms)
        headers.append(("Matched-Stub-Id", stub.id))
        if stub.spec.get("name"):
            headers.append(("Matched-Stub-Name", str(stub.spec["name"]).replace("\n", " ")))
        return HttpOut(
            r.status,
            headers,
            body,
            delay_s=delay_ms / 1000,
            fault=r.fault,
            mapping_id=stub.id,
            status_message=r.status_message,
        )

    def _error(self, stub: StubMapping, message: str, delay_ms: float) -> HttpOut:
        return HttpOut(
            500,
            [("Content-Type", "text/plain")],
            message.encode(),
            delay_ms / 1000,
            mapping_id=stub.id,
        )

    def _template(self, stub: StubMapping, part: str, text: str) -> Template:
        key = (stub.id, part + ":" + text if part == "file" else part)
        template = self._templates.get(key)
        if template is None:
            template = Template.parse(text, f"response.{part}")
            if len(self._templates) >= MAX_TEMPLATE_CACHE:
                self._templates.clear()
            self._templates[key] = template
        return template

    def _check_templates(self, stub: StubMapping) -> None:
        """A templated mapping's templates parse at load, so a bad helper fails with the file named."""
        r = stub.response
        if not (r.templated or self.global_templating):
            return
        if r.body_text is not None:
            Template.parse(r.body_text, "response.body")
        for name, value in r.headers:
            Template.parse(value, f"response.headers.{name}")
        if r.body_file is not None:
            Template.parse(r.body_file, "response.bodyFileName")

    def _read_body_file(self, name: str) -> bytes | None:
        relative = check_body_file_name(name, "response.bodyFileName")
        for root in self._file_roots:
            candidate = root / relative
            try:
                resolved = candidate.resolve()
                if not resolved.is_relative_to(root.resolve()) or not resolved.is_file():
                    continue
                if resolved.stat().st_size > MAX_MAPPING_FILE_BYTES:
                    raise MappingError(
                        "response.bodyFileName", f"{name!r} is over {MAX_MAPPING_FILE_BYTES} bytes"
                    )
                return resolved.read_bytes()
            except OSError:
                continue
        return None

    # -- the request journal -----------------------------------------------

    def requests(
        self, limit: int | None = None, since: str | dt.datetime | None = None
    ) -> dict[str, Any]:
        """GET /__admin/requests: serve events, newest first."""
        events = list(self.journal.newest_first())
        if since is not None:
            cutoff = parse_date(since)
            events = [e for e in events if e.logged > cutoff]
        total = len(self.journal)
        if limit is not None:
            events = events[: max(limit, 0)]
        return {
            "requests": [e.to_json() for e in events],
            "meta": {"total": total},
            "requestJournalDisabled": False,
        }

    def _pattern(self, pattern: dict[str, Any]) -> RequestPattern:
        return RequestPattern.parse(pattern if pattern is not None else {}, "")

    def find_requests(self, pattern: dict[str, Any]) -> dict[str, Any]:
        """POST /__admin/requests/find: the LoggedRequests that match, oldest first (WireMock reverses its newest-first store here)."""
        compiled = self._pattern(pattern)
        found = [
            e for e in reversed(list(self.journal.newest_first())) if compiled.is_match(e.view)
        ]
        return {"requests": [e.logged_request() for e in found], "requestJournalDisabled": False}

    def count_requests(self, pattern: dict[str, Any]) -> dict[str, Any]:
        compiled = self._pattern(pattern)
        return {
            "count": sum(1 for e in self.journal.newest_first() if compiled.is_match(e.view)),
            "requestJournalDisabled": False,
        }

    def remove_requests(self, pattern: dict[str, Any]) -> dict[str, Any]:
        """POST /__admin/requests/remove: `{"serveEvents": [...]}`, the removed ones (WireMock 3.13.2's key)."""
        compiled = self._pattern(pattern)
        removed = self.journal.remove_where(lambda e: not compiled.is_match(e.view))
        return {"serveEvents": [e.to_json() for e in removed]}

    def reset_requests(self) -> None:
        self.journal.clear()

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        event = self.journal.get(request_id)
        return event.to_json() if event else None

    def unmatched(self) -> dict[str, Any]:
        """GET /__admin/requests/unmatched: unmatched LoggedRequests, newest first (as WireMock)."""
        events = [e for e in self.journal.newest_first() if not e.matched]
        return {"requests": [e.logged_request() for e in events], "requestJournalDisabled": False}

    # -- near misses ---------------------------------------------------------

    def _near_misses_for_view(self, view: RequestView, event: ServeEvent | None) -> list[NearMiss]:
        """WireMock's ranking: the request distance alone (a wrong scenario state adds none,
        it shows as a row of the diff), ties in matching order; the closest three."""
        misses = [
            NearMiss(stub.request.match(view).distance, stub, event) for stub in self.ordered()
        ]
        misses.sort(key=lambda m: m.distance)
        return misses[:NEAR_MISS_COUNT]

    def _diff(self, stub: StubMapping, view: RequestView) -> list[DiffLine]:
        lines = diff_lines(stub.request, view)
        if stub.scenario and stub.required_state is not None:
            actual = self._states.get(stub.scenario, STARTED)
            lines.append(
                DiffLine(
                    "Scenario",
                    f"[Scenario '{stub.scenario}' state: {stub.required_state}]",
                    f"[Scenario '{stub.scenario}' state: {actual}]",
                    None if actual == stub.required_state else "Scenario does not match",
                )
            )
        return lines

    @staticmethod
    def _miss_json(miss: NearMiss, request: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request": request,
            "matchResult": {"subEvents": [], "diffDescriptions": [], "distance": miss.distance},
        }
        if miss.stub is not None:
            out["stubMapping"] = miss.stub.to_json()
        if miss.pattern is not None:
            out["requestPattern"] = miss.pattern.to_json()
        return out

    def unmatched_near_misses(self) -> dict[str, Any]:
        """GET /__admin/requests/unmatched/near-misses: the closest stubs for each unmatched request."""
        out = []
        for event in self.journal.newest_first():
            if event.matched:
                continue
            logged = event.logged_request()
            out.extend(
                self._miss_json(m, logged) for m in self._near_misses_for_view(event.view, event)
            )
        return {"nearMisses": out}

    def near_misses_for_request(self, logged_request: dict[str, Any]) -> dict[str, Any]:
        """POST /__admin/near-misses/request: the stubs closest to a LoggedRequest."""
        view = view_from_logged(logged_request)
        return {
            "nearMisses": [
                self._miss_json(m, logged_request) for m in self._near_misses_for_view(view, None)
            ]
        }

    def near_misses_for_pattern(self, pattern: dict[str, Any]) -> dict[str, Any]:
        """POST /__admin/near-misses/request-pattern: the logged requests closest to a pattern."""
        compiled = self._pattern(pattern)
        scored = [
            NearMiss(compiled.match(e.view).distance, None, e, compiled)
            for e in self.journal.newest_first()
        ]
        scored.sort(key=lambda m: m.distance)
        return {
            "nearMisses": [
                self._miss_json(m, m.event.logged_request())
                for m in scored[:NEAR_MISS_COUNT]
                if m.event is not None
            ]
        }


def _is_wrapped(file: Path) -> bool:
    """True when the file is `{"mappings": [...]}` (errors then name the index)."""
    try:
        with file.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b'"mappings"' in head and b'"request"' not in head[: head.find(b'"mappings"')]


__all__ = ["HttpIn", "HttpOut", "MappingError", "WireMockEngine"]
