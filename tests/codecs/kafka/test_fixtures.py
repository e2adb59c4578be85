"""Recorded librdkafka traffic decodes the same through every path we have."""

from __future__ import annotations

from pathlib import Path

import pytest

from protoproxy_codecs.base import UPSTREAM
from protoproxy_codecs.kafka import KafkaCodec, framing, records

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "kafka"


@pytest.mark.parametrize(
    ("name", "magic", "total"),
    [("librdkafka-produce.bin", 2, 2000), ("librdkafka-produce-msgv0.bin", 0, 200)],
)
def test_librdkafka_produce_capture(name: str, magic: int, total: int) -> None:
    blob = (FIXTURES / name).read_bytes()
    codec = KafkaCodec()
    messages = codec.feed(UPSTREAM, blob)
    assert b"".join(m.raw for m in messages) == blob
    assert sum(m.info["record_count"] for m in messages) == total
    assert {m.info["client_id"] for m in messages} == {"rdkafka"}
    for m in messages:
        header, body = framing.decode_request(m.raw[4:])
        assert (header.api_key, header.api_version) == (0, 9)
        assert body == m.view
        data = body.topic_data[0].partition_data[0].records
        batches = records.batches(data)
        assert {b.magic for b in batches} == {magic}
        assert sum(b.record_count for b in batches) == m.info["record_count"]
        assert records.summarize(data).legacy == (magic < 2)
