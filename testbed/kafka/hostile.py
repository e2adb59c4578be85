"""Hostile Kafka answers: the fake's own response, with edge values drawn into it.

A hostile answer starts from the response the fake would have sent, so that it
stays about the client's request (its topics, its partitions, its group) and
keeps the api key, version and correlation id; then one to three edits are
drawn, walking kafka-python's schema of that (api_key, version):

- ``throttle``: ``throttle_time_ms`` set to 1, 250, 1000 or 5000;
- ``error``: one ``error_code`` (top-level or nested) set to an odd code:
  retriable, fatal, negative, or no code Kafka knows;
- ``array``: one array of structs emptied, or grown to 2..256 items by
  repeating its items (or default ones), within `MAX_ANSWER` bytes;
- ``int``: one integer field set to an edge of its type (min, max, -1, 0, 1);
- ``string``: one string field set to "", a NUL, non-ASCII, a long string, or null;
- ``tags``: unknown tagged fields (tags 100..20000) in the response header
  and at the end of the body, on flexible versions only.

Every answer is checked to decode with protoproxy's codec (an edit that would
not encode is skipped), so the framing stays correct; what the values mean is
the client's problem. The draw comes from ``testbed.hostile.draw_rng(seed,
index)``; the answer goes to the journal as a `HostileAnswer` and its
(peer, correlation id) into `HostileMarks`, which the access log reads.
"""

from __future__ import annotations

import random
import struct
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from protoproxy_codecs.base import DecodeError
from protoproxy_codecs.kafka import framing, schema
from testbed.hostile import INT_EDGES, STRING_EDGES, Counter, chosen, draw_rng, pick
from testbed.journal import HostileAnswer

if TYPE_CHECKING:
    from protoproxy.connection import Connection
    from protoproxy_codecs.base import Exchange

    from .dispatch import Request
    from .journaling import KafkaJournal

#: the largest answer drawn: arrays stop growing here
MAX_ANSWER = 64 * 1024
#: error codes drawn: retriable, fatal, negative and unknown ones
ODD_ERRORS = (-1, 3, 5, 6, 7, 13, 14, 15, 16, 27, 29, 35, 42, 58, 74, 999, 32767, -32768)
THROTTLES = (1, 250, 1000, 5000)
ARRAY_SIZES = (0, 0, 2, 16, 256)
EDIT_KINDS = ("throttle", "error", "array", "int", "string", "tags")
#: scalar values walked into per array (the rest are reached through the array edit)
_WALK_ITEMS = 4


class _Slot(NamedTuple):
    """A place in the response an edit can change."""

    kind: str  # "array", "int", "string", "error"
    owner: Any
    field: Any
    path: str


def _slots(obj: Any, fields: Iterable[Any], version: int, path: str, out: list[_Slot]) -> None:
    for f in fields:
        if not f.for_version_q(version):
            continue
        here = f"{path}.{f.name}" if path else f.name
        value = getattr(obj, f.name, None)
        if f.is_struct_array():
            out.append(_Slot("array", obj, f, here))
            for i, item in enumerate((value or [])[:_WALK_ITEMS]):
                _slots(item, f.array_of.fields.values(), version, f"{here}[{i}]", out)
        elif f.is_struct():
            if value is not None:
                _slots(value, f.fields.values(), version, here, out)
        elif f.is_array():
            continue  # arrays of scalars (ids, offsets) keep their values
        elif f.name.endswith("error_code"):
            out.append(_Slot("error", obj, f, here))
        elif f.type_str in INT_EDGES and f.name != "throttle_time_ms":
            out.append(_Slot("int", obj, f, here))
        elif f.type_str == "string":
            out.append(_Slot("string", obj, f, here))


def _tag_section(rng: random.Random) -> bytes:
    """1..3 tagged fields no schema knows, ascending, as KIP-482 wants."""
    tags = sorted(rng.sample(range(100, 20_000), rng.randint(1, 3)))
    out = _uvarint(len(tags))
    for tag in tags:
        payload = rng.randbytes(rng.randrange(9))
        out += _uvarint(tag) + _uvarint(len(payload)) + payload
    return out


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class Drawn(NamedTuple):
    frame: bytes
    edits: list[str]


def draw_answer(
    rng: random.Random, api_key: int, version: int, correlation_id: int, normal: bytes
) -> Drawn | None:
    """The hostile form of `normal` (a size-prefixed response frame), or None
    when nothing could be changed (no field the edits know)."""
    _, body = framing.decode_response(api_key, version, memoryview(normal)[4:])
    body._header = None  # decoded messages lack it, and kafka-python's encode reads it
    edits: list[str] = []
    kinds = list(EDIT_KINDS)
    flexible = schema.is_flexible(api_key, version)
    if not flexible:
        kinds.remove("tags")
    if not any(f.name == "throttle_time_ms" and f.for_version_q(version) for f in _top(body)):
        kinds.remove("throttle")
    want = rng.randint(1, 3)
    tags = False
    for _ in range(want * 2):  # an edit with no slot is redrawn, a few times
        if len(edits) >= want:
            break
        kind = pick(rng, kinds)
        if kind == "tags":
            if not tags:
                tags = True
                edits.append("unknown tags")
            continue
        done = _edit(rng, kind, body, version)
        if done is not None:
            edits.append(done)
    if not edits:
        return None
    try:
        frame = framing.encode_response(api_key, version, correlation_id, body)
    except (struct.error, ValueError, TypeError, OverflowError, UnicodeError):
        return None  # a value this schema cannot carry: the normal answer stands
    if tags:
        frame = _with_tags(rng, api_key, version, frame, body)
    try:
        framing.decode_response(api_key, version, memoryview(frame)[4:])
    except DecodeError:
        return None
    return Drawn(frame, edits)


def _top(body: Any) -> Iterable[Any]:
    return body._struct.fields.values()


def _edit(rng: random.Random, kind: str, body: Any, version: int) -> str | None:
    if kind == "throttle":
        value = pick(rng, THROTTLES)
        body.throttle_time_ms = value
        return f"throttle_time_ms={value}"
    slots: list[_Slot] = []
    _slots(body, _top(body), version, "", slots)
    slots = [s for s in slots if s.kind == kind]
    if not slots:
        return None
    slot = pick(rng, slots)
    f = slot.field
    if kind == "error":
        value = pick(rng, ODD_ERRORS)
        setattr(slot.owner, f.name, value)
        return f"{slot.path}={value}"
    if kind == "int":
        value = pick(rng, INT_EDGES[f.type_str])
        setattr(slot.owner, f.name, value)
        return f"{slot.path}={value}"
    if kind == "string":
        nullable = f.nullable_for_version_q(version)
        text: str | None = None if nullable and rng.random() < 0.25 else pick(rng, STRING_EDGES)
        setattr(slot.owner, f.name, text)
        return f"{slot.path}={_short(text)}"
    items = list(getattr(slot.owner, f.name, None) or [])
    size = pick(rng, ARRAY_SIZES)
    if items and (size == 0 or rng.random() < 0.25):
        setattr(slot.owner, f.name, [])
        return f"{slot.path}: {len(items)} -> 0 items"
    if not items:
        items = [f.data_class(version=version)]
    size = max(size, 2)
    while True:
        setattr(slot.owner, f.name, [items[i % len(items)] for i in range(size)])
        if size <= 2 or len(body.encode(version=version)) <= MAX_ANSWER:
            return f"{slot.path}: {len(items)} -> {size} items"
        size //= 2


def _short(text: str | None) -> str:
    if text is None:
        return "null"
    shown = text if len(text) <= 12 else f"{text[:8]}...({len(text)} chars)"
    return repr(shown)


def _with_tags(rng: random.Random, api_key: int, version: int, frame: bytes, body: Any) -> bytes:
    """`frame` with unknown tagged fields in its header (response header v1) and in
    the body's top-level tag section, when that is empty (the frame's last byte)."""
    if schema.response_header_version(api_key, version) == 1 and frame[8] == 0:
        frame = frame[:8] + _tag_section(rng) + frame[9:]
    if frame[-1] == 0 and not any(
        f.tagged_field_q(version) and getattr(body, f.name, f.default) != f.default
        for f in _top(body)
        if f.for_version_q(version)
    ):
        frame = frame[:-1] + _tag_section(rng)
    return struct.pack(">i", len(frame) - 4) + frame[4:]


class HostileMarks:
    """Which proxied exchanges got a hostile answer, for the access log.

    The fake knows an answer by its client's address (the proxy's upstream
    socket) and correlation id; an exchange observer of the proxy looks each
    Kafka exchange up by the same pair and puts ``hostile#INDEX`` in its
    ``attrs["fault"]``, where the access log writes faults.
    """

    LIMIT = 4096

    def __init__(self) -> None:
        self._marks: OrderedDict[tuple[str, int], str] = OrderedDict()

    def add(self, peer: str, correlation_id: int, label: str) -> None:
        self._marks[(peer, correlation_id)] = label
        if len(self._marks) > self.LIMIT:
            self._marks.popitem(last=False)

    def observe(self, conn: Connection, exchanges: list[Exchange]) -> None:
        if not self._marks or conn.protocol != "kafka" or conn.server is None:
            return
        peer = conn.extra.get("hostile_peer")
        if peer is None:
            sock = (
                conn.server.transport.get_extra_info("sockname") if conn.server.transport else None
            )
            if not sock:
                return
            peer = conn.extra["hostile_peer"] = f"{sock[0]}:{sock[1]}"
        for ex in exchanges:
            label = self._marks.pop((peer, ex.key), None) if ex.key is not None else None
            if label is not None:
                prior = ex.attrs.get("fault")
                ex.attrs["fault"] = label if prior is None else f"{prior},{label}"


class KafkaHostile:
    """The cluster's hostile policy (`FakeKafkaCluster.hostile`)."""

    def __init__(
        self,
        seed: int,
        rate: float,
        apis: set[int] | None = None,
        journal: KafkaJournal | None = None,
        service: str = "kafka",
    ) -> None:
        self.seed = seed
        self.rate = rate
        self.apis = apis
        self.journal = journal
        self.service = service
        self.marks = HostileMarks()
        self.counter = Counter()
        #: hostile answers sent
        self.answers = 0

    def answer(self, req: Request, normal: bytes) -> bytes:
        """The frame to send for `req`: `normal`, or its hostile form."""
        index = self.counter.take()
        if self.apis is not None and req.api_key not in self.apis:
            return normal
        rng = draw_rng(self.seed, index)
        if not chosen(rng, self.rate):
            return normal
        drawn = draw_answer(rng, req.api_key, req.version, req.correlation_id, normal)
        if drawn is None:
            return normal
        self.answers += 1
        self.marks.add(req.peer, req.correlation_id, f"hostile#{index}")
        if self.journal is not None:
            answer_hex, answer_len, truncated = HostileAnswer.hex_of(drawn.frame)
            self.journal.add(
                HostileAnswer(
                    self.service,
                    target="kafka",
                    operation=f"{schema.api_name(req.api_key)} v{req.version}",
                    correlation_id=req.correlation_id,
                    client_id=req.client_id,
                    peer=req.peer,
                    seed=self.seed,
                    index=index,
                    edits=tuple(drawn.edits),
                    answer_hex=answer_hex,
                    answer_len=answer_len,
                    truncated=truncated,
                )
            )
        return drawn.frame
