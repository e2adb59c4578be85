"""The proxy in front of the target, in this process, so every case is decoded and measured.

An `App` with one listener (the driver's protocol) on an ephemeral loopback
port, upstream = the target, admin off, on its own event loop in a daemon
thread: the runner stays plain blocking code, the proxy's state is touched
only from its loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from protoproxy.app import App
from protoproxy.config import from_dict

from .driver import Target


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def front_config(protocol: str, target: Target) -> dict[str, Any]:
    """The proxy's config: one listener of `protocol` before `target`."""
    return {
        "admin": {"enabled": False},
        "listeners": [
            {"name": "fuzz", "listen": "127.0.0.1:0", "protocol": protocol, "upstream": "target"}
        ],
        "upstreams": [{"name": "target", "endpoints": [str(target)]}],
    }


class Front:
    """Start with `with Front(protocol, target) as front:`; `front.via` is where to send."""

    def __init__(self, protocol: str, target: Target) -> None:
        self.config = from_dict(front_config(protocol, target))
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.app: App | None = None

    def _call(self, coro_fn: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(timeout)

    def __enter__(self) -> Front:
        self._thread.start()

        async def start() -> None:
            self.app = App(self.config)
            await self.app.start()

        try:
            self._call(start)
        except BaseException:
            self._stop_loop()
            raise
        return self

    @property
    def via(self) -> Target:
        assert self.app is not None
        return Target("127.0.0.1", self.app.proxy.listeners["fuzz"].port)

    def stats(self) -> dict[str, float]:
        """The proxy's counter totals (connections, exchanges, errors...), for the report."""
        if self.app is None:
            return {}

        async def read() -> dict[str, float]:
            assert self.app is not None
            out: dict[str, float] = {}
            for name, fam in self.app.proxy.stats.families.items():
                total = getattr(fam, "total", None)
                if name.endswith("_total") and callable(total):
                    value = total()
                    if value:
                        out[name] = value
            return out

        return dict(self._call(read, timeout=10))

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def __exit__(self, *exc: object) -> None:
        if self.app is not None:
            app = self.app
            try:
                self._call(lambda: app.stop(drain=0), timeout=10)
            except (TimeoutError, OSError, RuntimeError):
                pass  # the run's result stands; a stuck shutdown is the daemon thread's
        self._stop_loop()
