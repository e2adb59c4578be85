"""The fault vocabulary: match keys, actions, error names, and what each protocol accepts.

A leaf module (codecs, kafka-python's error table and `units` only, no
runtime), so the config model, the admin API, the Python API and the
per-protocol handlers read one table and cannot disagree on what
``{"abort": "NOT_LEADER_OR_FOLLOWER"}`` means.

An action is checked against the protocol it will meet. ``match.protocol``
says which; without it the match keys may (``topic`` is Kafka's), and
otherwise the action must mean one thing on every protocol it fits: a bare
``abort: UNAVAILABLE`` is a gRPC status anywhere, but ``abort: 14`` is a
Kafka error code or a gRPC status, so it needs ``match.protocol``.
"""

from __future__ import annotations

import random
import re
from typing import Any, Literal

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Direction
from protoproxy_codecs.grpc.status import STATUS_CODES
from protoproxy_codecs.http2.frames import FRAME_KINDS, ErrorCode
from protoproxy_codecs.kafka import schema

from ..units import parse_duration, parse_size

#: Toxiproxy's toxic types (spelled out for pydantic; a test holds it equal to the
#: table's keys) and their attributes with the defaults Toxiproxy reports back.
ToxicType = Literal[
    "latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"
]
TOXIC_ATTRIBUTES: dict[str, dict[str, int]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
}

#: Match keys every protocol understands.
GENERIC_MATCH: frozenset[str] = frozenset({"listener", "protocol", "direction"})
#: Match keys per `match.protocol` value, besides the generic ones.
MATCH_KEYS: dict[str, frozenset[str]] = {
    "kafka": frozenset({"api", "version", "topic", "partition", "client_id"}),
    "grpc": frozenset({"service", "method", "message_index"}),
    "http": frozenset({"method", "path_prefix", "header", "host"}),
    "http2": frozenset({"frame_type", "path_prefix", "method", "header"}),
    "tcp": frozenset(),
}
#: the codec a connection of each `match.protocol` runs (gRPC rides on HTTP/2)
CONN_PROTOCOL = {"kafka": "kafka", "grpc": "http2", "http2": "http2", "http": "http", "tcp": "tcp"}
#: Match keys a connection's handler compiles, per codec: those of every
#: `match.protocol` that runs on it (an HTTP/2 connection carries gRPC calls too).
CODEC_MATCH_KEYS: dict[str, frozenset[str]] = {
    codec: frozenset().union(*(MATCH_KEYS[p] for p, c in CONN_PROTOCOL.items() if c == codec))
    for codec in dict.fromkeys(CONN_PROTOCOL.values())
}
#: every action kind a message fault may name
ACTIONS = frozenset(
    {
        "delay",
        "abort",
        "drop",
        "close",
        "reset",
        "corrupt",
        "truncate",
        "duplicate",
        "rst_stream",
        "goaway",
        "withhold_window_updates",
        "delay_settings_ack",
        "delay_ping",
    }
)
#: actions that act on connection-level HTTP/2 frames, in both directions by default
FRAME_ACTIONS = frozenset({"withhold_window_updates", "delay_settings_ack", "delay_ping"})
DELAYS = frozenset({"delay", "delay_settings_ack", "delay_ping"})
FRAME_TYPES = frozenset(FRAME_KINDS)
#: what a bare `abort` value is, per protocol; protocols in one group read it alike
ABORT_MEANING = {
    "kafka": "a Kafka error",
    "grpc": "a gRPC status",
    "http2": "a gRPC status",
    "http": "an HTTP status",
}
#: parameters an abort takes, per protocol
ABORT_PARAMS = {
    "kafka": {"error", "code", "value"},
    "grpc": {"status", "value", "message", "http_status"},
    "http2": {"status", "value", "message", "http_status"},
    "http": {"status", "value", "body"},
}


# -- error names -----------------------------------------------------------------------

_kafka_errors: dict[str, int] = {}


def error_code(value: Any) -> int:
    """A Kafka error code from a name (``NOT_LEADER_OR_FOLLOWER``) or a number."""
    if isinstance(value, bool):
        raise ValueError(f"unknown Kafka error {value!r}")
    if isinstance(value, int):
        if not -32768 <= value <= 32767:
            raise ValueError(f"Kafka error code {value} is not an int16")
        return value
    if not _kafka_errors:
        import kafka.errors as errors

        for code, cls in errors.kafka_errors.items():
            if code is not None:
                _kafka_errors[cls.message] = code
                _kafka_errors[cls.__name__] = code
        for code in list(_kafka_errors.values()):
            _kafka_errors[schema.error_name(code)] = code
    name = str(value).strip()
    if name.lstrip("-").isdigit():
        return error_code(int(name))
    found = _kafka_errors.get(name.upper(), _kafka_errors.get(name))
    if found is None:
        raise ValueError(f"unknown Kafka error {value!r}")
    return found


def grpc_status(value: Any) -> int:
    """A gRPC status code from a name (``UNAVAILABLE``) or a number 0-16."""
    if isinstance(value, bool):
        raise ValueError(f"unknown gRPC status {value!r}")
    name = str(value).strip().upper()
    if isinstance(value, int) or name.isdigit():
        code = int(name)
        if code not in STATUS_CODES.values():
            raise ValueError(f"gRPC status {code} is not one of 0-16")
        return code
    if name not in STATUS_CODES:
        raise ValueError(f"unknown gRPC status {value!r}")
    return STATUS_CODES[name]


def http_status(value: Any) -> int:
    """An HTTP status a fault may answer with: a final status, 200-599."""
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise ValueError(f"{value!r} is not an HTTP status")
    code = int(str(value).strip())
    if not 200 <= code <= 599:
        raise ValueError(f"HTTP status {code} is not in 200-599")
    return code


def h2_error(value: Any, default: int) -> int:
    """An HTTP/2 error code from a name (``CANCEL``) or a number; `default` for None."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    name = str(value).strip().upper()
    if name.isdigit():
        return int(name)
    try:
        return int(ErrorCode[name])
    except KeyError:
        raise ValueError(f"unknown HTTP/2 error code {value!r}") from None


# -- parsed actions --------------------------------------------------------------------


class Delay:
    """A delay: fixed, ``{uniform: [a, b]}`` or ``{normal: {mean, stddev}}`` (never < 0)."""

    __slots__ = ("a", "b", "shape")

    def __init__(self, value: Any) -> None:
        if isinstance(value, dict):
            if len(value) != 1:
                raise ValueError("a delay distribution has exactly one of: uniform, normal")
            ((shape, args),) = value.items()
            if shape == "uniform":
                lo, hi = (parse_duration(x) for x in args)
                if lo > hi:
                    raise ValueError("uniform: [a, b] needs a <= b")
                self.shape, self.a, self.b = "uniform", lo, hi
            elif shape == "normal":
                self.shape = "normal"
                self.a = parse_duration(args["mean"])
                self.b = parse_duration(args.get("stddev", 0))
            else:
                raise ValueError(f"unknown delay distribution {shape!r} (uniform, normal)")
        else:
            self.shape, self.a, self.b = "fixed", parse_duration(value), 0.0

    def draw(self, rng: random.Random) -> float:
        if self.shape == "fixed":
            return self.a
        if self.shape == "uniform":
            return rng.uniform(self.a, self.b)
        return max(0.0, rng.gauss(self.a, self.b))


class Action:
    """A parsed action: its kind and the parameters the handlers read.

    A bare value (``abort: UNAVAILABLE``) is ``params["value"]``.
    """

    __slots__ = ("delay", "kind", "params", "size")

    def __init__(self, spec: dict[str, Any]) -> None:
        ((kind, value),) = spec.items()
        self.kind: str = kind
        self.delay: Delay | None = Delay(value) if kind in DELAYS else None
        self.size: int | None = None
        if kind == "truncate" and value not in (None, True, {}):
            self.size = parse_size(value["bytes"] if isinstance(value, dict) else value)
        if isinstance(value, dict):
            self.params: dict[str, Any] = value
        elif kind in DELAYS or value in (None, True):
            self.params = {}
        else:
            self.params = {"value": value}


# -- validation ----------------------------------------------------------------------------


def implied_protocol(match: dict[str, Any]) -> str | None:
    """`match.protocol`, or the one protocol whose keys the match uses (``topic``: kafka)."""
    given = match.get("protocol")
    if given is not None:
        return str(given)
    keys = set(match) - GENERIC_MATCH
    if not keys:
        return None
    fits = [p for p, allowed in MATCH_KEYS.items() if keys <= allowed]
    if len(fits) == 1:
        return fits[0]
    if set(fits) == {"grpc", "http2"}:
        return "grpc"  # service/message_index: gRPC calls, on HTTP/2 connections
    return None


def abort_problem(protocol: str, params: dict[str, Any]) -> str | None:
    """Why an abort with `params` cannot act on `protocol`; None when it can."""
    allowed = ABORT_PARAMS.get(protocol)
    if allowed is None:
        return f"abort has no meaning for {protocol} (use close or reset)"
    unknown = set(params) - allowed
    if unknown:
        return (
            f"abort for {protocol} takes no {', '.join(sorted(unknown))} "
            f"(it takes: {', '.join(sorted(allowed - {'value'}))}, or a bare value)"
        )
    try:
        if protocol == "kafka":
            error_code(params.get("error", params.get("code", params.get("value", -1))))
        elif protocol in ("grpc", "http2"):
            grpc_status(params.get("status", params.get("value", "UNAVAILABLE")))
            if "http_status" in params:
                http_status(params["http_status"])
        else:
            http_status(params.get("status", params.get("value", 503)))
    except ValueError as exc:
        return str(exc)
    return None


def check_action(spec: dict[str, Any], match: dict[str, Any]) -> frozenset[str] | None:
    """Check an action against the protocol it meets; raise ValueError naming the problem.

    Returns the connection protocols the fault is confined to when the match
    names none but only some protocols can act on it (an abort whose value
    is a Kafka error never reaches an HTTP handler), or None for any.
    """
    action = Action(spec)
    kind, p = action.kind, action.params
    protocol = implied_protocol(match)
    try:
        if kind == "corrupt":
            int(p.get("bytes", p.get("value", 1)))
        elif kind in ("rst_stream", "goaway"):
            h2_error(p.get("code", p.get("value")), 0)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{kind}: bad parameter {exc}") from None
    if kind != "abort" or not p:
        return None  # a bare `abort: true` is each protocol's default error
    if protocol is not None:
        problem = abort_problem(protocol, p)
        if problem is not None:
            whence = "match.protocol" if "protocol" in match else "the match keys' protocol"
            raise ValueError(f"{problem} ({whence} is {protocol})")
        return None
    fits = [proto for proto in ABORT_PARAMS if abort_problem(proto, p) is None]
    meanings = sorted({ABORT_MEANING[proto] for proto in fits})
    if not fits:
        why = "; ".join(
            f"{proto}: {abort_problem(proto, p)}" for proto in ABORT_PARAMS if proto != "http2"
        )
        raise ValueError(f"abort {_shown(p)} fits no protocol ({why})")
    if len(meanings) > 1:
        raise ValueError(
            f"abort {_shown(p)} is {' or '.join(meanings)}: set match.protocol "
            f"({', '.join(sorted(ABORT_PARAMS))}) to say which"
        )
    return frozenset(CONN_PROTOCOL[proto] for proto in fits)


def _shown(params: dict[str, Any]) -> str:
    return repr(params["value"]) if set(params) == {"value"} else repr(params)


#: `match.direction` values and the directions each means
DIRECTIONS: dict[str, tuple[Direction, ...]] = {
    "upstream": (UPSTREAM,),
    "request": (UPSTREAM,),
    "requests": (UPSTREAM,),
    "downstream": (DOWNSTREAM,),
    "response": (DOWNSTREAM,),
    "responses": (DOWNSTREAM,),
    "both": (UPSTREAM, DOWNSTREAM),
    "any": (UPSTREAM, DOWNSTREAM),
}


def check_match(match: dict[str, Any]) -> None:
    """Values the handlers compile: API names, integers, frame types, directions."""

    def each(value: Any) -> list[Any]:
        return list(value) if isinstance(value, list | tuple) else [value]

    try:
        for api in each(match.get("api", [])):
            if not isinstance(api, int):
                schema.api_key_of(str(api))
        for key in ("partition", "version", "message_index"):
            for v in each(match.get(key, [])):
                int(v)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"match: {exc}") from None
    frame_type = match.get("frame_type")
    if frame_type is not None and str(frame_type).lower() not in FRAME_TYPES:
        raise ValueError(f"match.frame_type {frame_type!r} is not an HTTP/2 frame type")
    direction = match.get("direction")
    if direction is not None and str(direction).lower() not in DIRECTIONS:
        raise ValueError(f"match.direction {direction!r}: one of {', '.join(DIRECTIONS)}")


_BROKER_SUFFIX = re.compile(r"-broker\d+$")


def listener_problem(name: Any, listeners: dict[str, str]) -> str | None:
    """Why `match.listener: name` can never match, given listener name -> protocol.

    A Kafka listener opens ``<name>-broker<N>`` listeners as brokers are seen,
    so those names count before they exist.
    """
    if not isinstance(name, str):
        return f"match.listener must be a listener's name, not {name!r}"
    if name in listeners:
        return None
    base = _BROKER_SUFFIX.sub("", name)
    if base != name and listeners.get(base) == "kafka":
        return None
    known = ", ".join(sorted(listeners)) or "none"
    return f"no listener named {name!r} (listeners: {known})"
