"""A one-node broker just big enough for real producers, built on KafkaCodec.

It exists to put real client bytes (librdkafka, kafka-python) through the
codec in its server role: every frame the clients send is fed to a KafkaCodec
and answered with ``broker_side.respond``. The testbed's fake cluster is the full
version of this; this one stays small so codec tests do not depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field
from typing import Any

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Exchange, Message
from protoproxy_codecs.kafka import KafkaCodec, framing, records, schema

from .broker_side import respond, unredacted_view

UNSUPPORTED_VERSION = 35

# What the broker advertises: (min, max) per api_key, inside what kafka-python knows.
DEFAULT_APIS = {
    0: (3, 9),  # Produce
    1: (4, 12),  # Fetch (librdkafka also writes v2 batches only if this is advertised)
    3: (0, 12),  # Metadata
    10: (0, 4),  # FindCoordinator
    17: (0, 1),  # SaslHandshake
    18: (0, 3),  # ApiVersions
    22: (0, 4),  # InitProducerId
    36: (0, 2),  # SaslAuthenticate
}


@dataclass
class MiniBroker:
    apis: dict[int, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_APIS))
    users: dict[str, str] = field(default_factory=dict)  # PLAIN credentials
    port: int = 0
    messages: list[Message] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    codecs: list[KafkaCodec] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    log: dict[tuple[str, int], list[bytes]] = field(default_factory=dict)  # stored batches
    _server: Any = None

    async def __aenter__(self) -> MiniBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        codec = KafkaCodec()
        self.codecs.append(codec)
        try:
            while data := await reader.read(65536):
                for msg in codec.feed(UPSTREAM, data):
                    self.messages.append(msg)
                    if msg.info.get("api") == "Fetch" and not self._has_data(msg):
                        await asyncio.sleep(0.02)  # a real broker waits max_wait_ms
                    reply = self._answer(codec, msg)
                    if reply is not None:
                        writer.write(reply)
                self.exchanges.extend(codec.take_exchanges())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.exchanges.extend(codec.take_exchanges())
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    # ------------------------------------------------------------------ handlers

    def _answer(self, codec: KafkaCodec, msg: Message) -> bytes | None:
        if msg.kind == "sasl_token":
            if not self._plain_ok(unredacted_view(msg)):
                raise ConnectionError("bad credentials")
            return respond(codec, msg, b"")
        info = msg.info
        if not info["expects_response"]:
            return None
        key, version = info["api_key"], info["api_version"]
        if key == 18 and not schema.is_known(key, version):
            # A client newer than us: answer v0 with UNSUPPORTED_VERSION and our versions.
            body = framing.encode_body(
                18, 0, False, {"error_code": UNSUPPORTED_VERSION, "api_keys": self._api_keys()}
            )
            frame = struct.pack(">ii", 4 + len(body), info["correlation_id"]) + body
            codec.feed(DOWNSTREAM, frame)  # settles the pending request like respond() does
            return frame
        handler = getattr(self, f"_api_{key}", None)
        if handler is None:
            raise ConnectionError(f"mini broker does not speak api {key}")
        return respond(codec, msg, handler(codec, msg))

    def _plain_ok(self, token: bytes) -> bool:
        """PLAIN (RFC 4616): authzid NUL authcid NUL password."""
        parts = bytes(token).split(b"\0")
        if len(parts) != 3:
            return False
        user, password = parts[1].decode(), parts[2].decode()
        return user in self.users and self.users[user] == password

    def _api_keys(self) -> list[dict[str, int]]:
        return [
            {"api_key": k, "min_version": lo, "max_version": hi}
            for k, (lo, hi) in self.apis.items()
        ]

    def _api_18(self, codec: KafkaCodec, msg: Message) -> dict[str, Any]:
        return {"error_code": 0, "api_keys": self._api_keys()}

    def _api_3(self, codec: KafkaCodec, msg: Message) -> dict[str, Any]:
        req = msg.view
        names = [t.name for t in req.topics] if req.topics else []
        partition = {"partition_index": 0, "leader_id": 1, "replica_nodes": [1], "isr_nodes": [1]}
        return {
            "brokers": [{"node_id": 1, "host": "127.0.0.1", "port": self.port}],
            "cluster_id": "mini",
            "controller_id": 1,
            "topics": [{"error_code": 0, "name": n, "partitions": [partition]} for n in names],
        }

    def _api_0(self, codec: KafkaCodec, msg: Message) -> dict[str, Any]:
        responses = []
        for topic in msg.view.topic_data:
            parts = []
            for p in topic.partition_data:
                key = (topic.name, p.index)
                base = self.offsets.get(key, 0)
                next_offset = base
                for batch in records.batches(p.records):
                    raw = bytes(p.records[batch.offset : batch.offset + batch.size])
                    # The broker assigns offsets; the CRC does not cover this field.
                    self.log.setdefault(key, []).append(struct.pack(">q", next_offset) + raw[8:])
                    next_offset += batch.record_count
                self.offsets[key] = next_offset
                parts.append({"index": p.index, "error_code": 0, "base_offset": base})
            responses.append({"name": topic.name, "partition_responses": parts})
        return {"responses": responses}

    def _batches_from(self, key: tuple[str, int], offset: int) -> bytes:
        out = []
        for batch in self.log.get(key, ()):
            (info,) = records.batches(batch)
            if info.base_offset + info.record_count > offset:
                out.append(batch)
        return b"".join(out)

    def _has_data(self, msg: Message) -> bool:
        body = msg.view
        return any(
            self._batches_from((t.topic, p.partition), p.fetch_offset)
            for t in body.topics
            for p in t.partitions
        )

    def _api_1(self, codec: KafkaCodec, msg: Message) -> dict[str, Any]:
        responses = []
        for t in msg.view.topics:
            parts = []
            for p in t.partitions:
                key = (t.topic, p.partition)
                hw = self.offsets.get(key, 0)
                parts.append(
                    {
                        "partition_index": p.partition,
                        "high_watermark": hw,
                        "last_stable_offset": hw,
                        "preferred_read_replica": -1,
                        "aborted_transactions": [],
                        "records": self._batches_from(key, p.fetch_offset),
                    }
                )
            responses.append({"topic": t.topic, "partitions": parts})
        return {"responses": responses}

    def _api_10(self, codec: KafkaCodec, msg: Message) -> dict[str, Any]:
        me = {"node_id": 1, "host": "127.0.0.1", "port": self.port, "error_code": 0}
        if msg.info["api_version"] < 4:
            return me
        return {"coordinators": [dict(me, key=k) for k in msg.view.coordinator_keys]}

    def _api_22(self, codec: KafkaCodec, msg: Message) -> dict[str, Any]:
        return {"error_code": 0, "producer_id": 1000, "producer_epoch": 0}

    def _api_17(self, codec: KafkaCodec, msg: Message) -> dict[str, Any]:
        return {"error_code": 0, "mechanisms": ["PLAIN"]}

    def _api_36(self, codec: KafkaCodec, msg: Message) -> dict[str, Any]:
        if not self._plain_ok(unredacted_view(msg).auth_bytes):
            return {"error_code": 58, "error_message": "bad credentials", "auth_bytes": b""}
        return {"error_code": 0, "auth_bytes": b""}
