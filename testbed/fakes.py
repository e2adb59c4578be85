"""Handles on a running testbed's fakes for tests: `grpc_fake`, `http_fake`, `kafka_fake`.

Each handle works through the same doors a user's tooling would: the admin
API's `/testbed/...` routes for live stubs and topics, WireMock's own
`/__admin/` API on the HTTP fake's proxy listener, and the shared journal. So
what a fixture does in a test is what `curl` does against `protoproxy testbed`,
and the handles hold no state of their own.
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any

from .admin_client import AdminError

if TYPE_CHECKING:
    from .journal import JournalView
    from .threaded import TestbedThread


def _only(kind: str, names: list[str], name: str | None) -> str:
    """`name`, or the scenario's one service of this kind when `name` is None."""
    if name is not None:
        if name not in names:
            raise LookupError(f"no {kind} fake named {name!r} (there is: {', '.join(names)})")
        return name
    if len(names) != 1:
        listed = ", ".join(names) or "none"
        raise LookupError(f"the scenario has {len(names)} {kind} fakes ({listed}): name one")
    return names[0]


class GrpcFake:
    """The scenario's fakes of the user's gRPC services (``grpc.services``)."""

    def __init__(self, tb: TestbedThread) -> None:
        self._tb = tb
        self.names = [s.name for s in tb.scenario.grpc.services]

    def target(self, service: str | None = None) -> str:
        """``host:port`` of the service's proxy listener, for ``grpc.insecure_channel``."""
        return self._tb.address(_only("gRPC", self.names, service))

    def add_stub(
        self, stub: dict[str, Any] | list[dict[str, Any]], service: str | None = None
    ) -> list[str]:
        """Add GripMock-format stubs while the testbed runs; returns their ids."""
        name = _only("gRPC", self.names, service)
        answer = self._tb.admin.post(f"/testbed/grpc/{name}/stubs", stub)
        ids: list[str] = answer["ids"]
        return ids

    def stubs(self, service: str | None = None) -> list[dict[str, Any]]:
        name = _only("gRPC", self.names, service)
        stubs: list[dict[str, Any]] = self._tb.admin.get(f"/testbed/grpc/{name}/stubs")["stubs"]
        return stubs

    def remove_stub(self, stub_id: str, service: str | None = None) -> None:
        name = _only("gRPC", self.names, service)
        self._tb.admin.delete(f"/testbed/grpc/{name}/stubs/{stub_id}")

    def clear_stubs(self, service: str | None = None) -> None:
        name = _only("gRPC", self.names, service)
        self._tb.admin.delete(f"/testbed/grpc/{name}/stubs")

    def journal(self, method: str | None = None, service: str | None = None) -> JournalView:
        """Calls received, e.g. ``grpc_fake.journal("shop.v1.Catalog/GetItem").count()``."""
        return self._tb.journal.grpc(method, service=service)


class HttpFake:
    """The scenario's WireMock-format HTTP fakes (``http.services``)."""

    def __init__(self, tb: TestbedThread) -> None:
        self._tb = tb
        self.names = [s.name for s in tb.scenario.http.services]

    def url(self, service: str | None = None) -> str:
        """``http://host:port`` of the fake's proxy listener."""
        return "http://" + self._tb.address(_only("HTTP", self.names, service))

    def admin_url(self, service: str | None = None) -> str:
        """Its WireMock admin API, for WireMock's clients (``Config.base_url``)."""
        return self.url(service) + "/__admin"

    def add_mapping(self, mapping: dict[str, Any], service: str | None = None) -> dict[str, Any]:
        """Add a WireMock stub mapping; returns it with its id."""
        created: dict[str, Any] = _json("POST", self.admin_url(service) + "/mappings", mapping)
        return created

    def reset(self, service: str | None = None) -> None:
        """WireMock's reset: mappings back to the files', journal and scenarios cleared."""
        _json("POST", self.admin_url(service) + "/reset", {})

    def journal(
        self, method: str | None = None, path: str | None = None, service: str | None = None
    ) -> JournalView:
        return self._tb.journal.http(method, path, service=service)


class KafkaFake:
    """The fake Kafka cluster."""

    def __init__(self, tb: TestbedThread) -> None:
        self._tb = tb

    @property
    def bootstrap(self) -> str:
        return self._tb.kafka_bootstrap

    def create_topic(
        self, name: str, partitions: int = 1, records: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """A topic created while the testbed runs, with seed records (the seed-file shape)."""
        body: dict[str, Any] = {"name": name, "partitions": partitions}
        if records:
            body["records"] = records
        created: dict[str, Any] = self._tb.admin.post("/testbed/kafka/topics", body)
        return created

    def records(self, topic: str, partition: int = 0) -> list[Any]:
        """The records in one partition's log, as the fake stored them."""
        return list(self._tb.call(lambda t: t.services["kafka"].records(topic, partition)))

    def journal(self, topic: str | None = None, operation: str | None = None) -> JournalView:
        return self._tb.journal.kafka(topic, operation=operation)


def _json(method: str, url: str, body: Any) -> Any:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise AdminError(method, url, exc.code, exc.read().decode(errors="replace")) from None
    return json.loads(raw) if raw else None
