"""The gRPC driver of `protoproxy fuzz grpc`: your .proto's methods, called with drawn messages.

The services come from ``--proto`` files compiled in-process (grpcio-tools'
protoc, as recorded listeners do), so no generated code is needed. A case is
one call of one method: its request message(s) drawn by
`protoproxy_codecs.strategies.protobuf_messages`, serialized here and sent by
grpcio as opaque bytes (no serializer), so grpcio frames, compresses and
flow-controls them as a real client would, and the bytes of a replay file are
exactly what was sent. The answer is judged by the oracles of
`protoproxy.fuzz.driver.ORACLES`; the probe after each case is the standard
health service, which a server without it still answers (UNIMPLEMENTED).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import grpc
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from protoproxy.record.schema import Schema, compile_protos
from protoproxy_codecs.strategies import protobuf_messages

from .driver import Case, Observation, Options, OracleFailure, Target
from .grpc_machine import machine, replay_steps
from .grpc_types import MAX_DEPTH, Answer, Method, as_json

__all__ = ["MAX_DEPTH", "Answer", "GrpcDriver", "Method", "as_json"]

#: statuses that say the server broke, not the request (`not_a_server_error`)
SERVER_ERRORS = frozenset(
    {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
)
#: requests per call of a client- or bidi-streaming method
MAX_STREAM_MESSAGES = 3
#: a DEADLINE_EXCEEDED this close to our deadline is ours (`deadline`); earlier, the server's
DEADLINE_SHARE = 0.9
HEALTH_PATH = "/grpc.health.v1.Health/Check"
#: what grpc's C-core says when the transport, not the server, ended a call
_TRANSPORT_GONE = re.compile(
    r"socket closed|connection reset|broken pipe|stream removed|goaway|"
    r"end of tcp stream|connection aborted|keepalive",
    re.IGNORECASE,
)
_CONNECT_FAILED = re.compile(r"failed to connect|connection refused|dns resolution", re.I)
_METADATA_KEY = re.compile(r"[0-9a-z_.\-]+")
_CHANNEL_OPTIONS = [
    ("grpc.enable_retries", 0),  # a retried call would hide the first answer
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def load_schema(options: Options) -> tuple[Schema, list[str]]:
    """The --proto files compiled, and the names (as protoc spells them) of those files."""
    if not options.proto:
        raise ValueError(
            "--proto FILE is required (the services to fuzz; -I DIR for their imports)"
        )
    protos = [Path(p) for p in options.proto]
    for p in protos:
        if not p.is_file():
            raise ValueError(f"--proto {p}: no such file")
    data = compile_protos(protos, [Path(p) for p in options.import_paths])
    fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    wanted = [p.resolve().as_posix() for p in protos]
    named = [f.name for f in fds.file if any(w.endswith("/" + f.name) for w in wanted)]
    return Schema(data, ", ".join(options.proto)), named or [f.name for f in fds.file]


def schema_methods(schema: Schema, files: Iterable[str]) -> list[Method]:
    """Every method of every service the named files declare, in declaration order."""
    out: list[Method] = []
    for name in files:
        for service in schema.pool.FindFileByName(name).services_by_name.values():
            for m in service.methods:
                out.append(
                    Method(
                        f"{service.full_name}/{m.name}",
                        m.input_type,
                        message_factory.GetMessageClass(m.output_type),
                        m.client_streaming,
                        m.server_streaming,
                    )
                )
    return out


class GrpcDriver:
    """The driver contract for gRPC: one call per case, on one channel per target."""

    protocol: ClassVar[str] = "grpc"
    listener_protocol: ClassVar[str] = "grpc"

    def __init__(self, options: Options) -> None:
        self.options = options
        self.schema, files = load_schema(options)
        methods = schema_methods(self.schema, files)
        if options.method is not None:
            label = options.method.strip("/")
            methods = [m for m in methods if m.label == label]
            if not methods:
                raise ValueError(f"--method {options.method}: not in {', '.join(options.proto)}")
        if not methods:
            raise ValueError(f"no service methods in {', '.join(options.proto)}")
        self.methods = methods
        self.by_label = {m.label: m for m in methods}
        self._channels: dict[Target, grpc.Channel] = {}
        self._strategy: SearchStrategy[Case] | None = None

    # -- drawing -------------------------------------------------------------

    def strategy(self) -> SearchStrategy[Case]:
        if self._strategy is None:
            per_method = [self._method_cases(m) for m in self.methods]
            self._strategy = st.one_of(per_method) if len(per_method) > 1 else per_method[0]
        return self._strategy

    def _method_cases(self, m: Method) -> SearchStrategy[Case]:
        one = protobuf_messages(m.request, max_depth=MAX_DEPTH)
        if m.client_streaming:
            messages = st.lists(one, max_size=MAX_STREAM_MESSAGES)
        else:
            messages = one.map(lambda msg: [msg])
        return st.builds(self._case, st.just(m), messages, st.booleans())

    @staticmethod
    def _case(m: Method, messages: list[Any], gzip: bool) -> Case:
        return Case(
            protocol="grpc",
            label=m.label,
            wire=[msg.SerializeToString() for msg in messages],
            decoded=[as_json(msg) for msg in messages],
            extra={"compression": "gzip" if gzip else "identity"},
        )

    # -- sending ---------------------------------------------------------------

    def channel(self, via: Target) -> grpc.Channel:
        ch = self._channels.get(via)
        if ch is None:
            ch = self._channels[via] = grpc.insecure_channel(str(via), options=_CHANNEL_OPTIONS)
        return ch

    def call(self, m: Method, wire: list[bytes], via: Target, gzip: bool) -> Answer:
        """One call of `m` with `wire` as its requests; a status is an answer, not an error."""
        ch = self.channel(via)
        timeout = self.options.deadline_s
        compression = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
        responses: list[bytes] = []
        t0 = time.monotonic_ns()
        call: Any
        try:
            if m.client_streaming:
                if m.server_streaming:
                    call = ch.stream_stream(m.path)(
                        iter(wire), timeout=timeout, compression=compression
                    )
                    responses.extend(call)
                else:
                    resp, call = ch.stream_unary(m.path).with_call(
                        iter(wire), timeout=timeout, compression=compression
                    )
                    responses.append(resp)
            elif m.server_streaming:
                call = ch.unary_stream(m.path)(wire[0], timeout=timeout, compression=compression)
                responses.extend(call)
            else:
                resp, call = ch.unary_unary(m.path).with_call(
                    wire[0], timeout=timeout, compression=compression
                )
                responses.append(resp)
        except grpc.RpcError as err:
            call = err  # grpcio's errors are also the finished call
        took = time.monotonic_ns() - t0
        return Answer(
            responses, call.code(), call.details() or "", call.trailing_metadata() or (), took
        )

    def state_machine(self, via: Target) -> type | None:
        """Sequences of interleaved streams (grpc_machine.py), when there are streaming methods."""
        return machine(self, via)

    def execute(self, case: Case, via: Target) -> Observation:
        if case.extra.get("steps"):  # a stateful sequence (a replay)
            return replay_steps(self, case, via)
        m = self.by_label.get(case.label)
        if m is None:
            raise ValueError(f"{case.label}: not a method of {', '.join(self.options.proto)}")
        answer = self.call(m, case.wire, via, case.extra.get("compression") == "gzip")
        self.judge(m, answer)
        return Observation(case.label, answer.took_ns, len(answer.responses))

    # -- judging ---------------------------------------------------------------

    def judge(self, m: Method, a: Answer) -> None:
        """Raise the first oracle `a` breaks."""
        code = a.code
        said = f"{m.label} -> {code.name}" + (f": {a.details}" if a.details else "")
        if code in SERVER_ERRORS and code.name not in self.options.allow_status:
            raise OracleFailure("not_a_server_error", said)
        ours = a.took_ns >= DEADLINE_SHARE * self.options.deadline_s * 1e9
        if code is grpc.StatusCode.DEADLINE_EXCEEDED and ours:
            raise OracleFailure("deadline", f"{m.label}: no status in {self.options.deadline_s:g}s")
        if code is grpc.StatusCode.UNAVAILABLE:
            if _CONNECT_FAILED.search(a.details):
                raise OracleFailure("alive", said)
            if not a.details or _TRANSPORT_GONE.search(a.details):
                raise OracleFailure("closed_with_reason", said)
        if code is grpc.StatusCode.OK and not m.server_streaming and len(a.responses) != 1:
            raise OracleFailure("correlation", f"{m.label}: {len(a.responses)} responses, want 1")
        bad = _bad_trailer(a.trailers)
        if bad:
            raise OracleFailure("correlation", f"{m.label}: trailer {bad}")
        for i, raw in enumerate(a.responses):
            try:
                m.response.FromString(raw)
            except DecodeError as exc:
                name = m.response.DESCRIPTOR.full_name
                detail = f"{m.label}: response {i + 1} is no {name}: {exc}"
                raise OracleFailure("decodes", detail) from None

    # -- probing ---------------------------------------------------------------

    def probe(self, via: Target) -> None:
        ch = self.channel(via)
        check = ch.unary_unary(
            HEALTH_PATH,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            resp = check(health_pb2.HealthCheckRequest(), timeout=self.options.deadline_s)
        except grpc.RpcError as err:
            code = err.code()
            if code is grpc.StatusCode.UNIMPLEMENTED:
                self._ready(ch, via)  # no health service: it answered, so it is up
                return
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                detail = f"{HEALTH_PATH} -> {code.name}: {err.details()}"
                raise OracleFailure("alive", detail) from None
            return  # another status: the server answered
        if resp.status != health_pb2.HealthCheckResponse.SERVING:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            raise OracleFailure("health", f"{HEALTH_PATH} -> {name}")

    def _ready(self, ch: grpc.Channel, via: Target) -> None:
        try:
            grpc.channel_ready_future(ch).result(timeout=self.options.deadline_s)
        except grpc.FutureTimeoutError:
            raise OracleFailure("alive", f"no gRPC channel to {via}") from None

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()


def _bad_trailer(trailers: Iterable[tuple[str, str | bytes]]) -> str | None:
    """A trailer no valid gRPC server sends: an invalid key, a text value not printable ASCII."""
    for key, value in trailers:
        if not _METADATA_KEY.fullmatch(key):
            return f"{key!r}: invalid key"
        if not key.endswith("-bin") and (
            not isinstance(value, str) or not all(" " <= c <= "~" for c in value)
        ):
            return f"{key}: {value!r} is not printable ASCII"
    return None
