"""`protoproxy fuzz kafka`: valid Kafka requests at the versions the target advertises.

Before the first draw the driver asks the target (through the proxy) for its
ApiVersions and draws only (api_key, version) pairs it advertises, kafka-python
has a schema for, and ``--api`` names. A case is one to three request frames
from `protoproxy_codecs.strategies.kafka_requests`, written back to back on one
connection (pipelined, as clients do); every answer is read and judged:

- ``decodes``: the response decodes with protoproxy's codec at the request's version;
- ``correlation``: one response per request that expects one, in order, with its
  correlation id, and nothing more (acks=0 Produce expects none);
- ``deadline``: each response within ``--deadline``;
- ``closed_with_reason``: the connection is not closed while an answer is owed;
- ``not_a_server_error``: no error code -1 (UNKNOWN_SERVER_ERROR) anywhere in
  the response, unless ``--allow-status`` names it.

One connection is reused across cases while it stays clean (every owed answer
read, nothing extra buffered); it is dropped after a failure and after a case
ending in acks=0 Produce (a broker may close a connection whose acks=0 Produce
failed: that is its only way to say so). SaslHandshake and SaslAuthenticate
change what the connection carries next, so they are drawn only when ``--api``
names them. Fields that make a broker wait on purpose (Fetch's max_wait_ms,
JoinGroup's rebalance timeout) are capped so a case's answer is owed quickly.
"""

from __future__ import annotations

import struct
import time
import uuid
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from protoproxy_codecs.base import DecodeError
from protoproxy_codecs.kafka import framing, schema, summary
from protoproxy_codecs.kafka.api_keys import ApiKey
from protoproxy_codecs.strategies.kafka import KafkaFrame, kafka_requests

from .driver import Case, Observation, Options, OracleFailure, Target
from .kafka_machine import machine, replay_steps, versions_for
from .kafka_wire import Connection, jsonable

_I32 = struct.Struct(">i")
_API_VERSIONS = int(ApiKey.API_VERSIONS)
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
_JOIN_GROUP = int(ApiKey.JOIN_GROUP)
#: drawn only when --api names them: they switch the connection to SASL tokens
STATEFUL_APIS = frozenset({int(ApiKey.SASL_HANDSHAKE), int(ApiKey.SASL_AUTHENTICATE)})
UNKNOWN_SERVER_ERROR = -1
UNSUPPORTED_VERSION = 35
#: ms a Fetch may wait for data / a JoinGroup for the rest of its group
MAX_WAIT_MS = 100
MAX_REBALANCE_MS = 1000
_RECV = 1 << 16


def api_keys_of(names: tuple[str, ...]) -> frozenset[int]:
    """--api Produce,Metadata (or numbers) as api keys; ValueError names an unknown one."""
    keys = set()
    for name in names:
        if name.lstrip("-").isdigit():
            keys.add(int(name))
            continue
        try:
            keys.add(schema.api_key_of(name))
        except KeyError:
            known = ", ".join(sorted(schema.tables().name_to_key))
            raise ValueError(f"--api {name}: no such Kafka API (known: {known})") from None
    return frozenset(keys)


def drawable(api_key: int, version: int) -> bool:
    """What `kafka_requests(api=api_key, version=version)` can draw: kafka-python's schemas."""
    top = schema.tables().max_version.get(api_key)
    return top is not None and 0 <= version <= top


def label_of(api_key: int, version: int) -> str:
    return f"{schema.api_name(api_key)} v{version}"


def expects_response(frame: KafkaFrame) -> bool:
    return not (frame.api_key == _PRODUCE and frame.value.acks == 0)


def _capped(frame: KafkaFrame) -> KafkaFrame:
    """`frame` with its deliberate waits capped (re-encoded only when one was over)."""
    value = frame.value
    changed = False
    if frame.api_key == _FETCH and value.max_wait_ms > MAX_WAIT_MS:
        value.max_wait_ms = MAX_WAIT_MS
        changed = True
    elif frame.api_key == _JOIN_GROUP:
        if frame.version >= 1 and value.rebalance_timeout_ms > MAX_REBALANCE_MS:
            value.rebalance_timeout_ms = MAX_REBALANCE_MS
            changed = True
        if frame.version == 0 and value.session_timeout_ms > MAX_REBALANCE_MS:
            value.session_timeout_ms = MAX_REBALANCE_MS  # v0's rebalance timeout
            changed = True
    if not changed:
        return frame
    raw = framing.encode_request(
        frame.api_key, frame.version, frame.correlation_id, frame.client_id, value
    )
    return frame._replace(frame=raw)


def request_json(frame: KafkaFrame) -> dict[str, Any]:
    return {
        "api": schema.api_name(frame.api_key),
        "api_key": frame.api_key,
        "version": frame.version,
        "correlation_id": frame.correlation_id,
        "client_id": frame.client_id,
        "body": jsonable(frame.value.to_dict(json=False)),
    }


def _unique_ids(frames: list[KafkaFrame]) -> list[KafkaFrame]:
    """Correlation ids made distinct within a case (a later duplicate counts up from
    its drawn value): a client never has two requests out under one id, and a proxy
    matching answers to requests may refuse it."""
    seen: set[int] = set()
    out = []
    for f in frames:
        corr = f.correlation_id
        while corr in seen:
            corr = corr + 1 if corr < 0x7FFFFFFF else -0x80000000
        seen.add(corr)
        if corr != f.correlation_id:
            raw = f.frame[:8] + _I32.pack(corr) + f.frame[12:]
            f = f._replace(correlation_id=corr, frame=raw)
        out.append(f)
    return out


#: how many request frames a case pipelines, drawn uniformly: two cases in five
#: send 2 or 3 (drawing dominates a case's cost, and each frame costs the same
#: to draw); a failure shrinks toward the first entry, one frame
FRAME_COUNTS = (1, 1, 1, 2, 3)


@st.composite
def _frame_lists(draw: st.DrawFn, frames: SearchStrategy[KafkaFrame]) -> list[KafkaFrame]:
    # One draw of the count, then the frames. st.one_of(single, st.lists(...))
    # looks the same but hypothesis' mutation phase, which copies spans of the
    # cases before, picked the list branch in 7 of 600 cases.
    return [draw(frames) for _ in range(draw(st.sampled_from(FRAME_COUNTS)))]


def kafka_case(frames: list[KafkaFrame]) -> Case:
    """One case: acks=0 Produce frames last (after them the broker may close)."""
    frames = _unique_ids(sorted(frames, key=lambda f: not expects_response(f)))
    return Case(
        protocol="kafka",
        label=label_of(frames[0].api_key, frames[0].version),
        wire=[f.frame for f in frames],
        decoded=[request_json(f) for f in frames],
        extra={
            "expect": [
                [f.api_key, f.version, f.correlation_id, expects_response(f)] for f in frames
            ]
        },
    )


def api_versions_request(correlation_id: int, client_id: str = "protoproxy-fuzz") -> bytes:
    return framing.encode_request(_API_VERSIONS, 0, correlation_id, client_id, {})


class KafkaDriver:
    """The driver contract for Kafka: cases of valid requests, judged answer by answer."""

    protocol: ClassVar[str] = "kafka"
    listener_protocol: ClassVar[str] = "kafka"
    #: keep a clean connection for the next case (False: one connection per case)
    reuse: ClassVar[bool] = True

    def __init__(self, options: Options) -> None:
        self.options = options
        self.wanted = api_keys_of(options.api) if options.api else None
        allowed = {status.upper() for status in options.allow_status}
        self.allow_unknown_server_error = bool(allowed & {"-1", "UNKNOWN_SERVER_ERROR"})
        #: (api_key, version) the target advertises, kafka-python draws and --api wants
        self.pairs: list[tuple[int, int]] | None = None
        self.advertised: dict[int, tuple[int, int]] = {}
        self._conn: Connection | None = None
        self._strategy: SearchStrategy[Case] | None = None
        self._probe_corr = 0
        #: the stateful machine's versions of the APIs it uses (None: some missing)
        self.versions: dict[int, int] | None = None
        #: names the machine's topics and groups: distinct per run, the same while
        #: hypothesis shrinks, so a rerun of a step finds what its run made
        self.run_token = uuid.uuid4().hex[:6]
        #: the decoded answers of the last `_exchange`, in order
        self.answers: list[Any] = []

    # -- what to draw ----------------------------------------------------------------

    def prepare(self, via: Target) -> None:
        """Ask the target which versions it speaks (once); OSError when it will not say."""
        if self.pairs is not None:
            return
        conn = Connection(via, self.options.deadline_s)
        try:
            self.advertised = self._api_versions(conn)
        finally:
            conn.close()
        pairs = []
        for key, (lo, hi) in sorted(self.advertised.items()):
            if self.wanted is not None and key not in self.wanted:
                continue
            if self.wanted is None and key in STATEFUL_APIS:
                continue
            pairs.extend((key, v) for v in range(lo, hi + 1) if drawable(key, v))
        if not pairs:
            names = ", ".join(self.options.api) or "any API"
            raise ConnectionError(f"{via} advertises no version of {names} that can be drawn")
        self.pairs = pairs
        self.versions = versions_for(self.advertised)

    def state_machine(self, via: Target) -> type | None:
        """Request sequences against a model (kafka_machine.py), when the target
        speaks every API they use and --api does not narrow the run."""
        if self.versions is None or self.wanted is not None:
            return None
        return machine(self, via, self.versions)

    def _api_versions(self, conn: Connection) -> dict[int, tuple[int, int]]:
        self._probe_corr += 1
        conn.send(api_versions_request(self._probe_corr))
        try:
            frame = conn.read_frame()
        except TimeoutError:
            raise ConnectionError(f"{conn.via} did not answer ApiVersions") from None
        if frame is None:
            raise ConnectionError(f"{conn.via} closed the connection on ApiVersions")
        try:
            _corr, body = framing.decode_response(_API_VERSIONS, 0, frame)
        except DecodeError as exc:
            raise ConnectionError(f"{conn.via}: ApiVersions answer: {exc}") from None
        if body.error_code:
            raise ConnectionError(
                f"{conn.via}: ApiVersions answered {schema.error_name(body.error_code)}"
            )
        return {k.api_key: (k.min_version, k.max_version) for k in body.api_keys}

    def strategy(self) -> SearchStrategy[Case]:
        if self.pairs is None:
            raise RuntimeError("KafkaDriver.prepare(via) must run before strategy()")
        if self._strategy is None:
            frames = st.one_of(
                [kafka_requests(api=k, version=v).map(_capped) for k, v in self.pairs]
            )
            self._strategy = _frame_lists(frames).map(kafka_case)
        return self._strategy

    # -- sending and judging ---------------------------------------------------------

    def connection(self, via: Target) -> Connection:
        conn = self._conn
        if conn is None or conn.dirty or conn.via != via:
            if conn is not None:
                conn.close()
            conn = self._conn = Connection(via, self.options.deadline_s)
        return conn

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def execute(self, case: Case, via: Target) -> Observation:
        if case.extra.get("steps"):  # a stateful sequence (a replay): its steps, model and all
            self.prepare(via)
            return replay_steps(self, case, via)
        expect = case.extra.get("expect") or [_expectation(chunk) for chunk in case.wire]
        conn = self.connection(via)
        try:
            slowest = self._exchange(conn, case.wire, expect)
        except BaseException:
            self.drop()  # whatever is left on it belongs to no later case
            raise
        if not expect or not expect[-1][3]:
            self.drop()  # after acks=0 Produce the broker may close: never reuse
        elif not self.reuse:
            self.drop()
        return Observation(case.label, slowest, sum(1 for e in expect if e[3]))

    def _exchange(self, conn: Connection, wire: list[bytes], expect: list[list[Any]]) -> int:
        t0 = time.monotonic_ns()
        try:
            for chunk in wire:
                conn.send(chunk)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise OracleFailure("closed_with_reason", f"closed while sending: {exc}") from None
        slowest = 0
        self.answers = []
        deadline_ns = int(self.options.deadline_s * 1e9)
        for api_key, version, corr, wanted in expect:
            if not wanted:
                continue
            what = f"{label_of(api_key, version)} (correlation id {corr})"
            try:
                frame = conn.read_frame()
            except TimeoutError:
                raise OracleFailure(
                    "deadline", f"no answer to {what} within {self.options.deadline_s}s"
                ) from None
            except (ConnectionResetError, BrokenPipeError):
                frame = None
            except DecodeError as exc:
                raise OracleFailure("decodes", f"answer to {what}: {exc}") from None
            took = time.monotonic_ns() - t0
            if frame is None:
                raise OracleFailure("closed_with_reason", f"closed without answering {what}")
            if took > deadline_ns:
                raise OracleFailure(
                    "deadline", f"{what} answered after {took / 1e9:.3f}s"
                )  # a socket timeout bounds each read, not the whole case
            slowest = max(slowest, took)
            self.answers.append(self.judge(api_key, version, corr, frame, what))
        if conn.buf:
            raise OracleFailure(
                "correlation", f"{len(conn.buf)} bytes more than one answer per request"
            )
        return slowest

    def judge(self, api_key: int, version: int, corr: int, frame: bytes, what: str) -> Any:
        """One answer against `decodes`, `correlation` and `not_a_server_error`;
        returns it decoded."""
        if len(frame) < 4:
            raise OracleFailure("decodes", f"answer to {what}: {len(frame)}-byte frame")
        got = _I32.unpack_from(frame, 0)[0]
        if got != corr:
            raise OracleFailure("correlation", f"answer to {what} has correlation id {got}")
        answered = version
        if api_key == _API_VERSIONS and frame[4:6] == UNSUPPORTED_VERSION.to_bytes(2, "big"):
            answered = 0  # KIP-511: an unsupported ApiVersions is answered at v0
        try:
            _corr, body = framing.decode_response(api_key, answered, frame)
        except DecodeError as exc:
            raise OracleFailure("decodes", f"answer to {what}: {exc}") from None
        if body is None:
            raise OracleFailure("decodes", f"no schema to decode the answer to {what}")
        if not self.allow_unknown_server_error:
            codes = summary.error_codes(api_key, answered, body)
            if UNKNOWN_SERVER_ERROR in codes:
                raise OracleFailure(
                    "not_a_server_error", f"{what} answered UNKNOWN_SERVER_ERROR (-1)"
                )
        return body

    def probe(self, via: Target) -> None:
        """ApiVersions v0 on the case's connection (a fresh one if it was dropped)."""
        reused = self._conn is not None and not self._conn.dirty
        conn = self.connection(via)
        self._probe_corr = (self._probe_corr + 1) & 0x7FFFFFFF
        corr = self._probe_corr
        try:
            conn.send(api_versions_request(corr))
            frame = conn.read_frame()
        except (ConnectionResetError, BrokenPipeError):
            frame = None
        except (TimeoutError, DecodeError, OSError) as exc:
            self.drop()
            raise OracleFailure(
                "alive", f"ApiVersions probe: {type(exc).__name__}: {exc}"
            ) from None
        if frame is None:
            self.drop()
            if reused:
                self._probe_fresh(via)
                raise OracleFailure(
                    "closed_with_reason", "the connection closed after the case was answered"
                )
            raise OracleFailure("alive", "ApiVersions probe: closed without an answer")
        try:
            got, body = framing.decode_response(_API_VERSIONS, 0, frame)
        except DecodeError as exc:
            self.drop()
            raise OracleFailure("alive", f"ApiVersions probe answer: {exc}") from None
        if got != corr or body.error_code:
            self.drop()
            raise OracleFailure(
                "alive",
                f"ApiVersions probe: correlation id {got} (sent {corr}), "
                f"{schema.error_name(body.error_code)}",
            )

    def _probe_fresh(self, via: Target) -> None:
        """The target still answers on a new connection, or `alive` fails."""
        try:
            conn = Connection(via, self.options.deadline_s)
        except OSError as exc:
            raise OracleFailure("alive", f"cannot reconnect: {exc}") from None
        try:
            self._api_versions(conn)
        except OSError as exc:
            raise OracleFailure("alive", f"ApiVersions probe: {exc}") from None
        finally:
            conn.close()

    def close(self) -> None:
        self.drop()


def _expectation(chunk: bytes) -> list[Any]:
    """[api_key, version, correlation_id, expects_response] read back from a request frame
    (for a replay file written without `extra`)."""
    header, body = framing.decode_request(memoryview(chunk)[4:])
    wanted = not (header.api_key == _PRODUCE and body is not None and body.acks == 0)
    return [header.api_key, header.api_version, header.correlation_id, wanted]
