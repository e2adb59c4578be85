"""The pipeline: filters and exchange observers run in slot order, whatever the
install order; live filters and fault stages keep that order.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from protoproxy.app import App
from protoproxy.config import from_dict
from protoproxy.connection import Connection
from protoproxy.faults import marks
from protoproxy.pipeline import ExchangeSlot, FilterSlot, Pipeline
from protoproxy_codecs.base import Direction


class _Named:
    """A filter that passes messages on and says who it is."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_messages(self, conn: Any, direction: Direction, messages: list[Any]) -> list[Any]:
        return messages


class _Stage:
    """The smallest fault stage: passes bytes to `next`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.next: Any = None

    def write(self, data: bytes) -> None:
        self.next.write(data)


class _Sink:
    """The receiving end of an outlet chain (stands for the Side)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


def _chain(conn: Connection, direction: Direction) -> list[str]:
    out: list[str] = []
    o = conn.outlets[direction]
    while o is not None:
        out.append(getattr(o, "name", "side"))
        o = getattr(o, "next", None)
    return out


def test_filters_run_in_slot_order_not_registration_order() -> None:
    pipeline = Pipeline()
    for slot in reversed(FilterSlot):
        pipeline.add_filter(slot, lambda conn, slot=slot: _Named(slot.name))
    pipeline.add_filter(FilterSlot.KAFKA, lambda conn: None)  # no filter for this one
    slots: list[int] = []
    filters = pipeline.build_filters(None, slots)  # type: ignore[arg-type]
    assert [f.name for f in filters] == [s.name for s in FilterSlot]  # type: ignore[attr-defined]
    assert slots == sorted(slots)


async def test_a_live_filter_joins_in_its_slot_and_ends_the_opaque_path() -> None:
    conn = Connection(SimpleNamespace(), SimpleNamespace())  # type: ignore[arg-type]
    conn.filters = [_Named("tail"), _Named("faults")]
    conn.filter_slots = [FilterSlot.TAIL, FilterSlot.FAULTS]
    conn.opaque = True
    conn.add_filter(FilterSlot.CALL_START, _Named("call_start"))
    conn.add_filter(FilterSlot.FAULTS, _Named("faults2"))
    assert [f.name for f in conn.filters] == ["tail", "call_start", "faults", "faults2"]  # type: ignore[attr-defined]
    assert conn.filter_slots == sorted(conn.filter_slots)
    assert conn.opaque is False


async def test_stages_link_outermost_or_innermost_and_unlink_anywhere() -> None:
    conn = Connection(SimpleNamespace(), SimpleNamespace())  # type: ignore[arg-type]
    sink = _Sink()
    up = Direction.UPSTREAM
    conn.outlets[up] = sink  # type: ignore[assignment]
    a, b, gate = _Stage("a"), _Stage("b"), _Stage("gate")
    conn.attach_stage(up, a, outermost=False)
    conn.attach_stage(up, b, outermost=False)  # toxics append at the chain's end
    conn.attach_stage(up, gate, outermost=True)  # the delay gate is written to first
    assert _chain(conn, up) == ["gate", "a", "b", "side"]
    conn.outlets[up].write(b"x")  # type: ignore[union-attr]
    conn.detach_stage(up, a)
    assert _chain(conn, up) == ["gate", "b", "side"] and a.next is None
    conn.detach_stage(up, gate)
    assert _chain(conn, up) == ["b", "side"]
    conn.detach_stage(up, b)
    assert conn.outlets[up] is sink
    conn.outlets[up].write(b"y")  # type: ignore[union-attr]
    assert bytes(sink.data) == b"xy"


def _app(**extra: Any) -> App:
    return App(
        from_dict(
            {
                "admin": {"enabled": False},
                "listeners": [
                    {"name": "g", "listen": "127.0.0.1:0", "protocol": "grpc", "upstream": "u"}
                ],
                "upstreams": [{"name": "u", "endpoints": ["127.0.0.1:9"]}],
                **extra,
            }
        )
    )


def test_exchange_observers_follow_the_slots_with_marks_first() -> None:
    app = _app(access_log={"enabled": True, "path": "-"})
    assert min(ExchangeSlot) is ExchangeSlot.MARKS
    access_log = app.observe.access_log
    assert access_log is not None
    assert app.proxy.exchange_observers == [
        marks.observe,
        app.observe.exchange_metrics.observe,
        access_log.observe,
        app.kafka.metrics.on_exchanges,
        app.kafka.on_exchanges,
        app.http.observe,
    ]


async def test_an_http2_connection_gets_tail_call_start_and_faults_in_order() -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    upstream = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    app = App(
        from_dict(
            {
                "admin": {"enabled": False},
                "tail": {"enabled": True},
                "listeners": [
                    {"name": "g", "listen": "127.0.0.1:0", "protocol": "grpc", "upstream": "u"}
                ],
                "upstreams": [{"name": "u", "endpoints": [f"127.0.0.1:{port}"]}],
                "faults": [{"name": "slow", "match": {"listener": "g"}, "action": {"delay": 1}}],
            }
        )
    )
    await app.start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", app.proxy.listeners["g"].port)
        async with asyncio.timeout(5):
            while not app.proxy.connections:
                await asyncio.sleep(0.01)
        (conn,) = app.proxy.connections.values()
        names = [type(f).__name__ for f in conn.filters]
        assert names == ["MessageTail", "CallStartFilter", "MessageFaultFilter"]
        assert conn.filter_slots == [FilterSlot.TAIL, FilterSlot.CALL_START, FilterSlot.FAULTS]
        assert conn.opaque is False
        writer.close()
    finally:
        await app.stop(drain=0)
        upstream.close()
        for w in held:
            w.close()
