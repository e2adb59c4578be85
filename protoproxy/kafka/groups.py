"""Consumer groups as the proxy saw them: members, assignments, commits, lag.

One `ClusterGroups` per proxied cluster (bootstrap listener). It folds the
group facts the codec puts on Exchanges (``protoproxy_codecs.kafka.groups``)
and the high watermarks of Fetch and ListOffsets responses into plain dicts,
and keeps three gauge families current as they change:

- ``protoproxy_kafka_partition_high_watermark``: the last HW seen;
- ``protoproxy_kafka_consumer_group_committed_offset``: the last offset the
  group committed (OffsetCommit request + its error-free response) or was told
  (OffsetFetch response);
- ``protoproxy_kafka_consumer_group_lag``: their difference (`lag`).

A new HW updates the lag of the groups that committed on that partition only,
so a Fetch response costs one dict lookup per partition when nothing moved.
Everything is bounded (``MAX_*``): past a cap new groups, members or
partitions are not kept (those already kept stay exact), and the gauges are
capped like every family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .metrics import partition_label

if TYPE_CHECKING:
    from .metrics import KafkaMetrics

# Per cluster (bootstrap listener), all groups together.
MAX_GROUPS = 1000
MAX_MEMBERS = 10_000
MAX_OFFSETS = 100_000  # (group, topic, partition) commits kept
MAX_ASSIGNED = 100_000  # partitions in the members' assignments kept
MAX_WATERMARKS = 100_000  # (topic, partition) high watermarks kept

TopicPartition = tuple[str, int]


def lag(high_watermark: int | None, committed: int | None) -> int | None:
    """Records the group has yet to consume, or None when that is not known.

    A committed offset is the offset of the next record the group will read,
    so the lag is ``HW - committed``. Unknown without a HW seen, or without a
    commit (a negative committed offset, -1 on the wire, means none). A commit
    beyond the last HW seen (the HW seen is older than the commit) is 0.
    """
    if high_watermark is None or committed is None or committed < 0 or high_watermark < 0:
        return None
    return max(0, high_watermark - committed)


@dataclass(slots=True)
class Member:
    member_id: str
    client_id: str
    host: str
    generation: int
    group_instance_id: str | None = None
    assignment: dict[str, list[int]] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "client_id": self.client_id,
            "host": self.host,
            "generation": self.generation,
            "group_instance_id": self.group_instance_id,
            "assignment": self.assignment,
        }


@dataclass(slots=True)
class Group:
    name: str
    generation: int = -1
    protocol_type: str | None = None
    protocol: str | None = None
    leader: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    #: (topic, partition) -> committed offset (the next record to read)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)


class ClusterGroups:
    """The groups of one proxied Kafka cluster, named by its bootstrap listener."""

    def __init__(self, listener: str, metrics: KafkaMetrics) -> None:
        self.listener = listener
        self.metrics = metrics
        self.watermarks: dict[TopicPartition, int] = {}
        self.groups: dict[str, Group] = {}
        #: (topic, partition) -> groups with a commit there: whose lag a new HW moves
        self.committers: dict[TopicPartition, set[str]] = {}
        self.members = 0
        self.offsets = 0
        self.assigned = 0
        #: what the caps left out, for /kafka/groups
        self.dropped = {
            "groups": 0,
            "members": 0,
            "offsets": 0,
            "assignments": 0,
            "watermarks": 0,
        }

    # -- high watermarks -----------------------------------------------------------
    def watermarks_seen(self, marks: list[tuple[str, int, int]]) -> None:
        known = self.watermarks
        for topic, partition, hw in marks:
            key = (topic, partition)
            if known.get(key) == hw:
                continue
            if key not in known and len(known) >= MAX_WATERMARKS:
                self.dropped["watermarks"] += 1
                continue
            known[key] = hw
            plabel = partition_label(partition)
            self.metrics.high_watermark.set((self.listener, topic, plabel), hw)
            for name in self.committers.get(key, ()):
                self._set_lag(name, topic, partition, plabel, hw, self.groups[name].offsets[key])

    # -- commits ---------------------------------------------------------------------
    def committed(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        """Offsets an OffsetCommit response acknowledged."""
        g = self._group(group)
        if g is None:
            return
        for key, offset in offsets.items():
            self._commit(g, key, offset)

    def fetched(self, rows: list[tuple[str, str, int, int]]) -> None:
        """(group, topic, partition, offset) an OffsetFetch response told; -1: none."""
        for group, topic, partition, offset in rows:
            g = self._group(group) if offset >= 0 else self.groups.get(group)
            if g is not None:
                self._commit(g, (topic, partition), offset)

    def _commit(self, g: Group, key: TopicPartition, offset: int) -> None:
        topic, partition = key
        plabel = partition_label(partition)
        m = self.metrics
        if offset < 0:  # none committed (OffsetFetch's -1): forget what we had
            if g.offsets.pop(key, None) is not None:
                self.offsets -= 1
                groups = self.committers[key]
                groups.discard(g.name)
                if not groups:
                    del self.committers[key]
                m.committed_offset.remove((self.listener, g.name, topic, plabel))
                m.group_lag.remove((self.listener, g.name, topic, plabel))
            return
        if key not in g.offsets:
            if self.offsets >= MAX_OFFSETS:
                self.dropped["offsets"] += 1
                return
            self.offsets += 1
            self.committers.setdefault(key, set()).add(g.name)
        g.offsets[key] = offset
        m.committed_offset.set((self.listener, g.name, topic, plabel), offset)
        hw = self.watermarks.get(key)
        if hw is not None:
            self._set_lag(g.name, topic, partition, plabel, hw, offset)

    def _set_lag(
        self, group: str, topic: str, partition: int, plabel: str, hw: int, offset: int
    ) -> None:
        n = lag(hw, offset)
        if n is not None:
            self.metrics.group_lag.set((self.listener, group, topic, plabel), n)

    # -- membership ------------------------------------------------------------------
    def joined(self, attrs: dict[str, Any], client_id: str, host: str) -> None:
        g = self._group(attrs["group"])
        if g is None:
            return
        generation = attrs["generation"]
        self._generation(g, generation)
        g.protocol_type = attrs.get("protocol_type") or g.protocol_type
        g.protocol = attrs.get("protocol_name") or g.protocol
        g.leader = attrs.get("leader") or g.leader
        member = self._member(g, attrs["member_id"], client_id, host, generation)
        if member is not None:
            member.group_instance_id = attrs.get("group_instance_id")

    def synced(self, attrs: dict[str, Any], client_id: str, host: str) -> None:
        g = self._group(attrs["group"])
        if g is None:
            return
        generation = attrs["generation"]
        self._generation(g, generation)
        member = self._member(g, attrs["member_id"], client_id, host, generation)
        if member is not None and "assignment" in attrs:
            self._assign(member, attrs["assignment"])

    def _assign(self, member: Member, assignment: dict[str, list[int]]) -> None:
        self.assigned -= _size(member.assignment)
        member.assignment = None
        n = _size(assignment)
        if self.assigned + n > MAX_ASSIGNED:
            self.dropped["assignments"] += 1
            return
        self.assigned += n
        member.assignment = assignment

    def left(self, group: str, member_ids: list[str]) -> None:
        g = self.groups.get(group)
        if g is None:
            return
        for mid in member_ids:
            self._drop_member(g, mid)

    def _drop_member(self, g: Group, member_id: str) -> None:
        member = g.members.pop(member_id, None)
        if member is not None:
            self.members -= 1
            self.assigned -= _size(member.assignment)

    def _generation(self, g: Group, generation: int) -> None:
        """A newer generation: members not (yet) seen in it are gone until they are."""
        if generation > g.generation:
            g.generation = generation
            for mid in [mid for mid, m in g.members.items() if m.generation < generation]:
                self._drop_member(g, mid)

    def _member(
        self, g: Group, member_id: str, client_id: str, host: str, generation: int
    ) -> Member | None:
        if not member_id or generation < g.generation:
            return None
        member = g.members.get(member_id)
        if member is None:
            if self.members >= MAX_MEMBERS:
                self.dropped["members"] += 1
                return None
            self.members += 1
            member = g.members[member_id] = Member(member_id, client_id, host, generation)
        else:
            member.client_id, member.host, member.generation = client_id, host, generation
        return member

    def _group(self, name: str) -> Group | None:
        g = self.groups.get(name)
        if g is None:
            if len(self.groups) >= MAX_GROUPS:
                self.dropped["groups"] += 1
                return None
            g = self.groups[name] = Group(name)
        return g

    # -- queries -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        groups = []
        for name in sorted(self.groups):
            g = self.groups[name]
            assigned: dict[TopicPartition, str] = {}
            for m in g.members.values():
                for topic, parts in (m.assignment or {}).items():
                    for p in parts:
                        assigned[(topic, p)] = m.member_id
            rows = []
            for key in sorted(set(g.offsets) | set(assigned)):
                committed = g.offsets.get(key)
                hw = self.watermarks.get(key)
                rows.append(
                    {
                        "topic": key[0],
                        "partition": key[1],
                        "member_id": assigned.get(key),
                        "committed_offset": committed,
                        "high_watermark": hw,
                        "lag": lag(hw, committed),
                    }
                )
            groups.append(
                {
                    "group": name,
                    "generation": g.generation,
                    "protocol_type": g.protocol_type,
                    "protocol": g.protocol,
                    "leader": g.leader,
                    "members": [g.members[mid].as_dict() for mid in sorted(g.members)],
                    "partitions": rows,
                }
            )
        return {"groups": groups, "dropped": dict(self.dropped)}


def _size(assignment: dict[str, list[int]] | None) -> int:
    return sum(len(p) for p in assignment.values()) if assignment else 0
