"""The stub store: which stub answers a call, and the Reply it gives.

Choosing among matching stubs: higher `priority` first, then the more specific
stub (exact fields count more than partial or pattern ones), then the one
loaded first. GripMock ranks specificity above priority; we let `priority`
decide first, because a test that sets it means it (documented).

The store is shared by the gRPC server's worker threads, so counters (`times`,
`sequence`, the seeded id and uuid source) change under one lock.
"""

from __future__ import annotations

import copy
import random
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.grpc_stubs.files import read_stub_file, stub_files
from testbed.grpc_stubs.match import Matcher, Reason
from testbed.grpc_stubs.reply import Reply, StubError
from testbed.grpc_stubs.stub import Output, Stub, parse_stub
from testbed.grpc_stubs.stub import _fail as fail
from testbed.grpc_stubs.template import TemplateError, context, render_tree

#: Most stubs one store holds.
MAX_STUBS = 10_000
#: Near misses named in one unmatched reply.
MAX_NEAR_MISSES = 3
#: Messages a client stream or bidi call may match against (the server bounds them too).
MAX_MESSAGES = 100_000


def split_method(method: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` or ``pkg.Service/Method`` -> (``pkg.Service``, ``Method``)."""
    path = method.lstrip("/")
    if "/" not in path:
        raise ValueError(f"method {method!r} is not 'package.Service/Method'")
    service, name = path.rsplit("/", 1)
    return service, name


def service_matches(stub_service: str, service: str) -> bool:
    """A stub names the full service or only its last part (GripMock accepts both)."""
    return stub_service == service or (
        "." not in stub_service and service.rsplit(".", 1)[-1] == stub_service
    )


@dataclass
class _Candidate:
    stub: Stub
    reason: Reason
    closeness: float = 0.0


@dataclass
class _Call:
    """What one call brings: for a unary or server-streaming call one message."""

    kind: str
    service: str
    method: str
    metadata: Mapping[str, str]
    messages: list[Any]
    #: bidi: the index of this message within the call
    index: int = 0


def read_paths(paths: Iterable[Path]) -> list[tuple[Any, str]]:
    """(stub, "file: place in it") for every stub in these files and folders."""
    return [
        (item, f"{file}: {where}")
        for file in stub_files(paths)
        for where, item in read_stub_file(file)
    ]


class StubStore:
    """GripMock-format stubs, matched against calls given as protobuf-JSON dicts."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._stubs: dict[str, Stub] = {}
        self._order = 0
        # ids and template values (uuid) draw from separate seeded sources, so the
        # ids of loaded stubs do not depend on how many calls came before
        self._ids = random.Random(seed)
        self._values = random.Random(f"{seed}/templates")

    # -- loading ---------------------------------------------------------------------

    def load_paths(self, paths: Iterable[Path]) -> int:
        """Load stub files (.json .yaml .yml) and folders of them (recursively);
        all or nothing per call. Returns how many stubs were loaded."""
        return len(self.add_staged(read_paths(paths)))

    def add_staged(self, staged: list[tuple[Any, str]]) -> list[str]:
        """Add (stub, where) pairs read by `read_paths`: a caller that also checks
        the stubs against a schema reads each file once."""
        return self._add_all(staged)

    def add(self, data: dict[str, Any] | list[dict[str, Any]], source: str = "api") -> list[str]:
        """Add one stub or a list (an existing id is replaced, as GripMock's upsert);
        all or nothing. Returns the ids, given or generated."""
        if isinstance(data, list):
            items = [(item, f"{source}: [{i}]") for i, item in enumerate(data)]
        elif isinstance(data, dict):
            items = [(data, f"{source}: ")]
        else:
            raise StubError(
                f"{source}: want a stub object or a list of them, got {type(data).__name__}"
            )
        return self._add_all(items)

    def _add_all(self, items: list[tuple[Any, str]]) -> list[str]:
        """Parse everything first (outside the lock: calls go on meanwhile), then commit."""
        parsed: list[Stub] = []
        seen: set[str] = set()
        for item, where in items:
            given = item.get("id") if isinstance(item, dict) else None
            if given is not None and (not isinstance(given, str) or not given or len(given) > 200):
                raise fail(f"{where}.id", f"want a non-empty string id, got {given!r}")
            if given is None:
                with self._lock:
                    given = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
            if given in seen:
                raise fail(f"{where}.id", f"{given!r} is given twice")
            seen.add(given)
            source = where.partition(": ")[0]
            stub = parse_stub(item, where, stub_id=given, source=source, order=0)
            stub.raw = {**copy.deepcopy(item), "id": given}
            parsed.append(stub)
        with self._lock:
            new = sum(1 for s in parsed if s.id not in self._stubs)
            if len(self._stubs) + new > MAX_STUBS:
                raise StubError(
                    f"{items[0][1].partition(': ')[0] if items else 'api'}: "
                    f"more than {MAX_STUBS} stubs in one store"
                )
            for stub in parsed:
                old = self._stubs.pop(stub.id, None)
                stub.order = old.order if old else self._order
                self._order += 0 if old else 1
                self._stubs[stub.id] = stub
            return [s.id for s in parsed]

    def get(self, id: str) -> dict[str, Any] | None:
        with self._lock:
            stub = self._stubs.get(id)
            return copy.deepcopy(stub.raw) if stub else None

    def remove(self, id: str) -> bool:
        with self._lock:
            return self._stubs.pop(id, None) is not None

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(s.raw) for s in sorted(self._stubs.values(), key=lambda s: s.order)
            ]

    def clear(self) -> None:
        with self._lock:
            self._stubs.clear()

    def reset_counts(self) -> None:
        """Forget how often each stub answered (`times`, `sequence`), as a restart would."""
        with self._lock:
            for stub in self._stubs.values():
                stub.used = 0

    def _stub(self, id: str | None) -> Stub | None:
        with self._lock:
            return self._stubs.get(id) if id else None

    def used(self, id: str) -> int:
        """How many calls the stub answered."""
        with self._lock:
            stub = self._stubs.get(id)
            return stub.used if stub else 0

    # -- calls -------------------------------------------------------------------------

    def unary(self, method: str, request: dict[str, Any], metadata: Mapping[str, str]) -> Reply:
        service, name = split_method(method)
        reply = self._answer(_Call("unary", service, name, metadata, [request]))
        return _unary_shape(reply)

    def server_stream(
        self, method: str, request: dict[str, Any], metadata: Mapping[str, str]
    ) -> Reply:
        service, name = split_method(method)
        return self._answer(_Call("server_stream", service, name, metadata, [request]))

    def client_stream(
        self, method: str, requests: list[dict[str, Any]], metadata: Mapping[str, str]
    ) -> Reply:
        service, name = split_method(method)
        if len(requests) > MAX_MESSAGES:
            raise ValueError(f"more than {MAX_MESSAGES} messages in one client stream")
        return _unary_shape(
            self._answer(_Call("client_stream", service, name, metadata, list(requests)))
        )

    def bidi(self, method: str, metadata: Mapping[str, str]) -> BidiScript:
        service, name = split_method(method)
        return BidiScript(self, service, name, dict(metadata))

    # -- matching ------------------------------------------------------------------------

    def _answer(self, call: _Call) -> Reply:
        with self._lock:
            same_method: list[_Candidate] = []
            same_service: list[Stub] = []
            for stub in self._stubs.values():
                if not service_matches(stub.service, call.service):
                    continue
                if stub.method != call.method:
                    same_service.append(stub)
                    continue
                same_method.append(self._try(stub, call))
            winners = [c for c in same_method if c.reason is None]
            if not winners:
                return self._unmatched(call, same_method, same_service)
            best = max(winners, key=lambda c: (c.stub.priority, c.stub.weight(), -c.stub.order))
            stub = best.stub
            stub.used += 1
            output = _pick(stub)
            attempt = stub.used
            rng = random.Random(self._values.getrandbits(64))
        return self._render(stub, output, call, attempt, rng)

    def _try(self, stub: Stub, call: _Call) -> _Candidate:
        if stub.times and stub.used >= stub.times:
            return _Candidate(stub, f"times: answered {stub.used} of {stub.times} calls", 0.9)
        if stub.repeat == "exhaust" and stub.used >= len(stub.outputs):
            return _Candidate(stub, f"sequence: all {len(stub.outputs)} outputs given", 0.9)
        if stub.headers:
            reason = stub.headers.check(call.metadata, "headers")
            if reason:
                return _Candidate(stub, reason, 0.5)
        reason = _input_reason(stub, call)
        if reason:
            return _Candidate(stub, reason, 0.2 + 0.6 * _closeness(stub, call))
        return _Candidate(stub, None, 1.0)

    def _unmatched(self, call: _Call, same: list[_Candidate], others: list[Stub]) -> Reply:
        same.sort(key=lambda c: (-c.closeness, -c.stub.priority, c.stub.order))
        misses = [f"{c.stub.describe()}: {c.reason}" for c in same]
        misses += [
            f"{s.describe()}: method {s.method!r}, not {call.method!r}"
            for s in sorted(others, key=lambda s: s.order)
        ]
        misses = misses[:MAX_NEAR_MISSES]
        where = f"service: {call.service}, method: {call.method}"
        if not same and not others:
            why = "no stub for this service"
        elif not same:
            why = "no stub for this method"
        else:
            why = "closest: " + "; ".join(misses)
        return Reply(
            headers={},
            messages=[],
            status="NOT_FOUND",
            details=f"No matching stub found ({where}): {why}",
            matched=False,
            near_misses=misses,
        )

    def _render(
        self, stub: Stub, output: Output, call: _Call, attempt: int, rng: random.Random
    ) -> Reply:
        request = call.messages[-1] if call.messages else {}
        ctx = context(
            request,
            call.metadata,
            requests=call.messages,
            message_index=call.index,
            stub_id=stub.id,
            attempt=attempt,
            max_attempts=stub.times,
            rng=rng,
        )
        try:
            reply = Reply(
                headers={str(k): str(v) for k, v in render_tree(output.headers, ctx).items()},
                messages=[],
                status=output.status,
                details=str(render_tree(output.error, ctx)),
                error_details=render_tree(output.details, ctx),
                trailers={str(k): str(v) for k, v in render_tree(output.trailers, ctx).items()},
                stub_id=stub.id,
            )
            items = output.stream
            if output.fail_after is not None:
                items = items[: output.fail_after]
                reply.fail_after = output.fail_after
            for i, item in enumerate(items):
                ctx["MessageIndex"] = ctx["."]["MessageIndex"] = (
                    i if call.kind != "bidi" else call.index
                )
                pause = output.delay if item.delay is None else item.delay
                reply.messages.append((pause, render_tree(item.message, ctx)))
            one_answer = call.kind in ("unary", "client_stream")
            if output.has_data and (not output.has_stream or one_answer):
                data = render_tree(output.data, ctx)
                if isinstance(data, list) and not one_answer:
                    # GripMock v1: a server stream's messages as an `output.data` list
                    reply.messages = [(output.delay, m) for m in data]
                else:
                    reply.messages = [(0.0, data)]
                    reply.delay = output.delay
            elif not items:
                reply.delay = output.delay
        except TemplateError as e:
            return Reply(
                headers={},
                messages=[],
                status="INTERNAL",
                details=f"stub {stub.describe()}: template: {e}",
                stub_id=stub.id,
            )
        return reply


def _pick(stub: Stub) -> Output:
    """The output for the stub's `used`-th answer (1-based) under its sequence rule."""
    n = len(stub.outputs)
    i = stub.used - 1
    if stub.repeat == "cycle":
        return stub.outputs[i % n]
    return stub.outputs[min(i, n - 1)]


def _unary_shape(reply: Reply) -> Reply:
    """A unary answer is one message or none: an error status sends no message, a
    stream-only stub gives its first (GripMock v1 stubs sometimes list `stream` for
    unary methods), and a stub with neither answers an empty message."""
    if not reply.matched:
        return reply
    if reply.status != "OK":
        reply.messages, reply.fail_after = [], None
        return reply
    if reply.messages:
        pause, first = reply.messages[0]
        reply.messages = [(0.0, first)]
        reply.delay += pause
    else:
        reply.messages = [(0.0, {})]
    return reply


def _input_reason(stub: Stub, call: _Call) -> Reason:
    msgs = call.messages
    if call.kind in ("unary", "server_stream") or (call.kind == "bidi" and stub.inputs is None):
        msg = msgs[-1] if msgs else {}
        if stub.input:
            return stub.input.check(msg, "input")
        if stub.inputs:
            return (
                stub.inputs[0].check(msg, "inputs[0]")
                if len(stub.inputs) == 1
                else ("inputs: a stream matcher, not for a single request")
            )
        return _any_reason(stub.inputs_any, msgs)
    if call.kind == "bidi":
        assert stub.inputs is not None
        if len(stub.inputs) == 1:
            return stub.inputs[0].check(msgs[-1], "inputs[0]")
        if call.index >= len(stub.inputs):
            return f"inputs: lists {len(stub.inputs)} messages, this is message {call.index + 1}"
        for i, m in enumerate(msgs[: call.index + 1]):
            reason = stub.inputs[i].check(m, f"inputs[{i}]")
            if reason:
                return reason
        return None
    # client stream
    if stub.inputs is not None:
        if len(stub.inputs) == 1:
            for i, m in enumerate(msgs):
                reason = stub.inputs[0].check(m, f"inputs[0] (message {i})")
                if reason:
                    return reason
        else:
            if len(msgs) != len(stub.inputs):
                return f"inputs: want {len(stub.inputs)} messages, got {len(msgs)}"
            for i, (matcher, m) in enumerate(zip(stub.inputs, msgs, strict=True)):
                reason = matcher.check(m, f"inputs[{i}]")
                if reason:
                    return reason
    if stub.input:
        for i, m in enumerate(msgs):
            reason = stub.input.check(m, f"input (message {i})")
            if reason:
                return reason
    return _any_reason(stub.inputs_any, msgs)


def _any_reason(matchers: list[Matcher], msgs: list[Any]) -> Reason:
    for i, matcher in enumerate(matchers):
        reasons = [matcher.check(m, f"inputsAny[{i}]") for m in msgs]
        if all(reasons):
            return reasons[0] if reasons else f"inputsAny[{i}]: no messages received"
    return None


def _closeness(stub: Stub, call: _Call) -> float:
    """How much of the stub's input matched: the share of its top-level fields that pass
    alone; enough to put the nearly-right stub first in the report."""
    matcher = stub.input or (stub.inputs[0] if stub.inputs else None)
    if matcher is None or not call.messages:
        return 0.0
    msg = call.messages[-1] if call.kind != "client_stream" else call.messages[0]
    parts: list[Matcher] = []
    for name in ("equals", "contains", "matches", "glob"):
        for key, value in getattr(matcher, name).items():
            part = Matcher(unordered=matcher.unordered)
            setattr(part, name, {key: value})
            parts.append(part)
    if not parts:
        return 0.0
    return sum(1 for p in parts if p.check(msg, "") is None) / len(parts)


@dataclass
class BidiScript:
    """One bidirectional call: each received message is answered on its own.

    A stub with `input` answers any message that matches it; a stub with several
    `inputs` follows the call message by message (its nth entry must match the
    nth message, and its nth `stream` item is the answer), as GripMock does.
    """

    store: StubStore
    service: str
    method: str
    metadata: dict[str, str]
    received: list[Any] = field(default_factory=list)
    last: Reply | None = None

    def reply_to(self, message: dict[str, Any]) -> Reply:
        """The answer to one message: status OK = carry on; anything else ends the call."""
        if len(self.received) >= MAX_MESSAGES:
            return Reply(
                headers={},
                messages=[],
                status="RESOURCE_EXHAUSTED",
                details=f"more than {MAX_MESSAGES} messages in one bidi call",
                matched=False,
            )
        self.received.append(message)
        call = _Call(
            "bidi",
            self.service,
            self.method,
            self.metadata,
            list(self.received),
            len(self.received) - 1,
        )
        reply = self.store._answer(call)
        stub = self.store._stub(reply.stub_id)
        if reply.matched and stub is not None and stub.inputs is not None and len(stub.inputs) > 1:
            # the nth message of a scripted stub gets the nth stream item, the last
            # scripted message all the rest (a recorded call replays in full)
            i = call.index
            last = i == len(stub.inputs) - 1
            reply.messages = reply.messages[i:] if last else reply.messages[i : i + 1]
            if not last and reply.status != "OK":
                # the stub's status ends the call after its last scripted message
                reply.status, reply.details, reply.error_details = "OK", "", []
                reply.fail_after = None
        self.last = reply
        return reply

    def finish(self) -> Reply:
        """The client half-closed: end OK, with the trailers of the last answer."""
        trailers = dict(self.last.trailers) if self.last else {}
        return Reply(
            headers={},
            messages=[],
            trailers=trailers,
            stub_id=self.last.stub_id if self.last else None,
        )
