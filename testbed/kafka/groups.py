"""The classic consumer-group coordinator, as a pure state machine.

It follows Kafka's GroupCoordinator (states Empty, PreparingRebalance,
CompletingRebalance, Stable): JoinGroup and SyncGroup answers are deferred until
the rebalance can complete, so they are delivered through reply callbacks that
the server layer turns into futures. Time only enters through `tick(now)`, which
the cluster calls periodically to expire sessions and rebalance timeouts; that
keeps this module free of asyncio and testable with a fake clock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from . import errors


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: int
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    member_id: str = ""
    # (member_id, group_instance_id, metadata); only the leader gets members.
    members: tuple[tuple[str, str | None, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


JoinReply = Callable[[JoinResult], None]
SyncReply = Callable[[SyncResult], None]


@dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    last_seen: float
    assignment: bytes = b""
    join_reply: JoinReply | None = None
    sync_reply: SyncReply | None = None

    def metadata_for(self, protocol: str) -> bytes:
        for name, meta in self.protocols:
            if name == protocol:
                return meta
        return b""


@dataclass(slots=True)
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    # member ids handed out with MEMBER_ID_REQUIRED, not yet joined: id -> deadline
    pending: dict[str, float] = field(default_factory=dict)
    rebalance_deadline: float = 0.0
    # (topic, partition) -> (offset, leader_epoch, metadata)
    offsets: dict[tuple[str, int], tuple[int, int, str | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupConfig:
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1_800_000
    max_group_size: int = 1000  # Kafka's group.max.size; bounds what a client can add


class GroupCoordinator:
    """Every group in the cluster (one coordinator object; routing is the cluster's job)."""

    def __init__(
        self,
        clock: Callable[[], float],
        new_member_id: Callable[[str], str],
        config: GroupConfig | None = None,
    ) -> None:
        self._clock = clock
        self._new_member_id = new_member_id
        self.config = config or GroupConfig()
        self.groups: dict[str, Group] = {}
        self.rebalances = 0  # completed joins, for tests

    # -- JoinGroup -------------------------------------------------------------

    def join(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        require_known_member_id: bool,
        reply: JoinReply,
    ) -> None:
        cfg = self.config
        if not group_id:
            reply(JoinResult(errors.INVALID_GROUP_ID, member_id=member_id))
            return
        if not cfg.min_session_timeout_ms <= session_timeout_ms <= cfg.max_session_timeout_ms:
            reply(JoinResult(errors.INVALID_SESSION_TIMEOUT, member_id=member_id))
            return
        group = self.groups.get(group_id)
        if group is None:
            if member_id:
                reply(JoinResult(errors.UNKNOWN_MEMBER_ID, member_id=member_id))
                return
            group = self.groups[group_id] = Group(group_id)
        if not protocols or not self._protocols_compatible(group, protocol_type, protocols):
            reply(JoinResult(errors.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id))
            return
        now = self._clock()
        if rebalance_timeout_ms < 0:
            rebalance_timeout_ms = session_timeout_ms  # JoinGroup v0 has none
        if not member_id and len(group.members) + len(group.pending) >= cfg.max_group_size:
            reply(JoinResult(errors.GROUP_MAX_SIZE_REACHED))
            return
        if not member_id:
            new_id = self._new_member_id(client_id)
            if require_known_member_id:
                group.pending[new_id] = now + session_timeout_ms / 1000
                reply(JoinResult(errors.MEMBER_ID_REQUIRED, member_id=new_id))
                return
            member_id = new_id
        elif member_id not in group.members and member_id not in group.pending:
            reply(JoinResult(errors.UNKNOWN_MEMBER_ID, member_id=member_id))
            return

        member = group.members.get(member_id)
        if member is None:
            group.pending.pop(member_id, None)
            member = Member(
                member_id,
                group_instance_id,
                client_id,
                client_host,
                session_timeout_ms,
                rebalance_timeout_ms,
                protocol_type,
                list(protocols),
                now,
            )
            group.members[member_id] = member
            member.join_reply = reply
            self._prepare_rebalance(group)
        else:
            unchanged = member.protocols == list(protocols)
            member.last_seen = now
            member.session_timeout_ms = session_timeout_ms
            member.rebalance_timeout_ms = rebalance_timeout_ms
            member.protocols = list(protocols)
            if group.state is GroupState.PREPARING_REBALANCE:
                if member.join_reply is not None:
                    member.join_reply(JoinResult(errors.UNKNOWN_MEMBER_ID, member_id=member_id))
                member.join_reply = reply
            elif unchanged and (
                group.state is GroupState.COMPLETING_REBALANCE
                or (group.state is GroupState.STABLE and member_id != group.leader)
            ):
                # Same metadata: the member lost our answer; repeat it (as Kafka does).
                reply(self._join_result(group, member))
                return
            else:
                member.join_reply = reply
                self._prepare_rebalance(group)
        self._maybe_complete_join(group)

    def _protocols_compatible(
        self, group: Group, protocol_type: str, protocols: list[tuple[str, bytes]]
    ) -> bool:
        if not group.members:
            return True
        # Before the first rebalance completes, the group's type is its members'.
        expected = group.protocol_type or next(iter(group.members.values())).protocol_type
        if protocol_type != expected:
            return False
        names = {name for name, _ in protocols}
        return all(names & {n for n, _ in m.protocols} for m in group.members.values())

    def _prepare_rebalance(self, group: Group) -> None:
        if group.state is GroupState.PREPARING_REBALANCE:
            return
        if group.state is GroupState.COMPLETING_REBALANCE:
            for m in group.members.values():
                if m.sync_reply is not None:
                    m.sync_reply(SyncResult(errors.REBALANCE_IN_PROGRESS))
                    m.sync_reply = None
        group.state = GroupState.PREPARING_REBALANCE
        timeout = max((m.rebalance_timeout_ms for m in group.members.values()), default=0)
        group.rebalance_deadline = self._clock() + timeout / 1000

    def _maybe_complete_join(self, group: Group) -> None:
        if group.state is not GroupState.PREPARING_REBALANCE or group.pending:
            return
        if all(m.join_reply is not None for m in group.members.values()):
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        # Members that did not rejoin in time are dropped (Kafka: removeMemberAndUpdateGroup).
        for mid in [mid for mid, m in group.members.items() if m.join_reply is None]:
            del group.members[mid]
        group.pending.clear()
        group.generation_id += 1
        self.rebalances += 1
        if not group.members:
            group.state = GroupState.EMPTY
            group.protocol_name = None
            group.protocol_type = None
            group.leader = None
            return
        first = next(iter(group.members.values()))
        group.protocol_type = first.protocol_type
        group.protocol_name = self._select_protocol(group)
        if group.leader not in group.members:
            group.leader = first.member_id
        group.state = GroupState.COMPLETING_REBALANCE
        now = self._clock()
        for m in group.members.values():
            m.assignment = b""
            m.last_seen = now
            join_reply, m.join_reply = m.join_reply, None
            assert join_reply is not None
            join_reply(self._join_result(group, m))

    def _select_protocol(self, group: Group) -> str:
        members = list(group.members.values())
        common = set.intersection(*({n for n, _ in m.protocols} for m in members))
        votes: dict[str, int] = {}
        for m in members:
            choice = next(n for n, _ in m.protocols if n in common)
            votes[choice] = votes.get(choice, 0) + 1
        # Ties go to the leader-ish first member's preference order, deterministically.
        order = [n for n, _ in members[0].protocols if n in common]
        return max(order, key=lambda n: (votes.get(n, 0), -order.index(n)))

    def _join_result(self, group: Group, member: Member) -> JoinResult:
        proto = group.protocol_name or ""
        members: tuple[tuple[str, str | None, bytes], ...] = ()
        if member.member_id == group.leader:
            members = tuple(
                (m.member_id, m.group_instance_id, m.metadata_for(proto))
                for m in group.members.values()
            )
        return JoinResult(
            errors.NONE,
            group.generation_id,
            group.protocol_type,
            proto,
            group.leader or "",
            member.member_id,
            members,
        )

    # -- SyncGroup ---------------------------------------------------------------

    def sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        assignments: list[tuple[str, bytes]],
        reply: SyncReply,
    ) -> None:
        group = self.groups.get(group_id)
        member = group.members.get(member_id) if group else None
        if group is None or member is None:
            reply(SyncResult(errors.UNKNOWN_MEMBER_ID))
            return
        if generation_id != group.generation_id:
            reply(SyncResult(errors.ILLEGAL_GENERATION))
            return
        member.last_seen = self._clock()
        if group.state is GroupState.PREPARING_REBALANCE:
            reply(SyncResult(errors.REBALANCE_IN_PROGRESS))
            return
        if group.state is GroupState.STABLE:
            reply(self._sync_result(group, member))
            return
        member.sync_reply = reply
        if member_id == group.leader:
            given = dict(assignments)
            for m in group.members.values():
                m.assignment = given.get(m.member_id, b"")
            group.state = GroupState.STABLE
            for m in group.members.values():
                sync_reply, m.sync_reply = m.sync_reply, None
                if sync_reply is not None:
                    sync_reply(self._sync_result(group, m))

    def _sync_result(self, group: Group, member: Member) -> SyncResult:
        return SyncResult(errors.NONE, group.protocol_type, group.protocol_name, member.assignment)

    # -- Heartbeat / LeaveGroup ----------------------------------------------------

    def heartbeat(self, group_id: str, generation_id: int, member_id: str) -> int:
        group = self.groups.get(group_id)
        member = group.members.get(member_id) if group else None
        if group is None or member is None:
            return errors.UNKNOWN_MEMBER_ID
        member.last_seen = self._clock()
        if group.state is GroupState.PREPARING_REBALANCE:
            return errors.REBALANCE_IN_PROGRESS
        if generation_id != group.generation_id:
            return errors.ILLEGAL_GENERATION
        return errors.NONE

    def leave(self, group_id: str, member_ids: list[str]) -> list[int]:
        group = self.groups.get(group_id)
        results = []
        for mid in member_ids:
            if group is None or mid not in group.members:
                results.append(errors.UNKNOWN_MEMBER_ID)
                continue
            self._remove_member(group, mid)
            results.append(errors.NONE)
        return results

    def _remove_member(self, group: Group, member_id: str) -> None:
        member = group.members.pop(member_id)
        if member.join_reply is not None:
            member.join_reply(JoinResult(errors.UNKNOWN_MEMBER_ID, member_id=member_id))
        if member.sync_reply is not None:
            member.sync_reply(SyncResult(errors.UNKNOWN_MEMBER_ID))
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group)
        self._maybe_complete_join(group)

    # -- Offsets ---------------------------------------------------------------------

    def validate_commit(self, group_id: str, generation_id: int, member_id: str) -> int:
        group = self.groups.get(group_id)
        if group is None or not group.members:
            if generation_id < 0:
                if group is None:
                    self.groups[group_id] = Group(group_id)
                return errors.NONE
            return errors.ILLEGAL_GENERATION if group is not None else errors.UNKNOWN_MEMBER_ID
        member = group.members.get(member_id)
        if member is None:
            return errors.UNKNOWN_MEMBER_ID
        if generation_id != group.generation_id:
            return errors.ILLEGAL_GENERATION
        if group.state is GroupState.COMPLETING_REBALANCE:
            return errors.REBALANCE_IN_PROGRESS
        member.last_seen = self._clock()
        return errors.NONE

    def commit(
        self,
        group_id: str,
        topic: str,
        partition: int,
        offset: int,
        leader_epoch: int,
        metadata: str | None,
    ) -> None:
        self.groups[group_id].offsets[(topic, partition)] = (offset, leader_epoch, metadata)

    def committed(self, group_id: str, topic: str, partition: int) -> tuple[int, int, str | None]:
        group = self.groups.get(group_id)
        if group is None:
            return -1, -1, ""
        return group.offsets.get((topic, partition), (-1, -1, ""))

    def committed_topics(self, group_id: str) -> dict[str, list[int]]:
        group = self.groups.get(group_id)
        out: dict[str, list[int]] = {}
        if group is not None:
            for topic, partition in group.offsets:
                out.setdefault(topic, []).append(partition)
        return out

    # -- Time ----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Expire sessions, pending member ids and overdue rebalances."""
        for group in list(self.groups.values()):
            for mid, deadline in list(group.pending.items()):
                if now >= deadline:
                    del group.pending[mid]
            expired = [
                mid
                for mid, m in group.members.items()
                if m.join_reply is None
                and m.sync_reply is None
                and now - m.last_seen > m.session_timeout_ms / 1000
            ]
            for mid in expired:
                if mid in group.members:
                    self._remove_member(group, mid)
            if group.state is GroupState.PREPARING_REBALANCE:
                if now >= group.rebalance_deadline:
                    self._complete_join(group)
                else:
                    self._maybe_complete_join(group)

    def forget_topic(self, topic: str) -> None:
        for group in self.groups.values():
            for key in [k for k in group.offsets if k[0] == topic]:
                del group.offsets[key]
