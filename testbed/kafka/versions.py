"""The API versions the fake broker advertises, and therefore implements.

Ranges are those of a Kafka 3.0 broker, clipped below at the lowest version
kafka-python's schemas describe (Kafka 4 removed the oldest versions) and
clipped above where a newer version would need a feature the fake lacks
(topic ids in Fetch v13+ / Produce v13, KIP-848 fields in OffsetCommit v9+,
batched groups in OffsetFetch v8+). With ListOffsets v7 as the top, kafka-python
infers "broker 3.0"; aiokafka, librdkafka and kcat pick their own maxima inside
these ranges (aiokafka needs the v0/v1 group APIs, hence the low minimums).
"""

from __future__ import annotations

from collections.abc import Mapping

from protoproxy_codecs.kafka.api_keys import ApiKey

SUPPORTED: dict[int, tuple[int, int]] = {
    ApiKey.PRODUCE: (3, 9),
    ApiKey.FETCH: (4, 12),
    ApiKey.LIST_OFFSETS: (1, 7),
    ApiKey.METADATA: (0, 12),
    ApiKey.OFFSET_COMMIT: (2, 8),
    ApiKey.OFFSET_FETCH: (1, 7),
    ApiKey.FIND_COORDINATOR: (0, 4),
    ApiKey.JOIN_GROUP: (0, 7),
    ApiKey.HEARTBEAT: (0, 4),
    ApiKey.LEAVE_GROUP: (0, 4),
    ApiKey.SYNC_GROUP: (0, 5),
    ApiKey.DESCRIBE_GROUPS: (0, 5),
    ApiKey.LIST_GROUPS: (0, 4),
    ApiKey.API_VERSIONS: (0, 3),
    ApiKey.CREATE_TOPICS: (2, 7),
    ApiKey.DELETE_TOPICS: (1, 5),
    ApiKey.INIT_PRODUCER_ID: (0, 4),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: (2, 4),
    ApiKey.DESCRIBE_CONFIGS: (1, 4),
    ApiKey.DESCRIBE_CLUSTER: (0, 1),
    ApiKey.SASL_HANDSHAKE: (0, 1),
    ApiKey.SASL_AUTHENTICATE: (0, 2),
    ApiKey.DELETE_RECORDS: (0, 2),
    ApiKey.DESCRIBE_PRODUCERS: (0, 0),
}


def narrowed(overrides: Mapping[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """SUPPORTED with some ranges narrowed (an older broker's); never widened."""
    out = dict(SUPPORTED)
    for key, (lo, hi) in overrides.items():
        base = SUPPORTED.get(key)
        if base is None or not base[0] <= lo <= hi <= base[1]:
            raise ValueError(f"api {key}: {lo}-{hi} is not inside the fake's range {base}")
        out[key] = (lo, hi)
    return out
