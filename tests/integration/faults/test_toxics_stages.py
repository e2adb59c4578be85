"""Property: toxics that only delay (latency, bandwidth, slicer, slow_close),
added and removed live in any order while bytes flow, deliver exactly the
bytes written, in order, with the EOF last; a stage holding more than the
high-water mark has paused the source, which reads again once all drained.

This drives the real engine, ToxicManager and stages on a real event loop;
only the connection's two sockets are stand-ins, so thousands of
interleavings run in a second.
"""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from protoproxy.faults.engine import FaultEngine
from protoproxy.faults.model import FaultSpec
from protoproxy.faults.stage import Stage
from protoproxy.faults.streams import ToxicManager
from protoproxy.observe.stats import Stats

HIGH, LOW = 3000, 500


class _Socket:
    """Stands in for a Side: records reads paused, and what it was sent."""

    def __init__(self) -> None:
        self.paused = False
        self.transport = None
        self.data = bytearray()
        self.eof = False
        self.after_eof = 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def write(self, data: bytes) -> None:
        if self.eof:
            self.after_eof += 1
        self.data += data

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def write_eof(self) -> None:
        self.eof = True


class _Conn:
    def __init__(self, loop: asyncio.AbstractEventLoop, proxy: Any) -> None:
        self.id = 1
        self.loop = loop
        self.proxy = proxy
        self.listener = SimpleNamespace(name="t")
        self.protocol = "tcp"
        self.extra: dict[str, Any] = {}
        self.end_reason = None
        self.down = _Socket()  # the client: the source of upstream bytes
        self.up = _Socket()  # the server: where they go
        self.outlets: list[Any] = [self.up, self.down]
        self.drained = 0

    def outlet_drained(self) -> None:
        self.drained += 1


def _toxic(kind: str, draw: st.DrawFn) -> dict[str, Any]:
    if kind == "latency":
        return {"latency": draw(st.integers(0, 3)), "jitter": draw(st.integers(0, 2))}
    if kind == "bandwidth":
        return {"rate": draw(st.integers(500, 50_000))}
    if kind == "slicer":
        return {
            "average_size": draw(st.integers(0, 300)),
            "size_variation": draw(st.integers(0, 50)),
            "delay": draw(st.integers(0, 400)),
        }
    return {"delay": draw(st.integers(0, 3))}


@st.composite
def _ops(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    ops: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 14))):
        what = draw(st.sampled_from(["write", "write", "add", "remove", "yield", "sleep"]))
        if what == "write":
            size = draw(st.integers(1, 6000))
            start = draw(st.integers(0, 255))
            ops.append(("write", bytes((start + k) % 256 for k in range(size))))
        elif what == "add":
            kind = draw(st.sampled_from(["latency", "bandwidth", "slicer", "slow_close"]))
            ops.append(("add", kind, _toxic(kind, draw)))
        elif what == "remove":
            ops.append(("remove", draw(st.integers(0, 10))))
        else:
            ops.append((what,))
    return ops


async def _play(ops: list[tuple[Any, ...]], seed: int) -> tuple[_Conn, bytes]:
    loop = asyncio.get_running_loop()
    proxy = SimpleNamespace(
        stats=Stats(),
        config=SimpleNamespace(
            limits=SimpleNamespace(write_buffer_high=HIGH, write_buffer_low=LOW)
        ),
        upstream_observers=[],
        close_observers=[],
        connections={},
    )
    engine = FaultEngine(proxy, seed=seed)  # type: ignore[arg-type]
    ToxicManager(engine, proxy)  # type: ignore[arg-type]
    conn = _Conn(loop, proxy)
    proxy.connections[1] = conn
    names = itertools.count()
    live: list[str] = []
    sent = bytearray()
    for op in ops:
        if op[0] == "write":
            sent += op[1]
            conn.outlets[0].write(op[1])
            held = [getattr(s, "held", 0) for s in ToxicManager.stages(conn)]
            if any(h > HIGH for h in held):
                assert conn.down.paused, held  # a stage over the mark stops the source
        elif op[0] == "add":
            name = f"x{next(names)}"
            engine.add(
                FaultSpec(
                    name=name,
                    match={"listener": "t"},
                    toxic={"type": op[1], "stream": "upstream", "attributes": op[2]},
                )
            )
            live.append(name)
        elif op[0] == "remove" and live:
            engine.remove(live.pop(op[1] % len(live)))
        elif op[0] == "sleep":
            await asyncio.sleep(0.002)
        else:
            await asyncio.sleep(0)
    conn.outlets[0].write_eof()
    async with asyncio.timeout(10):
        while not conn.up.eof or getattr(conn.outlets[0], "busy", False):
            await asyncio.sleep(0.001)
    return conn, bytes(sent)


@given(ops=_ops(), seed=st.integers(0, 2**16))
def test_delaying_toxics_keep_every_byte_in_order_with_eof_last(ops, seed):
    conn, sent = asyncio.run(_play(ops, seed))
    assert bytes(conn.up.data) == sent
    assert conn.up.eof and conn.up.after_eof == 0
    assert not conn.down.paused  # whatever was held has drained: reading again
    chain = conn.outlets[0]
    while isinstance(chain, Stage):
        chain = chain.next
    assert chain is conn.up
