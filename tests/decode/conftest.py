"""A real kafka-python conversation with the testbed's fake Kafka, recorded once per module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .relay import Chunk, Relay


@pytest.fixture(scope="package")
def testbed() -> Iterator[object]:
    from testbed.threaded import TestbedThread

    with TestbedThread() as tb:
        yield tb


@pytest.fixture(scope="package")
def grpc_log(testbed: object) -> list[Chunk]:
    """grpcio's SyncClient: a unary call, then a server stream, on one h2c connection."""
    from testbed.grpc.client import SyncClient

    host, port = testbed.grpc_target.rsplit(":", 1)  # type: ignore[attr-defined]
    relay = Relay((host, int(port)))
    with SyncClient.connect(relay.address) as client:
        assert client.unary().ok
        assert client.server_stream().ok
    relay.close()
    assert relay.conns and relay.conns[0]
    return relay.conns[0]


@pytest.fixture(scope="package")
def kafka_log(testbed: object) -> Iterator[list[Chunk]]:
    from kafka import KafkaProducer

    tb: Any = testbed
    if True:
        host, port = tb.kafka_bootstrap.split(",")[0].rsplit(":", 1)
        relay = Relay((host, int(port)))
        producer = KafkaProducer(bootstrap_servers=relay.address, client_id="decode-test")
        producer.send("orders", b"hello").get(timeout=30)
        producer.close()
        relay.close()
    assert relay.conns and relay.conns[0]
    yield relay.conns[0]


@pytest.fixture(scope="package")
def http_log(testbed: object) -> list[Chunk]:
    """urllib's GET through the relay to the testbed's HTTP fakes (a 404: no stub for the path)."""
    import urllib.error
    import urllib.request

    hostport = testbed.http_url.split("//", 1)[1].split("/", 1)[0]  # type: ignore[attr-defined]
    host, port = hostport.rsplit(":", 1)
    relay = Relay((host, int(port)))
    try:
        urllib.request.urlopen(f"http://{relay.address}/nothing-here", timeout=30).read()
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
    relay.close()
    assert relay.conns and relay.conns[0]
    return relay.conns[0]
