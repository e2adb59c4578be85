"""Capture broker-advertising responses before and after the proxy's rewrite.

Two filters around the Kafka filter on every Kafka connection: one first in
the chain (sees the broker's bytes), one last (sees what the client gets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protoproxy.connection import Connection
from protoproxy.pipeline import FilterSlot
from protoproxy_codecs.base import Direction, Message
from protoproxy_codecs.kafka import framing

ROUTING_APIS = (3, 10, 60)


@dataclass
class Captured:
    api_key: int
    version: int
    original: bytes
    forwarded: bytes | None = None


@dataclass
class RewriteCapture:
    by_key: dict[tuple[int, int], Captured] = field(default_factory=dict)

    def observe(self, conn: Connection) -> None:
        if conn.protocol == "kafka":
            conn.add_filter(FilterSlot.TAIL, _Before(self))  # before the Kafka rewrite
            conn.add_filter(FilterSlot.FAULTS, _After(self))  # after everything

    def versions(self) -> set[tuple[int, int]]:
        return {(c.api_key, c.version) for c in self.by_key.values()}


class _Before:
    def __init__(self, capture: RewriteCapture) -> None:
        self.capture = capture

    def on_messages(
        self, conn: Connection, direction: Direction, messages: list[Message]
    ) -> list[Message]:
        if direction is Direction.DOWNSTREAM:
            for m in messages:
                info = m.info or {}
                if info.get("api_key") in ROUTING_APIS:
                    self.capture.by_key[(conn.id, m.key)] = Captured(
                        info["api_key"], info["api_version"], m.raw
                    )
        return messages


class _After(_Before):
    def on_messages(
        self, conn: Connection, direction: Direction, messages: list[Message]
    ) -> list[Message]:
        if direction is Direction.DOWNSTREAM:
            for m in messages:
                got = self.capture.by_key.get((conn.id, m.key))
                if got is not None and got.forwarded is None:
                    got.forwarded = m.raw
        return messages


def endpoints(api_key: int, version: int, body: Any) -> list[tuple[Any, str]]:
    """(object, node-id attribute) for every advertised endpoint, found independently."""
    if api_key == 10 and version < 4:
        return [(body, "node_id")] if body.node_id >= 0 else []
    if api_key == 10:
        return [(c, "node_id") for c in body.coordinators or () if c.node_id >= 0]
    if api_key == 60:
        return [(b, "broker_id") for b in body.brokers or ()]
    return [(b, "node_id") for b in body.brokers or ()]


def check_rewrites(
    capture: RewriteCapture,
    proxy_addr: dict[int, tuple[str, int]],
    real_addr: dict[int, tuple[str, int]],
) -> set[tuple[int, int]]:
    """Every captured response: same header, same body except host/port, proxy addresses.

    Returns the (api_key, version) pairs checked.
    """
    checked: set[tuple[int, int]] = set()
    for c in capture.by_key.values():
        assert c.forwarded is not None, "a captured response never reached the client"
        _, body_at = framing.parse_response_header(
            c.original, 4, len(c.original), c.api_key, c.version
        )
        assert c.forwarded[4:body_at] == c.original[4:body_at], "header changed"
        assert int.from_bytes(c.forwarded[:4], "big") == len(c.forwarded) - 4
        original = framing.decode_body(
            c.api_key, c.version, False, c.original, body_at, len(c.original)
        )
        rewritten = framing.decode_body(
            c.api_key, c.version, False, c.forwarded, body_at, len(c.forwarded)
        )
        eps = endpoints(c.api_key, c.version, original)
        for obj, id_attr in eps:
            node = getattr(obj, id_attr)
            assert (obj.host, obj.port) == real_addr[node], "the broker advertised itself"
            obj.host, obj.port = proxy_addr[node]
        assert rewritten == original, f"api {c.api_key} v{c.version}: more than addresses changed"
        if not eps:
            assert c.forwarded == c.original  # nothing to rewrite: byte for byte
        checked.add((c.api_key, c.version))
    return checked
