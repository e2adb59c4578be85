"""Consumer-group handlers: coordinator lookup, membership, and committed offsets.

Every group request must reach the group's coordinator; any other broker
answers NOT_COORDINATOR, so clients rediscover it after a broker stops.
JoinGroup and SyncGroup wait on futures that the pure `GroupCoordinator`
resolves through its reply callbacks.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from . import errors
from .fields import items, text
from .groups import GroupState, JoinResult, SyncResult

if TYPE_CHECKING:
    from .dispatch import Request

GROUP_KEY = 0


def _not_coordinator(req: Request, group_id: str | None) -> int:
    if not isinstance(group_id, str):
        return errors.INVALID_GROUP_ID
    node = req.cluster.coordinator_for(group_id)
    if node < 0:
        return errors.COORDINATOR_NOT_AVAILABLE
    return errors.NONE if node == req.node_id else errors.NOT_COORDINATOR


def _resolver(fut: asyncio.Future[Any]) -> Any:
    def resolve(result: Any) -> None:
        if not fut.done():
            fut.set_result(result)

    return resolve


# -- FindCoordinator ---------------------------------------------------------------


def find_coordinator(req: Request, body: Any) -> Any:
    cluster = req.cluster
    R = req.response_class()

    def lookup(key: str) -> tuple[int, str | None, int, str, int]:
        if body.key_type != GROUP_KEY:
            # Fatal for the client (it gives up at once) rather than a retriable
            # COORDINATOR_NOT_AVAILABLE it would retry until its timeout.
            return (
                errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                "transactions are not supported by the fake cluster",
                -1,
                "",
                -1,
            )
        node = cluster.coordinator_for(key)
        if node < 0:
            return errors.COORDINATOR_NOT_AVAILABLE, "no live broker", -1, "", -1
        info = cluster.topology.brokers[node]
        return errors.NONE, None, node, info.host, info.port

    if req.version < 4:
        err, msg, node, host, port = lookup(text(body.key))
        return R(
            throttle_time_ms=0,
            error_code=err,
            error_message=msg,
            node_id=node,
            host=host,
            port=port,
        )
    coords = []
    for key in items(body.coordinator_keys):
        err, msg, node, host, port = lookup(text(key))
        coords.append(
            R.Coordinator(
                key=key, node_id=node, host=host, port=port, error_code=err, error_message=msg
            )
        )
    return R(throttle_time_ms=0, coordinators=coords)


# -- JoinGroup / SyncGroup -------------------------------------------------------------


async def join_group(req: Request, body: Any) -> Any:
    R = req.response_class()
    err = _not_coordinator(req, body.group_id)
    if err:
        result = JoinResult(err, member_id=body.member_id)
    else:
        fut: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        req.cluster.groups.join(
            body.group_id,
            body.member_id,
            body.group_instance_id,
            req.client_id or "",
            req.client_host,
            body.session_timeout_ms,
            body.rebalance_timeout_ms,
            body.protocol_type,
            [(text(p.name), p.metadata or b"") for p in items(body.protocols)],
            # Static members (KIP-345) skip the member-id round trip, as in Kafka.
            req.version >= 4 and body.group_instance_id is None,
            _resolver(fut),
        )
        result = await fut
    M = R.JoinGroupResponseMember
    return R(
        throttle_time_ms=0,
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name or "",
        leader=result.leader,
        member_id=result.member_id,
        members=[
            M(member_id=m, group_instance_id=i, metadata=meta) for m, i, meta in result.members
        ],
    )


async def sync_group(req: Request, body: Any) -> Any:
    R = req.response_class()
    err = _not_coordinator(req, body.group_id)
    if err:
        result = SyncResult(err)
    else:
        fut: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        req.cluster.groups.sync(
            body.group_id,
            body.generation_id,
            body.member_id,
            [(text(a.member_id), a.assignment or b"") for a in items(body.assignments)],
            _resolver(fut),
        )
        result = await fut
    return R(
        throttle_time_ms=0,
        error_code=result.error,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )


# -- Heartbeat / LeaveGroup ---------------------------------------------------------------


def heartbeat(req: Request, body: Any) -> Any:
    err = _not_coordinator(req, body.group_id) or req.cluster.groups.heartbeat(
        body.group_id, body.generation_id, body.member_id
    )
    return req.response_class()(throttle_time_ms=0, error_code=err)


def leave_group(req: Request, body: Any) -> Any:
    R = req.response_class()
    err = _not_coordinator(req, body.group_id)
    if req.version < 3:
        if not err:
            err = req.cluster.groups.leave(body.group_id, [body.member_id])[0]
        return R(throttle_time_ms=0, error_code=err)
    if err:
        return R(throttle_time_ms=0, error_code=err, members=[])
    members_in = list(items(body.members))
    ids = [text(m.member_id) for m in members_in]
    results = req.cluster.groups.leave(body.group_id, ids)
    members = [
        R.MemberResponse(member_id=m.member_id, group_instance_id=m.group_instance_id, error_code=e)
        for m, e in zip(members_in, results, strict=True)
    ]
    return R(throttle_time_ms=0, error_code=errors.NONE, members=members)


# -- OffsetCommit / OffsetFetch --------------------------------------------------------------


def offset_commit(req: Request, body: Any) -> Any:
    cluster = req.cluster
    groups = cluster.groups
    R = req.response_class()
    TR = R.OffsetCommitResponseTopic
    PR = TR.OffsetCommitResponsePartition
    err = _not_coordinator(req, body.group_id) or groups.validate_commit(
        body.group_id, body.generation_id_or_member_epoch, body.member_id
    )
    out = []
    for topic in items(body.topics):
        parts = []
        for cp in items(topic.partitions):
            perr = err
            if not perr and cluster.topology.partition(topic.name, cp.partition_index) is None:
                perr = errors.UNKNOWN_TOPIC_OR_PARTITION
            if not perr:
                groups.commit(
                    body.group_id,
                    topic.name,
                    cp.partition_index,
                    cp.committed_offset,
                    cp.committed_leader_epoch,
                    cp.committed_metadata,
                )
            parts.append(PR(partition_index=cp.partition_index, error_code=perr))
        out.append(TR(name=topic.name, partitions=parts))
    return R(throttle_time_ms=0, topics=out)


def offset_fetch(req: Request, body: Any) -> Any:
    groups = req.cluster.groups
    R = req.response_class()
    TR = R.OffsetFetchResponseTopic
    PR = TR.OffsetFetchResponsePartition
    err = _not_coordinator(req, body.group_id)
    if err:
        if req.version >= 2:
            return R(throttle_time_ms=0, topics=[], error_code=err)
        requested = [(t.name, list(items(t.partition_indexes))) for t in items(body.topics)]
        return R(
            topics=[
                TR(
                    name=n,
                    partitions=[
                        PR(partition_index=i, committed_offset=-1, metadata="", error_code=err)
                        for i in ps
                    ],
                )
                for n, ps in requested
            ]
        )
    if body.topics is None:
        wanted = sorted(groups.committed_topics(body.group_id).items())
    else:
        wanted = [(t.name, list(items(t.partition_indexes))) for t in body.topics]
    out = []
    for name, indexes in wanted:
        parts = []
        for i in indexes:
            offset, epoch, meta = groups.committed(body.group_id, name, i)
            parts.append(
                PR(
                    partition_index=i,
                    committed_offset=offset,
                    committed_leader_epoch=epoch,
                    metadata=meta,
                    error_code=errors.NONE,
                )
            )
        out.append(TR(name=name, partitions=parts))
    return R(throttle_time_ms=0, topics=out, error_code=errors.NONE)


# -- DescribeGroups / ListGroups ---------------------------------------------------------------


#: AclOperation bits a group has: READ (3), DELETE (6), DESCRIBE (8) (kafka-python
#: encodes a bitfield from the set of its bit numbers)
GROUP_OPERATIONS = frozenset({3, 6, 8})
#: "not requested" (Kafka's Integer.MIN_VALUE on the wire)
NO_OPS = None


def describe_groups(req: Request, body: Any) -> Any:
    groups = req.cluster.groups
    R = req.response_class()
    DG = R.DescribedGroup
    DM = DG.DescribedGroupMember
    # Asked for (v3+), the operations a group allows its caller: with no ACLs,
    # all of them, as a broker without an authorizer reports.
    ops = GROUP_OPERATIONS if req.version >= 3 and body.include_authorized_operations else NO_OPS
    out = []
    for gid in items(body.groups):
        err = _not_coordinator(req, gid)
        g = groups.groups.get(gid)
        if err or g is None:
            state = "Dead" if g is None else g.state.value
            out.append(
                DG(
                    error_code=err,
                    group_id=gid,
                    group_state=state,
                    protocol_type="",
                    protocol_data="",
                    members=[],
                )
            )
            continue
        stable = g.state is GroupState.STABLE
        members = [
            DM(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                member_metadata=m.metadata_for(g.protocol_name or "") if stable else b"",
                member_assignment=m.assignment if stable else b"",
            )
            for m in g.members.values()
        ]
        out.append(
            DG(
                error_code=errors.NONE,
                group_id=gid,
                group_state=g.state.value,
                protocol_type=g.protocol_type or "",
                protocol_data=g.protocol_name or "",
                members=members,
                authorized_operations=ops,
            )
        )
    return R(throttle_time_ms=0, groups=out)


def list_groups(req: Request, body: Any) -> Any:
    cluster = req.cluster
    R = req.response_class()
    states = set(body.states_filter or ()) if req.version >= 4 else set()
    out = []
    for gid, g in sorted(cluster.groups.groups.items()):
        if cluster.coordinator_for(gid) != req.node_id:
            continue
        if states and g.state.value not in states:
            continue
        out.append(
            R.ListedGroup(
                group_id=gid, protocol_type=g.protocol_type or "", group_state=g.state.value
            )
        )
    return R(throttle_time_ms=0, error_code=errors.NONE, groups=out)
