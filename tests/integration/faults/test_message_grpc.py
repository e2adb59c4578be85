"""Acceptance 3: gRPC faults as grpcio (C-core) sees them, through the proxy (h2c).

Each fault must show its documented effect on the call it hits and none on
the other calls multiplexed on the same connection; C-core checks HPACK and
flow control strictly, so a desynchronised table or window shows up as a
failed connection (and in the proxy's decode/connection error counters).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from protoproxy.app import App
from protoproxy.faults.model import FaultSpec
from testbed.grpc import Behaviour, FakeGrpcService
from testbed.grpc.client import AioClient

from ..http.conftest import address, running_app

SERVICE = "protoproxy.testbed.v1.TestService"
#: What grpcio reports when a call ends while it is still writing requests; a
#: real server ending a Bidi call early gets the same about a quarter of the
#: time (checked against the fake service directly, no proxy involved).
CORE_WRITE_RACE = (grpc.StatusCode.INTERNAL, "Internal error from Core")


class Rig:
    def __init__(self, app: App, service: FakeGrpcService) -> None:
        self.app = app
        self.service = service
        self.engine = app.faults

    def fault(self, **spec: Any) -> Any:
        return self.engine.add(FaultSpec(**spec))

    def client(self) -> Any:
        return AioClient.connect(address(self.app, "grpc"))

    def errors(self) -> tuple[float, float]:
        m = self.app.proxy.metrics
        return m.decode_errors.total(), m.connection_errors.total()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with FakeGrpcService() as svc:
        listener = {"name": "grpc", "listen": "127.0.0.1:0", "protocol": "grpc", "upstream": "svc"}
        async with running_app([listener], [{"name": "svc", "endpoints": [svc.address]}]) as app:
            yield Rig(app, svc)


async def _bystanders(client: Any, n: int) -> list[Any]:
    """Calls of every kind that no fault matches, run alongside the faulted ones."""
    calls = []
    for _ in range(n):
        calls.append(client.server_stream(Behaviour.make(count=3, size=50), timeout=10))
        calls.append(client.client_stream(None, n=3, timeout=10))
    return await asyncio.gather(*calls)


def _ok(results: list[Any]) -> None:
    bad = [(r.code, r.details) for r in results if r.code != grpc.StatusCode.OK]
    assert not bad, bad[:5]


async def test_abort_unary_and_streaming_with_status_and_message(rig):
    rig.fault(
        name="u",
        match={"protocol": "grpc", "service": SERVICE, "method": "Unary"},
        action={"abort": {"status": "RESOURCE_EXHAUSTED", "message": "quota: ü%"}},
    )
    rig.fault(
        name="b",
        # On the first request message rather than the call start: by then the
        # client has written its one message, so no write of grpcio's own races
        # the status (see CORE_WRITE_RACE).
        match={"protocol": "grpc", "method": "Bidi", "direction": "upstream", "message_index": 0},
        action={"abort": {"status": "UNAUTHENTICATED", "message": "who?"}},
    )
    rig.fault(
        name="mid",
        match={
            "protocol": "grpc",
            "method": "ServerStream",
            "direction": "downstream",
            "message_index": 2,
        },
        action={"abort": {"status": "DATA_LOSS", "message": "cut"}},
    )
    async with rig.client() as c:
        unary = [c.unary(Behaviour.make(size=10), timeout=10) for _ in range(5)]
        streams = [c.server_stream(Behaviour.make(count=5, size=10), timeout=10) for _ in range(3)]
        others = [c.client_stream(None, n=4, timeout=10) for _ in range(5)]
        results = await asyncio.gather(*unary, *streams, *others)
        # Bidi one at a time: grpcio reports a call that ends while it is still
        # writing as CORE_WRITE_RACE, and many concurrent writers make that the rule.
        b = [await c.bidi(Behaviour.make(count=1), n=1, timeout=10) for _ in range(12)]
    u, s, o = results[:5], results[5:8], results[8:]
    assert {(r.code, r.details) for r in u} == {(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota: ü%")}
    bidi_seen = {(r.code, r.details) for r in b}
    assert (grpc.StatusCode.UNAUTHENTICATED, "who?") in bidi_seen
    assert bidi_seen <= {(grpc.StatusCode.UNAUTHENTICATED, "who?"), CORE_WRITE_RACE}
    assert all(r.code == grpc.StatusCode.DATA_LOSS and len(r.responses) == 2 for r in s), s
    _ok(o)
    assert rig.service.stats("Unary").started == 0  # aborted calls never reached the server
    assert rig.errors() == (0, 0)


async def test_rst_stream_ends_only_that_call(rig):
    rig.fault(name="rst", match={"protocol": "grpc", "method": "Unary"}, action={"rst_stream": {}})
    async with rig.client() as c:
        hit, others = await asyncio.gather(
            asyncio.gather(*(c.unary(Behaviour.make(size=10), timeout=10) for _ in range(5))),
            _bystanders(c, 5),
        )
    # RST_STREAM without trailers: C-core reports CANCELLED or INTERNAL.
    assert {r.code for r in hit} <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL}, hit
    _ok(others)
    assert rig.errors() == (0, 0)


async def test_goaway_makes_grpcio_reconnect_and_retry(rig):
    rig.fault(
        name="ga",
        match={"protocol": "grpc", "method": "Unary"},
        action={"goaway": {}},
        schedule={"first": 1},
    )
    async with rig.client() as c:
        first = await c.unary(Behaviour.make(size=10), timeout=10)
        rest = await asyncio.gather(
            *(c.unary(Behaviour.make(size=10), timeout=10) for _ in range(5))
        )
    # Streams past GOAWAY's last-stream-id were never processed: grpcio retries them.
    assert first.code == grpc.StatusCode.OK
    _ok(rest)
    assert rig.engine.get("ga").injected == 1
    assert rig.errors()[0] == 0


async def test_withheld_window_updates_starve_large_messages_only(rig):
    rig.fault(
        name="wu",
        match={"protocol": "grpc", "direction": "upstream"},
        action={"withhold_window_updates": {}},
    )
    async with rig.client() as c:
        small = await c.unary(Behaviour.make(size=1000), timeout=5)
        big = await c.unary(Behaviour.make(size=8 * 1024 * 1024), timeout=2)
    assert small.code == grpc.StatusCode.OK
    # The server runs out of window and stalls: the client's deadline fires.
    assert big.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert rig.engine.get("wu").injected > 0
    assert rig.errors()[0] == 0


async def test_drop_request_hits_the_deadline_and_spares_the_rest(rig):
    rig.fault(
        name="drop",
        match={"protocol": "grpc", "method": "Unary"},
        action={"drop": {}},
        schedule={"first": 2},
    )
    async with rig.client() as c:
        dropped = await asyncio.gather(
            *(c.unary(Behaviour.make(size=10), timeout=1) for _ in range(2))
        )
        after = await asyncio.gather(
            *(c.unary(Behaviour.make(size=10), timeout=5) for _ in range(3))
        )
        others = await _bystanders(c, 3)
    assert {r.code for r in dropped} == {grpc.StatusCode.DEADLINE_EXCEEDED}
    _ok(after)
    _ok(others)
    assert rig.errors() == (0, 0)


CALLS = int(os.environ.get("PROTOPROXY_GRPC_FAULT_CALLS", "10000"))


async def test_many_calls_with_random_aborts_keep_hpack_and_flow_control_intact(rig):
    """10,000 calls, a third aborted at random points: only the injected statuses appear."""
    rig.fault(
        name="start",
        match={"protocol": "grpc", "method": "Unary"},
        action={"abort": {"status": "UNAVAILABLE", "message": "start"}},
        probability=0.2,
    )
    rig.fault(
        name="mid",
        match={"protocol": "grpc", "method": "Bidi", "message_index": 1},
        action={"abort": {"status": "ABORTED", "message": "mid"}},
        probability=0.3,
    )
    rig.fault(
        name="resp",
        match={
            "protocol": "grpc",
            "method": "ServerStream",
            "direction": "downstream",
            "message_index": 0,
        },
        action={"abort": {"status": "INTERNAL", "message": "resp"}},
        probability=0.2,
    )
    rng = random.Random(5)
    seen: Counter[tuple[str, str]] = Counter()
    expected = {
        "Unary": {("OK", ""), ("UNAVAILABLE", "start")},
        "Bidi": {("OK", ""), ("ABORTED", "mid"), (CORE_WRITE_RACE[0].name, CORE_WRITE_RACE[1])},
        "ServerStream": {("OK", ""), ("INTERNAL", "resp")},
    }
    async with rig.client() as c:
        done = 0
        while done < CALLS:
            batch = []
            for _ in range(min(100, CALLS - done)):
                kind = rng.choice(("Unary", "Bidi", "ServerStream"))
                size = rng.choice((10, 300, 5000))
                if kind == "Unary":
                    batch.append((kind, c.unary(Behaviour.make(size=size), timeout=20)))
                elif kind == "Bidi":
                    batch.append(
                        (kind, c.bidi(Behaviour.make(count=1, size=size), n=3, timeout=20))
                    )
                else:
                    batch.append(
                        (kind, c.server_stream(Behaviour.make(count=3, size=size), timeout=20))
                    )
            results = await asyncio.gather(*(call for _, call in batch))
            for (kind, _), r in zip(batch, results, strict=True):
                outcome = (r.code.name, r.details or "")
                assert outcome in expected[kind], (kind, outcome)
                seen[(kind, outcome[0])] += 1
            done += len(batch)
    assert sum(seen.values()) == CALLS
    for fault in ("start", "mid", "resp"):
        assert rig.engine.get(fault).injected > 0
    assert rig.errors() == (0, 0)
    assert rig.app.proxy.connections and len(rig.app.proxy.connections) <= 1


async def test_delayed_settings_acks_and_pings_keep_the_connection_healthy(rig):
    rig.fault(name="ack", match={"protocol": "http2"}, action={"delay_settings_ack": "50ms"})
    rig.fault(name="ping", match={"protocol": "http2"}, action={"delay_ping": "20ms"})
    rig.fault(
        name="data",
        match={"protocol": "http2", "frame_type": "data", "direction": "both"},
        action={"delay": {"normal": {"mean": "2ms", "stddev": "1ms"}}},
        probability=0.3,
    )
    async with rig.client() as c:
        results = await asyncio.gather(
            *(c.unary(Behaviour.make(size=20_000), timeout=10) for _ in range(20)),
            _bystanders(c, 5),
        )
    _ok(list(results[:20]))
    _ok(results[20])
    assert rig.engine.get("ack").injected > 0  # both peers ack each other's SETTINGS
    assert rig.engine.get("data").injected > 0
    # Held frames are released: `active` returns to 0 (polled, not timed).
    for _ in range(500):
        if all(rig.engine.get(n).active == 0 for n in ("ack", "ping", "data")):
            break
        await asyncio.sleep(0.01)
    assert [rig.engine.get(n).active for n in ("ack", "ping", "data")] == [0, 0, 0]
    assert rig.errors() == (0, 0)
