"""Start the fakes of the user's own gRPC services and put the proxy in front.

One child process (`testbed.grpc_fakes.child`) serves every entry of
``grpc.services``, each on its own ephemeral port and behind its own proxy
listener named after the service, on the service's `port`, protocol `grpc`.
``grpc.in_process: true`` serves them on the testbed's loop instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protoproxy.config_errors import ConfigError

from .grpc_fakes.handle import GrpcFake, StubControl
from .grpc_fakes.routes import stub_routes
from .journal import entry_from_json

if TYPE_CHECKING:
    from .harness import Testbed

#: tb.services key holding the child process (not a user service name: it has a dot)
PROCESS_KEY = "grpc.fakes"


def _configs(tb: Testbed) -> list[dict[str, Any]]:
    return [s.model_dump(mode="json") for s in tb.scenario.grpc.services]


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
        for name, address in addresses.items():
            handles[name] = GrpcFake(name, address, StubControl(name, fakes.control, False))
    for svc in tb.scenario.grpc.services:
        handle = handles[svc.name]
        tb.services[svc.name] = handle
        tb.front(svc.name, "grpc", [handle.address], listeners, upstreams, port=svc.port)
    tb.admin_routes.extend(stub_routes(handles))


def _config_error(tb: Testbed, message: str, service: str | None) -> ConfigError:
    path = "grpc.services"
    for i, svc in enumerate(tb.scenario.grpc.services):
        if svc.name == service:
            path = f"grpc.services[{i}]"
    return ConfigError([(path, message)], "testbed scenario")
