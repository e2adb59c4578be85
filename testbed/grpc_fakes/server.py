"""One user's gRPC service faked on grpcio's aio server, answering from stubs.

There is no generated code: each method gets a generic handler whose
(de)serialisers are the message classes built from the schema, and whose body
asks the stub engine (`testbed.grpc_stubs.StubStore`, on JSON dicts) what to
answer. The four call kinds map onto the engine's four entry points; this
module only moves bytes and timing: initial metadata, each message after its
delay, a failure after N messages, trailers, the status and the rich error
details in ``grpc-status-details-bin``.

Every call, matched or not, is recorded as a `GrpcCall` through `record`, which
is the child's own journal or, in-process, the testbed's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..journal import GrpcCall, HostileAnswer
from . import wire
from .frames import FrameRelay
from .hostile import GrpcHostile, Plan
from .schema import Method, Schema

if TYPE_CHECKING:
    from testbed.grpc_stubs import Reply, StubStore

MAX_MESSAGE = 16 * 1024 * 1024
SERVING = health_pb2.HealthCheckResponse.SERVING

Recorder = Callable[[GrpcCall], Any]


def add_service_files(schema: Schema) -> None:
    """Put google.rpc's error details (to parse rich errors, and to check stubs'
    details) and the health service (for reflection to describe) in the fake's pool."""
    schema.add_file_of(error_details_pb2.DESCRIPTOR)
    schema.add_file_of(status_pb2.DESCRIPTOR)
    schema.add_file_of(health_pb2.DESCRIPTOR)


class _Call:
    """What one call did, for its journal entry."""

    def __init__(self, method: Method, metadata: dict[str, str]) -> None:
        self.method = method
        self.metadata = metadata
        self.requests: list[dict[str, Any]] = []
        self.responses = 0
        #: what grpcio sends when a handler raises; set as the call ends otherwise
        self.status = "UNKNOWN"
        self.stub: str | None = None
        self.matched = True
        self.near_misses: list[str] = []
        self.headers_sent = False
        #: recorded in the journal already (before an abort sends the status)
        self.journaled = False
        #: a hostile answer's plan (testbed/grpc_fakes/hostile.py), None for a normal one
        self.hostile: Plan | None = None
        self.peer = ""
        #: the first response message as sent, for the hostile journal entry
        self.first_out = b""

    def took(self, reply: Reply) -> None:
        if reply.stub_id is not None and self.stub is None:
            self.stub = reply.stub_id
        if not reply.matched:
            if self.matched:
                self.near_misses = list(reply.near_misses)
            self.matched = False


class UserService:
    """``svc = UserService(name, schema, store, record)``; ``await svc.start(host)``."""

    def __init__(
        self,
        name: str,
        schema: Schema,
        store: StubStore,
        record: Recorder,
        hostile: GrpcHostile | None = None,
    ) -> None:
        self.name = name
        self.schema = schema
        self.store = store
        self.record = record
        self.hostile = hostile
        self._server: aio.Server | None = None
        self._relay: FrameRelay | None = None
        self._health = health.aio.HealthServicer()
        self.address = ""
        add_service_files(schema)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        server = aio.server(
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
            ]
        )
        by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        for method in self.schema.methods.values():
            by_service.setdefault(method.service, {})[method.name] = self._handler(method)
        server.add_generic_rpc_handlers(
            tuple(grpc.method_handlers_generic_handler(s, h) for s, h in by_service.items())
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (*self.schema.services, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server, pool=self.schema.pool)
        # A hostile fake answers through its frame relay (frames.py), grpcio behind it
        # on a loopback port of its own.
        bind = f"{host}:{port}" if self.hostile is None else "127.0.0.1:0"
        try:
            bound = server.add_insecure_port(bind)
        except RuntimeError as exc:  # grpcio's only signal for a failed bind
            raise OSError(f"gRPC fake {self.name!r} could not bind {bind}: {exc}") from None
        await server.start()
        for service in ("", *self.schema.services):
            await self._health.set(service, SERVING)
        self._server = server
        if self.hostile is not None:
            self._relay = FrameRelay(("127.0.0.1", bound))
            bound = await self._relay.start(host, port)
        shown = f"[{host}]" if ":" in host else host
        self.address = f"{shown}:{bound}"

    async def stop(self, grace: float | None = None) -> None:
        relay, self._relay = self._relay, None
        if relay is not None:
            await relay.stop()
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)

    # -- handlers ------------------------------------------------------------------------

    def _handler(self, method: Method) -> grpc.RpcMethodHandler:
        de, ser = method.input.FromString, method.output.SerializeToString
        if method.kind == "unary":
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method), request_deserializer=de, response_serializer=ser
            )
        if method.kind == "server_stream":
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_server_stream(method), request_deserializer=de, response_serializer=ser
            )
        if method.kind == "client_stream":
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_client_stream(method), request_deserializer=de, response_serializer=ser
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_bidi(method), request_deserializer=de, response_serializer=ser
        )

    def _begin(self, method: Method, context: aio.ServicerContext) -> _Call:
        call = _Call(method, wire.metadata_dict(context.invocation_metadata()))
        if self.hostile is not None:
            call.hostile = self.hostile.plan(method.path)
            if call.hostile is not None:
                call.peer = context.peer()
        return call

    def _journal(self, call: _Call) -> None:
        """Record the call once. An abort sends the status at once, so the paths
        that abort record first: a client that has seen the status must find
        its call in the journal."""
        if call.journaled:
            return
        call.journaled = True
        plan = call.hostile
        if plan is not None and self.hostile is not None:
            answer_hex, answer_len, truncated = HostileAnswer.hex_of(call.first_out)
            self.record(
                HostileAnswer(
                    service=self.name,
                    target="grpc",
                    operation=call.method.path,
                    peer=call.peer,
                    seed=self.hostile.seed,
                    index=plan.index,
                    edits=tuple(plan.edits),
                    metadata=wire.redacted(call.metadata),
                    answer_hex=answer_hex,
                    answer_len=answer_len,
                    truncated=truncated,
                )
            )
        self.record(
            GrpcCall(
                service=self.name,
                method=call.method.path,
                messages=tuple(call.requests),
                metadata=wire.redacted(call.metadata),
                status=call.status,
                responses=call.responses,
                stub=call.stub,
                matched=call.matched,
                near_misses=tuple(call.near_misses),
            )
        )

    def _wrap_unary(self, method: Method) -> Callable[..., Any]:
        async def handle(request: Message, context: aio.ServicerContext) -> Message | None:
            call = self._begin(method, context)
            call.requests.append(wire.to_dict(request))
            try:
                reply = self.store.unary(method.path, call.requests[0], call.metadata)
                return await self._single(call, reply, context)
            except asyncio.CancelledError:  # the client cancelled, or its deadline passed
                call.status = "CANCELLED"
                raise
            finally:
                self._journal(call)

        return handle

    def _wrap_server_stream(self, method: Method) -> Callable[..., Any]:
        async def handle(request: Message, context: aio.ServicerContext) -> None:
            call = self._begin(method, context)
            call.requests.append(wire.to_dict(request))
            try:
                reply = self.store.server_stream(method.path, call.requests[0], call.metadata)
                await self._answer(call, reply, context)
            except asyncio.CancelledError:  # the client cancelled, or its deadline passed
                call.status = "CANCELLED"
                raise
            finally:
                self._journal(call)

        return handle

    def _wrap_client_stream(self, method: Method) -> Callable[..., Any]:
        async def handle(
            requests: AsyncIterator[Message], context: aio.ServicerContext
        ) -> Message | None:
            call = self._begin(method, context)
            try:
                async for request in requests:
                    call.requests.append(wire.to_dict(request))
                reply = self.store.client_stream(method.path, list(call.requests), call.metadata)
                return await self._single(call, reply, context)
            except asyncio.CancelledError:  # the client cancelled, or its deadline passed
                call.status = "CANCELLED"
                raise
            finally:
                self._journal(call)

        return handle

    def _wrap_bidi(self, method: Method) -> Callable[..., Any]:
        async def handle(requests: AsyncIterator[Message], context: aio.ServicerContext) -> None:
            call = self._begin(method, context)
            try:
                script = self.store.bidi(method.path, call.metadata)
                async for request in requests:
                    message = wire.to_dict(request)
                    call.requests.append(message)
                    reply = script.reply_to(message)
                    if not await self._send(call, reply, context, final=False):
                        return
                await self._answer(call, script.finish(), context)
            except asyncio.CancelledError:  # the client cancelled, or its deadline passed
                call.status = "CANCELLED"
                raise
            finally:
                self._journal(call)

        return handle

    # -- answering ----------------------------------------------------------------------

    async def _answer(self, call: _Call, reply: Reply, context: aio.ServicerContext) -> None:
        await self._send(call, reply, context, final=True)

    async def _single(
        self, call: _Call, reply: Reply, context: aio.ServicerContext
    ) -> Message | None:
        """A unary answer (unary and client-streaming calls): the reply's first
        message, or its failure; an OK reply without one sends an empty message."""
        call.took(reply)
        await self._hostile_status(call, context)
        await self._headers(call, reply, context)
        if reply.status != "OK" or reply.fail_after is not None:
            await self._fail(call, reply, context)
            return None
        delay, message = reply.messages[0] if reply.messages else (0.0, {})
        out = await self._message(call, message, context)
        if delay > 0:
            await asyncio.sleep(delay)
        context.set_trailing_metadata(self._tagged(call, wire.wire_metadata(reply.trailers)))
        call.responses, call.status = 1, "OK"
        return out

    async def _send(
        self, call: _Call, reply: Reply, context: aio.ServicerContext, final: bool
    ) -> bool:
        """Write a reply's messages; end the call when it fails (or is the last).
        False when the call has ended."""
        call.took(reply)
        await self._hostile_status(call, context)
        await self._headers(call, reply, context)
        limit = reply.fail_after
        for i, (delay, message) in enumerate(reply.messages):
            if limit is not None and i >= limit:
                break
            out = await self._message(call, message, context)
            if delay > 0:
                await asyncio.sleep(delay)
            await context.write(out)
            call.responses += 1
        if reply.status != "OK" or limit is not None:
            await self._fail(call, reply, context)
            return False
        if final:
            context.set_trailing_metadata(self._tagged(call, wire.wire_metadata(reply.trailers)))
            call.status = "OK"
        return True

    async def _headers(self, call: _Call, reply: Reply, context: aio.ServicerContext) -> None:
        """Initial metadata once per call, after the reply's delay."""
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        if not call.headers_sent:
            call.headers_sent = True
            headers = wire.wire_metadata(reply.headers)
            if call.hostile is not None:
                if call.hostile.kind == "metadata":
                    headers = (*headers, *call.hostile.metadata)
                headers = (*headers, *call.hostile.marker)
            if headers:
                await context.send_initial_metadata(headers)

    async def _hostile_status(self, call: _Call, context: aio.ServicerContext) -> None:
        """A hostile plan that ends the call at once (before any header: Trailers-Only)."""
        plan = call.hostile
        if plan is None or plan.status is None or call.headers_sent:
            return
        call.status = plan.status.name
        self._journal(call)
        await context.abort(plan.status, plan.details, (*plan.metadata, plan.tag))

    @staticmethod
    def _tagged(
        call: _Call, trailers: tuple[tuple[str, str | bytes], ...]
    ) -> tuple[tuple[str, str | bytes], ...]:
        if call.hostile is None:
            return trailers
        return (*trailers, call.hostile.tag, *call.hostile.marker)

    async def _message(self, call: _Call, data: Any, context: aio.ServicerContext) -> Message:
        """The stub's JSON as the output type. Stubs are checked when loaded, so
        this fails only for a templated answer whose filled-in value does not fit."""
        try:
            message = wire.from_dict(data, call.method.output)
            plan = call.hostile
            if plan is not None and (plan.empty or plan.suffix):
                message = call.method.output() if plan.empty else message
                message.MergeFromString(plan.suffix)
            if plan is not None and not call.first_out:
                call.first_out = message.SerializeToString()
            return message
        except json_format.ParseError as exc:
            call.status = "INTERNAL"
            self._journal(call)
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f"stub {call.stub} answers {call.method.path} with a message that is not "
                f"a {call.method.output.DESCRIPTOR.full_name}: {exc}",
            )
            raise  # abort raised already; this line is for the type checker

    async def _fail(self, call: _Call, reply: Reply, context: aio.ServicerContext) -> None:
        """End the call with the reply's status, details, trailers and rich details."""
        name = reply.status if reply.status != "OK" else "UNKNOWN"
        try:
            code = grpc.StatusCode[name]
        except KeyError:
            code = grpc.StatusCode.UNKNOWN
        call.status = code.name
        trailers = list(self._tagged(call, wire.wire_metadata(reply.trailers)))
        if reply.error_details:
            try:
                raw = wire.status_details(
                    self.schema, code.value[0], reply.details, reply.error_details
                )
            except ValueError as exc:
                call.status = "INTERNAL"
                self._journal(call)
                await context.abort(grpc.StatusCode.INTERNAL, f"stub {call.stub}: {exc}")
            trailers.append((wire.STATUS_DETAILS_KEY, raw))
        self._journal(call)
        await context.abort(code, reply.details, tuple(trailers))
