"""A real kafka-python conversation with the testbed's fake Kafka, recorded once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .relay import Chunk, Relay


@pytest.fixture(scope="package")
def kafka_log() -> Iterator[list[Chunk]]:
    from kafka import KafkaProducer

    from testbed.threaded import TestbedThread

    with TestbedThread() as tb:
        host, port = tb.kafka_bootstrap.split(",")[0].rsplit(":", 1)
        relay = Relay((host, int(port)))
        producer = KafkaProducer(bootstrap_servers=relay.address, client_id="decode-test")
        producer.send("orders", b"hello").get(timeout=30)
        producer.close()
        relay.close()
    assert relay.conns and relay.conns[0]
    yield relay.conns[0]
