"""Real clients' bytes through the codec: librdkafka (confluent-kafka) and kafka-python.

The mini broker answers with ``KafkaCodec.respond``, so both the decode side
(requests from real clients) and the encode side (responses real clients must
accept) are exercised, SASL included: SaslHandshake v1 + SaslAuthenticate, and
the legacy v0 raw-token exchange that clients fall back to when the broker
does not advertise SaslAuthenticate.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from protoproxy_codecs.base import Sniff
from protoproxy_codecs.kafka import KafkaCodec, SecretView

from .minibroker import DEFAULT_APIS, MiniBroker

confluent_kafka = pytest.importorskip("confluent_kafka")

PASSWORD = "s3cr3t-pw"


def _produce_librdkafka(bootstrap: str, n: int, extra: dict[str, Any], pad: int = 0) -> int:
    p = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "acks": "all",
            "enable.idempotence": False,
            "socket.timeout.ms": 10000,
            "message.timeout.ms": 15000,
            **extra,
        }
    )
    errors: list[Any] = []
    for i in range(n):
        p.produce(
            "orders", value=b"v%d" % i, key=b"k", on_delivery=lambda e, m: e and errors.append(e)
        )
    left = p.flush(20)
    assert not errors and left == 0, (errors, left)
    return n


def _produce_kafka_python(bootstrap: str, n: int, extra: dict[str, Any]) -> int:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **extra)
    futures = [p.send("orders", value=b"v%d" % i) for i in range(n)]
    p.flush(20)
    for f in futures:
        f.get(timeout=5)
    p.close(5)
    return n


def _check(broker: MiniBroker, sent: int) -> None:
    first = broker.messages[0]
    assert first.info["api"] == "ApiVersions" and KafkaCodec.sniff(first.raw[:64]) is Sniff.YES
    produces = [m for m in broker.messages if m.kind == "request" and m.info["api"] == "Produce"]
    assert produces, [m.info for m in broker.messages]
    assert sum(m.info["record_count"] for m in produces) == sent
    assert all(m.info["topics"] == ["orders"] for m in produces)
    assert all(m.view is not None for m in broker.messages if m.kind == "request")
    statuses = {e.operation.split()[0]: e.status for e in broker.exchanges}
    assert statuses.get("Produce") == "NONE" and statuses.get("Metadata") == "NONE"
    assert not any(sum(c.undecodable.values()) for c in broker.codecs)


def _no_secret_seen(broker: MiniBroker) -> None:
    for m in broker.messages:
        if m.info.get("secret"):
            assert isinstance(m.view, SecretView)
        assert PASSWORD not in repr(m.info) and PASSWORD not in repr(m.view)
    for e in broker.exchanges:
        assert PASSWORD not in repr(e)


async def test_real_producer_aiokafka() -> None:
    aiokafka = pytest.importorskip("aiokafka")
    async with MiniBroker() as broker:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await asyncio.wait_for(producer.start(), 30)
        try:
            for i in range(30):
                await asyncio.wait_for(producer.send_and_wait("orders", b"v%d" % i), 10)
        finally:
            await producer.stop()
    _check(broker, 30)


@pytest.mark.parametrize("client", ["librdkafka", "kafka-python"])
async def test_real_producer(client: str) -> None:
    produce = _produce_librdkafka if client == "librdkafka" else _produce_kafka_python
    async with MiniBroker() as broker:
        sent = await asyncio.wait_for(asyncio.to_thread(produce, broker.bootstrap, 50, {}), 60)
    _check(broker, sent)


_SASL = {
    "librdkafka": {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "alice",
        "sasl.password": PASSWORD,
    },
    "kafka-python": {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "alice",
        "sasl_plain_password": PASSWORD,
    },
}


@pytest.mark.parametrize("client", ["librdkafka", "kafka-python"])
@pytest.mark.parametrize("legacy", [False, True], ids=["authenticate", "raw-tokens"])
async def test_real_producer_sasl_plain(client: str, legacy: bool) -> None:
    apis = dict(DEFAULT_APIS)
    if legacy:  # no SaslAuthenticate: clients send bare tokens after SaslHandshake v0
        del apis[36]
        apis[17] = (0, 0)
    produce = _produce_librdkafka if client == "librdkafka" else _produce_kafka_python
    async with MiniBroker(apis=apis, users={"alice": PASSWORD}) as broker:
        sent = await asyncio.wait_for(
            asyncio.to_thread(produce, broker.bootstrap, 20, _SASL[client]), 60
        )
    _check(broker, sent)
    _no_secret_seen(broker)
    kinds = {m.kind for m in broker.messages if m.info.get("secret")}
    assert kinds == ({"sasl_token"} if legacy else {"request"})
    handshakes = [m for m in broker.messages if m.info.get("api") == "SaslHandshake"]
    assert handshakes and all(m.info["sasl_mechanism"] == "PLAIN" for m in handshakes)


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
async def test_librdkafka_compressed_batches_are_counted(compression: str) -> None:
    """Record counts come from batch headers; nothing is decompressed."""
    from protoproxy_codecs.kafka import records

    extra = {"compression.type": compression, "batch.num.messages": 25}
    async with MiniBroker() as broker:
        sent = await asyncio.wait_for(
            # Compressible values: librdkafka sends a batch plain if compressing does not pay.
            asyncio.to_thread(_produce_librdkafka, broker.bootstrap, 100, extra, 300),
            60,
        )
    _check(broker, sent)
    codecs_seen = set()
    for m in broker.messages:
        if m.info.get("api") == "Produce":
            for topic in m.view.topic_data:
                for part in topic.partition_data:
                    codecs_seen |= {b.compression_name for b in records.batches(part.records)}
    assert codecs_seen == {compression}


def _consume_librdkafka(bootstrap: str, n: int) -> list[bytes]:
    c = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "codec-test",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    c.assign([confluent_kafka.TopicPartition("orders", 0, 0)])
    got: list[bytes] = []
    deadline = 200
    while len(got) < n and deadline:
        deadline -= 1
        m = c.poll(0.1)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    return got


async def test_librdkafka_consumer_fetches_what_was_produced() -> None:
    """Fetch responses built by respond() satisfy librdkafka; their records are counted."""
    async with MiniBroker() as broker:
        await asyncio.to_thread(_produce_librdkafka, broker.bootstrap, 40, {})
        got = await asyncio.wait_for(
            asyncio.to_thread(_consume_librdkafka, broker.bootstrap, 40), 60
        )
    assert got == [b"v%d" % i for i in range(40)]
    fetched = sum(
        e.attrs.get("record_count", 0) for e in broker.exchanges if e.operation.startswith("Fetch")
    )
    assert fetched >= 40
    assert all(
        e.attrs["records"].keys() <= {"orders"}
        for e in broker.exchanges
        if e.operation.startswith("Fetch")
    )
