"""Brokers behind TLS (for tests of the proxy originating TLS upstream)."""

from __future__ import annotations

import asyncio
import ssl

import trustme

from testbed.kafka import FakeKafkaCluster


async def test_tls_listeners_serve_a_tls_client():
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with FakeKafkaCluster(brokers=2, seed=4, ssl=server_ctx) as cluster:
        cluster.create_topic("tls", 2)
        common = {
            "bootstrap_servers": cluster.bootstrap,
            "security_protocol": "SSL",
            "ssl_context": client_ctx,
        }
        producer = AIOKafkaProducer(**common)
        await producer.start()
        try:
            for i in range(20):
                await producer.send_and_wait("tls", b"%d" % i, partition=i % 2)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("tls", auto_offset_reset="earliest", **common)
        await consumer.start()
        got = []
        try:
            async with asyncio.timeout(20):
                while len(got) < 20:
                    for records in (await consumer.getmany(timeout_ms=200)).values():
                        got.extend(r.value for r in records)
        finally:
            await consumer.stop()
        assert sorted(got, key=int) == [b"%d" % i for i in range(20)]
