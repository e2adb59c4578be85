"""One journal of what every fake received: HTTP requests, gRPC calls, Kafka operations.

WireMock keeps a request journal per server and GripMock a call history per
process; a testbed runs several fakes of several protocols, and a test asks
"did the order service produce to `orders` after the gRPC call?", so the
testbed keeps one journal across them all, ordered by one clock.

Entries are plain data (they cross the gRPC child process's control socket as
JSON, `entry_from_json`), and the journal is a bounded deque: a long soak keeps
the newest `limit` entries and counts what it dropped, instead of growing.

Reads happen from other threads (`TestbedThread` users) while the fakes append
on the testbed's loop, hence the lock; a fake in another process joins through
`add_source`, whose entries are fetched when the journal is read.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, overload

#: Entries kept by default: a few MB of small calls, enough for any one test.
DEFAULT_LIMIT = 10_000
#: Entries a failed `assert_called` prints beside its count.
SHOWN_IN_FAILURE = 5


@dataclass(frozen=True, slots=True)
class Entry:
    """What every entry has. `service` is the fake's name from the scenario;
    `stub` names what answered (a stub id, a mapping id), None when nothing
    matched; `near_misses` then says, closest first, which stubs came close
    and why they did not match."""

    protocol: ClassVar[str] = ""

    service: str
    #: time.monotonic_ns() at receipt: one clock across the testbed's processes (Linux)
    at_ns: int = field(default_factory=time.monotonic_ns)
    #: time.time_ns() at receipt, for people
    wall_ns: int = field(default_factory=time.time_ns)
    matched: bool = True
    stub: str | None = None
    near_misses: tuple[str, ...] = ()
    #: the journal's sequence number, set when recorded (0 until then)
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["protocol"] = self.protocol
        out["near_misses"] = list(self.near_misses)
        return out

    def describe(self) -> str:
        """One line for failure messages."""
        what = "matched " + str(self.stub) if self.matched else "unmatched"
        return f"#{self.seq} {self.protocol} {self.service} {self.summary()} ({what})"

    def summary(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class GrpcCall(Entry):
    """One gRPC call: every request message with its index in the stream."""

    protocol: ClassVar[str] = "grpc"

    #: "package.Service/Method"
    method: str = ""
    #: request messages as JSON (protobuf's JSON mapping), in stream order
    messages: tuple[dict[str, Any], ...] = ()
    #: request metadata, lower-case keys (secrets redacted by the fake)
    metadata: dict[str, str] = field(default_factory=dict)
    #: the status the fake answered, by name ("OK", "NOT_FOUND"...)
    status: str = "OK"
    #: response messages sent
    responses: int = 0

    def summary(self) -> str:
        return f"{self.method} messages={len(self.messages)} status={self.status}"


@dataclass(frozen=True, slots=True)
class HttpRequest(Entry):
    """One HTTP request as the fake received it."""

    protocol: ClassVar[str] = "http"

    method: str = ""
    #: the path without the query
    path: str = ""
    #: the full request target (path and query)
    url: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)
    #: lower-case names (secrets redacted)
    headers: dict[str, str] = field(default_factory=dict)
    #: the body as text (UTF-8, replacement characters where it is not)
    body: str = ""
    status: int = 0

    def summary(self) -> str:
        return f"{self.method} {self.url} -> {self.status}"


@dataclass(frozen=True, slots=True)
class KafkaEvent(Entry):
    """One thing a Kafka client did: a produced record, a commit, a group step.

    `operation` is one of "produce", "commit", "join", "sync", "leave",
    "txn_begin" (AddPartitionsToTxn), "txn_commit", "txn_abort", "txn_offset_commit".
    """

    protocol: ClassVar[str] = "kafka"

    operation: str = ""
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    value: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    group: str | None = None
    client_id: str | None = None
    transactional_id: str | None = None

    def summary(self) -> str:
        where = f" {self.topic}[{self.partition}]@{self.offset}" if self.topic else ""
        group = f" group={self.group}" if self.group else ""
        return f"{self.operation}{where}{group}"


#: answer bytes a HostileAnswer keeps as hex: enough to replay any answer the
#: fakes draw (they bound their answers), small enough for a journal of 10 000
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class HostileAnswer(Entry):
    """An answer a hostile fake drew instead of its normal one (testbed/hostile.py).

    It carries what a failing client is traced by (Kafka's correlation id and
    client id, a gRPC call's index, also sent as the ``x-testbed-hostile``
    trailer) and what replays it: `seed` and `index` redraw it from the same
    normal answer, `answer_hex` is the exact answer on the wire.
    """

    protocol: ClassVar[str] = "hostile"

    #: the fake's protocol: "kafka", "grpc" or "http"
    target: str = ""
    #: "Metadata v12", "pkg.Service/Method", "GET /path"
    operation: str = ""
    correlation_id: int | None = None
    client_id: str | None = None
    #: the client's address as the fake saw it (the proxy's upstream socket)
    peer: str = ""
    seed: int = 0
    #: the request's index at the fake (0-based); with `seed` it fixes the draw
    index: int = 0
    #: what was changed, e.g. "throttle_time_ms=5000", "topics[0].error_code=32767"
    edits: tuple[str, ...] = ()
    #: request metadata / headers (lower-case, secrets redacted)
    metadata: dict[str, str] = field(default_factory=dict)
    #: the answer as sent (a Kafka frame with its size prefix; a gRPC message)
    answer_hex: str = ""
    answer_len: int = 0
    #: the answer was longer than MAX_ANSWER_BYTES and `answer_hex` is its start
    truncated: bool = False

    def summary(self) -> str:
        corr = f" corr={self.correlation_id}" if self.correlation_id is not None else ""
        return f"{self.target} {self.operation}{corr} #{self.index}: {'; '.join(self.edits)}"

    @staticmethod
    def hex_of(answer: bytes) -> tuple[str, int, bool]:
        """(answer_hex, answer_len, truncated) for `answer`."""
        return answer[:MAX_ANSWER_BYTES].hex(), len(answer), len(answer) > MAX_ANSWER_BYTES


ENTRY_TYPES: dict[str, type[Entry]] = {
    t.protocol: t for t in (GrpcCall, HttpRequest, KafkaEvent, HostileAnswer)
}


def entry_from_json(data: dict[str, Any]) -> Entry:
    """The inverse of `Entry.to_json` (for entries from another process)."""
    cls = ENTRY_TYPES[data["protocol"]]
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    for key in ("near_misses", "messages", "edits"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return cls(**kwargs)


class JournalView(Sequence[Entry]):
    """Entries chosen by a query, oldest first, with WireMock-style verification."""

    def __init__(self, entries: list[Entry], what: str, context: list[Entry]) -> None:
        self._entries = entries
        self._what = what
        #: the entries of the same protocol, for failure messages
        self._context = context

    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry]: ...
    def __getitem__(self, index: int | slice) -> Entry | Sequence[Entry]:
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def __repr__(self) -> str:
        return f"<JournalView {self._what}: {len(self._entries)} entries>"

    def count(self, value: object = None) -> int:  # type: ignore[override]
        """How many entries (with an argument: how many equal to it, as a Sequence)."""
        if value is not None:
            return self._entries.count(value)  # type: ignore[arg-type]
        return len(self._entries)

    def where(self, predicate: Callable[[Any], bool]) -> JournalView:
        return JournalView(
            [e for e in self._entries if predicate(e)], f"{self._what} where …", self._context
        )

    @property
    def matched(self) -> JournalView:
        return self.where(lambda e: e.matched)

    @property
    def unmatched(self) -> JournalView:
        return self.where(lambda e: not e.matched)

    def assert_called(
        self, times: int | None = None, where: Callable[[Any], bool] | None = None
    ) -> JournalView:
        """Raise AssertionError unless the entries (those `where` accepts) number
        `times` (at least one when None). The message lists the closest other
        entries and their near misses: what was sent instead."""
        chosen = self.where(where) if where is not None else self
        n = len(chosen)
        if (times is None and n > 0) or n == times:
            return chosen
        want = "at least 1" if times is None else str(times)
        lines = [f"expected {want} {self._what}, got {n}"]
        others = [e for e in self._context if e not in chosen._entries]
        if others:
            lines.append("other entries:")
            for e in others[-SHOWN_IN_FAILURE:]:
                lines.append("  " + e.describe())
                lines.extend("      near miss: " + m for m in e.near_misses[:3])
        raise AssertionError("\n".join(lines))


class Journal:
    """The testbed's journal: `record` from fakes, queries for tests."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._entries: deque[Entry] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self._seq = 0
        #: entries dropped from the front once `limit` was reached
        self.dropped = 0
        self._sources: list[Callable[[], Iterable[Entry]]] = []
        self._clearers: list[Callable[[], None]] = []

    def record(self, entry: Entry) -> Entry:
        with self._lock:
            self._seq += 1
            object.__setattr__(entry, "seq", self._seq)
            if len(self._entries) == self.limit:
                self.dropped += 1
            self._entries.append(entry)
        return entry

    def add_source(
        self, fetch: Callable[[], Iterable[Entry]], clear: Callable[[], None] | None = None
    ) -> None:
        """Entries kept elsewhere (a fake in a child process), read on each query."""
        self._sources.append(fetch)
        if clear is not None:
            self._clearers.append(clear)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
        for clear in self._clearers:
            clear()

    def entries(self) -> list[Entry]:
        """Every entry, ordered by receipt time."""
        with self._lock:
            local = list(self._entries)
        for fetch in self._sources:
            local.extend(fetch())
        local.sort(key=lambda e: e.at_ns)
        return local

    def query(
        self,
        protocol: str | None = None,
        service: str | None = None,
        method: str | None = None,
        path: str | None = None,
        topic: str | None = None,
        operation: str | None = None,
    ) -> list[Entry]:
        """Entries matching every given field (the admin API's query parameters).
        `method` is a gRPC "Service/Method" (a suffix matches, so "Catalog/GetItem"
        finds "shop.v1.Catalog/GetItem") or an HTTP method (case-insensitive)."""
        out = []
        for e in self.entries():
            if protocol is not None and e.protocol != protocol:
                continue
            if service is not None and e.service != service:
                continue
            if method is not None and not _method_matches(e, method):
                continue
            if path is not None and getattr(e, "path", None) != path:
                continue
            if topic is not None and getattr(e, "topic", None) != topic:
                continue
            if operation is not None and getattr(e, "operation", None) != operation:
                continue
            out.append(e)
        return out

    def _view(self, protocol: str, what: str, **query: Any) -> JournalView:
        context = self.query(protocol=protocol)
        chosen = self.query(protocol=protocol, **query)
        return JournalView(chosen, what, context)

    def grpc(self, method: str | None = None, *, service: str | None = None) -> JournalView:
        """gRPC calls, e.g. ``tb.journal.grpc("shop.v1.Catalog/GetItem")``."""
        return self._view(
            "grpc", f"gRPC calls of {method or 'any method'}", method=method, service=service
        )

    def http(
        self, method: str | None = None, path: str | None = None, *, service: str | None = None
    ) -> JournalView:
        """HTTP requests, e.g. ``tb.journal.http(method="POST", path="/orders")``."""
        what = f"HTTP requests {method or '*'} {path or '*'}"
        return self._view("http", what, method=method, path=path, service=service)

    def kafka(
        self, topic: str | None = None, *, operation: str | None = None, service: str | None = None
    ) -> JournalView:
        """Kafka operations, e.g. ``tb.journal.kafka(topic="orders")``."""
        what = f"Kafka {operation or 'operations'} on {topic or 'any topic'}"
        return self._view("kafka", what, topic=topic, operation=operation, service=service)

    def hostile(self, service: str | None = None) -> JournalView:
        """Hostile answers (testbed/hostile.py), e.g. ``tb.journal.hostile("kafka")``."""
        return self._view("hostile", "hostile answers", service=service)

    def to_json(self, entries: list[Entry] | None = None) -> dict[str, Any]:
        chosen = self.entries() if entries is None else entries
        return {
            "entries": [e.to_json() for e in chosen],
            "total": len(chosen),
            "dropped": self.dropped,
            "limit": self.limit,
        }


def _method_matches(entry: Entry, method: str) -> bool:
    got = getattr(entry, "method", None)
    if got is None:
        return False
    if isinstance(entry, HttpRequest):
        return bool(got.upper() == method.upper())
    return bool(got == method or got.endswith("." + method) or got.endswith("/" + method))
