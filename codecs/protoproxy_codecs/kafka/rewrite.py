"""Broker address rewriting and routing data, as pure functions of a response.

Clients connect to whatever addresses Metadata, FindCoordinator and
DescribeCluster advertise, so a proxy must substitute its own listeners there
or be bypassed after bootstrap. Produce (v10+) and Fetch (v16+) responses may
also carry ``node_endpoints`` for new leaders (KIP-951); they are rewritten
too, which costs nothing when the list is empty.

A rewritten frame keeps the original header bytes verbatim (tagged fields
included) and re-encodes only the body, at the same version. The body is the
message's ``view`` (so routing and rewriting share one decode); endpoints are
changed in it for the encode and put back right after. Known
tagged fields survive; unknown tagged fields in the body are not re-emitted
by kafka-python, so ``rewrite_response`` reports them in ``dropped_tags``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from ..base import Message
from . import framing
from .api_keys import ApiKey

Mapper = Callable[[int, str, int], tuple[str, int]]

# api_key -> (list field, node-id attribute) for lists of advertised brokers.
_BROKER_LISTS: dict[int, tuple[str, str]] = {
    ApiKey.METADATA: ("brokers", "node_id"),
    ApiKey.DESCRIBE_CLUSTER: ("brokers", "broker_id"),
    ApiKey.FIND_COORDINATOR: ("coordinators", "node_id"),
    ApiKey.PRODUCE: ("node_endpoints", "node_id"),
    ApiKey.FETCH: ("node_endpoints", "node_id"),
}
REWRITABLE_APIS = frozenset(_BROKER_LISTS)


class Broker(NamedTuple):
    node_id: int
    host: str
    port: int
    rack: str | None = None


class Routing(NamedTuple):
    """What one response tells about the cluster's layout."""

    brokers: list[Broker]
    # topic (name, or topic id as a string) -> partition -> leader node id
    leaders: dict[str, dict[int, int]]
    # coordinator key (group id, transactional id...) -> node id
    coordinators: dict[str, int]
    controller_id: int | None = None
    cluster_id: str | None = None


class Rewritten(NamedTuple):
    frame: bytes
    changed: int  # how many endpoints now point elsewhere
    dropped_tags: int  # unknown tagged fields that re-encoding could not keep


def _body_offset(api_key: int, version: int, raw: bytes) -> int:
    return framing.parse_response_header(raw, 4, len(raw), api_key, version)[1]


def _decoded_body(message: Message) -> tuple[int, int, int, Any] | None:
    """(api_key, version, body offset, decoded body) of a rewritable response.

    Uses the message's view (decoding it once, for routing and rewriting alike);
    callers restore anything they change in it.
    """
    info = message.info or {}
    api_key = info.get("api_key")
    version = info.get("api_version")
    if message.kind != "response" or api_key not in REWRITABLE_APIS or version is None:
        return None
    body = message.view
    if body is None or not hasattr(body, "_struct"):
        return None
    raw = message.raw
    return api_key, version, _body_offset(api_key, version, raw), body


def _count_unknown_tags(obj: Any) -> int:
    n = len(obj.unknown_tags) if obj.unknown_tags else 0
    for field in obj._struct.fields.values():
        if field.is_struct():
            value = getattr(obj, field.name)
            if value is not None:
                n += _count_unknown_tags(value)
        elif field.is_struct_array():
            for item in getattr(obj, field.name) or ():
                n += _count_unknown_tags(item)
    return n


Undo = list[tuple[Any, str, int]]


def _map_endpoint(obj: Any, id_attr: str, mapper: Mapper, undo: Undo) -> int:
    host, port = obj.host, obj.port
    new_host, new_port = mapper(getattr(obj, id_attr), host, port)
    if new_host == host and new_port == port:
        return 0
    if not 0 <= new_port <= 65535:
        raise ValueError(f"mapper gave port {new_port} for node {getattr(obj, id_attr)}")
    undo.append((obj, host, port))
    obj.host = new_host
    obj.port = new_port
    return 1


def rewrite_body(
    api_key: int, version: int, body: Any, mapper: Mapper, undo: Undo | None = None
) -> int:
    """Apply `mapper` to every advertised endpoint of a decoded body, in place.

    Returns the number of endpoints changed; `undo` collects (object, host,
    port) of each change so that a shared view can be put back. FindCoordinator v0-3 advertises
    a single node at top level; an error reply there (node_id -1) is left alone.
    """
    changed = 0
    if undo is None:
        undo = []
    if api_key == ApiKey.FIND_COORDINATOR and version < 4:
        if body.node_id >= 0:
            changed += _map_endpoint(body, "node_id", mapper, undo)
        return changed
    list_name, id_attr = _BROKER_LISTS[api_key]
    for entry in getattr(body, list_name) or ():
        if api_key == ApiKey.FIND_COORDINATOR and entry.node_id < 0:
            continue
        changed += _map_endpoint(entry, id_attr, mapper, undo)
    return changed


def rewrite_response(message: Message, mapper: Mapper) -> Rewritten | None:
    """The re-encoded frame with endpoints mapped, or None when nothing changes.

    `mapper(node_id, host, port) -> (host, port)` is called once per
    advertised endpoint.
    """
    found = _decoded_body(message)
    if found is None:
        return None
    api_key, version, body_at, body = found
    undo: Undo = []
    try:
        changed = rewrite_body(api_key, version, body, mapper, undo)
        if not changed:
            return None
        payload = framing.encode_body(api_key, version, False, body)
        dropped = _count_unknown_tags(body)
    finally:
        # The view is shared (taps, faults, routing): leave it as it was.
        for obj, host, port in reversed(undo):
            obj.host = host
            obj.port = port
    raw = message.raw
    head = raw[4:body_at]
    frame = struct.pack(">i", len(head) + len(payload)) + head + payload
    return Rewritten(frame, changed, dropped)


def rewrite_frame(message: Message, mapper: Mapper) -> bytes | None:
    """Like rewrite_response, returning just the frame bytes (or None)."""
    result = rewrite_response(message, mapper)
    return None if result is None else result.frame


def routing_from_body(api_key: int, version: int, body: Any, request_keys: Any = None) -> Routing:
    """Brokers, partition leaders and coordinators from a decoded response.

    `request_keys` supplies FindCoordinator v0-3's key, which only the request
    carries (the codec passes ``info["coordinator_keys"]``).
    """
    brokers: list[Broker] = []
    leaders: dict[str, dict[int, int]] = {}
    coordinators: dict[str, int] = {}
    controller_id = None
    cluster_id = None
    if api_key == ApiKey.METADATA:
        for b in body.brokers or ():
            brokers.append(Broker(b.node_id, b.host, b.port, b.rack))
        for topic in body.topics or ():
            name = topic.name if topic.name is not None else str(topic.topic_id)
            leaders[name] = {p.partition_index: p.leader_id for p in topic.partitions or ()}
        controller_id = body.controller_id
        cluster_id = body.cluster_id
    elif api_key == ApiKey.DESCRIBE_CLUSTER:
        for b in body.brokers or ():
            brokers.append(Broker(b.broker_id, b.host, b.port, b.rack))
        controller_id = body.controller_id
        cluster_id = body.cluster_id
    elif api_key == ApiKey.FIND_COORDINATOR:
        if version < 4:
            if body.error_code == 0 and body.node_id >= 0:
                brokers.append(Broker(body.node_id, body.host, body.port))
                for key in request_keys or ():
                    coordinators[key] = body.node_id
        else:
            for c in body.coordinators or ():
                if c.error_code == 0 and c.node_id >= 0:
                    brokers.append(Broker(c.node_id, c.host, c.port))
                    coordinators[c.key] = c.node_id
    elif api_key in (ApiKey.PRODUCE, ApiKey.FETCH):
        for e in body.node_endpoints or ():
            brokers.append(Broker(e.node_id, e.host, e.port, e.rack))
    return Routing(brokers, leaders, coordinators, controller_id, cluster_id)


def routing(message: Message) -> Routing | None:
    """Routing data from a response Message, or None for other APIs."""
    info = message.info or {}
    api_key = info.get("api_key")
    if message.kind != "response" or api_key not in REWRITABLE_APIS:
        return None
    body = message.view
    if body is None:
        return None
    return routing_from_body(api_key, info["api_version"], body, info.get("coordinator_keys"))
