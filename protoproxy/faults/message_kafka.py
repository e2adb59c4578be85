"""Kafka message faults: match on api/version/topic/partition/client_id, answer with errors.

An `abort` answers a request on the proxy: a well-formed response of the
request's API and version with the correlation id intact, carrying the
error code on every topic-partition the request named (or at the top level
for APIs without them), built with kafka-python's classes through the codec.
The request never reaches the broker.

Kafka clients (kafka-python among them) insist that responses come back in
request order on a connection, so a made-up response waits behind the
responses still owed for earlier forwarded requests. The same queue lets
`duplicate` forward a second copy of a request under a correlation id no
client uses, and swallow its response.

The same order makes `drop` stall the connection: a broker reads one
request at a time per connection and answers in order, so after a request
(or its response) that is never answered nothing later on that connection
is answered either. The proxy then withholds every later response and
forwards no further request, as a broker stuck on that request would,
until the client's request timeout closes the connection. Responses it
withholds are marked undelivered, so they do not count as acknowledged.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Direction, Message
from protoproxy_codecs.kafka import schema
from protoproxy_codecs.kafka.api_keys import ApiKey

from . import marks
from .actions import CODEC_MATCH_KEYS, Action, error_code
from .handler import Handler, Matcher, always

if TYPE_CHECKING:
    from .engine import ActiveFault
    from .message_filter import MessageFaultFilter

#: correlation ids for duplicates count down from here; clients count up from 0
DUP_CORRELATION_BASE = 0x7FFF_FFFF
#: requests whose responses this filter tracks for ordering, per connection
MAX_TRACKED = 4096


def _abort_code(action: Action) -> int:
    p = action.params
    value = p.get("error", p.get("code", p.get("value", "UNKNOWN_SERVER_ERROR")))
    return error_code(value)


# -- what a request names -----------------------------------------------------------------


def request_topics(api_key: int, version: int, body: Any) -> list[tuple[str, Any, list[int]]]:
    """(topic name, topic id, partitions) named by a request, for matching and errors."""
    out: list[tuple[str, Any, list[int]]] = []
    if body is None:
        return out
    if api_key == ApiKey.PRODUCE:
        for t in body.topic_data or ():
            out.append((t.name, getattr(t, "topic_id", None), [p.index for p in t.partition_data]))
    elif api_key == ApiKey.FETCH:
        for t in body.topics or ():
            name = getattr(t, "topic", None)
            tid = getattr(t, "topic_id", None)
            out.append((name or str(tid or ""), tid, [p.partition for p in t.partitions]))
    elif api_key in (ApiKey.LIST_OFFSETS, ApiKey.OFFSET_COMMIT):
        for t in body.topics or ():
            out.append((t.name, None, [p.partition_index for p in t.partitions]))
    elif api_key == ApiKey.OFFSET_FETCH:
        groups = body.groups if version >= 8 else [body]
        for g in groups or ():
            for t in g.topics or ():
                out.append((t.name, None, list(t.partition_indexes or ())))
    elif api_key == ApiKey.METADATA:
        for t in body.topics or ():
            out.append((t.name or "", getattr(t, "topic_id", None), []))
    return out


def error_response(api_key: int, version: int, body: Any, code: int) -> dict[str, Any]:
    """The fields of a response to `body` that fails with `code` wherever it can.

    Fields not given take kafka-python's defaults, which are the broker's
    "nothing here" values (empty arrays, -1 ids).
    """
    cls = schema.response_class(api_key, version)
    fields = cls[None]._struct.fields if cls is not None else {}

    def has(name: str) -> bool:
        f = fields.get(name)
        return f is not None and f.for_version_q(version)

    topics = request_topics(api_key, version, body)
    out: dict[str, Any] = {}
    if api_key == ApiKey.PRODUCE:
        out["responses"] = [
            {
                "name": name,
                "partition_responses": [
                    {"index": p, "error_code": code, "base_offset": -1, "log_start_offset": -1}
                    for p in parts
                ],
            }
            for name, _tid, parts in topics
        ]
    elif api_key == ApiKey.FETCH:
        tkey = "topic_id" if version >= 13 else "topic"
        out["responses"] = [
            {
                tkey: (tid if version >= 13 else name),
                "partitions": [
                    {
                        "partition_index": p,
                        "error_code": code,
                        "high_watermark": -1,
                        "last_stable_offset": -1,
                        "log_start_offset": -1,
                    }
                    for p in parts
                ],
            }
            for name, tid, parts in topics
        ]
    elif api_key in (ApiKey.LIST_OFFSETS, ApiKey.OFFSET_COMMIT):
        extra = {"offset": -1, "timestamp": -1} if api_key == ApiKey.LIST_OFFSETS else {}
        out["topics"] = [
            {
                "name": name,
                "partitions": [{"partition_index": p, "error_code": code, **extra} for p in parts],
            }
            for name, _tid, parts in topics
        ]
    elif api_key == ApiKey.OFFSET_FETCH:
        parts_of = [
            {
                "name": name,
                "partitions": [
                    {"partition_index": p, "error_code": code, "committed_offset": -1}
                    for p in parts
                ],
            }
            for name, _tid, parts in topics
        ]
        if version >= 8:
            out["groups"] = [
                {"group_id": g.group_id, "error_code": code, "topics": parts_of}
                for g in body.groups or ()
            ]
        else:
            out["topics"] = parts_of
            out["error_code"] = code
    elif api_key == ApiKey.METADATA:
        out["topics"] = [
            {"name": name, "error_code": code, **({"topic_id": tid} if tid else {})}
            for name, tid, _parts in topics
        ]
    elif api_key == ApiKey.FIND_COORDINATOR and version >= 4:
        out["coordinators"] = [
            {"key": key, "error_code": code, "node_id": -1, "host": "", "port": -1}
            for key in body.coordinator_keys or ()
        ]
    elif api_key == ApiKey.FIND_COORDINATOR:
        out.update(error_code=code, node_id=-1, host="", port=-1)
    if has("error_code") and "error_code" not in out and (not topics or api_key != ApiKey.FETCH):
        out["error_code"] = code
    return out


# -- matching ------------------------------------------------------------------------------


def _as_set(value: Any) -> set[Any]:
    return set(value) if isinstance(value, list | tuple | set) else {value}


def compile_match(match: dict[str, Any]) -> Matcher:
    apis = (
        {(v if isinstance(v, int) else schema.api_key_of(str(v))) for v in _as_set(match["api"])}
        if "api" in match
        else None
    )
    versions = _as_set(match["version"]) if "version" in match else None
    topics = _as_set(match["topic"]) if "topic" in match else None
    partitions = {int(p) for p in _as_set(match["partition"])} if "partition" in match else None
    client_ids = _as_set(match["client_id"]) if "client_id" in match else None
    if not (apis or versions or topics or partitions or client_ids):
        return always

    def matches(msg: Message) -> bool:
        info = msg.info
        if info is None or "api_key" not in info:
            return False
        api_key = info["api_key"]
        if apis is not None and api_key not in apis:
            return False
        if versions is not None and info["api_version"] not in versions:
            return False
        if client_ids is not None and info.get("client_id") not in client_ids:
            return False
        if topics is None and partitions is None:
            return True
        if msg.kind != "request":
            return False  # responses are matched through their request
        if partitions is None and "topics" in info:
            return not topics.isdisjoint(info["topics"])  # type: ignore[union-attr]
        for name, _tid, parts in request_topics(api_key, info["api_version"], msg.view):
            if topics is not None and name not in topics:
                continue
            if partitions is None or not partitions.isdisjoint(parts):
                return True
        return False

    return matches


# -- the handler -----------------------------------------------------------------------------


class _Owed:
    """A forwarded request whose response is still to come, and what waits behind it."""

    __slots__ = ("after", "corr", "request", "swallow", "withheld")

    def __init__(self, corr: int, swallow: bool = False, request: Any = None) -> None:
        self.corr = corr
        self.swallow = swallow
        #: the request's info (api, version, client id, topics), to match its response by
        self.request: dict[str, Any] | None = request
        #: asked after a dropped request or response: its answer is withheld
        self.withheld = False
        self.after: list[Message] = []


class KafkaHandler(Handler):
    protocol = "kafka"
    keys = CODEC_MATCH_KEYS["kafka"]

    def __init__(self, filt: MessageFaultFilter) -> None:
        super().__init__(filt)
        self.owed: deque[_Owed] = deque()
        self.by_corr: dict[int, _Owed] = {}
        self.next_dup = DUP_CORRELATION_BASE

    def compile(self, fault: ActiveFault, action: Action) -> Matcher | None:
        if super().compile(fault, action) is None:
            return None
        matcher = compile_match(fault.spec.match)
        if matcher is always:
            return matcher
        by_corr = self.by_corr

        def match(msg: Message) -> bool:
            if msg.kind != "response":
                return matcher(msg)
            # A response names nothing itself: it matches through its request.
            entry = by_corr.get(msg.key) if msg.key is not None else None
            if entry is None or entry.request is None:
                return False
            return matcher(Message(UPSTREAM, "request", b"", msg.key, entry.request))

        return match

    # -- order book-keeping ------------------------------------------------------------------
    def _owe(self, corr: int, swallow: bool = False, request: Any = None) -> None:
        if len(self.owed) >= MAX_TRACKED:
            return  # past the bound, stop ordering rather than grow
        entry = _Owed(corr, swallow, request)
        self.owed.append(entry)
        self.by_corr[corr] = entry

    def forward(self, direction: Direction, msg: Message, out: list[Message]) -> None:
        info = msg.info
        if direction is UPSTREAM:
            out.append(msg)
            if info is not None and info.get("expects_response") and msg.key is not None:
                self._owe(msg.key, request=info)
            return
        self._settle(msg, out, deliver=True)

    def _settle(self, msg: Message, out: list[Message], deliver: bool) -> None:
        """A response passed: deliver it (unless swallowed) and what waited behind it."""
        entry = self.by_corr.get(msg.key) if msg.key is not None else None
        if entry is None:
            if deliver:
                out.append(msg)
            return
        # Responses come in request order; entries before this one were never
        # answered (dropped): what waited behind them goes first.
        while self.owed:
            head = self.owed.popleft()
            del self.by_corr[head.corr]
            if head is entry:
                break
            self._release(head.after, out)
        if deliver and not entry.swallow:
            out.append(msg)
        if not entry.withheld:
            self._release(entry.after, out)

    def _release(self, replies: list[Message], out: list[Message]) -> None:
        """Made-up responses that waited their turn go out now."""
        if replies:
            out.extend(replies)
            self.filt.injected(DOWNSTREAM, replies)

    def _answer(self, reply: Message) -> None:
        """Send a made-up response in order: now, or behind the last owed response."""
        if self.owed:
            self.owed[-1].after.append(reply)
        else:
            self.filt.injected(DOWNSTREAM, [reply])
            self.conn.send(DOWNSTREAM, [reply])

    def drop(self, direction: Direction, msg: Message, out: list[Message], name: str) -> None:
        if direction is UPSTREAM:
            self._lost_request(msg, name)
        else:
            entry = self.by_corr.get(msg.key) if msg.key is not None else None
            if entry is not None:
                entry.withheld = True
            self._settle(msg, out, deliver=False)  # what came before still goes
            marks.undelivered(self.conn, msg.key, name)
            # What is still owed was asked after the dropped response's request.
            for entry in self.owed:
                entry.withheld = True
                entry.after.clear()
        # Nothing asked from now on will be answered either.
        self.stalled = name

    def _lost_request(self, msg: Message, name: str) -> None:
        info = msg.info
        if info is not None and info.get("expects_response") is False:
            marks.undelivered(self.conn, msg.key, name)  # acks=0: its exchange is now

    def stalled_message(self, direction: Direction, msg: Message, out: list[Message]) -> None:
        name = self.stalled
        assert name is not None
        if direction is UPSTREAM:
            self._lost_request(msg, name)
            return
        entry = self.by_corr.get(msg.key) if msg.key is not None else None
        if entry is None or not entry.withheld:
            self._settle(msg, out, deliver=True)  # asked before the drop: answered
            return
        self._settle(msg, out, deliver=False)
        if not entry.swallow:  # a duplicate's answer has no exchange to mark
            marks.undelivered(self.conn, msg.key, name)

    def payload_span(self, msg: Message) -> tuple[int, int] | None:
        info = msg.info or {}
        start = 4 + int(info.get("header_size", 4))
        return (start, len(msg.raw)) if start < len(msg.raw) else None

    def act(
        self, fault: ActiveFault, action: Action, direction: Direction, msg: Message, out: list
    ) -> bool:
        info = msg.info
        if direction is not UPSTREAM or msg.kind != "request" or info is None:
            return False
        if action.kind == "abort":
            return self._abort(action, msg, out, fault.name)
        if action.kind == "duplicate":
            self.forward(direction, msg, out)
            corr = self.next_dup
            self.next_dup = corr - 1 if corr > DUP_CORRELATION_BASE // 2 else DUP_CORRELATION_BASE
            raw = msg.raw
            dup = raw[:8] + corr.to_bytes(4, "big", signed=True) + raw[12:]
            out.append(Message(UPSTREAM, "request", dup, None, None))
            if info.get("expects_response"):
                self._owe(corr, swallow=True)
            return True
        return False

    def _abort(self, action: Action, msg: Message, out: list, name: str) -> bool:
        info = msg.info
        assert info is not None
        codec = self.conn.codec
        inject = getattr(codec, "inject_response", None)
        if inject is None or info.get("known") is False or info.get("secret"):
            return False
        info["not_forwarded"] = name  # for the tail, which saw the request on its way in
        if not info.get("expects_response", True):
            return True  # acks=0: the client expects nothing; not forwarding is the abort
        body = error_response(info["api_key"], info["api_version"], msg.view, _abort_code(action))
        reply = inject(msg, body)
        if reply.info is not None:
            reply.info["injected"] = name
        self._answer(reply)
        return True
