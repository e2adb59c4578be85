"""kafka_requests / kafka_responses against kafka-python's own parser and our codec.

The deep profile draws 1,000 examples per (api_key, version) and direction
(issue 14's figure); the default CI profile a few per pair, which still
visits every pair kafka-python knows on every run.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.memory_records import MemoryRecords

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.kafka import KafkaCodec, framing, record_view, schema
from protoproxy_codecs.strategies import (
    BatchSpec,
    batch_specs,
    encode_batch,
    kafka_requests,
    kafka_responses,
)
from protoproxy_codecs.strategies.kafka import KafkaFrame, all_versions

DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
PAIRS = all_versions()
EXAMPLES = 1000 if DEEP else 3
pytestmark = pytest.mark.timeout(0 if DEEP else 300)


def _kafka_python_decodes(f: KafkaFrame, request: bool) -> None:
    cls = schema.request_class if request else schema.response_class
    got = cls(f.api_key, f.version).decode(f.frame, header=True, framed=True)
    assert got == f.value
    assert got._header.correlation_id == f.correlation_id
    if request:
        assert got._header.request_api_key == f.api_key
        assert got._header.request_api_version == f.version
        assert got._header.client_id == f.client_id


@pytest.mark.parametrize(("api_key", "version"), PAIRS, ids=[f"{k}v{v}" for k, v in PAIRS])
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_requests_decode_in_kafka_python_and_our_codec(
    api_key: int, version: int, data: st.DataObject
) -> None:
    f = data.draw(kafka_requests(api_key, version))
    assert (f.api_key, f.version) == (api_key, version)
    assert int.from_bytes(f.frame[:4], "big", signed=True) == len(f.frame) - 4
    _kafka_python_decodes(f, True)
    header, body = framing.decode_request(f.frame[4:])
    assert (header.api_key, header.api_version, header.correlation_id) == (
        api_key,
        version,
        f.correlation_id,
    )
    assert body == f.value
    (m,) = KafkaCodec().feed(UPSTREAM, f.frame)
    assert m.kind == "request"


@pytest.mark.parametrize(("api_key", "version"), PAIRS, ids=[f"{k}v{v}" for k, v in PAIRS])
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_responses_decode_in_kafka_python_and_our_codec(
    api_key: int, version: int, data: st.DataObject
) -> None:
    f = data.draw(kafka_responses(api_key, version))
    _kafka_python_decodes(f, False)
    corr, body = framing.decode_response(api_key, version, f.frame[4:])
    assert (corr, body) == (f.correlation_id, f.value)
    codec = KafkaCodec()
    pending = {"acks": 1} if api_key == 0 else {}  # acks=0 would want no response
    codec.feed(UPSTREAM, framing.encode_request(api_key, version, f.correlation_id, "c", pending))
    msgs = codec.feed(DOWNSTREAM, f.frame)
    assert [m.kind for m in msgs] == ["response"]


def _records(spec: BatchSpec) -> list[tuple]:
    return [(r.key, r.value, [(n, v) for n, v in r.headers]) for r in spec.records]


@given(batch_specs(magic=2))
def test_batches_read_back_in_kafka_python(spec: BatchSpec) -> None:
    """Every codec, control and transactional batches, headers: kafka-python's reader agrees."""
    data = encode_batch(spec)
    batches = list(MemoryRecords(data))
    assert len(batches) == 1
    batch = batches[0]
    assert batch.validate_crc()
    assert batch.compression_type == spec.compression
    assert batch.is_control_batch == (spec.control is not None)
    assert batch.is_transactional == spec.transactional
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (
        spec.producer_id,
        spec.producer_epoch,
        spec.base_sequence,
    )
    got = [(r.key, r.value, list(r.headers)) for r in batch]
    assert got == _records(spec)
    assert [r.offset for r in MemoryRecords(data).next_batch()] == [
        spec.base_offset + i for i in range(len(spec.records))
    ]


def _length(field: dict | None) -> int | None:
    return None if field is None else field["length"]


@given(batch_specs(magic=2) | batch_specs(magic=1) | batch_specs(magic=0))
def test_batches_read_back_in_our_record_view(spec: BatchSpec) -> None:
    batches = record_view.view(encode_batch(spec))["batches"]
    assert all(
        b["compression"] == ("none", "gzip", "snappy", "lz4", "zstd")[spec.compression]
        for b in batches
    )
    if spec.magic == 2:
        (batch,) = batches
        assert (batch["control"], batch["transactional"]) == (
            spec.control is not None,
            spec.transactional,
        )
    assert sum(b["record_count"] for b in batches) == len(spec.records)
    assert not any(b["truncated"] for b in batches)
    got = [
        (_length(r["key"]), _length(r["value"]), len(r["headers"]))
        for b in batches
        for r in b["records"]
    ]
    want = [
        (
            None if r.key is None else len(r.key),
            None if r.value is None else len(r.value),
            len(r.headers),
        )
        for r in spec.records
    ]
    assert got == want


@given(batch_specs(magic=1) | batch_specs(magic=0))
def test_legacy_message_sets_read_back_in_kafka_python(spec: BatchSpec) -> None:
    batches = list(MemoryRecords(encode_batch(spec)))
    got = [(r.offset, r.key, r.value) for b in batches for r in b]
    want = [(spec.base_offset + i, r.key, r.value) for i, r in enumerate(spec.records)]
    if spec.magic == 0 and spec.compression:  # v0 inner offsets are as the producer wrote them
        want = [(i, k, v) for i, (_, k, v) in enumerate(want)]
    assert got == want
    assert all(b.compression_type == spec.compression for b in batches)


def test_unknown_tagged_fields_are_drawn() -> None:
    """Flexible frames carry tags no schema knows, in the header and the body, sometimes."""
    kinds: set[str] = set()

    @settings(max_examples=100, database=None, derandomize=True)
    @given(kafka_requests("Metadata", 12))
    def collect(f: KafkaFrame) -> None:
        plain = framing.encode_request(f.api_key, f.version, f.correlation_id, f.client_id, f.value)
        header, _ = framing.decode_request(f.frame[4:])
        cid = 0 if f.client_id is None else len(f.client_id.encode())
        if header.header_size > 10 + cid + 1:
            kinds.add("header")
        if len(f.frame) - header.header_size != len(plain) - (10 + cid + 1):
            kinds.add("body")

    collect()
    assert kinds == {"header", "body"}
