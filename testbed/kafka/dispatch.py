"""Route a decoded request to its handler and frame the handler's answer.

Handlers take a `Request` (who asked, which version) and the decoded body, and
return a kafka-python response instance, or None when no response is due
(Produce with acks=0). Handlers that must wait (Fetch, JoinGroup, SyncGroup)
are coroutines; the rest are plain functions, to spare a coroutine per request.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.kafka import framing, schema
from protoproxy_codecs.kafka.api_keys import ApiKey
from protoproxy_codecs.kafka.framing import RequestHeaderInfo

from . import admin_api, data_api, errors, group_api, records_api, txn_api
from .versions import SUPPORTED

if TYPE_CHECKING:
    from .cluster import FakeKafkaCluster
    from .server import BrokerServer


@dataclass(slots=True)
class Request:
    cluster: FakeKafkaCluster
    node_id: int
    api_key: int
    version: int
    correlation_id: int
    client_id: str | None
    client_host: str
    #: the client's "host:port" (hostile answers are marked by it)
    peer: str = ""

    def response_class(self) -> Any:
        return schema.response_class(self.api_key, self.version)


Handler = Callable[[Request, Any], Any]

HANDLERS: dict[int, Handler] = {
    ApiKey.PRODUCE: data_api.produce,
    ApiKey.FETCH: data_api.fetch,
    ApiKey.LIST_OFFSETS: data_api.list_offsets,
    ApiKey.METADATA: admin_api.metadata,
    ApiKey.OFFSET_COMMIT: group_api.offset_commit,
    ApiKey.OFFSET_FETCH: group_api.offset_fetch,
    ApiKey.FIND_COORDINATOR: group_api.find_coordinator,
    ApiKey.JOIN_GROUP: group_api.join_group,
    ApiKey.HEARTBEAT: group_api.heartbeat,
    ApiKey.LEAVE_GROUP: group_api.leave_group,
    ApiKey.SYNC_GROUP: group_api.sync_group,
    ApiKey.DESCRIBE_GROUPS: group_api.describe_groups,
    ApiKey.LIST_GROUPS: group_api.list_groups,
    ApiKey.API_VERSIONS: admin_api.api_versions,
    ApiKey.CREATE_TOPICS: admin_api.create_topics,
    ApiKey.DELETE_TOPICS: admin_api.delete_topics,
    ApiKey.INIT_PRODUCER_ID: data_api.init_producer_id,
    ApiKey.OFFSET_FOR_LEADER_EPOCH: data_api.offset_for_leader_epoch,
    ApiKey.ADD_PARTITIONS_TO_TXN: txn_api.add_partitions_to_txn,
    ApiKey.ADD_OFFSETS_TO_TXN: txn_api.add_offsets_to_txn,
    ApiKey.END_TXN: txn_api.end_txn,
    ApiKey.TXN_OFFSET_COMMIT: txn_api.txn_offset_commit,
    ApiKey.DESCRIBE_CONFIGS: admin_api.describe_configs,
    ApiKey.DESCRIBE_CLUSTER: admin_api.describe_cluster,
    ApiKey.SASL_HANDSHAKE: admin_api.sasl_handshake,
    ApiKey.SASL_AUTHENTICATE: admin_api.sasl_authenticate,
    ApiKey.DELETE_RECORDS: records_api.delete_records,
    ApiKey.DESCRIBE_PRODUCERS: records_api.describe_producers,
}
assert set(HANDLERS) == set(SUPPORTED), "advertise exactly what is implemented"
_ASYNC = {key for key, fn in HANDLERS.items() if inspect.iscoroutinefunction(fn)}


async def dispatch(
    server: BrokerServer, header: RequestHeaderInfo, body: Any, client_host: str, peer: str = ""
) -> bytes | None:
    """The framed response to one request, or None when none is due."""
    key = header.api_key
    version = header.api_version
    cluster = server.cluster
    cluster.requests_handled += 1
    cluster.requests_by_api[key] += 1
    req = Request(
        cluster,
        server.node_id,
        key,
        version,
        header.correlation_id,
        header.client_id,
        client_host,
        peer,
    )
    rng = cluster.supported.get(key)
    if key == ApiKey.API_VERSIONS and rng is not None and not rng[0] <= version <= rng[1]:
        # KIP-511: answer an ApiVersions we cannot speak with v0 + our ranges.
        req.version = 0
        answer = admin_api.api_versions_body(0, errors.UNSUPPORTED_VERSION, cluster.supported)
        return framing.encode_response(ApiKey.API_VERSIONS, 0, header.correlation_id, answer)
    if rng is None or not rng[0] <= version <= rng[1] or body is None:
        cluster.unsupported_requests += 1
        return unsupported_response(req)
    handler = HANDLERS[key]
    if key in _ASYNC:
        resp = await handler(req, body)
    else:
        resp = handler(req, body)
    if resp is None:
        return None
    if cluster.throttle_time_ms and hasattr(resp, "throttle_time_ms"):
        resp.throttle_time_ms = cluster.throttle_time_ms
    frame = framing.encode_response(key, req.version, header.correlation_id, resp)
    if cluster.hostile is not None:
        return cluster.hostile.answer(req, frame)
    return frame


def unsupported_response(req: Request) -> bytes:
    """A well-formed error answer to a request this broker does not implement.

    When kafka-python knows the response schema, the response is that schema's
    defaults with every top-level error code set to UNSUPPORTED_VERSION. When it
    does not (an unknown api key or a version newer than the schemas), there is
    no correct body to write; we send the correlation id and an int16
    UNSUPPORTED_VERSION so the client fails the request instead of hanging.
    """
    cls = schema.response_class(req.api_key, req.version)
    if cls is None:
        head = req.correlation_id.to_bytes(4, "big", signed=True)
        body = errors.UNSUPPORTED_VERSION.to_bytes(2, "big")
        return (len(head) + len(body)).to_bytes(4, "big") + head + body
    resp = cls()
    for field in cls[None]._struct._fields:
        if field.for_version_q(req.version) and field.name == "error_code":
            resp.error_code = errors.UNSUPPORTED_VERSION
    return framing.encode_response(req.api_key, req.version, req.correlation_id, resp)
