"""Consumer-group facts from the small control APIs, read from kafka-python bodies.

OffsetCommit, OffsetFetch, ListOffsets, JoinGroup, SyncGroup and LeaveGroup
bodies are small and rare next to Produce and Fetch, so the codec decodes them
with kafka-python's schema classes (after the scanner has validated them and
counted their tagged sections) and these functions pull out what group lag and
``/kafka/groups`` need, as plain tuples and dicts. Every count taken from the
wire is bounded here, before the runtime sees it.

A request's facts are kept with the pending request; the response's facts are
paired with them (`committed`, `latest_offsets`), because a commit is only a
commit once the broker said so for that partition.
"""

from __future__ import annotations

import struct
from typing import Any

from . import summary
from .api_keys import ApiKey

#: The APIs whose bodies the codec decodes eagerly for group facts.
APIS = frozenset(
    (
        ApiKey.LIST_OFFSETS,
        ApiKey.OFFSET_COMMIT,
        ApiKey.OFFSET_FETCH,
        ApiKey.JOIN_GROUP,
        ApiKey.LEAVE_GROUP,
        ApiKey.SYNC_GROUP,
    )
)

#: Larger bodies of those APIs are not decoded eagerly (their facts are skipped).
MAX_BODY = 1 << 20
#: Partitions taken from one body, one assignment, or one OffsetFetch answer.
MAX_PARTITIONS = 10_000
#: Members named in one LeaveGroup request.
MAX_MEMBERS = 1000
#: Longest group id, member id or topic name kept (longer ones are truncated).
MAX_NAME = 255

LATEST_TIMESTAMP = -1  # ListOffsets: "the offset of the next record", the high watermark
READ_UNCOMMITTED = 0

TopicPartition = tuple[str, int]


def name(value: str | None) -> str:
    """A group/member id or topic from the wire, bounded."""
    if not value:
        return ""
    return value if len(value) <= MAX_NAME else value[:MAX_NAME]


def _topic(t: Any) -> str:
    return name(summary._topic_key(getattr(t, "name", None), getattr(t, "topic_id", None)))


# --------------------------------------------------------------------- requests


def request_facts(api_key: int, body: Any) -> dict[str, Any] | None:
    """What the pending request must remember for its response, or None."""
    if api_key == ApiKey.OFFSET_COMMIT:
        offsets: dict[TopicPartition, int] = {}
        for t in body.topics or ():
            topic = _topic(t)
            for p in t.partitions or ():
                if len(offsets) >= MAX_PARTITIONS:
                    break
                offsets[(topic, p.partition_index)] = p.committed_offset
        return {"group": name(body.group_id), "offsets": offsets}
    if api_key == ApiKey.OFFSET_FETCH:
        return {"group": name(getattr(body, "group_id", None))}  # v8+: groups in the answer
    if api_key == ApiKey.LIST_OFFSETS:
        if (getattr(body, "isolation_level", 0) or 0) != READ_UNCOMMITTED:
            return None  # read_committed answers the last stable offset, not the HW
        latest: set[TopicPartition] = set()
        for t in body.topics or ():
            topic = _topic(t)
            for p in t.partitions or ():
                if p.timestamp == LATEST_TIMESTAMP and len(latest) < MAX_PARTITIONS:
                    latest.add((topic, p.partition_index))
        return {"latest": latest} if latest else None
    if api_key == ApiKey.JOIN_GROUP:
        return {
            "group": name(body.group_id),
            "protocol_type": name(body.protocol_type),
            "group_instance_id": name(getattr(body, "group_instance_id", None)) or None,
        }
    if api_key == ApiKey.SYNC_GROUP:
        return {
            "group": name(body.group_id),
            "member_id": name(body.member_id),
            "generation": body.generation_id,
            "protocol_type": name(getattr(body, "protocol_type", None)) or None,
        }
    if api_key == ApiKey.LEAVE_GROUP:
        # v0-2 name the one member leaving; v3+ a batch of members (member_id is "")
        if body.member_id:
            return {"group": name(body.group_id), "leaving": [name(body.member_id)]}
        ids = [name(m.member_id) for m in (body.members or ())[:MAX_MEMBERS]]
        return {"group": name(body.group_id), "leaving": ids, "batch": True}
    return None


# --------------------------------------------------------------------- responses


def response_facts(api_key: int, request: dict[str, Any], body: Any) -> dict[str, Any]:
    """Exchange attrs from a response paired with its request's facts."""
    if api_key == ApiKey.OFFSET_COMMIT:
        return {"group": request["group"], "commits": committed(request["offsets"], body)}
    if api_key == ApiKey.OFFSET_FETCH:
        return {"fetched_offsets": fetched_offsets(request.get("group", ""), body)}
    if api_key == ApiKey.LIST_OFFSETS:
        return {"latest_offsets": latest_offsets(request["latest"], body)}
    if body.error_code:
        return {}
    if api_key == ApiKey.JOIN_GROUP:
        return {
            "group": request["group"],
            "member_id": name(body.member_id),
            "generation": body.generation_id,
            "leader": name(body.leader),
            "protocol_type": request["protocol_type"],
            "protocol_name": name(body.protocol_name),
            "group_instance_id": request["group_instance_id"],
        }
    if api_key == ApiKey.SYNC_GROUP:
        out = {
            "group": request["group"],
            "member_id": request["member_id"],
            "generation": request["generation"],
        }
        protocol = request["protocol_type"] or name(getattr(body, "protocol_type", None))
        if protocol in ("", "consumer"):  # older versions do not say; try
            assignment = member_assignment(body.assignment)
            if assignment is not None:
                out["assignment"] = assignment
        return out
    if api_key == ApiKey.LEAVE_GROUP:
        if request.get("batch"):  # v3+: one error code per member
            members = body.members or ()
            gone = [name(m.member_id) for m in members[:MAX_MEMBERS] if not m.error_code]
        else:
            gone = request["leaving"]
        return {"group": request["group"], "left": gone}
    return {}


def committed(offsets: dict[TopicPartition, int], body: Any) -> dict[TopicPartition, int]:
    """The request's offsets for the partitions the response says were committed."""
    out: dict[TopicPartition, int] = {}
    for t in body.topics or ():
        topic = _topic(t)
        for p in t.partitions or ():
            key = (topic, p.partition_index)
            if not p.error_code and key in offsets:
                out[key] = offsets[key]
    return out


def fetched_offsets(group: str, body: Any) -> list[tuple[str, str, int, int]]:
    """(group, topic, partition, committed offset) answered without error; -1 = none."""
    out: list[tuple[str, str, int, int]] = []
    groups = getattr(body, "groups", None)
    if groups:  # v8+
        for g in groups:
            if not g.error_code:
                _offsets(name(g.group_id), g.topics, out)
        return out
    if not getattr(body, "error_code", 0):
        _offsets(group, body.topics, out)
    return out


def _offsets(group: str, topics: Any, out: list[tuple[str, str, int, int]]) -> None:
    for t in topics or ():
        topic = _topic(t)
        for p in t.partitions or ():
            if len(out) >= MAX_PARTITIONS:
                return
            if not p.error_code:
                out.append((group, topic, p.partition_index, p.committed_offset))


def latest_offsets(latest: set[TopicPartition], body: Any) -> list[tuple[str, int, int]]:
    """(topic, partition, high watermark) for the LATEST lookups answered without error."""
    out: list[tuple[str, int, int]] = []
    for t in body.topics or ():
        topic = _topic(t)
        for p in t.partitions or ():
            if p.error_code or (topic, p.partition_index) not in latest:
                continue
            offset = getattr(p, "offset", None)
            if offset is None:  # v0: a list of offsets, newest first
                old = getattr(p, "old_style_offsets", None) or ()
                offset = old[0] if old else -1
            if offset >= 0:
                out.append((topic, p.partition_index, offset))
    return out


# --------------------------------------------------------------------- assignments

_assignment_decoders: dict[int, Any] = {}
ASSIGNMENT_ERRORS = (struct.error, ValueError, TypeError, IndexError, UnicodeDecodeError)


def member_assignment(data: bytes | None) -> dict[str, list[int]] | None:
    """The consumer protocol's MemberAssignment: topic -> partitions, or None.

    Its own version comes first (int16); versions newer than kafka-python's
    are read as its newest, since later versions only add fields at the end.
    None for empty or undecodable bytes (a group of another protocol type).
    """
    if not data or len(data) < 2:
        return None
    from kafka.protocol.consumer import ConsumerProtocolAssignment as Assignment

    version = min(struct.unpack_from(">h", data)[0], Assignment.max_version)
    if version < 0:
        return None
    decode = _assignment_decoders.get(version)
    if decode is None:
        decode = _assignment_decoders[version] = Assignment._struct.compiled_decode_from(
            version, compact=False, tagged=False, data_class=Assignment
        )
    try:
        obj, pos = decode(memoryview(data), 2)
    except ASSIGNMENT_ERRORS:
        return None
    if pos > len(data):
        return None
    out: dict[str, list[int]] = {}
    n = 0
    for tp in obj.assigned_partitions or ():
        parts = list(tp.partitions or ())[: MAX_PARTITIONS - n]
        n += len(parts)
        out[name(tp.topic)] = parts
        if n >= MAX_PARTITIONS:
            break
    return out
