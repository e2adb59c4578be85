"""The behaviour program: what the fake service does for one call.

A program comes from two places. The server holds one per method
(`FakeGrpcService.program`), which is how fault tests make a method slow or
failing without touching clients; each request may carry its own
`Behaviour` message, whose set fields win. `Plan` is the merged, validated
result with every field concrete, so the service code never re-checks
presence.

Python works in seconds, the wire in milliseconds (``latency_ms``); the
conversion happens here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import grpc

from .protos import testbed_pb2 as pb

# Hard caps on what a request may ask for: a program arrives over the wire, and
# one call must not be able to pin the testbed for minutes or fill memory.
MAX_DELAY = 60.0  # seconds
MAX_COUNT = 100_000
MAX_SIZE = 8 * 1024 * 1024

_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}
_BY_NAME: dict[str, grpc.StatusCode] = {code.name: code for code in grpc.StatusCode}

StatusLike = grpc.StatusCode | int | str


def status_code(value: StatusLike) -> grpc.StatusCode:
    """A grpc.StatusCode from an enum, its number (14) or its name ("UNAVAILABLE")."""
    if isinstance(value, grpc.StatusCode):
        return value
    if isinstance(value, int):
        try:
            return _BY_NUMBER[value]
        except KeyError:
            raise ValueError(f"no gRPC status with number {value}") from None
    try:
        return _BY_NAME[value.upper()]
    except KeyError:
        raise ValueError(f"no gRPC status named {value!r}") from None


class BehaviourError(ValueError):
    """A program asks for more than the caps allow; the call ends INVALID_ARGUMENT."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """A partial program: None means "not set here, ask the next layer"."""

    latency: float | None = None  # seconds before the first response (or the status)
    interval: float | None = None  # seconds between streamed responses
    status: grpc.StatusCode | None = None
    message: str | None = None
    count: int | None = None  # responses per call (ServerStream) or per request (Bidi)
    size: int | None = None  # payload bytes per response
    fail_after: int | None = None  # end with an error status after this many messages

    @classmethod
    def make(
        cls,
        *,
        latency: float | None = None,
        interval: float | None = None,
        status: StatusLike | None = None,
        message: str | None = None,
        count: int | None = None,
        size: int | None = None,
        fail_after: int | None = None,
    ) -> Behaviour:
        """Like the constructor, but accepts a status by number or name."""
        return cls(
            latency=latency,
            interval=interval,
            status=None if status is None else status_code(status),
            message=message,
            count=count,
            size=size,
            fail_after=fail_after,
        )

    def over(self, base: Behaviour) -> Behaviour:
        """This program laid over `base`: fields set here win."""
        changes = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(base, **{k: v for k, v in changes.items() if v is not None})

    def to_proto(self) -> pb.Behaviour:
        out = pb.Behaviour()
        if self.latency is not None:
            out.latency_ms = round(self.latency * 1000)
        if self.interval is not None:
            out.interval_ms = round(self.interval * 1000)
        if self.status is not None:
            out.status_code = self.status.value[0]
        if self.message is not None:
            out.status_message = self.message
        if self.count is not None:
            out.count = self.count
        if self.size is not None:
            out.size = self.size
        if self.fail_after is not None:
            out.fail_after = self.fail_after
        return out

    @classmethod
    def from_proto(cls, msg: pb.Behaviour) -> Behaviour:
        """Only the fields present on the wire are set; a bad status number raises."""
        has = msg.HasField
        try:
            status = status_code(msg.status_code) if has("status_code") else None
        except ValueError as exc:
            raise BehaviourError(str(exc)) from None
        return cls(
            latency=msg.latency_ms / 1000 if has("latency_ms") else None,
            interval=msg.interval_ms / 1000 if has("interval_ms") else None,
            status=status,
            message=msg.status_message if has("status_message") else None,
            count=msg.count if has("count") else None,
            size=msg.size if has("size") else None,
            fail_after=msg.fail_after if has("fail_after") else None,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """A complete, validated program for one call (or one Bidi request)."""

    latency: float = 0.0
    interval: float = 0.0
    status: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    count: int = 1
    size: int = 0
    fail_after: int | None = None

    @property
    def failure(self) -> grpc.StatusCode:
        """The status a fail_after cut ends with: the programmed one unless that is OK."""
        return grpc.StatusCode.UNAVAILABLE if self.status is grpc.StatusCode.OK else self.status

    @property
    def failure_message(self) -> str:
        return self.message or f"testbed: failing after {self.fail_after} message(s)"


DEFAULT_PLAN = Plan()


def resolve(request: Behaviour | None, program: Behaviour | None) -> Plan:
    """Merge request over program over defaults, and enforce the caps."""
    if request is None and program is None:
        return DEFAULT_PLAN  # the common case in load tests: nothing programmed
    merged = Behaviour()
    if program is not None:
        merged = program.over(merged)
    if request is not None:
        merged = request.over(merged)
    plan = Plan(
        latency=merged.latency if merged.latency is not None else 0.0,
        interval=merged.interval if merged.interval is not None else 0.0,
        status=merged.status if merged.status is not None else grpc.StatusCode.OK,
        message=merged.message if merged.message is not None else "",
        count=merged.count if merged.count is not None else 1,
        size=merged.size if merged.size is not None else 0,
        fail_after=merged.fail_after,
    )
    _check(plan)
    return plan


def _check(plan: Plan) -> None:
    if not 0.0 <= plan.latency <= MAX_DELAY or not 0.0 <= plan.interval <= MAX_DELAY:
        raise BehaviourError(f"delays must be within 0..{MAX_DELAY:g}s")
    if not 0 <= plan.count <= MAX_COUNT:
        raise BehaviourError(f"count {plan.count} is outside 0..{MAX_COUNT}")
    if not 0 <= plan.size <= MAX_SIZE:
        raise BehaviourError(f"size {plan.size} is outside 0..{MAX_SIZE}")
    if plan.fail_after is not None and plan.fail_after < 0:
        raise BehaviourError("fail_after must not be negative")
