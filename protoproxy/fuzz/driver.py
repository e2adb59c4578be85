"""The contract between `protoproxy fuzz`'s runner and its protocol drivers.

A driver knows one protocol: how to draw a case (a hypothesis strategy), how to
send it to a target and judge what comes back (the oracles), and how to probe
that the target is still alive. The runner knows none of that: it draws, runs,
shrinks, writes replay files and reports. A case carries everything its replay
needs as JSON (the wire bytes and their decoded form), so `--replay FILE`
rebuilds it with `Case.from_json` and runs the same `execute` again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:  # `protoproxy --help` need not import hypothesis (120 ms)
    from hypothesis.strategies import SearchStrategy

#: Every oracle's name, as reports and replay files spell it. A driver raises
#: `OracleFailure` with one of these.
ORACLES: dict[str, str] = {
    "alive": "the target answers a health probe after each case "
    "(Kafka ApiVersions, an HTTP/2 PING, a gRPC channel)",
    "decodes": "every response decodes with protoproxy's codec",
    "correlation": "one response per Kafka request, in order, at the request's version; "
    "no HTTP/2 frames on closed streams; valid gRPC trailers",
    "deadline": "no response later than the deadline (--deadline)",
    "closed_with_reason": "no connection closed without a protocol reason "
    "(a Kafka error, an HTTP/2 GOAWAY or RST_STREAM, a gRPC status)",
    "health": "the target's own reported health stays green (gRPC health, when served)",
    "not_a_server_error": "no server error: gRPC UNKNOWN, INTERNAL or DATA_LOSS, "
    "HTTP 5xx, Kafka UNKNOWN_SERVER_ERROR (--allow-status to accept one)",
    "model": "a stateful run's answers agree with the target's earlier ones (Kafka: "
    "offsets grow by the records produced, fetches return them, commits read back)",
}


class OracleFailure(Exception):
    """A case broke an oracle: the runner records it, hypothesis shrinks it."""

    def __init__(self, oracle: str, detail: str) -> None:
        if oracle not in ORACLES:
            raise ValueError(f"unknown oracle {oracle!r}")
        super().__init__(f"{oracle}: {detail}")
        self.oracle = oracle
        self.detail = detail


@dataclass(frozen=True)
class Target:
    """Where cases go: ``host:port``."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Target:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"--target {text!r}: want HOST:PORT")
        return cls(host.strip("[]") or "127.0.0.1", int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Case:
    """One drawn case. `wire` is what is written, in order, one item per write;
    `decoded` is its JSON-able meaning (what the replay file shows a reader);
    `label` is the coverage key ("Produce v9", "shop.v1.Catalog/GetItem")."""

    protocol: str
    label: str
    wire: list[bytes]
    decoded: Any
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "label": self.label,
            "wire": [chunk.hex() for chunk in self.wire],
            "decoded": self.decoded,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        return cls(
            protocol=data["protocol"],
            label=data["label"],
            wire=[bytes.fromhex(chunk) for chunk in data["wire"]],
            decoded=data["decoded"],
            extra=dict(data.get("extra") or {}),
        )


@dataclass
class Observation:
    """What one case's run saw, for the report: its slowest response, and how many."""

    label: str
    latency_ns: int
    responses: int = 1


@dataclass
class Options:
    """What the command line gives every driver."""

    deadline_s: float = 5.0
    allow_status: frozenset[str] = frozenset()
    api: tuple[str, ...] = ()  # Kafka: --api Produce,Metadata
    proto: tuple[str, ...] = ()  # gRPC: --proto FILE (repeatable)
    import_paths: tuple[str, ...] = ()  # gRPC: -I DIR
    method: str | None = None  # gRPC: --method pkg.Service/Method
    stateful: bool = True


class Driver(Protocol):
    """One protocol's side of a fuzz run. `via` is where to connect: the proxy's
    listener in front of the target (or the target itself under --direct).

    Optional methods the runner calls when present: ``prepare(via)`` once before
    the first `strategy()` (a strategy that depends on what the target speaks),
    and ``state_machine(via)`` for stateful rounds."""

    protocol: ClassVar[str]

    def strategy(self) -> SearchStrategy[Case]: ...

    def execute(self, case: Case, via: Target) -> Observation:
        """Send the case, read every answer, raise `OracleFailure` on a broken oracle."""
        ...

    def probe(self, via: Target) -> None:
        """Raise `OracleFailure("alive" | "health", ...)` when the target is not well."""
        ...

    def close(self) -> None:
        """End the driver's connections; may be called more than once."""
        ...
