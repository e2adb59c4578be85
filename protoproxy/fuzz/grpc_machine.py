"""Stateful gRPC runs: several streams open at once on one channel, driven step by step.

`protoproxy fuzz grpc` spends part of its budget on a hypothesis
`RuleBasedStateMachine` over the streaming methods of the ``--proto`` files
(client, server and bidi streaming). Its steps are what a client does with
streams it holds open together on one HTTP/2 connection:

- ``open``: start a call of a streaming method (a server-streaming call sends
  its one request now), with or without gzip; at most MAX_OPEN at once;
- ``send``: one more drawn request message on an open client- or bidi-streaming
  call (at most MAX_SENDS per call);
- ``close``: half-close the call (no more requests), read every response to
  its status, and judge it like a single case (``not_a_server_error``,
  ``decodes``, ``correlation`` (trailers), ``closed_with_reason``, ``alive``),
  and ``deadline`` from the half-close: a status owed later than --deadline;
- ``cancel``: cancel the call, which must then end (CANCELLED, or the status
  the server sent first) within the deadline.

So a server that mishandles interleaved streams, a cancelled stream's state,
or a half-close while another call is mid-stream, is caught where the
one-call cases never look. A failing sequence is written as its steps
(``extra.steps``) and `--replay` runs them again against the target.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import message_factory
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, precondition, rule
from hypothesis.strategies import SearchStrategy

from protoproxy_codecs.strategies import protobuf_messages

from .driver import Case, Observation, OracleFailure, Target
from .grpc_types import MAX_DEPTH, Answer, Method, as_json

if TYPE_CHECKING:
    from .grpc import GrpcDriver

#: calls open at once (each holds one of the server's handler threads)
MAX_OPEN = 4
#: request messages one call sends through `send` steps
MAX_SENDS = 4
#: a call's own timeout: longer than any sequence runs, so that only the
#: half-close-to-status wait (the deadline) judges lateness
CALL_TIMEOUT_S = 120.0
_END = None


@dataclass
class _Stream:
    """One open call: its request queue (client streaming) and what it got back."""

    method: Method
    requests: queue.Queue[bytes | None] | None
    call: Any = None
    responses: list[bytes] = field(default_factory=list)
    reader: threading.Thread | None = None
    error: grpc.RpcError | None = None
    sent: int = 0

    def request_iter(self) -> Iterator[bytes]:
        assert self.requests is not None
        while (item := self.requests.get()) is not _END:
            yield item

    def read(self) -> None:
        """The reader thread: every response to the end (grpcio raises the status)."""
        try:
            for raw in self.call:
                self.responses.append(raw)
        except grpc.RpcError as err:
            self.error = err


class GrpcStreams:
    """One sequence: the driver's channel, the open calls, and the case it writes."""

    def __init__(self, driver: GrpcDriver, via: Target) -> None:
        self.driver = driver
        self.via = via
        self.streams: dict[int, _Stream] = {}
        self.case = Case("grpc", "streams", [], [], extra={"steps": []})
        self.slowest = 0

    def _step(self, step: list[Any], m: Method, message: bytes | None = None) -> None:
        self.case.extra["steps"].append(step)
        self.case.label = f"streams {m.label}"
        shown: dict[str, Any] = {"step": step[0], "stream": step[1], "method": m.label}
        if message is not None:
            self.case.wire.append(message)
            cls = message_factory.GetMessageClass(m.request)
            shown["message"] = as_json(cls.FromString(message))
        self.case.decoded.append(shown)

    def open(self, sid: int, m: Method, first: bytes | None, gzip: bool) -> None:
        self._step(["open", sid, m.label, None if first is None else first.hex(), gzip], m, first)
        ch = self.driver.channel(self.via)
        compression = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
        kw: dict[str, Any] = {"timeout": CALL_TIMEOUT_S, "compression": compression}
        stream = _Stream(m, queue.Queue() if m.client_streaming else None)
        if m.client_streaming and m.server_streaming:
            stream.call = ch.stream_stream(m.path)(stream.request_iter(), **kw)
        elif m.client_streaming:
            stream.call = ch.stream_unary(m.path).future(stream.request_iter(), **kw)
        else:
            stream.call = ch.unary_stream(m.path)(first or b"", **kw)
        if m.server_streaming:
            stream.reader = threading.Thread(target=stream.read, daemon=True)
            stream.reader.start()
        self.streams[sid] = stream

    def send(self, sid: int, message: bytes) -> None:
        stream = self.streams[sid]
        assert stream.requests is not None
        self._step(["send", sid, message.hex()], stream.method, message)
        stream.requests.put(message)
        stream.sent += 1

    def close(self, sid: int) -> None:
        stream = self.streams.pop(sid)
        self._step(["close", sid], stream.method)
        if stream.requests is not None:
            stream.requests.put(_END)
        self._finish(stream)

    def cancel(self, sid: int) -> None:
        stream = self.streams.pop(sid)
        self._step(["cancel", sid], stream.method)
        stream.call.cancel()
        if stream.requests is not None:
            stream.requests.put(_END)  # grpcio's request thread may be waiting on it
        self._finish(stream)

    def _finish(self, stream: _Stream) -> None:
        """Wait for the status (at most the deadline) and judge the call."""
        m = stream.method
        deadline = self.driver.options.deadline_s
        t0 = time.monotonic_ns()
        call: Any = stream.call
        if stream.reader is not None:
            stream.reader.join(deadline)
            late = stream.reader.is_alive()
            if stream.error is not None:
                call = stream.error
        else:
            try:
                stream.responses.append(call.result(timeout=deadline))
                late = False
            except grpc.FutureTimeoutError:
                late = True
            except grpc.RpcError as err:  # the future's exception is the finished call
                call, late = err, False
            except grpc.FutureCancelledError:
                late = False
        took = time.monotonic_ns() - t0
        self.slowest = max(self.slowest, took)
        if late:
            stream.call.cancel()
            raise OracleFailure("deadline", f"{m.label}: no status in {deadline:g}s")
        if isinstance(call, grpc.Future) and call.cancelled():
            return  # cancelled before grpcio started it: nothing was said
        answer = Answer(
            stream.responses,
            call.code(),
            call.details() or "",
            call.trailing_metadata() or (),
            took,
        )
        self.driver.judge(m, answer)

    def teardown(self) -> None:
        """Cancel what is still open (never raises: the run already has its verdict)."""
        for stream in self.streams.values():
            stream.call.cancel()
            if stream.requests is not None:
                stream.requests.put(_END)
        self.streams.clear()

    def run(self, steps: list[list[Any]]) -> None:
        """A recorded sequence again (`--replay`)."""
        try:
            for name, sid, *args in steps:
                if name == "open":
                    label, first, gzip = args
                    m = self.driver.by_label[label]
                    self.open(sid, m, None if first is None else bytes.fromhex(first), gzip)
                elif name == "send":
                    self.send(sid, bytes.fromhex(args[0]))
                else:
                    getattr(self, name)(sid)
        finally:
            self.teardown()


def machine(driver: GrpcDriver, via: Target) -> type | None:
    """A RuleBasedStateMachine class over the streaming methods; None when there are none."""
    streaming = [m for m in driver.methods if m.client_streaming or m.server_streaming]
    if not streaming:
        return None
    cache: dict[str, SearchStrategy[Any]] = {}

    def messages(m: Method) -> SearchStrategy[Any]:
        if m.label not in cache:
            cache[m.label] = protobuf_messages(m.request, max_depth=MAX_DEPTH)
        return cache[m.label]

    class GrpcStreamSequences(RuleBasedStateMachine):
        streams = Bundle("streams")

        def __init__(self) -> None:
            super().__init__()
            self.model = GrpcStreams(driver, via)
            self.case = self.model.case
            self.next_sid = 0

        @precondition(lambda self: len(self.model.streams) < MAX_OPEN)
        @rule(target=streams, m=st.sampled_from(streaming), gzip=st.booleans(), data=st.data())
        def open(self, m: Method, gzip: bool, data: st.DataObject) -> int:
            first = None
            if not m.client_streaming:
                first = data.draw(messages(m)).SerializeToString()
            sid = self.next_sid
            self.next_sid += 1
            self.model.open(sid, m, first, gzip)
            return sid

        @rule(sid=streams, data=st.data())
        def send(self, sid: int, data: st.DataObject) -> None:
            stream = self.model.streams.get(sid)
            if stream is None or stream.requests is None or stream.sent >= MAX_SENDS:
                return  # closed, not client streaming, or full: a step that does nothing
            self.model.send(sid, data.draw(messages(stream.method)).SerializeToString())

        @rule(sid=consumes(streams))
        def close(self, sid: int) -> None:
            self.model.close(sid)

        @rule(sid=consumes(streams))
        def cancel(self, sid: int) -> None:
            self.model.cancel(sid)

        def teardown(self) -> None:
            self.model.teardown()

    return GrpcStreamSequences


def replay_steps(driver: GrpcDriver, case: Case, via: Target) -> Observation:
    """`execute` for a stateful case: its steps again, on the driver's channel."""
    model = GrpcStreams(driver, via)
    model.run(case.extra["steps"])
    return Observation(case.label, model.slowest, len(model.case.wire))
