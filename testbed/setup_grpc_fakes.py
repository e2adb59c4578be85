"""Start the fakes of the user's own gRPC services and put the proxy in front.

One child process (`testbed.grpc_fakes.child`) serves every entry of
``grpc.services``, each on its own ephemeral port and behind its own proxy
listener named after the service, on the service's `port`, protocol `grpc`.
``grpc.in_process: true`` serves them on the testbed's loop instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from protoproxy.config_errors import ConfigError

from .grpc_fakes.handle import GrpcFake, StubControl
from .grpc_fakes.routes import stub_routes
from .journal import entry_from_json

if TYPE_CHECKING:
    from .harness import Testbed
    from .scenario import Scenario

#: tb.services key holding the child process (not a user service name: it has a dot)
PROCESS_KEY = "grpc.fakes"


def _configs(tb: Testbed) -> list[dict[str, Any]]:
    """The services as JSON for the child, each with the scenario's ``grpc.hostile``."""
    hostile = tb.scenario.grpc.hostile
    configs = [s.model_dump(mode="json") for s in tb.scenario.grpc.services]
    if hostile is not None:
        for config in configs:
            config["hostile"] = hostile.model_dump(mode="json")
    return configs


def launch(tb: Testbed) -> None:
    """Fork the child now, so that grpcio's import and protoc overlap the other
    services' start; `start` waits for it."""
    if tb.scenario.grpc.in_process:
        return
    from .grpc_fakes.process import GrpcFakesProcess

    proc = GrpcFakesProcess.launch(_configs(tb), tb.scenario.host, tb.scenario.journal.limit)
    tb._stack.push_async_callback(proc.stop)
    tb.services[PROCESS_KEY] = proc


async def start(
    tb: Testbed, listeners: list[dict[str, Any]], upstreams: list[dict[str, Any]]
) -> None:
    """Wait for the fakes, make a handle per service, and front each with a listener."""
    proc = tb.services.get(PROCESS_KEY)
    handles: dict[str, GrpcFake] = {}
    if proc is not None:
        from .grpc_fakes.process import StartFailed

        try:
            addresses = await proc.wait_ready()
        except StartFailed as exc:
            raise _config_error(tb, str(exc), exc.service) from None
        for name, address in addresses.items():
            handles[name] = GrpcFake(name, address, StubControl(name, proc.request, True))
        tb.journal.add_source(
            lambda: [entry_from_json(e) for e in proc.request("journal", {})["entries"]],
            lambda: proc.request("journal_clear", {}),
        )
    else:
        from .grpc_fakes.fakes import BuildError, FakeSet

        try:
            fakes = FakeSet.build(_configs(tb), tb.journal.record)
        except BuildError as exc:
            raise _config_error(tb, str(exc), exc.service) from None
        tb._stack.push_async_callback(fakes.stop)
        addresses = await fakes.start(tb.scenario.host)
        control = _on_loop(fakes.control)
        for name, address in addresses.items():
            handles[name] = GrpcFake(name, address, StubControl(name, control, False))
    for svc in tb.scenario.grpc.services:
        handle = handles[svc.name]
        tb.services[svc.name] = handle
        tb.front(svc.name, "grpc", [handle.address], listeners, upstreams, port=svc.port)
    tb.admin_routes.extend(stub_routes(handles))
    tb.hints.append(_hint)


def _hint(tb: Testbed) -> list[str]:
    """How to look at a fake from a shell: its reflection, and its live stubs."""
    lines: list[str] = []
    for svc in tb.scenario.grpc.services:
        address = tb.addresses.get(svc.name)
        if address is None:
            continue
        lines.append(f"  {svc.name}:  grpcurl -plaintext {address} list")
        if "admin" in tb.addresses:
            stubs = f"http://{tb.addresses['admin']}/testbed/grpc/{svc.name}/stubs"
            lines.append(f"  {' ' * len(svc.name)}   curl -s {stubs}")
    return lines


def _on_loop(control: Callable[[str, dict[str, Any]], Any]) -> Callable[[str, dict[str, Any]], Any]:
    """In-process fakes belong to the testbed's loop: a control request from
    another thread (a `TestbedThread` test) runs there, and waits for it."""
    loop = asyncio.get_running_loop()
    owner = threading.get_ident()

    async def run(op: str, args: dict[str, Any]) -> Any:
        return control(op, args)

    def call(op: str, args: dict[str, Any]) -> Any:
        if threading.get_ident() == owner:
            return control(op, args)
        return asyncio.run_coroutine_threadsafe(run(op, args), loop).result()

    return call


def check(scenario: Scenario) -> None:
    """What `start` would refuse, without serving: every schema compiled and every
    stub checked (`protoproxy testbed --check`). Loads grpcio and protoc into this
    process, which is fine for a check that runs no proxy."""
    if not (scenario.grpc.enabled and scenario.grpc.services):
        return
    from .grpc_fakes.fakes import BuildError, FakeSet

    try:
        FakeSet.build([s.model_dump(mode="json") for s in scenario.grpc.services], _ignore)
    except BuildError as exc:
        raise _error_at(scenario, str(exc), exc.service) from None


def _ignore(entry: object) -> None:
    """No journal for a check."""


def _config_error(tb: Testbed, message: str, service: str | None) -> ConfigError:
    return _error_at(tb.scenario, message, service)


def _error_at(scenario: Scenario, message: str, service: str | None) -> ConfigError:
    path = "grpc.services"
    for i, svc in enumerate(scenario.grpc.services):
        if svc.name == service:
            path = f"grpc.services[{i}]"
    return ConfigError([(path, message)], "testbed scenario")
