"""The Python API for faults: what tests and the testbed call.

A thin facade over the engine (`app.faults`) and the
Toxiproxy-style proxy directory, so a test reads as what it does
(``faults.toxic("orders", "latency", latency=200)``) and still goes
through exactly the code paths the config file and the admin API use.
Everything here must run on the proxy's event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .model import FaultSpec

if TYPE_CHECKING:
    from ..app import App
    from ..connection import Connection
    from ..listener import ListenerRuntime
    from .engine import ActiveFault, FaultEngine
    from .stage import Stage
    from .toxiproxy_listeners import ProxyDirectory


class Faults:
    def __init__(self, app: App) -> None:
        self.app = app
        self.engine: FaultEngine = app.faults

    # -- any fault ---------------------------------------------------------------
    def add(self, spec: FaultSpec | dict[str, Any] | None = None, **fields: Any) -> ActiveFault:
        """Add a fault from a FaultSpec, a dict, or keyword fields (name=..., action=...)."""
        if spec is None:
            spec = fields
        if isinstance(spec, dict):
            spec = FaultSpec.model_validate(spec)
        return self.engine.add(spec)

    def update(self, name: str, **changes: Any) -> ActiveFault:
        """Change some fields of a fault (the others stay)."""
        data = self.engine.get(name).spec.model_dump(exclude_none=True)
        data.update(changes)
        return self.engine.update(name, FaultSpec.model_validate(data))

    def remove(self, name: str) -> None:
        self.engine.remove(name)

    def reset(self, seed: int | None = None) -> None:
        """Remove every fault; with `seed`, restart the RNG (for a replay)."""
        self.engine.reset(seed)

    @contextmanager
    def applied(
        self, spec: FaultSpec | dict[str, Any] | None = None, **fields: Any
    ) -> Iterator[ActiveFault]:
        """``with faults.applied(name=..., action=...):`` — removed on exit."""
        fault = self.add(spec, **fields)
        try:
            yield fault
        finally:
            if self.engine.faults.get(fault.name) is fault:
                self.engine.remove(fault.name)

    def list(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.engine.faults.values()]

    @property
    def seed(self) -> int:
        return self.engine.seed

    @property
    def history(self) -> list[tuple[str, int]]:
        """(fault, match number) per injection, in order: compare two runs with it."""
        return list(self.engine.history)

    def injected(self, name: str) -> int:
        return self.engine.get(name).injected

    # -- stream toxics ---------------------------------------------------------------
    def toxic(
        self,
        listener: str,
        type: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: float,
    ) -> ActiveFault:
        """Add a Toxiproxy toxic to a listener; attributes in Toxiproxy's units."""
        return self.add(
            name=name or f"{listener}/{type}_{stream}",
            match={"listener": listener},
            toxic={"type": type, "stream": stream, "toxicity": toxicity, "attributes": attributes},
        )

    @staticmethod
    def stages(conn: Connection) -> list[Stage]:
        """The toxic stages linked into a connection."""
        from .toxic_manager import ToxicManager

        return ToxicManager.stages(conn)

    # -- listeners (Toxiproxy "proxies") ------------------------------------------------
    @property
    def proxies(self) -> ProxyDirectory:
        from .toxiproxy_listeners import ProxyDirectory

        return ProxyDirectory(self.app.proxy, self.engine)

    async def listener_enabled(self, name: str, enabled: bool) -> None:
        """Take a listener down (connection refused, its connections closed) or back up."""
        await self.app.proxy.listeners[name].set_enabled(enabled)

    async def create_proxy(
        self,
        name: str,
        upstream: str,
        listen: str = "127.0.0.1:0",
        enabled: bool = True,
        protocol: str = "tcp",
    ) -> ListenerRuntime:
        """A Toxiproxy-style proxy: a listener (`tcp` unless `protocol` says which
        codec decodes it) in front of one upstream address."""
        return await self.proxies.create(name, upstream, listen, enabled, protocol)

    async def add_listener(self, entry: dict[str, Any]) -> ListenerRuntime:
        """A listener from a config listener entry, as `POST /listeners` makes it
        (ListenerApiError names the field on a bad entry)."""
        from ..runtime_listeners import ListenerDirectory, parse_listener

        return await ListenerDirectory(self.app.proxy).add(parse_listener(entry))

    async def remove_listener(self, name: str) -> None:
        from ..runtime_listeners import ListenerDirectory

        await ListenerDirectory(self.app.proxy).remove(name)

    async def delete_proxy(self, name: str) -> None:
        await self.proxies.delete(name)
