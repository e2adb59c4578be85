"""The inventory of gRPC services and methods seen through the proxy.

Routing data, not metrics: it answers "what talks gRPC through here, and
how" (served at `/grpc/methods`). The call kind is inferred from message
counts (a method that ever carried more than one request message is
client-streaming), which is all a passive observer without the .proto can
know. Bounded: past `max_methods`, new methods are only counted in
`dropped`.
"""

from __future__ import annotations

import time
from typing import Any


class MethodEntry:
    __slots__ = (
        "calls",
        "first_seen",
        "last_seen",
        "listeners",
        "max_request_messages",
        "max_response_messages",
        "statuses",
    )

    def __init__(self, now: float) -> None:
        self.calls = 0
        self.first_seen = now
        self.last_seen = now
        self.listeners: set[str] = set()
        self.statuses: dict[str, int] = {}
        self.max_request_messages = 0
        self.max_response_messages = 0

    @property
    def kind(self) -> str:
        """unary / server_streaming / client_streaming / bidi_streaming, as observed so far."""
        client = self.max_request_messages > 1
        server = self.max_response_messages > 1
        if client and server:
            return "bidi_streaming"
        if client:
            return "client_streaming"
        if server:
            return "server_streaming"
        return "unary"

    def add(
        self,
        listener: str,
        status: str,
        request_messages: int,
        response_messages: int,
        now: float,
    ) -> None:
        self.calls += 1
        self.last_seen = now
        if listener not in self.listeners and len(self.listeners) < 64:
            self.listeners.add(listener)
        statuses = self.statuses
        if status in statuses:
            statuses[status] += 1
        elif len(statuses) < 32:
            statuses[status] = 1
        if request_messages > self.max_request_messages:
            self.max_request_messages = request_messages
        if response_messages > self.max_response_messages:
            self.max_response_messages = response_messages

    def snapshot(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "kind": self.kind,
            "statuses": dict(self.statuses),
            "listeners": sorted(self.listeners),
            "max_request_messages": self.max_request_messages,
            "max_response_messages": self.max_response_messages,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


class GrpcInventory:
    """Services -> methods seen, with call counts and statuses (`app.grpc`)."""

    def __init__(self, max_methods: int = 2000, clock: Any = time.time) -> None:
        self.max_methods = max_methods
        self.clock = clock
        self.services: dict[str, dict[str, MethodEntry]] = {}
        self.methods = 0
        self.dropped = 0  # calls to methods past the bound
        #: Bumped by `reset`: entries callers kept from before are stale.
        self.generation = 0

    def entry(self, service: str, method: str) -> MethodEntry | None:
        """The entry for a method, made on first sight; None past `max_methods`."""
        methods = self.services.get(service)
        entry = methods.get(method) if methods is not None else None
        if entry is None:
            if self.methods >= self.max_methods:
                return None
            if methods is None:
                methods = self.services[service] = {}
            entry = methods[method] = MethodEntry(self.clock())
            self.methods += 1
        return entry

    def record(
        self,
        listener: str,
        service: str,
        method: str,
        status: str,
        request_messages: int,
        response_messages: int,
    ) -> None:
        """One finished call (callers on the hot path keep the entry and call `add`)."""
        entry = self.entry(service, method)
        if entry is None:
            self.dropped += 1
            return
        entry.add(listener, status, request_messages, response_messages, self.clock())

    def snapshot(self) -> dict[str, Any]:
        """JSON-able: ``{"services": {svc: {method: {...}}}, "methods": n, "dropped": n}``."""
        return {
            "services": {
                svc: {name: e.snapshot() for name, e in sorted(methods.items())}
                for svc, methods in sorted(self.services.items())
            },
            "methods": self.methods,
            "dropped": self.dropped,
        }

    def reset(self) -> None:
        self.generation += 1
        self.services.clear()
        self.methods = 0
        self.dropped = 0
