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

SUPPORTED: dict[int, tuple[int, int]] = {
    0: (3, 9),  # Produce
    1: (4, 12),  # Fetch
    2: (1, 7),  # ListOffsets
    3: (0, 12),  # Metadata
    8: (2, 8),  # OffsetCommit
    9: (1, 7),  # OffsetFetch
    10: (0, 4),  # FindCoordinator
    11: (0, 7),  # JoinGroup
    12: (0, 4),  # Heartbeat
    13: (0, 4),  # LeaveGroup
    14: (0, 5),  # SyncGroup
    15: (0, 5),  # DescribeGroups
    16: (0, 4),  # ListGroups
    18: (0, 3),  # ApiVersions
    19: (2, 7),  # CreateTopics
    20: (1, 5),  # DeleteTopics
    22: (0, 4),  # InitProducerId
    23: (2, 4),  # OffsetForLeaderEpoch
    32: (1, 4),  # DescribeConfigs
    60: (0, 1),  # DescribeCluster
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
