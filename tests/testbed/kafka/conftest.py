"""Fixtures for the fake Kafka cluster tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from testbed.kafka import FakeKafkaCluster


@pytest.fixture
async def cluster() -> AsyncIterator[FakeKafkaCluster]:
    async with FakeKafkaCluster(brokers=3, seed=7) as c:
        yield c
