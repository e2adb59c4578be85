"""A Testbed on its own event loop in a thread, driven from blocking or async code.

The pytest fixture is built on this so that it needs nothing from the test's
own event loop: a sync test, an async test under pytest-asyncio in strict or
auto mode, and a run without pytest-asyncio all get the same object. Clients in
the test (blocking ones, or async ones on the test's loop) reach the testbed over
real loopback sockets, as they would reach a real deployment; every touch of the
testbed's own state hops onto its loop, which owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from .admin_client import AdminClient
from .harness import Testbed
from .journal import Journal
from .scenario import Scenario, ScenarioSource, resolve_scenario

T = TypeVar("T")

#: Seconds for starting or stopping everything: three fake brokers, grpcio and the
#: proxy on a loaded 2-core machine take well under this; a hang still ends.
LIFECYCLE_TIMEOUT = 120.0
#: Seconds for one control call (a fault added, a broker stopped).
CALL_TIMEOUT = 60.0


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, as `protoproxy testbed` runs, else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class TestbedThread:
    """``with TestbedThread("scenario.yaml") as tb:`` then use `tb.kafka_bootstrap`...

    Ports are ephemeral unless `ephemeral_ports=False`, so several can run at once.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        scenario: ScenarioSource = None,
        *,
        base: Path | None = None,
        overrides: dict[str, Any] | None = None,
        ephemeral_ports: bool = True,
    ) -> None:
        sc = resolve_scenario(scenario, base)
        if overrides:
            sc = _merged(sc, overrides)
        self.scenario: Scenario = sc.with_ephemeral_ports() if ephemeral_ports else sc
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._testbed: Testbed | None = None
        #: name -> "host:port" of every proxy listener and the admin API, at start
        self.addresses: dict[str, str] = {}
        self.admin: AdminClient = AdminClient("http://unstarted")
        #: the testbed's faults, each call blocking until it ran on the testbed's loop
        self.faults = FaultControl(self)
        #: the same, each call awaitable (for async tests)
        self.async_faults = AsyncFaultControl(self)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("this TestbedThread is already started")
        loop = _new_loop()
        thread = threading.Thread(target=self._run, args=(loop,), name="testbed", daemon=True)
        self._loop, self._thread = loop, thread
        thread.start()
        try:
            self._testbed = self._submit(self._boot(), LIFECYCLE_TIMEOUT)
        except BaseException:
            self._shutdown_loop()
            raise
        self.addresses = dict(self._testbed.addresses)
        if "admin" in self.addresses:
            self.admin = AdminClient(f"http://{self.addresses['admin']}")

    def stop(self) -> None:
        """Stop every service and the proxy, then the loop and its thread; idempotent."""
        if self._loop is None:
            return
        try:
            if self._testbed is not None:
                self._submit(self._testbed.stop(), LIFECYCLE_TIMEOUT)
        finally:
            self._testbed = None
            self._shutdown_loop()

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

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    async def _boot(self) -> Testbed:
        tb = Testbed(self.scenario)
        await tb.__aenter__()
        return tb

    def _shutdown_loop(self) -> None:
        """Cancel what is left (a scheduled scenario fault, a handler mid-close), let
        async generators and the default executor finish, then end the thread, so
        that nothing of this testbed outlives it."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_drain(), loop).result(LIFECYCLE_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(LIFECYCLE_TIMEOUT)
        if not thread.is_alive():
            loop.close()

    # -- reaching the testbed ----------------------------------------------------------
    @property
    def testbed(self) -> Testbed:
        """The running Testbed. It belongs to its loop: read or change it with `call`."""
        if self._testbed is None:
            raise RuntimeError("the testbed is not running")
        return self._testbed

    @property
    def journal(self) -> Journal:
        """What every fake received (`testbed.journal.Journal`); safe to read from
        any thread: the journal locks, and a child process's entries are fetched."""
        return self.testbed.journal

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def call(self, fn: Callable[[Testbed], Any], timeout: float = CALL_TIMEOUT) -> Any:
        """Run ``fn(testbed)`` on the testbed's loop (awaiting it if it returns an
        awaitable) and return the result, blocking until then."""
        return self._submit(self._apply(fn), timeout)

    async def acall(self, fn: Callable[[Testbed], Any], timeout: float = CALL_TIMEOUT) -> Any:
        """`call` for async code: the caller's loop keeps running meanwhile."""
        future = asyncio.wrap_future(self._future(self._apply(fn)))
        return await asyncio.wait_for(future, timeout)

    async def _apply(self, fn: Callable[[Testbed], Any]) -> Any:
        result = fn(self.testbed)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _future(self, coro: Awaitable[T]) -> Any:
        if self._loop is None:
            if inspect.iscoroutine(coro):
                coro.close()
            raise RuntimeError("the testbed is not running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("called from the testbed's own loop; await the Testbed directly")
        return asyncio.run_coroutine_threadsafe(_as_coroutine(coro), self._loop)

    def _submit(self, coro: Awaitable[T], timeout: float) -> T:
        future = self._future(coro)
        try:
            result: T = future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise
        return result

    def advance(self) -> int:
        """One more workload step for the scenario's `schedule:`; applies what is due."""
        position: int = self.call(lambda tb: tb.schedule.advance())
        return position

    # -- addresses ----------------------------------------------------------------------
    def address(self, name: str) -> str:
        """`host:port` of a listener (`kafka`, `grpc`, `http`, `echo`) or `admin`."""
        try:
            return self.addresses[name]
        except KeyError:
            raise LookupError(
                f"this testbed has no {name!r} (it has: {', '.join(self.addresses)})"
            ) from None

    @property
    def kafka_bootstrap(self) -> str:
        """The proxy's Kafka bootstrap address, for `bootstrap_servers`."""
        return self.address("kafka")

    @property
    def grpc_target(self) -> str:
        """The proxy's gRPC (h2c) address, for `grpc.insecure_channel`."""
        return self.address("grpc")

    @property
    def http_url(self) -> str:
        """The proxy's HTTP/1.1 listener as a base URL."""
        return f"http://{self.address('http')}"

    @property
    def echo_address(self) -> str:
        return self.address("echo")

    @property
    def admin_url(self) -> str:
        return f"http://{self.address('admin')}"


class FaultControl:
    """`tb.faults` of a TestbedThread: `testbed.faults.TestbedFaults`, run on the
    testbed's loop. Every method and property of TestbedFaults is here, blocking."""

    def __init__(self, runner: TestbedThread) -> None:
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        from .faults import TestbedFaults

        kind = inspect.getattr_static(TestbedFaults, name, None)
        if kind is None:
            raise AttributeError(f"testbed faults have no {name!r}")
        if isinstance(kind, property):
            return self._run(lambda tb: getattr(tb.faults, name))

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._run(lambda tb: getattr(tb.faults, name)(*args, **kwargs))

        method.__name__ = name
        return method

    def _run(self, fn: Callable[[Testbed], Any]) -> Any:
        return self._runner.call(fn)

    @contextlib.contextmanager
    def applied(self, spec: Any = None, **fields: Any) -> Iterator[Any]:
        """``with tb.faults.applied(name=..., action=...):``: removed on exit."""
        fault = self._run(lambda tb: tb.faults.add(spec, **fields))
        try:
            yield fault
        finally:
            self._run(lambda tb: _remove_if_same(tb, fault))


class AsyncFaultControl(FaultControl):
    """`tb.async_faults`: the same as `tb.faults`, every call awaitable, so an async
    test's own clients keep running while the testbed acts (a broker stopping)."""

    def _run(self, fn: Callable[[Testbed], Any]) -> Any:
        return self._runner.acall(fn)

    @contextlib.asynccontextmanager  # type: ignore[override]
    async def applied(self, spec: Any = None, **fields: Any) -> AsyncIterator[Any]:
        fault = await self._run(lambda tb: tb.faults.add(spec, **fields))
        try:
            yield fault
        finally:
            await self._run(lambda tb: _remove_if_same(tb, fault))


def _remove_if_same(tb: Testbed, fault: Any) -> None:
    if tb.faults.engine.faults.get(fault.name) is fault:
        tb.faults.remove(fault.name)


def _merged(scenario: Scenario, overrides: dict[str, Any]) -> Scenario:
    """Top-level keys replaced; for a mapping key (`kafka`, `ports`...) the given
    fields merge into the scenario's."""
    data = scenario.model_dump()
    for key, value in overrides.items():
        old = data.get(key)
        data[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    return resolve_scenario(data)


async def _drain() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    loop = asyncio.get_running_loop()
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
