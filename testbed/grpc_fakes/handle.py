"""`tb.services[name]` for a user's gRPC fake: where it is, and its stubs, live.

The handle looks the same whether the fake runs in the child process or in
the testbed's own (``grpc.in_process``): both reach it through one `Control`
callable taking a control request, so tests and the admin routes never care.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

#: A control request: (op, args) -> result; blocking.
Control = Callable[[str, dict[str, Any]], Any]


class StubControl:
    """Stubs of one fake, changed while it runs: each call is in force when it returns."""

    def __init__(self, service: str, control: Control, threaded: bool) -> None:
        self.service = service
        self._control = control
        #: blocking requests (over a socket) go to a thread when called from the loop
        self._threaded = threaded

    def add(self, stubs: dict[str, Any] | list[dict[str, Any]]) -> list[str]:
        """Add a stub or a list (GripMock's JSON shape); returns their ids.
        ValueError, naming the problem, for a stub that does not fit the schema."""
        ids: list[str] = self._control("stubs_add", {"service": self.service, "stubs": stubs})
        return ids

    def list(self) -> list[dict[str, Any]]:
        stubs: list[dict[str, Any]] = self._control("stubs_list", {"service": self.service})
        return stubs

    def remove(self, ident: str) -> bool:
        return bool(self._control("stubs_remove", {"service": self.service, "id": ident}))

    def clear(self) -> None:
        self._control("stubs_clear", {"service": self.service})

    async def arequest(self, op: str, **args: Any) -> Any:
        """A control request from the event loop, never blocking it."""
        args["service"] = self.service
        if self._threaded:
            return await asyncio.to_thread(self._control, op, args)
        return self._control(op, args)


class GrpcFake:
    """One user gRPC service: `address` of its grpcio server (behind the proxy
    listener of the same name) and `stubs`."""

    def __init__(self, name: str, address: str, stubs: StubControl) -> None:
        self.name = name
        self.address = address
        self.stubs = stubs

    def __repr__(self) -> str:
        return f"<GrpcFake {self.name} at {self.address}>"
