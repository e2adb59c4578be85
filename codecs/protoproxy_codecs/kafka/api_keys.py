"""Kafka's API keys, in one place: the only module that may spell their numbers.

Member names are Kafka's own (``org.apache.kafka.common.protocol.ApiKeys``),
so code reads like the protocol guide; ``display_name`` gives the message name
Kafka and kafka-python use ("Produce", "ApiVersions"), which is what the
codec puts in ``info["api"]`` and Exchange operations.

The members are exactly the APIs kafka-python ships schemas for (a test holds
the two together): a key it has no schema for could not be decoded anyway,
and stays a plain int (``schema.api_name`` calls it ``Unknown(n)``).

An IntEnum member *is* an int, so members compare equal to the ints read off
the wire and hash like them, and dicts keyed by members answer plain ints.
Hot paths still bind ``int(ApiKey.X)`` to module constants: on CPython 3.11,
``ApiKey.X`` costs an enum attribute lookup (~50 ns) and comparing a plain
int with a member a few ns more than with an int.
"""

from __future__ import annotations

import enum


class ApiKey(enum.IntEnum):
    """A Kafka request type, numbered as on the wire (the header's api_key)."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    WRITE_TXN_MARKERS = 27
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    ALTER_REPLICA_LOG_DIRS = 34
    DESCRIBE_LOG_DIRS = 35
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    ELECT_LEADERS = 43
    INCREMENTAL_ALTER_CONFIGS = 44
    ALTER_PARTITION_REASSIGNMENTS = 45
    LIST_PARTITION_REASSIGNMENTS = 46
    OFFSET_DELETE = 47
    DESCRIBE_CLIENT_QUOTAS = 48
    ALTER_CLIENT_QUOTAS = 49
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    DESCRIBE_QUORUM = 55
    UPDATE_FEATURES = 57
    DESCRIBE_CLUSTER = 60
    DESCRIBE_PRODUCERS = 61
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66
    LIST_CONFIG_RESOURCES = 74
    DESCRIBE_TOPIC_PARTITIONS = 75

    @property
    def display_name(self) -> str:
        """Kafka's message name without Request/Response: INIT_PRODUCER_ID -> 'InitProducerId'."""
        return "".join(part.capitalize() for part in self.name.split("_"))
