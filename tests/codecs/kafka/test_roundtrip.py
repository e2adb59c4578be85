"""Encode -> decode -> equal, for every (api_key, version) kafka-python knows.

Runs through our own framing (header split by hand, body via the generated
decoders), in both directions, so a header or offset mistake shows up here.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protoproxy_codecs.kafka import framing, scanner, schema, summary
from protoproxy_codecs.strategies.kafka import all_versions, message_values

VERSIONS = all_versions()
# Many small cases: a slice of the profile's budget each (deep runs get more).
_EXAMPLES = max(4, settings().max_examples // 12)


@pytest.mark.parametrize(("api_key", "version"), VERSIONS, ids=[f"{k}v{v}" for k, v in VERSIONS])
@settings(max_examples=_EXAMPLES)
@given(data=st.data())
def test_request_roundtrip(api_key: int, version: int, data: st.DataObject) -> None:
    body = data.draw(message_values(api_key, version, True))
    corr = data.draw(st.integers(-(2**31), 2**31 - 1))
    client_id = data.draw(st.one_of(st.none(), st.text(max_size=8)))
    frame = framing.encode_request(api_key, version, corr, client_id, body)
    header, decoded = framing.decode_request(frame[4:])
    assert (header.api_key, header.api_version, header.correlation_id) == (api_key, version, corr)
    assert header.client_id == client_id
    assert decoded == body
    # Re-encoding what we decoded gives the same bytes: nothing is lost.
    assert framing.encode_request(api_key, version, corr, client_id, decoded) == frame
    _scanner_agrees(api_key, version, True, frame, 4 + header.header_size, decoded)


@pytest.mark.parametrize(("api_key", "version"), VERSIONS, ids=[f"{k}v{v}" for k, v in VERSIONS])
@settings(max_examples=_EXAMPLES)
@given(data=st.data())
def test_response_roundtrip(api_key: int, version: int, data: st.DataObject) -> None:
    body = data.draw(message_values(api_key, version, False))
    corr = data.draw(st.integers(-(2**31), 2**31 - 1))
    frame = framing.encode_response(api_key, version, corr, body)
    got_corr, decoded = framing.decode_response(api_key, version, frame[4:])
    assert got_corr == corr
    assert decoded == body
    assert framing.encode_response(api_key, version, corr, decoded) == frame
    _, body_at = framing.parse_response_header(frame, 4, len(frame), api_key, version)
    _scanner_agrees(api_key, version, False, frame, body_at, decoded)


def _scanner_agrees(api_key: int, version: int, request: bool, frame: bytes, at: int, body):
    """The hot-path scanner accepts the body and sees what kafka-python decoded."""
    facts = summary.digest(scanner.scan(api_key, version, request, memoryview(frame), at))
    if not request:
        assert facts.errors == summary.error_codes(api_key, version, body)
        assert facts.throttle_ms == (getattr(body, "throttle_time_ms", None) or 0)
        partitions = _partitions(api_key, body)
        if partitions is not None:
            want = [(t, p, code) for t, p, code, _ in partitions if code]
            assert (facts.partition_errors or []) == want
        if api_key == 1:
            marks = [(t, p, hw) for t, p, _, hw in partitions or () if hw >= 0]
            assert (facts.watermarks or []) == marks
    if api_key == 0 and not request:
        # the partitions whose records were not acknowledged, as decoded
        failed = {
            (summary._topic_key(getattr(t, "name", None), getattr(t, "topic_id", None)), p.index)
            for t in body.responses or ()
            for p in t.partition_responses or ()
            if p.error_code
        }
        assert (facts.failed or set()) == failed
    if api_key == 0 and request:
        assert facts.acks == body.acks
        assert facts.transactional_id == (body.transactional_id if version >= 3 else None)
        expected = summary.produce_request(body)
    elif api_key == 1 and not request:
        expected = summary.fetch_response(body)
    else:
        return
    got = facts.tally or summary.RecordsTally()
    assert (got.topics, got.by_partition) == (expected.topics, expected.by_partition)


def _partitions(api_key: int, body) -> list[tuple[str, int, int, int]] | None:
    """(topic, partition, error code, high watermark or -1) as decoded, in wire order,
    for the responses whose errors the scanner tells per partition."""

    def key(t, name: str = "name") -> str:
        return summary._topic_key(getattr(t, name, None), getattr(t, "topic_id", None))

    def rows(topics, name: str, parts: str, index: str):
        return [
            (key(t, name), getattr(p, index), p.error_code, getattr(p, "high_watermark", -1))
            for t in topics or ()
            for p in getattr(t, parts) or ()
        ]

    if api_key == 0:
        return rows(body.responses, "name", "partition_responses", "index")
    if api_key == 1:
        return rows(body.responses, "topic", "partitions", "partition_index")
    if api_key in (2, 8):
        return rows(body.topics, "name", "partitions", "partition_index")
    if api_key == 9:
        out = rows(body.topics, "name", "partitions", "partition_index")
        for g in getattr(body, "groups", None) or ():
            out += rows(g.topics, "name", "partitions", "partition_index")
        return out
    if api_key == 23:
        return rows(body.topics, "topic", "partitions", "partition")
    return None


def test_every_known_api_is_covered() -> None:
    keys = {k for k, _ in VERSIONS}
    assert keys == set(schema.known_apis())
    assert len(VERSIONS) > 200
