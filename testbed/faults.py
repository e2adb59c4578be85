"""Testbed-level faults: break the fake services themselves, next to the proxy's faults.

`TestbedFaults` is the proxy's fault API (`protoproxy.faults.api.Faults`:
toxics, message faults, listeners down) plus what only the testbed can do:
stop and start a fake Kafka broker, move partition leadership, make a fake
gRPC method slow or failing. So a scenario can mix network, protocol and
service faults through one object, `tb.faults`.

A scenario's `faults:` list is applied at start. Each entry is either a
proxy fault (the config file's FaultSpec: `match` with `action` or `toxic`)
or a service fault::

    - {service: kafka, action: {stop_broker: 1}, after: 5s}
    - {service: kafka, action: {move_leader: {topic: orders, partition: 0, broker: 2}}}
    - {service: grpc, action: {program: {method: Unary, status: UNAVAILABLE, latency: 0.2}}}
    - {service: proxy, action: {disable: grpc}, after: 10s}

`after` delays an entry (from start), so one scenario can script "a broker
dies ten seconds in". Applied service faults are recorded in `service_history`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from protoproxy.config_errors import ConfigError, problems_of
from protoproxy.faults.api import Faults
from protoproxy.faults.model import FaultSpec
from protoproxy.units import Duration

if TYPE_CHECKING:
    from .harness import Testbed

log = logging.getLogger("testbed.faults")

SERVICE_ACTIONS: dict[str, set[str]] = {
    "kafka": {"stop_broker", "start_broker", "move_leader"},
    "grpc": {"program", "reset", "serving"},
    "proxy": {"disable", "enable"},
}


class ServiceFault(BaseModel):
    """A fault of a fake service (or of a whole proxy listener)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    service: Literal["kafka", "grpc", "proxy"]
    action: dict[str, Any]
    after: Duration | None = None

    @model_validator(mode="after")
    def _one_action(self) -> ServiceFault:
        allowed = SERVICE_ACTIONS[self.service]
        if len(self.action) != 1 or next(iter(self.action)) not in allowed:
            raise ValueError(
                f"{self.service} action must be exactly one of: {', '.join(sorted(allowed))}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(iter(self.action))


class ScheduledSpec(BaseModel):
    """A proxy fault from a scenario, optionally added later (`after`)."""

    model_config = ConfigDict(extra="allow")

    after: Duration | None = None


class TestbedFaults(Faults):
    """`tb.faults`: every kind of fault for a running Testbed."""

    __test__ = False

    def __init__(self, tb: Testbed) -> None:
        assert tb.app is not None, "the testbed is not started"
        super().__init__(tb.app)
        self.tb = tb
        #: (service, what) per service fault applied, in order
        self.service_history: list[tuple[str, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # -- Kafka -------------------------------------------------------------------
    def _kafka(self) -> Any:
        cluster = self.tb.services.get("kafka")
        if cluster is None:
            raise LookupError("this testbed runs no Kafka cluster")
        return cluster

    async def stop_broker(self, node_id: int) -> None:
        """Stop a fake broker: its connections close; partitions it led elect another."""
        await self._kafka().stop_broker(node_id)
        self._did("kafka", f"stop_broker {node_id}")

    async def start_broker(self, node_id: int) -> None:
        await self._kafka().start_broker(node_id)
        self._did("kafka", f"start_broker {node_id}")

    def move_leader(self, topic: str, partition: int, broker: int) -> int:
        """Make `broker` the partition's leader; returns the new leader epoch."""
        epoch: int = self._kafka().move_leader(topic, partition, broker)
        self._did("kafka", f"move_leader {topic}-{partition} -> {broker}")
        return epoch

    # -- gRPC --------------------------------------------------------------------------
    def _grpc(self) -> Any:
        service = self.tb.services.get("grpc")
        if service is None:
            raise LookupError("this testbed runs no gRPC service")
        return service

    def grpc_method(self, method: str, **program: Any) -> Any:
        """Make a fake gRPC method slow (`latency` s) or failing (`status`, `fail_after`)."""
        behaviour = self._grpc().program(method, **program)
        self._did("grpc", f"program {method} {program}")
        return behaviour

    def grpc_reset(self) -> None:
        self._grpc().reset()
        self._did("grpc", "reset")

    async def grpc_serving(self, serving: bool, service: str | None = None) -> None:
        svc = self._grpc()
        if service is None:
            await svc.set_serving(serving)
        else:
            await svc.set_serving(serving, service)
        self._did("grpc", f"serving {serving}")

    # -- scenario entries -------------------------------------------------------------
    async def apply_all(self, entries: list[dict[str, Any]]) -> None:
        """Validate every entry first (an error names `faults[i]`), then apply them."""
        parsed = [self.parse(i, e) for i, e in enumerate(entries)]
        for i, entry in enumerate(parsed):
            if not isinstance(entry, ServiceFault):
                try:
                    self.engine.check(entry[0])
                except ValueError as exc:
                    where, _, problem = str(exc).partition(": ")
                    raise ConfigError(
                        [(f"faults[{i}].{where}", problem)], "testbed scenario"
                    ) from None
        for entry in parsed:
            delay = entry.after if isinstance(entry, ServiceFault) else entry[1]
            if delay:
                self._later(delay, entry)
            else:
                await self.apply(entry)

    @staticmethod
    def parse(index: int, entry: dict[str, Any]) -> ServiceFault | tuple[FaultSpec, float | None]:
        where = f"faults[{index}]"
        try:
            if "service" in entry:
                return ServiceFault.model_validate(entry)
            data = dict(entry)
            after = ScheduledSpec.model_validate({"after": data.pop("after", None)}).after
            return FaultSpec.model_validate(data), after
        except ValidationError as exc:
            raise ConfigError(problems_of(exc, where), "testbed scenario") from None

    async def apply(self, entry: ServiceFault | tuple[FaultSpec, float | None]) -> None:
        if not isinstance(entry, ServiceFault):
            self.add(entry[0])
            return
        arg = entry.action[entry.kind]
        if entry.service == "kafka":
            if entry.kind == "stop_broker":
                await self.stop_broker(int(arg))
            elif entry.kind == "start_broker":
                await self.start_broker(int(arg))
            else:
                self.move_leader(arg["topic"], int(arg["partition"]), int(arg["broker"]))
        elif entry.service == "grpc":
            if entry.kind == "program":
                program = dict(arg)
                self.grpc_method(program.pop("method"), **program)
            elif entry.kind == "reset":
                self.grpc_reset()
            else:
                await self.grpc_serving(bool(arg))
        else:
            await self.listener_enabled(str(arg), entry.kind == "enable")
            self._did("proxy", f"{entry.kind} {arg}")

    def _later(self, delay: float, entry: Any) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            await self.apply(entry)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduled testbed fault failed: %s", task.exception())

    def cancel(self) -> None:
        """Drop scheduled entries (the testbed is stopping)."""
        for task in list(self._tasks):
            task.cancel()

    def _did(self, service: str, what: str) -> None:
        log.info("testbed fault: %s %s", service, what)
        self.service_history.append((service, what))


async def attach(tb: Testbed) -> TestbedFaults:
    """Give a started Testbed its `faults` and apply the scenario's list."""
    faults = TestbedFaults(tb)
    tb.faults = faults
    tb._stack.callback(faults.cancel)
    tb.hints.append(_hint)
    await faults.apply_all(tb.scenario.faults)
    from .schedule import attach as attach_schedule

    await attach_schedule(tb)  # tb.schedule, its `at: 0` steps applied now
    return faults


def _hint(tb: Testbed) -> list[str]:
    admin = tb.addresses.get("admin")
    target = next((n for n in ("http", "grpc", "echo", "kafka") if n in tb.addresses), None)
    if admin is None or target is None:
        return []
    return [
        f"  faults: curl -s -XPOST {admin}/proxies/{target}/toxics \\",
        "            -H 'Content-Type: application/json' \\",
        '            -d \'{"type":"latency","attributes":{"latency":200}}\'',
        f"          curl -s {admin}/faults   (docs/faults.md)",
    ]
