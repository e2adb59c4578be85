"""FakeGrpcService for blocking code: the server runs on its own loop in a thread.

Sync tests (hypothesis `@given` on plain functions, confluent-style blocking
clients) and scripts cannot host an aio server on their own thread, because a
blocking call would stall the loop that must answer it. This wrapper owns a
private event loop in a daemon thread; every control call hops onto that loop,
so programs and counters are only ever touched from the server's thread.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from .behaviour import Behaviour
from .service import FakeGrpcService, ServerTls
from .stats import MethodStats

T = TypeVar("T")
CONTROL_TIMEOUT = 30.0  # seconds; a control call is a dict update on an idle loop


class ThreadedGrpcService:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ServerTls | None = None):
        self._args = (host, port, tls)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._service: FakeGrpcService | None = None

    def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("ThreadedGrpcService already started")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fake-grpc", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread

        async def boot() -> FakeGrpcService:
            service = FakeGrpcService(*self._args)
            await service.start()
            return service

        try:
            self._service = self._await(boot())
        except BaseException:
            self._shutdown_loop()
            raise

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            if self._service is not None:
                self._await(self._service.stop())
        finally:
            self._service = None
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CONTROL_TIMEOUT)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- plumbing -------------------------------------------------------------

    def _await(self, coro: Awaitable[T]) -> T:
        if self._loop is None:
            raise RuntimeError("ThreadedGrpcService is not started")
        return asyncio.run_coroutine_threadsafe(_as_coroutine(coro), self._loop).result(
            CONTROL_TIMEOUT
        )

    def _on_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async def run() -> T:
            return fn(*args, **kwargs)

        return self._await(run())

    @property
    def service(self) -> FakeGrpcService:
        if self._service is None:
            raise RuntimeError("ThreadedGrpcService is not started")
        return self._service

    # -- the FakeGrpcService API, from any thread ---------------------------------

    @property
    def address(self) -> str:
        return self.service.address

    @property
    def port(self) -> int:
        return self.service.port

    def program(self, method: str, **behaviour: Any) -> Behaviour:
        return self._on_loop(self.service.program, method, **behaviour)

    def reset(self) -> None:
        self._on_loop(self.service.reset)

    def stats(self, method: str) -> MethodStats:
        """A snapshot (not the live object, which belongs to the server's thread)."""
        return self._on_loop(lambda: copy.deepcopy(self.service.stats(method)))

    def counters(self) -> dict[str, dict[str, object]]:
        return self._on_loop(self.service.counters)

    def set_serving(self, serving: bool, service: str | None = None) -> None:
        args = (serving,) if service is None else (serving, service)
        self._await(self.service.set_serving(*args))


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
