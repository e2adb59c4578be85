"""Acceptance 3: HPACK stays in sync on one long-lived connection.

10,000 calls share one grpcio connection. Each carries metadata with many
distinct values of varied lengths. grpc C-core sends custom metadata as
literals without indexing, but it indexes `:path`; so one call in three goes
to a distinct, long, unknown method path (answered UNIMPLEMENTED, a
trailers-only response), and the client's encoder keeps inserting into its
4 KiB dynamic table and evicting. The client advertises a small
decoder table (`grpc.http2.hpack_table_size.decoder`), so the server's
encoder must send a dynamic table size update. A filter in the proxy records
every header block the proxy decoded; each must equal what the client sent
(and what the server echoes it received), and each response block must equal
what the client got.
"""

from __future__ import annotations

import asyncio
from typing import Any

from grpc import StatusCode, aio

from protoproxy.connection import Connection
from protoproxy.pipeline import FilterSlot
from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, Direction, Message
from testbed.grpc import Behaviour, FakeGrpcService
from testbed.grpc.client import AioClient, CallResult

from .conftest import running_app

CALLS = 10_000
CONCURRENCY = 64
CLIENT_DECODER_TABLE = 512
_RESERVED = ("content-type", "te", "user-agent", "grpc-accept-encoding", "accept-encoding")


class BlockRecorder:
    """Keeps every decoded header block by (direction, stream id), in order."""

    def __init__(self) -> None:
        self.blocks: dict[tuple[int, int], list[tuple[tuple[str, str], ...]]] = {}
        self.size_updates = 0
        self.conn: Connection | None = None

    def on_messages(
        self, conn: Connection, direction: Direction, messages: list[Message]
    ) -> list[Message]:
        self.conn = conn
        for m in messages:
            info = m.info
            if info is None or "headers" not in info:
                continue
            self.blocks.setdefault((direction, info["stream_id"]), []).append(info["headers"])
            # Without PADDED/PRIORITY the block starts right after the frame header.
            starts = m.kind == "headers" and not info["flags"] & 0x28 and len(m.raw) > 9
            if direction is DOWNSTREAM and starts and m.raw[9] & 0xE0 == 0x20:
                self.size_updates += 1
        return messages


def _custom(headers: Any) -> list[tuple[str, str]]:
    return sorted(
        (k, v) for k, v in headers if not k.startswith((":", "grpc-")) and k not in _RESERVED
    )


def _metadata(i: int) -> list[tuple[str, str]]:
    return [
        ("x-call", str(i)),
        (f"x-key-{i % 11}", "v" * (i % 173) + str(i)),  # distinct, 1..180 bytes
        ("x-tenant", f"tenant-{i % 13}"),  # repeats: indexed references
        ("x-trace", f"{i * 2654435761 % 2**32:08x}" * (1 + i % 4)),
    ]


def _unknown_path(i: int) -> str:
    return f"/protoproxy.testbed.v1.Nowhere/Method{i:05d}" + "x" * (i % 200)


async def _unknown(channel: aio.Channel, i: int) -> CallResult:
    path = _unknown_path(i)
    rpc = channel.unary_unary(path, request_serializer=bytes, response_deserializer=bytes)
    call = rpc(b"\x0a\x01z", metadata=_metadata(i))
    try:
        await call
    except aio.AioRpcError as err:
        return CallResult(
            path,
            err.code(),
            err.details() or "",
            initial_metadata=tuple(err.initial_metadata() or ()),
            trailing_metadata=tuple(err.trailing_metadata() or ()),
        )
    raise AssertionError(f"{path} answered OK")


async def test_hpack_in_sync_over_10000_calls() -> None:
    recorder = BlockRecorder()
    async with (
        FakeGrpcService() as service,
        running_app(
            [{"name": "g", "listen": "127.0.0.1:0", "protocol": "grpc", "upstream": "s"}],
            [{"name": "s", "endpoints": [service.address]}],
        ) as app,
    ):
        app.proxy.codec_observers.append(lambda conn: conn.add_filter(FilterSlot.FAULTS, recorder))
        channel = aio.insecure_channel(
            f"127.0.0.1:{app.proxy.listeners['g'].port}",
            options=[("grpc.http2.hpack_table_size.decoder", CLIENT_DECODER_TABLE)],
        )
        client = AioClient(channel, owns_channel=True)
        gate = asyncio.Semaphore(CONCURRENCY)
        behaviour = Behaviour.make(size=8)

        async def one(i: int) -> CallResult:
            async with gate:
                if i % 3:
                    return await client.unary(behaviour, metadata=_metadata(i), tag=str(i))
                return await _unknown(channel, i)

        results = await asyncio.gather(*(one(i) for i in range(CALLS)))
        assert recorder.conn is not None and recorder.conn.codec is not None
        codec: Any = recorder.conn.codec
        _size, table = codec.header_decoder(UPSTREAM).table_snapshot()
        await client.close()
        connections = app.proxy.metrics.connections.get(("g",))

    assert connections == 1  # one long-lived connection carried every call
    by_call: dict[str, int] = {}
    for (direction, sid), blocks in recorder.blocks.items():
        if direction == 0:
            assert len(blocks) == 1, f"stream {sid}: request trailers?"
            call = dict(blocks[0])["x-call"]
            by_call[call] = sid
    assert len(by_call) == CALLS

    for i, r in enumerate(results):
        sid = by_call[str(i)]
        request = recorder.blocks[(0, sid)][0]
        # what the proxy decoded == what the client sent (== what the server saw)
        assert _custom(request) == sorted(_metadata(i))
        if i % 3 == 0:
            assert dict(request)[":path"] == _unknown_path(i)
            assert r.code is StatusCode.UNIMPLEMENTED
            (only,) = recorder.blocks[(1, sid)]  # trailers-only
            assert _custom(only) == _custom(r.trailing_metadata)
            assert dict(only)["grpc-status"] == "12"
            continue
        assert r.ok
        echoed = dict(r.responses[0].metadata)
        assert all(echoed.get(k) == v for k, v in _metadata(i))
        # response headers then trailers == what the client received
        head, trailers = recorder.blocks[(1, sid)]
        assert _custom(head) == _custom(r.initial_metadata)
        assert _custom(trailers) == _custom(r.trailing_metadata)
        assert dict(trailers)["grpc-status"] == "0"

    # The client's encoder inserted the paths and evicted all but the latest.
    paths = [v for k, v in table if k == b":path" and b"Nowhere" in v]
    assert len(paths) >= 5
    assert all(int(v[37:42]) > CALLS - 1000 for v in paths), paths
    assert recorder.size_updates >= 1  # the server obeyed the client's small table
