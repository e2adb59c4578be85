"""Group facts on Kafka Exchanges: commits paired with their answers, offsets fetched,
latest offsets, members and assignments, and the ApiVersions negotiation answer."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.protocol.consumer import ConsumerProtocolAssignment

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Exchange
from protoproxy_codecs.kafka import KafkaCodec, framing, groups
from protoproxy_codecs.kafka.codec import STATUS_VERSION_NEGOTIATION


def _exchange(
    api: int, version: int, request: dict[str, Any], response: dict[str, Any]
) -> Exchange:
    codec = KafkaCodec()
    codec.feed(UPSTREAM, framing.encode_request(api, version, 1, "c", request))
    codec.feed(DOWNSTREAM, framing.encode_response(api, version, 1, response))
    (ex,) = codec.take_exchanges()
    return ex


def _commit_request(parts: dict[int, int]) -> dict[str, Any]:
    return {
        "group_id": "g",
        "generation_id_or_member_epoch": 1,
        "member_id": "m",
        "topics": [
            {
                "name": "t",
                "partitions": [
                    {"partition_index": p, "committed_offset": o} for p, o in parts.items()
                ],
            }
        ],
    }


def test_commit_counts_only_partitions_the_broker_acknowledged() -> None:
    answer = {
        "topics": [
            {
                "name": "t",
                "partitions": [
                    {"partition_index": 0, "error_code": 0},
                    {"partition_index": 1, "error_code": 25},  # UNKNOWN_MEMBER_ID
                    {"partition_index": 9, "error_code": 0},  # not in the request
                ],
            }
        ]
    }
    ex = _exchange(8, 8, _commit_request({0: 40, 1: 7, 2: 3}), answer)
    assert ex.attrs["group"] == "g"
    assert ex.attrs["commits"] == {("t", 0): 40}
    assert ex.attrs["partition_errors"] == [("t", 1, 25)]


def test_offset_fetch_one_group_and_batched() -> None:
    part = {"committed_offset": 12, "metadata": "", "error_code": 0}
    v7 = _exchange(
        9,
        7,
        {"group_id": "g", "topics": [{"name": "t", "partition_indexes": [0, 1]}]},
        {
            "topics": [
                {
                    "name": "t",
                    "partitions": [
                        {**part, "partition_index": 0},
                        {**part, "partition_index": 1, "committed_offset": -1},
                    ],
                }
            ],
            "error_code": 0,
        },
    )
    assert v7.attrs["fetched_offsets"] == [("g", "t", 0, 12), ("g", "t", 1, -1)]
    v8 = _exchange(
        9,
        8,
        {"groups": [{"group_id": "a", "topics": [{"name": "t", "partition_indexes": [0]}]}]},
        {
            "groups": [
                {
                    "group_id": "a",
                    "topics": [{"name": "t", "partitions": [{**part, "partition_index": 0}]}],
                    "error_code": 0,
                },
                {"group_id": "b", "topics": [], "error_code": 16},  # NOT_COORDINATOR
            ]
        },
    )
    assert v8.attrs["fetched_offsets"] == [("a", "t", 0, 12)]
    # a group-level error: nothing is known about that group's offsets
    failed = _exchange(
        9,
        7,
        {"group_id": "g", "topics": [{"name": "t", "partition_indexes": [0]}]},
        {"topics": [], "error_code": 16},
    )
    assert failed.attrs["fetched_offsets"] == []


def _list_offsets(timestamp: int, isolation: int = 0) -> Exchange:
    return _exchange(
        2,
        7,
        {
            "replica_id": -1,
            "isolation_level": isolation,
            "topics": [
                {"name": "t", "partitions": [{"partition_index": 0, "timestamp": timestamp}]}
            ],
        },
        {
            "topics": [
                {
                    "name": "t",
                    "partitions": [{"partition_index": 0, "error_code": 0, "offset": 100}],
                }
            ]
        },
    )


def test_list_offsets_latest_is_the_high_watermark() -> None:
    assert _list_offsets(-1).attrs["latest_offsets"] == [("t", 0, 100)]
    assert "latest_offsets" not in _list_offsets(-2).attrs  # earliest
    assert "latest_offsets" not in _list_offsets(-1, isolation=1).attrs  # last stable offset


def _assignment(parts: dict[str, list[int]], version: int = 0) -> bytes:
    tps = [
        ConsumerProtocolAssignment.TopicPartition(topic=t, partitions=p) for t, p in parts.items()
    ]
    msg = ConsumerProtocolAssignment(assigned_partitions=tps, user_data=None, version=version)
    return bytes(msg.encode(version=version))


def test_join_and_sync_name_the_member_and_its_assignment() -> None:
    join = _exchange(
        11,
        5,
        {
            "group_id": "g",
            "session_timeout_ms": 10000,
            "rebalance_timeout_ms": 10000,
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}],
        },
        {
            "error_code": 0,
            "generation_id": 3,
            "protocol_name": "range",
            "leader": "m-1",
            "member_id": "m-1",
            "members": [],
        },
    )
    assert join.attrs["group"] == "g" and join.attrs["member_id"] == "m-1"
    assert (join.attrs["generation"], join.attrs["leader"]) == (3, "m-1")
    sync = _exchange(
        14,
        3,
        {"group_id": "g", "generation_id": 3, "member_id": "m-1", "assignments": []},
        {"error_code": 0, "assignment": _assignment({"t": [0, 2], "u": [1]}, version=1)},
    )
    assert sync.attrs["assignment"] == {"t": [0, 2], "u": [1]}
    assert (sync.attrs["member_id"], sync.attrs["generation"]) == ("m-1", 3)


def test_leave_group_old_and_batched() -> None:
    v1 = _exchange(13, 1, {"group_id": "g", "member_id": "m-1"}, {"error_code": 0})
    assert v1.attrs["left"] == ["m-1"]
    v3 = _exchange(
        13,
        3,
        {"group_id": "g", "members": [{"member_id": "a"}, {"member_id": "b"}]},
        {
            "error_code": 0,
            "members": [
                {"member_id": "a", "error_code": 0},
                {"member_id": "b", "error_code": 25},
            ],
        },
    )
    assert v3.attrs["left"] == ["a"]


def test_api_versions_negotiation_is_its_own_status_not_an_error() -> None:
    """KIP-511: a v3 request answered in v0 with UNSUPPORTED_VERSION and the ranges."""
    codec = KafkaCodec()
    codec.feed(UPSTREAM, framing.encode_request(18, 3, 1, "rdkafka", {}))
    v0 = {"error_code": 35, "api_keys": [{"api_key": 18, "min_version": 0, "max_version": 2}]}
    (msg,) = codec.feed(DOWNSTREAM, framing.encode_response(18, 0, 1, v0))
    (ex,) = codec.take_exchanges()
    assert ex.status == STATUS_VERSION_NEGOTIATION
    assert ex.operation == "ApiVersions v3"
    assert "errors" not in ex.attrs and ex.attrs["version_negotiation"] is True
    assert msg.view.api_keys[0].max_version == 2  # decoded as the v0 it is


@settings(max_examples=200)
@given(st.binary(max_size=64))
def test_member_assignment_of_garbage_is_none_or_bounded(data: bytes) -> None:
    got = groups.member_assignment(data)
    assert got is None or sum(len(p) for p in got.values()) <= groups.MAX_PARTITIONS


def test_names_from_the_wire_are_bounded() -> None:
    long = "x" * 10_000
    ex = _exchange(8, 8, {**_commit_request({0: 1}), "group_id": long}, {"topics": []})
    assert len(ex.attrs["group"]) == groups.MAX_NAME
