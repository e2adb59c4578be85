"""The Kafka filter: rewrite broker addresses, record routing data, count requests.

Per message it does only dict lookups and counter increments, except for the
few responses that advertise brokers (Metadata, FindCoordinator,
DescribeCluster), which are re-encoded with the proxy's addresses. Those are
rare (clients refresh metadata every few minutes), so their ~200 µs decode
and encode do not show in throughput. A response whose addresses already
point at the proxy is forwarded byte for byte.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import Direction, Message
from protoproxy_codecs.kafka import framing, rewrite
from protoproxy_codecs.kafka.api_keys import ApiKey

from .metrics import KafkaMetrics, version_label

if TYPE_CHECKING:
    from ..connection import Connection
    from .brokers import BrokerListeners
    from .routing import RoutingTable

log = logging.getLogger("protoproxy.kafka")

UPSTREAM = Direction.UPSTREAM
# Plain ints (not ApiKey members): every response's api_key is looked up here.
# Responses that always advertise brokers.
_ROUTING_APIS = frozenset(
    int(k) for k in (ApiKey.METADATA, ApiKey.FIND_COORDINATOR, ApiKey.DESCRIBE_CLUSTER)
)
# KIP-951: Produce v10+ and Fetch v16+ responses may carry new leaders' endpoints.
_NODE_ENDPOINTS_FROM = {int(ApiKey.PRODUCE): 10, int(ApiKey.FETCH): 16}


class KafkaFilter:
    """One instance per bootstrap listener (shared by its broker listeners' connections).

    `brokers` is None for Kafka detected by sniffing on an `auto` listener:
    that traffic is counted, but nothing is rewritten (there is no cluster
    configuration to build broker listeners from).
    """

    def __init__(
        self,
        metrics: KafkaMetrics,
        table: RoutingTable | None,
        brokers: BrokerListeners | None,
    ) -> None:
        self.metrics = metrics
        self.table = table
        self.brokers = brokers
        self._mapper = brokers.map if brokers is not None else None

    def on_messages(
        self, conn: Connection, direction: Direction, messages: list[Message]
    ) -> list[Message]:
        if direction is UPSTREAM:
            self._requests(conn, messages)
            self.metrics.sync_in_flight(conn)
            return messages
        out = messages
        for i, msg in enumerate(messages):
            info = msg.info
            if info is None or msg.kind != "response":
                continue
            api_key = info.get("api_key")
            if api_key is None:
                self.metrics.unmatched.inc((conn.listener.name,))
                continue
            if "decode_error" in info:
                self._undecodable(conn, info, "response")
                continue
            if api_key in _ROUTING_APIS or (
                api_key in _NODE_ENDPOINTS_FROM
                and info["api_version"] >= _NODE_ENDPOINTS_FROM[api_key]
                and _has_node_endpoints(msg)
            ):
                new = self._route(conn, msg, api_key)
                if new is not None:
                    if out is messages:
                        out = list(messages)
                    out[i] = new
        return out

    # -- requests -----------------------------------------------------------------
    def _requests(self, conn: Connection, messages: list[Message]) -> None:
        lname = conn.listener.name
        counter = self.metrics.requests
        values = counter.values
        sizes = self.metrics.request_size
        for msg in messages:
            info = msg.info
            if info is None or msg.kind != "request":
                continue
            version = info["api_version"]
            api = info["api"]
            key = (lname, api, version_label(version), info["client_id"] or "")
            if key in values:
                values[key] += 1
            else:
                counter.inc(key)
            sizes.observe((lname, api), len(msg.raw))
            if info.get("known", True) is False:
                self.metrics.unknown.inc((lname, str(info["api_key"]), version_label(version)))
            elif "decode_error" in info:
                self._undecodable(conn, info, "request")

    def _undecodable(self, conn: Connection, info: dict[str, Any], kind: str) -> None:
        self.metrics.undecodable.inc(
            (conn.listener.name, str(info["api_key"]), version_label(info["api_version"]), kind)
        )

    # -- responses that advertise brokers ---------------------------------------------
    def _route(self, conn: Connection, msg: Message, api_key: int) -> Message | None:
        """Record the routing facts, then rewrite; the new Message, or None to keep it."""
        info = msg.info
        assert info is not None
        routing = rewrite.routing(msg)
        if routing is not None and self.table is not None:
            self.table.update(routing)
        if self._mapper is None:
            return None
        result = rewrite.rewrite_response(msg, self._mapper)
        if self.brokers is not None:
            self.metrics.brokers.set((self.brokers.bootstrap.name,), len(self.brokers.by_node))
            if routing is not None and self.table is not None:
                for b in routing.brokers:
                    entry = self.table.brokers.get(b.node_id)
                    if entry is not None and b.rack is not None:
                        entry.rack = b.rack
        if result is None:
            return None
        self.metrics.rewrites.inc((conn.listener.name, info["api"]))
        if result.dropped_tags:
            log.debug(
                "conn %d: %s response lost %d unknown tagged fields in rewriting",
                conn.id,
                info["api"],
                result.dropped_tags,
            )
        new_info = dict(info)
        new_info["rewritten"] = result.changed
        frame = result.frame
        version = info["api_version"]
        body_at = 4 + info.get("header_size", len(frame) - 4)
        return Message(
            msg.direction,
            msg.kind,
            frame,
            msg.key,
            new_info,
            lambda: framing.decode_body(api_key, version, False, frame, body_at, len(frame)),
        )


def _has_node_endpoints(msg: Message) -> bool:
    body = msg.view
    return body is not None and bool(getattr(body, "node_endpoints", None))
