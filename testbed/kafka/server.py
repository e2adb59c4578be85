"""One fake broker's listener: frames in, handler, frames out.

Requests on a connection are handled one at a time, in order, exactly as a
Kafka broker does (it mutes a channel while a request is in flight). That is
what makes a blocked JoinGroup or a long-polling Fetch hold back later requests
on the same connection, and clients are written to expect it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import DecodeError
from protoproxy_codecs.kafka import framing, schema

from .dispatch import dispatch
from .sasl_gate import SaslGate
from .topology import BrokerInfo

if TYPE_CHECKING:
    from .cluster import FakeKafkaCluster

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
_WRITE_HIGH_WATER = 1 << 20


def decode_request(frame: bytes) -> tuple[framing.RequestHeaderInfo, Any]:
    """The codec's strict decode, falling back to Kafka's leniency on trailing bytes.

    A Kafka broker parses a request body field by field and ignores whatever
    follows it. librdkafka 2.16 relies on that: its all-topics Metadata v12
    request carries three stray bytes after the body. The codec (rightly, for a
    proxy that checks framing) rejects such a body, so the broker decodes it
    again without the end-of-frame check; anything else that fails is still bad.
    """
    try:
        return framing.decode_request(frame)
    except DecodeError as exc:
        if exc.reason != "bad_body":
            raise
        key, version, corr, cid_len, body_at = framing.parse_request_header(frame, 0, len(frame))
        cls = schema.request_class(key, version)
        try:
            body = cls.decode(memoryview(frame)[body_at:], version=version)
        except framing.BODY_ERRORS:
            raise exc from None
        client_id = framing.decode_client_id(frame, 0, cid_len)
        return framing.RequestHeaderInfo(key, version, corr, client_id, body_at), body


class BrokerServer:
    """The listener and live connections of one node id."""

    def __init__(self, cluster: FakeKafkaCluster, info: BrokerInfo) -> None:
        self.cluster = cluster
        self.info = info
        self.connections_accepted = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def node_id(self) -> int:
        return self.info.node_id

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> str:
        return f"{self.info.host}:{self.info.port}"

    async def start(self) -> None:
        """Listen; a restarted broker reuses the port it had, like a real one."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._on_connection,
            self.info.host,
            self.info.port,
            reuse_address=True,
            ssl=self.cluster.ssl,
        )
        self.info.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every connection (clients see a broken connection)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections_accepted += 1
        self._tasks.add(task)
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")
        client_host = peer[0] if peer else ""
        client_addr = f"{peer[0]}:{peer[1]}" if peer else ""
        max_size = self.cluster.limits.max_message_size
        credentials = self.cluster.sasl
        gate = SaslGate(credentials) if credentials is not None else None
        try:
            while True:
                (size,) = _SIZE.unpack(await reader.readexactly(4))
                if not 0 < size <= max_size:
                    log.info("broker %d: frame size %d from %s, closing", self.node_id, size, peer)
                    return
                frame = await reader.readexactly(size)
                close = False
                if gate is not None and gate.raw_tokens:
                    out, close = gate.token(self, frame)
                else:
                    try:
                        header, body = decode_request(frame)
                    except DecodeError as exc:
                        # A real broker closes a connection whose request it cannot parse.
                        log.info("broker %d: bad request from %s: %s", self.node_id, peer, exc)
                        return
                    if gate is not None and not gate.authenticated:
                        out, close = await gate.request(self, header, body, client_host)
                    else:
                        out = await dispatch(self, header, body, client_host, client_addr)
                if out is not None:
                    writer.write(out)
                    if close or writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
                        await writer.drain()
                if close:
                    return  # Kafka closes a connection whose authentication failed
        except (asyncio.IncompleteReadError, OSError):
            pass  # the peer went away (OSError covers resets and TLS errors)
        except asyncio.CancelledError:
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.transport.abort()
