"""Fixtures for Kafka through the proxy: a rig (fake cluster + proxy) with capture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .capture import RewriteCapture
from .rig import KafkaRig


@pytest.fixture
def rig() -> Iterator[KafkaRig]:
    with KafkaRig(brokers=3) as r:
        yield r


@pytest.fixture
def capture(rig: KafkaRig) -> RewriteCapture:
    cap = RewriteCapture()
    assert rig.app is not None
    proxy = rig.app.proxy
    rig.run(lambda: proxy.codec_observers.append(cap.observe))
    return cap
