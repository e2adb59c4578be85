"""KafkaCodec: size-prefixed frames in, request/response Messages and Exchanges out.

One instance per connection, fed both directions. UPSTREAM frames are
requests, DOWNSTREAM frames responses; a response's header version and body
schema depend on the request it answers, so requests are remembered by
correlation id until answered (bounded by ``limits.max_pending``).

What is read on the hot path, and why:
- every header (a few ``unpack_from`` calls);
- Produce request bodies, by the schema-generated scanner (no objects built):
  acks decides whether a response will come at all, and metrics want records
  per topic-partition; Fetch request bodies likewise (topics, for faults);
- every known response body, by the scanner: the Exchange status is the first
  non-zero error code in wire order, and Fetch responses carry records;
- SaslHandshake and FindCoordinator requests, by kafka-python (small bodies
  whose mechanism / coordinator keys later responses need).
- the consumer-group control APIs (ListOffsets, OffsetCommit, OffsetFetch,
  JoinGroup, SyncGroup, LeaveGroup), both ways: scanned, then decoded by
  kafka-python (small, rare bodies) for the group facts in groups.py.
Everything else decodes lazily, through kafka-python, in ``Message.view``.

Unknown API keys/versions and bodies that do not decode are forwarded as-is
and counted in ``unknown`` / ``undecodable``; only broken framing raises.

SASL: SaslAuthenticate messages and raw SASL tokens carry credentials; they are
marked ``info["secret"] = True`` and their ``view`` is redacted. After a
SaslHandshake v0 succeeds the client sends bare size-prefixed tokens (no Kafka
header), so the codec switches both directions to token mode until the
mechanism's round trips are done or a real Kafka request shows up again
(the state machine is in sasl.py).

Layout: ``_on_request`` and ``_on_response`` only sequence the steps; what
each API reads is one small method, found by api_key in ``_REQUEST_HANDLERS``
/ ``_RESPONSE_HANDLERS`` (bottom of the module), so adding an API's facts
touches one handler and one table row.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from ..base import (
    DOWNSTREAM,
    UPSTREAM,
    BaseCodec,
    Clock,
    DecodeError,
    Direction,
    Exchange,
    Limits,
    Message,
    Sniff,
    now_ns,
)
from . import framing, groups, scanner, schema, summary
from .api_keys import ApiKey
from .framing import BodyError
from .sasl import SaslState
from .scanner import ScanError

_I32 = struct.Struct(">i")
_SNIFF = struct.Struct(">ihhih")

# Plain ints bound from the enum: every frame's api_key is looked up among them.
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
_API_VERSIONS = int(ApiKey.API_VERSIONS)

STATUS_OK = "NONE"
STATUS_UNDECODED = "UNDECODED"  # unknown API/version, or a body that did not decode
# An ApiVersions request newer than the broker speaks, answered (KIP-511) with
# UNSUPPORTED_VERSION and the broker's ranges: the client retries lower. That
# is how clients negotiate (librdkafka does it against pre-2.4 brokers), not a
# failure, so it is neither an error code in metrics nor an error status.
STATUS_VERSION_NEGOTIATION = "VERSION_NEGOTIATION"
UNSUPPORTED_VERSION = 35  # an error code

REDACTED = b"<redacted>"

# Upper bound on the bytes kafka-python may copy while decoding one view.
MAX_TAG_COPY_BYTES = 64 * 1024 * 1024


# Sniffing: how large a first request may plausibly be.
_SNIFF_MAX_SIZE = 100 * 1024 * 1024
_SNIFF_MAX_CLIENT_ID = 4096


class _Pending(NamedTuple):
    api_key: int
    api_version: int
    api: str
    exchange: Exchange  # stamped as the request passes; completed by the response
    client_id: str | None
    known: bool
    attrs: dict[str, Any] | None  # per-API extras from the request (topics, records)


class SecretView(NamedTuple):
    """What ``.view`` gives for a secret message: sizes, never contents."""

    kind: str
    api: str
    size: int
    redacted: bytes = REDACTED


class KafkaCodec(BaseCodec):
    """Sans-IO Kafka codec for one proxied connection, fed both directions."""

    name: ClassVar[str] = "kafka"

    def __init__(self, limits: Limits | None = None, clock: Clock = now_ns) -> None:
        super().__init__(limits, clock)
        self._buf = (bytearray(), bytearray())
        #: by Direction: when the first byte of the frame left in `_buf` was read
        self._partial_at = [0, 0]
        #: when the first byte of the frame being handled was read
        self._first_at = 0
        self._pending: dict[int, _Pending] = {}
        # Counters the runtime exports; plain Counters, no labels per message.
        self.unknown: Counter[tuple[int, int]] = Counter()
        self.undecodable: Counter[tuple[int, int, str]] = Counter()
        self.unmatched_responses = 0
        self.sasl = SaslState()
        self._client_ids: dict[bytes, str | None] = {}
        t = schema.tables()
        self._max_version = t.max_version
        self._names = t.names

    # ------------------------------------------------------------------ sniffing

    @classmethod
    def sniff(cls, head: bytes) -> Sniff:
        """YES when the first bytes look like a Kafka request header.

        Needs 14 bytes: size, api_key, api_version, correlation_id and the
        client_id length, each checked for plausibility.
        """
        if len(head) < 14:
            if len(head) >= 4 and not 10 <= _I32.unpack_from(head, 0)[0] <= _SNIFF_MAX_SIZE:
                return Sniff.NO
            return Sniff.NEED_MORE
        size, api_key, version, corr, cid_len = _SNIFF.unpack_from(head, 0)
        if not 10 <= size <= _SNIFF_MAX_SIZE or corr < 0:
            return Sniff.NO
        if not schema.is_known(api_key, version):
            return Sniff.NO
        if cid_len < -1 or cid_len > _SNIFF_MAX_CLIENT_ID or 10 + max(cid_len, 0) > size:
            return Sniff.NO
        return Sniff.YES

    # ------------------------------------------------------------------ framing

    def feed(self, direction: Direction, data: bytes, at: int = 0) -> list[Message]:
        now = self._begin(direction, at)
        buf = self._buf[direction]
        out: list[Message] = []
        if not buf and type(data) is bytes:
            # Common case: nothing buffered, so frames are sliced straight from
            # `data` (and a read holding exactly one frame is used as is).
            self._first_at = now
            used = self._frames(direction, data, out)
            if used < len(data):
                buf += memoryview(data)[used:]
                self._partial_at[direction] = now
            return out
        # The first frame completed here began in an earlier read.
        if buf:
            self._first_at = self._partial_at[direction]
        else:  # a view, not bytes: whatever stays buffered began now
            self._first_at = self._partial_at[direction] = now
        buf += data
        with memoryview(buf) as view:
            used = self._frames(direction, view, out)
        if used:
            del buf[:used]
            if buf:
                self._partial_at[direction] = now
        return out

    def _frames(self, direction: Direction, src: Any, out: list[Message]) -> int:
        n = len(src)
        pos = 0
        max_size = self.limits.max_message_size
        on_frame = self._on_request if direction == UPSTREAM else self._on_response
        while n - pos >= 4:
            size = _I32.unpack_from(src, pos)[0]
            if size < 0:
                raise DecodeError(f"negative Kafka frame size {size}", "negative_size")
            if size > max_size:
                raise DecodeError(
                    f"Kafka frame of {size} bytes exceeds the limit of {max_size}",
                    "frame_too_large",
                )
            end = pos + 4 + size
            if end > n:
                break
            raw = src if pos == 0 and end == n and type(src) is bytes else bytes(src[pos:end])
            pos = end
            out.append(on_frame(raw))
            self._first_at = self.read_at  # later frames began in this read
        return pos

    def eof(self, direction: Direction) -> list[Message]:
        """The peer half-closed: hand over an incomplete last frame as it is.

        Nothing can complete it any more, but forwarding its bytes keeps the
        proxy transparent (the receiver sees exactly what the sender sent).
        """
        buf = self._buf[direction]
        if not buf:
            return []
        raw = bytes(buf)
        buf.clear()
        return [Message(Direction(direction), "partial", raw, None, {"truncated": True})]

    def buffered(self) -> int:
        buf = self._buf
        return len(buf[0]) + len(buf[1])

    def release(self) -> None:
        for buf in self._buf:
            buf.clear()

    def unfinished(self) -> tuple[str, int] | None:
        if self._buf[UPSTREAM]:
            return "frame", self._partial_at[UPSTREAM]
        return None

    # ------------------------------------------------------------------ requests
    # A request passes through four steps, each one method: SASL token mode may
    # claim the frame; the header becomes `info`; the API's handler (from
    # _REQUEST_HANDLERS, by api_key) reads what that API needs; the Exchange is
    # started and the request remembered until answered (or completed now, for
    # a Produce with acks=0).

    def _client_id(self, raw: bytes, cid_len: int) -> str | None:
        if cid_len < 0:
            return None
        key = raw[14 : 14 + cid_len]
        cid = self._client_ids.get(key)
        if cid is None:
            if len(self._client_ids) >= 64:
                self._client_ids.clear()
            cid = str(key, "utf-8", "replace")
            self._client_ids[key] = cid
        return cid

    def _on_request(self, raw: bytes) -> Message:
        sasl = self.sasl
        if sasl.token_mode:
            if not sasl.is_kafka_request(raw):
                return self._client_token(raw)
            sasl.leave_token_mode()
        api_key, version, corr, cid_len, body_at = framing.parse_request_header(raw, 4, len(raw))
        client_id = self._client_id(raw, cid_len)
        hi = self._max_version.get(api_key)
        known = hi is not None and version <= hi
        api = self._names.get(api_key) or schema.api_name(api_key)
        info: dict[str, Any] = {
            "api_key": api_key,
            "api_version": version,
            "api": api,
            "correlation_id": corr,
            "client_id": client_id,
            "header_size": body_at - 4,
        }
        msg = Message(UPSTREAM, "request", raw, corr, info)
        if known:
            handler = _REQUEST_HANDLERS.get(api_key, _lazy_request)
            expects, attrs = handler(self, msg, info, api_key, version, body_at)
        else:
            self.unknown[(api_key, version)] += 1
            info["known"] = False
            expects, attrs = _ANSWERED
        info["expects_response"] = expects
        ex = self._start_exchange(f"{api} v{version}", len(raw), corr)
        if expects:
            self._await_response(corr, _Pending(api_key, version, api, ex, client_id, known, attrs))
        else:
            self._complete_unanswered(ex, api, version, client_id, attrs)
        return msg

    def _start_exchange(self, operation: str, size: int, corr: int) -> Exchange:
        now = self.read_at
        ex = Exchange(
            protocol="kafka",
            operation=operation,
            started=self._first_at,
            finished=now,
            request_written=now,
            request_bytes=size,
            key=corr,
            fed=self.feeds,
        )
        self.touched.append(ex)
        return ex

    def _complete_unanswered(
        self,
        ex: Exchange,
        api: str,
        version: int,
        client_id: str | None,
        attrs: dict[str, Any] | None,
    ) -> None:
        """A request no response will come for (acks=0) is its own whole exchange."""
        ex_attrs: dict[str, Any] = {"api": api, "version": version, "client_id": client_id}
        if attrs:
            ex_attrs.update(attrs)
        ex.status = STATUS_OK
        ex.attrs = ex_attrs
        self.exchanges.append(ex)

    def _await_response(self, corr: int, pending: _Pending) -> None:
        """Remember a request until its response; a broken or runaway client raises."""
        if corr in self._pending:
            raise DecodeError(
                f"correlation id {corr} reused while a request is outstanding",
                "duplicate_correlation_id",
            )
        if len(self._pending) >= self.limits.max_pending:
            raise DecodeError(
                f"more than {self.limits.max_pending} requests awaiting responses",
                "too_many_pending",
            )
        self._pending[corr] = pending

    # Per-API request handlers: (msg, info, api_key, version, body_at) ->
    # (expects a response, attrs kept with the pending request for its Exchange).

    def _produce_request(
        self, msg: Message, info: dict[str, Any], api_key: int, version: int, body_at: int
    ) -> _RequestFacts:
        raw = msg.raw
        facts = self._scan(msg, api_key, version, True, body_at)
        msg._decode = _LazyBody(self, raw, api_key, version, True, body_at, facts is not None)
        if facts is None:
            # A body that does not fit still says whether a reply will come.
            return _produce_acks(raw, body_at, version) != 0, None
        tally = facts.tally or summary.RecordsTally()
        acks = facts.acks
        info["topics"] = tally.topics
        info["record_count"] = tally.records
        info["record_bytes"] = tally.bytes
        info["acks"] = acks
        if facts.transactional_id is not None:
            info["transactional_id"] = facts.transactional_id
        return acks != 0, {
            "topics": tally.topics,
            "records": tally.by_partition,
            "record_count": tally.records,
            "record_bytes": tally.bytes,
            "acks": acks,
        }

    def _fetch_request(
        self, msg: Message, info: dict[str, Any], api_key: int, version: int, body_at: int
    ) -> _RequestFacts:
        facts = self._scan(msg, api_key, version, True, body_at)
        msg._decode = _LazyBody(self, msg.raw, api_key, version, True, body_at, facts is not None)
        if facts is None:
            return _ANSWERED
        tally = facts.tally or summary.RecordsTally()
        info["topics"] = tally.topics
        return True, {"topics": tally.topics}

    def _find_coordinator_request(
        self, msg: Message, info: dict[str, Any], api_key: int, version: int, body_at: int
    ) -> _RequestFacts:
        # A small body without struct arrays: kafka-python decodes it in bounded time.
        body = self._decode_eagerly(msg, api_key, version, True, body_at)
        if body is None:
            return _ANSWERED
        # v0-3 responses do not repeat the key; routing data needs it.
        keys = body.coordinator_keys if version >= 4 else [body.key]
        info["coordinator_keys"] = keys
        return True, {"coordinator_keys": keys, "key_type": body.key_type}

    def _sasl_handshake_request(
        self, msg: Message, info: dict[str, Any], api_key: int, version: int, body_at: int
    ) -> _RequestFacts:
        body = self._decode_eagerly(msg, api_key, version, True, body_at)
        if body is not None:
            self.sasl.handshake(body.mechanism, info["client_id"])
            info["sasl_mechanism"] = body.mechanism
        return _ANSWERED

    def _sasl_authenticate_request(
        self, msg: Message, info: dict[str, Any], api_key: int, version: int, body_at: int
    ) -> _RequestFacts:
        info["secret"] = True
        if self.sasl.mechanism is not None:
            info["sasl_mechanism"] = self.sasl.mechanism
        msg._view = SecretView("request", info["api"], len(msg.raw))
        return _ANSWERED

    def _group_request(
        self, msg: Message, info: dict[str, Any], api_key: int, version: int, body_at: int
    ) -> _RequestFacts:
        _, body = self._decode_control(msg, api_key, version, True, body_at)
        group_facts = None if body is None else groups.request_facts(api_key, body)
        if group_facts is None:
            return _ANSWERED
        if group_facts.get("group"):
            info["group"] = group_facts["group"]
        return True, {"group_request": group_facts}

    def _lazy_request(
        self, msg: Message, info: dict[str, Any], api_key: int, version: int, body_at: int
    ) -> _RequestFacts:
        msg._decode = _LazyBody(self, msg.raw, api_key, version, True, body_at, False)
        return _ANSWERED

    # ------------------------------------------------------------------ bodies

    def _scan(
        self, msg: Message, api_key: int, version: int, request: bool, body_at: int
    ) -> summary.Facts | None:
        """Validate the body and pull out what metrics need; None if it does not fit."""
        try:
            events = scanner.scan(api_key, version, request, memoryview(msg.raw), body_at)
        except ScanError as exc:
            self.undecodable[(api_key, version, "request" if request else "response")] += 1
            msg.info["decode_error"] = str(exc)  # type: ignore[index]
            return None
        facts = summary.digest(events)  # type: ignore[arg-type]
        if facts.trailing:
            msg.info["trailing_bytes"] = facts.trailing  # type: ignore[index]
        return facts

    def _decode_control(
        self, msg: Message, api_key: int, version: int, request: bool, body_at: int
    ) -> tuple[summary.Facts | None, Any]:
        """The scanner's facts and a group control API's body decoded now (or None,
        leaving a lazy view).

        The scanner validates it first and counts its tagged sections, which
        bounds kafka-python's copying; a body over ``groups.MAX_BODY`` is
        left to the lazy view (its group facts are skipped).
        """
        raw = msg.raw
        facts = self._scan(msg, api_key, version, request, body_at)
        size = len(raw) - body_at
        if (
            facts is None
            or size > groups.MAX_BODY
            or facts.tagged_sections * size > MAX_TAG_COPY_BYTES
        ):
            msg._decode = _LazyBody(
                self, raw, api_key, version, request, body_at, facts is not None
            )
            return facts, None
        return facts, self._decode_eagerly(msg, api_key, version, request, body_at)

    def _decode_eagerly(
        self, msg: Message, api_key: int, version: int, request: bool, body_at: int
    ) -> Any:
        raw = msg.raw
        try:
            body = framing.decode_body(api_key, version, request, raw, body_at, len(raw))
        except BodyError as exc:
            self.undecodable[(api_key, version, "request" if request else "response")] += 1
            msg.info["decode_error"] = str(exc)  # type: ignore[index]
            return None
        msg._view = body
        return body

    # ------------------------------------------------------------------ responses
    # A response is matched to its pending request by correlation id, its body
    # scanned (or, for the group control APIs, decoded) into facts, the status
    # and the attrs every API shares taken from the facts (_status), then the
    # API's own handler from _RESPONSE_HANDLERS adds its part.

    def _on_response(self, raw: bytes) -> Message:
        if self.sasl.awaiting_server_token:
            return self._server_token(raw)
        end = len(raw)
        if end < 8:
            raise DecodeError(f"response header needs 4 bytes, frame has {end - 4}", "bad_header")
        corr = _I32.unpack_from(raw, 4)[0]
        pending = self._pending.pop(corr, None)
        if pending is None:
            self.unmatched_responses += 1
            return Message(
                DOWNSTREAM, "response", raw, corr, {"correlation_id": corr, "matched": False}
            )
        api_key, version, api = pending.api_key, pending.api_version, pending.api
        info: dict[str, Any] = {
            "api_key": api_key,
            "api_version": version,
            "api": api,
            "correlation_id": corr,
        }
        msg = Message(DOWNSTREAM, "response", raw, corr, info)
        attrs: dict[str, Any] = {"api": api, "version": version, "client_id": pending.client_id}
        if pending.attrs:
            attrs.update(pending.attrs)
        status = STATUS_UNDECODED
        if pending.known:
            facts, negotiation = self._read_response(msg, info, api_key, version, attrs)
            if facts is not None:
                status = _status(facts, negotiation, attrs)
                handler = _RESPONSE_HANDLERS.get(api_key)
                if handler is not None:
                    handler(self, msg, info, pending, facts, attrs)
        info["status"] = status
        ex = pending.exchange
        ex.status = status
        ex.response_bytes = end
        ex.attrs = attrs
        self._finish_exchange(ex)
        return msg

    def _read_response(
        self, msg: Message, info: dict[str, Any], api_key: int, version: int, attrs: dict[str, Any]
    ) -> tuple[summary.Facts | None, bool]:
        """The body's facts (None if it does not fit), and whether it is a KIP-511 negotiation.

        A group control API's body is decoded now, its facts paired with the
        request's (``group_request``, taken out of `attrs`); any other is scanned
        and left to a lazy view.
        """
        raw = msg.raw
        _, body_at = framing.parse_response_header(raw, 4, len(raw), api_key, version)
        info["header_size"] = body_at - 4
        group_request = attrs.pop("group_request", None)
        if group_request is not None:
            facts, body = self._decode_control(msg, api_key, version, False, body_at)
            if body is not None:
                attrs.update(groups.response_facts(api_key, group_request, body))
            return facts, False
        negotiation = api_key == _API_VERSIONS and _negotiation(raw, body_at)
        # KIP-511: that answer is in v0, whatever version was asked.
        body_version = 0 if negotiation else version
        facts = self._scan(msg, api_key, body_version, False, body_at)
        msg._decode = _LazyBody(self, raw, api_key, body_version, False, body_at, facts is not None)
        return facts, negotiation

    def _finish_exchange(self, ex: Exchange) -> None:
        """Stamp the response's arrival on `ex` and report it."""
        ex.response_started = self._first_at
        ex.finished = self.read_at
        ex.fed = self.feeds
        self.touched.append(ex)
        self.exchanges.append(ex)

    # Per-API response handlers: (msg, info, pending, facts, attrs) -> None; they
    # run only for a body that was read, after _status.

    def _fetch_response(
        self,
        msg: Message,
        info: dict[str, Any],
        pending: _Pending,
        facts: summary.Facts,
        attrs: dict[str, Any],
    ) -> None:
        tally = facts.tally or summary.RecordsTally()
        attrs["topics"] = tally.topics
        attrs["records"] = tally.by_partition
        attrs["record_count"] = tally.records
        attrs["record_bytes"] = tally.bytes
        if facts.watermarks:
            attrs["watermarks"] = facts.watermarks

    def _produce_response(
        self,
        msg: Message,
        info: dict[str, Any],
        pending: _Pending,
        facts: summary.Facts,
        attrs: dict[str, Any],
    ) -> None:
        if facts.failed:
            attrs["failed"] = facts.failed

    def _find_coordinator_response(
        self,
        msg: Message,
        info: dict[str, Any],
        pending: _Pending,
        facts: summary.Facts,
        attrs: dict[str, Any],
    ) -> None:
        if pending.attrs:
            info["coordinator_keys"] = pending.attrs["coordinator_keys"]

    def _sasl_handshake_response(
        self,
        msg: Message,
        info: dict[str, Any],
        pending: _Pending,
        facts: summary.Facts,
        attrs: dict[str, Any],
    ) -> None:
        info["sasl_mechanism"] = self.sasl.mechanism
        # No error code means error_code == 0: the handshake succeeded.
        if not facts.errors:
            self.sasl.handshake_succeeded(pending.api_version)

    def _sasl_authenticate_response(
        self,
        msg: Message,
        info: dict[str, Any],
        pending: _Pending,
        facts: summary.Facts,
        attrs: dict[str, Any],
    ) -> None:
        info["secret"] = True
        info["sasl_mechanism"] = self.sasl.mechanism
        msg._decode = None
        msg._view = SecretView("response", pending.api, len(msg.raw))

    # ------------------------------------------------------------------ SASL tokens

    def _token_message(self, direction: Direction, raw: bytes) -> Message:
        info: dict[str, Any] = {
            "api": "SaslToken",
            "secret": True,
            "sasl_mechanism": self.sasl.mechanism,
        }
        msg = Message(direction, "sasl_token", raw, None, info)
        msg._view = SecretView("sasl_token", "SaslToken", len(raw))
        return msg

    def _client_token(self, raw: bytes) -> Message:
        msg = self._token_message(UPSTREAM, raw)
        now = self.read_at
        ex = Exchange(
            protocol="kafka",
            operation="SaslToken",
            started=self._first_at,
            finished=now,
            request_written=now,
            status=STATUS_OK,
            attrs={"api": "SaslToken", "sasl_mechanism": self.sasl.mechanism},
            fed=self.feeds,
        )
        self.touched.append(ex)
        if self.sasl.client_token(ex) > self.limits.max_pending:
            raise DecodeError("too many unanswered SASL tokens", "too_many_pending")
        return msg

    def _server_token(self, raw: bytes) -> Message:
        msg = self._token_message(DOWNSTREAM, raw)
        ex = self.sasl.server_token()
        ex.response_bytes = len(raw)
        self._finish_exchange(ex)
        return msg

    # ------------------------------------------------------------------ state

    @property
    def pending(self) -> int:
        """Requests still awaiting a response."""
        return len(self._pending)

    @property
    def in_sasl_token_mode(self) -> bool:
        return self.sasl.token_mode

    @property
    def sasl_mechanism(self) -> str | None:
        return self.sasl.mechanism

    def inject_response(self, request: Message, body: Any) -> Message:
        """A response the proxy makes up itself (fault injection), for `request`.

        Accounted as if it had come from the server, but without passing
        through the DOWNSTREAM buffer, which may hold part of a real response
        at the time. The request stops being pending and its Exchange is
        reported.
        """
        info = request.info or {}
        frame = framing.encode_response(
            info["api_key"], info["api_version"], info["correlation_id"], body
        )
        return self._on_response(frame)


_RequestFacts = tuple[bool, "dict[str, Any] | None"]
#: a response will come, and the request keeps no attrs for it
_ANSWERED: _RequestFacts = (True, None)

_RequestHandler = Callable[[KafkaCodec, Message, "dict[str, Any]", int, int, int], _RequestFacts]
_ResponseHandler = Callable[
    [KafkaCodec, Message, "dict[str, Any]", _Pending, summary.Facts, "dict[str, Any]"], None
]
_lazy_request = KafkaCodec._lazy_request

#: api_key -> what a request of that API reads; every other known API decodes lazily.
_REQUEST_HANDLERS: dict[int, _RequestHandler] = {
    _PRODUCE: KafkaCodec._produce_request,
    _FETCH: KafkaCodec._fetch_request,
    int(ApiKey.FIND_COORDINATOR): KafkaCodec._find_coordinator_request,
    int(ApiKey.SASL_HANDSHAKE): KafkaCodec._sasl_handshake_request,
    int(ApiKey.SASL_AUTHENTICATE): KafkaCodec._sasl_authenticate_request,
    **{int(key): KafkaCodec._group_request for key in groups.APIS},
}
#: api_key -> what a response of that API adds to the status and shared attrs.
_RESPONSE_HANDLERS: dict[int, _ResponseHandler] = {
    _PRODUCE: KafkaCodec._produce_response,
    _FETCH: KafkaCodec._fetch_response,
    int(ApiKey.FIND_COORDINATOR): KafkaCodec._find_coordinator_response,
    int(ApiKey.SASL_HANDSHAKE): KafkaCodec._sasl_handshake_response,
    int(ApiKey.SASL_AUTHENTICATE): KafkaCodec._sasl_authenticate_response,
}


def _status(facts: summary.Facts, negotiation: bool, attrs: dict[str, Any]) -> str:
    """The Exchange status from a response's facts; puts the attrs all APIs share."""
    codes = facts.errors
    if facts.throttle_ms:
        attrs["throttle_ms"] = facts.throttle_ms
    if facts.partition_errors:
        attrs["partition_errors"] = facts.partition_errors
    if negotiation:
        attrs["version_negotiation"] = True
        return STATUS_VERSION_NEGOTIATION
    if codes:
        status = schema.error_name(codes[0])
        attrs["errors"] = summary.error_counts(codes)
        return status
    return STATUS_OK


def _negotiation(raw: bytes, body_at: int) -> bool:
    """An ApiVersions answer that starts with UNSUPPORTED_VERSION (then in v0)."""
    return raw[body_at : body_at + 2] == _UNSUPPORTED


_UNSUPPORTED = UNSUPPORTED_VERSION.to_bytes(2, "big", signed=True)


def _produce_acks(raw: bytes, body_at: int, version: int) -> int | None:
    """acks of a Produce request read directly (it follows transactional_id, v3+)."""
    pos = body_at
    try:
        if version >= 9:  # compact nullable string
            n, pos = framing.read_uvarint(raw, pos, len(raw))
            pos += max(n - 1, 0)
        elif version >= 3:
            n = struct.unpack_from(">h", raw, pos)[0]
            pos += 2 + max(n, 0)
        return struct.unpack_from(">h", raw, pos)[0]
    except (DecodeError, struct.error):
        return None


class _LazyBody:
    """Deferred kafka-python decode for Message.view; counts failures, returns None.

    kafka-python copies the rest of the buffer at every non-empty tagged-field
    section, so before decoding, the linear-time scanner counts those sections
    and a body whose copying would exceed ``MAX_TAG_COPY_BYTES`` is refused
    (counted as undecodable) instead of stalling the event loop.
    """

    __slots__ = ("api_key", "body_at", "codec", "raw", "request", "scanned", "version")

    def __init__(
        self,
        codec: KafkaCodec,
        raw: bytes,
        api_key: int,
        version: int,
        request: bool,
        body_at: int,
        scanned: bool,
    ) -> None:
        self.codec = codec
        self.raw = raw
        self.api_key = api_key
        self.version = version
        self.request = request
        self.body_at = body_at
        self.scanned = scanned  # already validated, and free of tagged sections?

    def __call__(self) -> Any:
        raw = self.raw
        kind = "request" if self.request else "response"
        try:
            events = scanner.scan(
                self.api_key, self.version, self.request, memoryview(raw), self.body_at
            )
            sections = sum(1 for tag, _ in events or () if tag == scanner.TAGS_EVENT)
            if sections * (len(raw) - self.body_at) > MAX_TAG_COPY_BYTES:
                raise BodyError(f"{sections} tagged-field sections: too costly to decode")
            return framing.decode_body(
                self.api_key, self.version, self.request, raw, self.body_at, len(raw)
            )
        except (BodyError, ScanError):
            self.codec.undecodable[(self.api_key, self.version, kind)] += 1
            return None
