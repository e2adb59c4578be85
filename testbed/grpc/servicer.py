"""The TestService handlers: each call runs its behaviour program.

Every handler follows one shape: count the call in, resolve the plan (request
over the method's program), sleep and send as told, end with the planned
status. A call is counted out when its status is decided, before the status
leaves the server, so a client that has seen the end of its call can read
final counters; an exception handler counts the calls that were cancelled.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import AsyncIterator
from typing import NoReturn

import grpc
from grpc import aio

from .behaviour import Behaviour, BehaviourError, Plan, resolve
from .names import METHODS, method_path
from .protos import testbed_pb2 as pb
from .protos import testbed_pb2_grpc as pb_grpc
from .stats import MethodStats

OK = grpc.StatusCode.OK

# Response payloads are slices of one fixed pseudo-random block: repeatable
# between runs (seeded), incompressible enough to exercise flow control.
_BLOCK = random.Random(0x7E57).randbytes(64 * 1024)


_CACHE_LIMIT = 1024 * 1024  # cache payloads up to this size, at most 16 of them


def payload(size: int) -> bytes:
    """A payload of `size` bytes; small ones are cached, as streams repeat sizes."""
    if size <= _CACHE_LIMIT:
        return _cached_payload(size)
    return _make_payload(size)


def _make_payload(size: int) -> bytes:
    if size <= len(_BLOCK):
        return _BLOCK[:size]
    return (_BLOCK * (size // len(_BLOCK) + 1))[:size]


_cached_payload = functools.lru_cache(maxsize=16)(_make_payload)


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


class _Outcome:
    """How a call ended, filled in by the handler, read by ``finally``."""

    __slots__ = ("code", "received", "sent", "stats")

    def __init__(self, stats: MethodStats) -> None:
        self.stats = stats
        self.code: grpc.StatusCode | None = None
        self.sent = 0
        self.received = 0


class ServiceState:
    """Programs and counters shared by the servicer and the control API."""

    def __init__(self) -> None:
        self.programs: dict[str, Behaviour] = {}
        self.stats: dict[str, MethodStats] = {m: MethodStats() for m in METHODS}

    def reset(self) -> None:
        self.programs.clear()
        for method in METHODS:
            self.stats[method] = MethodStats()


class TestServiceServicer(pb_grpc.TestServiceServicer):
    def __init__(self, state: ServiceState) -> None:
        self._state = state

    # -- helpers ---------------------------------------------------------

    def _begin(self, method: str) -> tuple[MethodStats, _Outcome]:
        stats = self._state.stats[method]
        stats.started += 1
        return stats, _Outcome(stats)

    async def _plan(
        self,
        method: str,
        request: pb.Request | None,
        context: aio.ServicerContext,
        outcome: _Outcome,
    ) -> Plan:
        """The plan for `request` (None: the method's program alone); a behaviour that
        cannot be carried out ends the call with INVALID_ARGUMENT."""
        wanted = None
        try:
            if request is not None and request.HasField("behaviour"):
                wanted = Behaviour.from_proto(request.behaviour)
            return resolve(wanted, self._state.programs.get(method))
        except BehaviourError as exc:
            await self._abort(context, outcome, grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    @staticmethod
    def _received(stats: MethodStats, outcome: _Outcome, request: pb.Request) -> None:
        outcome.received += 1
        stats.messages_in += 1
        stats.bytes_in += request.ByteSize()

    @staticmethod
    def _sent(stats: MethodStats, outcome: _Outcome, response: pb.Response) -> pb.Response:
        outcome.sent += 1
        stats.messages_out += 1
        stats.bytes_out += response.ByteSize()
        return response

    @staticmethod
    def _trailers(outcome: _Outcome) -> tuple[tuple[str, str], ...]:
        return (
            ("x-testbed-sent", str(outcome.sent)),
            ("x-testbed-received", str(outcome.received)),
        )

    async def _abort(
        self,
        context: aio.ServicerContext,
        outcome: _Outcome,
        code: grpc.StatusCode,
        message: str,
    ) -> NoReturn:
        # aio's abort() sends the status before it raises, so count first.
        self._count_end(outcome, code)
        await context.abort(code, message, self._trailers(outcome))
        raise AssertionError("context.abort returned")  # pragma: no cover

    def _finish_ok(self, context: aio.ServicerContext, outcome: _Outcome) -> None:
        context.set_trailing_metadata(self._trailers(outcome))
        self._count_end(outcome, OK)

    @staticmethod
    def _count_end(outcome: _Outcome, code: grpc.StatusCode) -> None:
        if outcome.code is None:
            outcome.code = code
            outcome.stats.finished += 1
            outcome.stats.statuses[code.name] += 1

    def _end(self, outcome: _Outcome, context: aio.ServicerContext, exc: BaseException) -> None:
        """Count a call that ended without a status of ours.

        Cancellation means the client went away or its deadline passed; any
        other exception is a bug here, which grpc reports to the client as UNKNOWN.
        """
        if outcome.code is not None:
            return
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            remaining = context.time_remaining()
            expired = remaining is not None and remaining <= 0
            code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
        else:
            code = grpc.StatusCode.UNKNOWN
        self._count_end(outcome, code)

    @staticmethod
    def _echo(context: aio.ServicerContext) -> dict[str, str]:
        """Text metadata as received; binary (-bin) keys are left out."""
        return {
            key: value
            for key, value in context.invocation_metadata() or ()
            if isinstance(value, str) and not key.endswith("-bin")
        }

    @staticmethod
    def _response(
        method: str,
        seq: int,
        plan: Plan,
        tag: str,
        seen: int,
        request_bytes: int,
        echo: dict[str, str],
    ) -> pb.Response:
        return pb.Response(
            seq=seq,
            payload=payload(plan.size),
            tag=tag,
            requests_seen=seen,
            request_payload_size=request_bytes,
            metadata=echo,
            method=method_path(method),
        )

    # -- the four methods -----------------------------------------------

    async def Unary(self, request: pb.Request, context: aio.ServicerContext) -> pb.Response:
        stats, outcome = self._begin("Unary")
        try:
            self._received(stats, outcome, request)
            plan = await self._plan("Unary", request, context, outcome)
            await _sleep(plan.latency)
            if plan.fail_after == 0:
                await self._abort(context, outcome, plan.failure, plan.failure_message)
            if plan.status is not OK:
                await self._abort(context, outcome, plan.status, plan.message)
            response = self._response(
                "Unary", 1, plan, request.tag, 1, len(request.payload), self._echo(context)
            )
            self._sent(stats, outcome, response)
            self._finish_ok(context, outcome)
            return response
        except BaseException as exc:  # classify how the call ended, then let it go on
            self._end(outcome, context, exc)
            raise

    async def ServerStream(
        self, request: pb.Request, context: aio.ServicerContext
    ) -> AsyncIterator[pb.Response]:
        stats, outcome = self._begin("ServerStream")
        try:
            self._received(stats, outcome, request)
            plan = await self._plan("ServerStream", request, context, outcome)
            echo = self._echo(context)
            await _sleep(plan.latency)
            for i in range(plan.count):
                if i == plan.fail_after:
                    await self._abort(context, outcome, plan.failure, plan.failure_message)
                if i:
                    await _sleep(plan.interval)
                response = self._response(
                    "ServerStream", i + 1, plan, request.tag, 1, len(request.payload), echo
                )
                yield self._sent(stats, outcome, response)
            if plan.count == 0 and plan.fail_after == 0:
                await self._abort(context, outcome, plan.failure, plan.failure_message)
            if plan.status is not OK:
                await self._abort(context, outcome, plan.status, plan.message)
            self._finish_ok(context, outcome)
        except BaseException as exc:  # classify how the call ended, then let it go on
            self._end(outcome, context, exc)
            raise

    async def ClientStream(
        self, request_iterator: AsyncIterator[pb.Request], context: aio.ServicerContext
    ) -> pb.Response:
        stats, outcome = self._begin("ClientStream")
        try:
            plan = await self._plan("ClientStream", None, context, outcome)
            tag = ""
            request_bytes = 0
            async for request in request_iterator:
                self._received(stats, outcome, request)
                if outcome.received == 1 and request.HasField("behaviour"):
                    plan = await self._plan("ClientStream", request, context, outcome)
                tag = request.tag
                request_bytes += len(request.payload)
                if plan.fail_after is not None and outcome.received >= plan.fail_after:
                    await _sleep(plan.latency)
                    await self._abort(context, outcome, plan.failure, plan.failure_message)
            await _sleep(plan.latency)
            if plan.fail_after == 0:
                await self._abort(context, outcome, plan.failure, plan.failure_message)
            if plan.status is not OK:
                await self._abort(context, outcome, plan.status, plan.message)
            response = self._response(
                "ClientStream",
                1,
                plan,
                tag,
                outcome.received,
                request_bytes,
                self._echo(context),
            )
            self._sent(stats, outcome, response)
            self._finish_ok(context, outcome)
            return response
        except BaseException as exc:  # classify how the call ended, then let it go on
            self._end(outcome, context, exc)
            raise

    async def Bidi(
        self, request_iterator: AsyncIterator[pb.Request], context: aio.ServicerContext
    ) -> AsyncIterator[pb.Response]:
        stats, outcome = self._begin("Bidi")
        try:
            call_plan = await self._plan("Bidi", None, context, outcome)
            echo = self._echo(context)
            limit = call_plan.fail_after
            async for request in request_iterator:
                self._received(stats, outcome, request)
                plan = await self._plan("Bidi", request, context, outcome)
                if outcome.received == 1:
                    call_plan = plan
                    limit = plan.fail_after
                await _sleep(plan.latency)
                for i in range(plan.count):
                    if limit is not None and outcome.sent >= limit:
                        await self._abort(
                            context, outcome, call_plan.failure, call_plan.failure_message
                        )
                    if i:
                        await _sleep(plan.interval)
                    response = self._response(
                        "Bidi",
                        outcome.sent + 1,
                        plan,
                        request.tag,
                        outcome.received,
                        len(request.payload),
                        echo,
                    )
                    yield self._sent(stats, outcome, response)
            if limit == 0:  # nothing was due, yet "fail after 0" still fails
                await _sleep(call_plan.latency if outcome.received == 0 else 0.0)
                await self._abort(context, outcome, call_plan.failure, call_plan.failure_message)
            if call_plan.status is not OK:
                await _sleep(call_plan.latency if outcome.received == 0 else 0.0)
                await self._abort(context, outcome, call_plan.status, call_plan.message)
            self._finish_ok(context, outcome)
        except BaseException as exc:  # classify how the call ended, then let it go on
            self._end(outcome, context, exc)
            raise
