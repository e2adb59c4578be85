"""Address rewriting: only hosts and ports change, at the same version and header."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.kafka import KafkaCodec, framing, rewrite, schema
from protoproxy_codecs.strategies.kafka import message_values

CASES = [
    (key, version)
    for key in (3, 10, 60, 0, 1)
    for version in range(schema.tables().max_version[key] + 1)
]
_EXAMPLES = max(4, settings().max_examples // 6)


def mapper(node_id: int, host: str, port: int) -> tuple[str, int]:
    return f"b{node_id}.proxy.test", 20000 + node_id % 1000


def _endpoints(key: int, version: int, body) -> list:
    """The objects carrying host/port, found independently of rewrite.py."""
    if key == 10 and version < 4:
        return [body] if body.node_id >= 0 else []
    if key == 10:
        return [c for c in body.coordinators or () if c.node_id >= 0]
    if key in (3, 60):
        return list(body.brokers or ())
    return list(body.node_endpoints or ())


def _node(key: int, ep) -> int:
    return ep.broker_id if key == 60 else ep.node_id


def _through_codec(key: int, version: int, response: bytes):
    codec = KafkaCodec()
    pending = {"acks": 1} if key == 0 else {}
    codec.feed(UPSTREAM, framing.encode_request(key, version, 5, "c", pending))
    (msg,) = codec.feed(DOWNSTREAM, response)
    return msg


@pytest.mark.parametrize(("key", "version"), CASES, ids=[f"{k}v{v}" for k, v in CASES])
@settings(max_examples=_EXAMPLES)
@given(data=st.data())
def test_rewrite_changes_only_addresses(key: int, version: int, data: st.DataObject) -> None:
    body = data.draw(message_values(key, version, False))
    original = framing.encode_response(key, version, 5, body)
    msg = _through_codec(key, version, original)
    result = rewrite.rewrite_response(msg, mapper)

    expected = framing.decode_response(key, version, original[4:])[1]
    changed = 0
    for ep in _endpoints(key, version, expected):
        host, port = mapper(_node(key, ep), ep.host, ep.port)
        changed += (host, port) != (ep.host, ep.port)
        ep.host, ep.port = host, port
    if not changed:
        assert result is None
        return
    assert result is not None and result.changed == changed
    frame = result.frame
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    _, body_at = framing.parse_response_header(original, 4, len(original), key, version)
    assert frame[4:body_at] == original[4:body_at]  # header kept byte for byte
    corr, got = framing.decode_response(key, version, frame[4:])
    assert corr == 5 and got == expected
    # The message's own view is untouched by rewriting.
    assert msg.view == framing.decode_response(key, version, original[4:])[1]


def test_identity_mapper_gives_none() -> None:
    resp = framing.encode_response(
        3, 12, 5, {"brokers": [{"node_id": 1, "host": "h", "port": 9092}], "topics": []}
    )
    msg = _through_codec(3, 12, resp)
    assert rewrite.rewrite_response(msg, lambda n, h, p: (h, p)) is None


def test_non_routing_response_gives_none() -> None:
    resp = framing.encode_response(18, 3, 5, {"api_keys": []})
    msg = _through_codec(18, 3, resp)
    assert rewrite.rewrite_response(msg, mapper) is None
    assert rewrite.routing(msg) is None


def test_routing_from_metadata() -> None:
    resp = framing.encode_response(
        3,
        12,
        5,
        {
            "brokers": [
                {"node_id": 1, "host": "a", "port": 1, "rack": "r1"},
                {"node_id": 2, "host": "b", "port": 2},
            ],
            "cluster_id": "cid",
            "controller_id": 2,
            "topics": [
                {
                    "name": "orders",
                    "partitions": [
                        {"partition_index": 0, "leader_id": 1},
                        {"partition_index": 1, "leader_id": 2},
                    ],
                }
            ],
        },
    )
    r = rewrite.routing(_through_codec(3, 12, resp))
    assert r.brokers == [rewrite.Broker(1, "a", 1, "r1"), rewrite.Broker(2, "b", 2, None)]
    assert r.leaders == {"orders": {0: 1, 1: 2}}
    assert (r.controller_id, r.cluster_id) == (2, "cid")


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_routing_find_coordinator_single_uses_request_key(version: int) -> None:
    codec = KafkaCodec()
    codec.feed(UPSTREAM, framing.encode_request(10, version, 5, "c", {"key": "group-a"}))
    resp = framing.encode_response(10, version, 5, {"node_id": 3, "host": "c", "port": 3})
    (msg,) = codec.feed(DOWNSTREAM, resp)
    r = rewrite.routing(msg)
    assert r.coordinators == {"group-a": 3} and r.brokers == [rewrite.Broker(3, "c", 3)]


def test_routing_find_coordinator_batched() -> None:
    codec = KafkaCodec()
    codec.feed(UPSTREAM, framing.encode_request(10, 4, 5, "c", {"coordinator_keys": ["g1", "g2"]}))
    resp = framing.encode_response(
        10,
        4,
        5,
        {
            "coordinators": [
                {"key": "g1", "node_id": 1, "host": "a", "port": 1},
                {"key": "g2", "node_id": -1, "host": "", "port": -1, "error_code": 15},
            ]
        },
    )
    (msg,) = codec.feed(DOWNSTREAM, resp)
    r = rewrite.routing(msg)
    assert r.coordinators == {"g1": 1}
    assert msg.info["status"] == "COORDINATOR_NOT_AVAILABLE"
    # The errored coordinator (node -1) is not rewritten.
    out = rewrite.rewrite_response(msg, mapper)
    new = framing.decode_response(10, 4, out.frame[4:])[1]
    assert [(c.host, c.port) for c in new.coordinators] == [("b1.proxy.test", 20001), ("", -1)]


def test_routing_describe_cluster() -> None:
    resp = framing.encode_response(
        60, 1, 5, {"brokers": [{"broker_id": 4, "host": "d", "port": 4}], "controller_id": 4}
    )
    r = rewrite.routing(_through_codec(60, 1, resp))
    assert r.brokers == [rewrite.Broker(4, "d", 4)] and r.controller_id == 4
