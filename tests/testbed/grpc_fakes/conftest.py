"""Fixtures: the shop project (fixtures/grpc_fakes/shop) faked behind the proxy,
and a grpcio client for its Catalog built from the same .proto, as a user's
own client would be (no generated code in the repository)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from testbed.grpc_fakes.schema import Schema, from_protos
from testbed.threaded import TestbedThread

SHOP = Path(__file__).resolve().parents[3] / "fixtures" / "grpc_fakes" / "shop"
SHOP_PROTO = SHOP / "protos" / "shop" / "v1" / "shop.proto"
#: Seconds for any one call: generous for a loaded machine, a hang still ends.
TIMEOUT = 30.0


@pytest.fixture(scope="session")
def shop_schema() -> Schema:
    return from_protos([SHOP_PROTO], [SHOP / "protos"])


def shop_service(**overrides: Any) -> dict[str, Any]:
    """The scenario entry of the shop fake, with absolute paths (for dict scenarios)."""
    entry: dict[str, Any] = {
        "name": "shop",
        "protos": [str(SHOP_PROTO)],
        "import_paths": [str(SHOP / "protos")],
        "stubs": [str(SHOP / "stubs")],
    }
    entry.update(overrides)
    return entry


def only_grpc(*services: dict[str, Any], **grpc_keys: Any) -> dict[str, Any]:
    """A scenario of just these gRPC fakes: no Kafka, HTTP or echo to start."""
    return {
        "grpc": {"services": list(services), **grpc_keys},
        "kafka": {"enabled": False},
        "http": {"enabled": False},
        "echo": {"enabled": False},
    }


@dataclass
class Catalog:
    """A blocking client of shop.v1.Catalog on `channel`."""

    schema: Schema
    channel: grpc.Channel

    def cls(self, method: str, which: str = "input") -> type[Message]:
        m = self.schema.methods[f"shop.v1.Catalog/{method}"]
        return m.input if which == "input" else m.output

    def _callable(self, method: str, kind: str) -> Any:
        m = self.schema.methods[f"shop.v1.Catalog/{method}"]
        factory = getattr(self.channel, kind)
        return factory(
            f"/shop.v1.Catalog/{method}",
            request_serializer=m.input.SerializeToString,
            response_deserializer=m.output.FromString,
        )

    def get_item(self, metadata: tuple[tuple[str, str], ...] = (), **fields: Any) -> Any:
        """(response, call) of GetItem."""
        f = self._callable("GetItem", "unary_unary")
        return f.with_call(self.cls("GetItem")(**fields), timeout=TIMEOUT, metadata=metadata)

    def list_items(self, **fields: Any) -> list[Any]:
        f = self._callable("ListItems", "unary_stream")
        return list(f(self.cls("ListItems")(**fields), timeout=TIMEOUT))

    def record_prices(self, updates: list[dict[str, Any]]) -> Any:
        f = self._callable("RecordPrices", "stream_unary")
        cls = self.cls("RecordPrices")
        return f(iter([cls(**u) for u in updates]), timeout=TIMEOUT)

    def chat(self, texts: list[str]) -> list[str]:
        f = self._callable("Chat", "stream_stream")
        cls = self.cls("Chat")
        return [m.text for m in f(iter([cls(text=t) for t in texts]), timeout=TIMEOUT)]


@pytest.fixture(scope="module")
def shop_testbed() -> Iterator[TestbedThread]:
    """The shop's own scenario file, ports made ephemeral; shared by a module's
    tests, which leave its stubs as they found them."""
    with TestbedThread(SHOP / "scenario.yaml") as tb:
        yield tb


@pytest.fixture
def shop(shop_testbed: TestbedThread) -> TestbedThread:
    """The shared shop testbed with an empty journal."""
    shop_testbed.journal.clear()
    return shop_testbed


@pytest.fixture
def catalog(shop: TestbedThread, shop_schema: Schema) -> Iterator[Catalog]:
    """A client of the shop fake through the proxy's `shop` listener."""
    with grpc.insecure_channel(shop.address("shop")) as channel:
        yield Catalog(shop_schema, channel)
