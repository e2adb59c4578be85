"""All of a scenario's user gRPC fakes, and the control requests they answer.

The same object serves in the child process (`testbed.grpc_fakes.child`, the
default) and in the testbed's own process (``grpc.in_process: true``); the
control operations are plain methods on JSON-able values, so the child only
has to move them over its socket.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..journal import Entry, Journal
from . import schema as schema_mod
from .check import StubCheckError, check_stub
from .server import Recorder, UserService, add_service_files

if TYPE_CHECKING:
    from testbed.grpc_stubs import StubStore


class BuildError(ValueError):
    """A fake that cannot be built: its schema or a stub; `service` names it."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"grpc service {service!r}: {message}")
        self.service = service


class UnknownService(KeyError):
    """A control request for a fake the scenario does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


class FakeSet:
    """``fakes = FakeSet.build(configs, record)``; ``await fakes.start(host)``."""

    def __init__(self, services: dict[str, UserService]) -> None:
        self.services = services
        #: seconds each phase of `build` took, for the start-up benchmark
        self.timings: dict[str, float] = {}

    @classmethod
    def build(cls, configs: list[dict[str, Any]], record: Recorder) -> FakeSet:
        """Schemas compiled and stubs loaded and checked, for every entry of
        ``grpc.services`` (as JSON). A BuildError names the service that failed."""
        from testbed.grpc_stubs import StubStore

        services: dict[str, UserService] = {}
        timings: dict[str, float] = {}
        for config in configs:
            name = config["name"]
            t0 = time.perf_counter()
            try:
                schema = schema_mod.load(config)
            except schema_mod.SchemaError as exc:
                raise BuildError(name, str(exc)) from None
            add_service_files(schema)
            t1 = time.perf_counter()
            store = StubStore()
            try:
                load_checked(store, schema, [Path(p) for p in config.get("stubs", [])])
            except ValueError as exc:  # StubError, StubCheckError
                raise BuildError(name, str(exc)) from None
            timings[f"{name}.schema"] = t1 - t0
            timings[f"{name}.stubs"] = time.perf_counter() - t1
            hostile = None
            spec = config.get("hostile")
            if spec is not None:
                from .hostile import GrpcHostile

                hostile = GrpcHostile(name, spec["seed"], spec["rate"], spec.get("methods"))
            services[name] = UserService(name, schema, store, record, hostile)
        fakes = cls(services)
        fakes.timings = timings
        return fakes

    async def start(self, host: str) -> dict[str, str]:
        for svc in self.services.values():
            await svc.start(host)
        return self.addresses()

    async def stop(self) -> None:
        for svc in self.services.values():
            await svc.stop()

    def addresses(self) -> dict[str, str]:
        return {name: svc.address for name, svc in self.services.items()}

    def service(self, name: str) -> UserService:
        svc = self.services.get(name)
        if svc is None:
            known = ", ".join(sorted(self.services))
            raise UnknownService(f"no gRPC fake named {name!r} (the scenario has {known})")
        return svc

    # -- stubs, live ----------------------------------------------------------------------

    def add_stubs(self, name: str, data: dict[str, Any] | list[dict[str, Any]]) -> list[str]:
        """Add a stub or a list; all or none: one bad stub leaves the store as it was."""
        svc = self.service(name)
        ids = svc.store.add(data, source="api")
        try:
            _check_added(svc.store, svc.schema, ids, "api", isinstance(data, list))
        except StubCheckError:
            for ident in ids:
                svc.store.remove(ident)
            raise
        return ids

    def list_stubs(self, name: str) -> list[dict[str, Any]]:
        return self.service(name).store.all()

    def remove_stub(self, name: str, ident: str) -> bool:
        return self.service(name).store.remove(ident)

    def clear_stubs(self, name: str) -> None:
        self.service(name).store.clear()

    def control(self, op: str, args: dict[str, Any]) -> Any:
        """A stub control request by name (over the child's socket, or in-process)."""
        name = args["service"]
        if op == "stubs_add":
            return self.add_stubs(name, args["stubs"])
        if op == "stubs_list":
            return self.list_stubs(name)
        if op == "stubs_remove":
            return self.remove_stub(name, args["id"])
        if op == "stubs_clear":
            self.clear_stubs(name)
            return None
        raise ValueError(f"unknown control request {op!r}")


def load_checked(store: StubStore, schema: schema_mod.Schema, paths: list[Path]) -> int:
    """Load the stub files (the engine's own checks first), then check each
    file's stubs against the schema, so that a stub that does not fit is named
    by its file and its place in it (``stubs/a.yaml: [2]``)."""
    from testbed.grpc_stubs.store import read_paths

    staged = read_paths(paths)  # each file read and parsed once
    total = len(store.add_staged(staged))
    for item, where in staged:
        check_stub(item, schema, where.removesuffix(": "))
    return total


def _check_added(
    store: StubStore, schema: schema_mod.Schema, ids: list[str], source: str, listed: bool
) -> None:
    for i, ident in enumerate(ids):
        stub = store.get(ident)
        if stub is not None:
            check_stub(stub, schema, f"{source}: [{i}]" if listed else source)


class ChildJournal:
    """The child's own bounded journal, read and cleared by the parent."""

    def __init__(self, limit: int) -> None:
        self.journal = Journal(limit)

    def record(self, entry: Entry) -> None:
        self.journal.record(entry)

    def dump(self) -> dict[str, Any]:
        return {
            "entries": [e.to_json() for e in self.journal.entries()],
            "dropped": self.journal.dropped,
        }
