"""Per-broker listeners: opened on first sight, ready before the client hears of them,
from a port range or pinned, bounded, and kept after their broker disappears."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest

from protoproxy_codecs.kafka import framing
from testbed.harness import Testbed
from testbed.scenario import Scenario
from tests.peers import PORT_ATTEMPTS, port_taken

from .rig import KafkaRig


def _free_port_block(n: int) -> int:
    """A base port with `n` free ports after it (checked now; a race is unlikely)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
        return base
    pytest.skip("no block of free ports")
    raise AssertionError


def _enter_pinned(
    stack: contextlib.ExitStack, n: int, make: Callable[[int], Any]
) -> tuple[int, Any]:
    """Enter `make(base)` on a block of `n` ports picked now; when another process
    took one before the proxy bound it, pick another block."""
    for attempt in range(PORT_ATTEMPTS):
        base = _free_port_block(n)
        try:
            return base, stack.enter_context(make(base))
        except OSError as exc:
            if not port_taken(exc) or attempt == PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def _enter_pinned_async(
    stack: contextlib.AsyncExitStack, n: int, make: Callable[[int], Any]
) -> tuple[int, Any]:
    """`_enter_pinned` for async context managers."""
    for attempt in range(PORT_ATTEMPTS):
        base = _free_port_block(n)
        try:
            return base, await stack.enter_async_context(make(base))
        except OSError as exc:
            if not port_taken(exc) or attempt == PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _metadata(address: str, version: int = 9) -> tuple[bytes, object]:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(framing.encode_request(3, version, 1, "raw", {"topics": None}))
        head = _read(s, 4)
        payload = _read(s, struct.unpack(">i", head)[0])
    return head + payload, framing.decode_response(3, version, payload)[1]


def _read(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, "closed early"
        out += chunk
    return out


def test_advertised_listeners_accept_at_once() -> None:
    """Connect to every advertised broker the instant the response arrives."""
    with KafkaRig(brokers=3) as rig:
        _, body = _metadata(rig.bootstrap)
        for b in body.brokers:  # type: ignore[attr-defined]
            with socket.create_connection((b.host, b.port), timeout=5) as s:
                s.sendall(framing.encode_request(18, 3, 2, "raw", {}))
                assert _read(s, 4)
        rig.assert_no_bypass()


def test_port_range_is_used_in_order() -> None:
    base = _free_port_block(5)
    with KafkaRig(brokers=3, kafka={"broker_ports": f"{base}-{base + 4}"}) as rig:
        _, body = _metadata(rig.bootstrap)
        ports = sorted(b.port for b in body.brokers)  # type: ignore[attr-defined]
        assert ports == [base, base + 1, base + 2]
        assert {b.host for b in body.brokers} == {"127.0.0.1"}  # type: ignore[attr-defined]


def test_pinned_brokers_open_at_start_and_advertised_host() -> None:
    def rig_at(base: int) -> KafkaRig:
        pinned = {n: f"127.0.0.1:{base + n}" for n in range(3)}
        return KafkaRig(brokers=3, kafka={"brokers": pinned, "advertised_host": "localhost"})

    with contextlib.ExitStack() as stack:
        base, rig = _enter_pinned(stack, 3, rig_at)
        # Open before any client spoke: a pinned port answers as a bootstrap server.
        _, body = _metadata(f"127.0.0.1:{base + 2}")
        got = {b.node_id: (b.host, b.port) for b in body.brokers}  # type: ignore[attr-defined]
        assert got == {n: ("localhost", base + n) for n in range(3)}
        assert rig.component.broker_map("kafka")[1][0] == rig.cluster.servers[1].address  # type: ignore[union-attr]


def test_max_brokers_leaves_the_rest_unrewritten_and_counts_it() -> None:
    with KafkaRig(brokers=3, kafka={"max_brokers": 2}) as rig:
        _, body = _metadata(rig.bootstrap)
        real = {n: s.address for n, s in rig.cluster.servers.items()}  # type: ignore[union-attr]
        advertised = {b.node_id: f"{b.host}:{b.port}" for b in body.brokers}  # type: ignore[attr-defined]
        assert sum(advertised[n] == real[n] for n in range(3)) == 1
        failures = rig.family("protoproxy_kafka_broker_listener_failures_total")
        assert failures == {("kafka",): 1}


def test_a_stopped_broker_keeps_its_listener() -> None:
    with KafkaRig(brokers=3) as rig:
        _metadata(rig.bootstrap)
        before = rig.component.broker_map("kafka")
        cluster = rig.cluster
        assert cluster is not None
        rig.call(lambda: cluster.stop_broker(2))
        _, body = _metadata(rig.bootstrap)
        assert {b.node_id for b in body.brokers} == {0, 1}  # type: ignore[attr-defined]
        assert rig.component.broker_map("kafka") == before
        assert "kafka-broker2" in rig.app.proxy.listeners
        # Both Metadata responses advertised real addresses, so both were rewritten.
        rewritten = rig.family("protoproxy_kafka_rewritten_responses_total")
        assert rewritten[("kafka", "Metadata")] == 2


async def test_testbed_runs_kafka_behind_the_proxy() -> None:
    sc = Scenario.ephemeral(
        grpc={"enabled": False}, http={"enabled": False}, echo={"enabled": False}
    )
    async with Testbed(sc) as tb:
        text = tb.describe()
        assert f"kcat -b {tb.addresses['kafka']}" in text
        _, body = await asyncio.to_thread(_metadata, tb.addresses["kafka"])
        cluster = tb.services["kafka"]
        assert cluster.topics() == ["orders"]
        real = {s.address for s in cluster.servers.values()}
        assert not {f"{b.host}:{b.port}" for b in body.brokers} & real  # type: ignore[attr-defined]


async def test_testbed_pins_broker_listeners_next_to_bootstrap() -> None:
    def testbed_at(base: int) -> Testbed:
        sc = Scenario.ephemeral(
            grpc={"enabled": False}, http={"enabled": False}, echo={"enabled": False}
        )
        sc.ports["kafka"] = base
        return Testbed(sc)

    async with contextlib.AsyncExitStack() as stack:
        base, tb = await _enter_pinned_async(stack, 4, testbed_at)
        assert tb.addresses["kafka"] == f"127.0.0.1:{base}"
        for n in range(3):
            assert tb.addresses[f"kafka-broker{n}"] == f"127.0.0.1:{base + 1 + n}"
        _, body = await asyncio.to_thread(_metadata, tb.addresses["kafka"])
        assert sorted(b.port for b in body.brokers) == [base + 1, base + 2, base + 3]  # type: ignore[attr-defined]


def test_admin_serves_the_broker_map() -> None:
    import json
    import urllib.request

    with KafkaRig(brokers=3, config={"admin": {"listen": "127.0.0.1:0"}}) as rig:
        _metadata(rig.bootstrap)
        assert rig.app is not None and rig.app.admin is not None
        with urllib.request.urlopen(rig.app.admin.url + "/kafka/brokers", timeout=10) as r:
            got = json.load(r)
        cluster = got["clusters"]["kafka"]
        real = {n: s.address for n, s in rig.cluster.servers.items()}  # type: ignore[union-attr]
        assert {b["node_id"]: b["upstream"] for b in cluster["brokers"]} == real
        assert all(b["listener"] == f"kafka-broker{b['node_id']}" for b in cluster["brokers"])


#: Brokers a hostile or broken upstream may advertise: none may end the client's
#: connection (a Metadata answer is a payload inside good framing).
BAD_BROKERS = [
    (0, "", 9092, "empty host"),
    (1, "h" * 300, 9092, "host of 300 characters"),
    (2, "bad host", 9092, "is not a DNS name"),
    (3, "127.0.0.1", 0, "port 0 is out of range"),
    (-5, "127.0.0.1", 9092, "node id -5 is negative"),
    (6, "a" * 64 + ".example", 9092, "is not a DNS name"),  # a label over 63 octets
]


async def _answer_metadata(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An upstream that answers Metadata v9 with BAD_BROKERS, anything else with ApiVersions."""
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            (n,) = struct.unpack(">i", await reader.readexactly(4))
            header, _ = framing.decode_request(await reader.readexactly(n))
            brokers = [
                {"node_id": node, "host": host, "port": port, "rack": None}
                for node, host, port, _ in BAD_BROKERS
            ]
            body = {
                "throttle_time_ms": 0,
                "brokers": brokers,
                "cluster_id": "c",
                "controller_id": 0,
                "topics": [],
            }
            writer.write(framing.encode_response(3, 9, header.correlation_id, body))
            await writer.drain()


async def test_bad_advertised_brokers_keep_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    from protoproxy.app import App
    from protoproxy.config import from_dict

    server = await asyncio.start_server(_answer_metadata, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    app = App(
        from_dict(
            {
                "admin": {"enabled": False},
                "listeners": [
                    {"name": "kafka", "listen": "127.0.0.1:0", "protocol": "kafka",
                     "upstream": "up"}
                ],
                "upstreams": [{"name": "up", "endpoints": [f"127.0.0.1:{port}"]}],
            }
        )
    )  # fmt: skip
    await app.start()
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", app.proxy.listeners["kafka"].port
        )
        for corr in (1, 2, 3):  # the same connection answers every time
            writer.write(framing.encode_request(3, 9, corr, "raw", {"topics": None}))
            (n,) = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 10))
            got, body = framing.decode_response(3, 9, await reader.readexactly(n))
            assert got == corr
            # advertised unrewritten: the proxy could not listen for them
            assert [(b.node_id, b.host, b.port) for b in body.brokers] == [
                (node, host, bport) for node, host, bport, _ in BAD_BROKERS
            ]
        writer.close()
        assert not app.kafka.brokers["kafka"].by_node
        reasons = [r.getMessage() for r in caplog.records if "unrewritten" in r.getMessage()]
        for node, *_, why in BAD_BROKERS:  # each said once, not once per answer
            said = [m for m in reasons if f"broker {node} " in m and why in m]
            assert len(said) == 1, (node, why, reasons)
        failures = app.proxy.stats.families["protoproxy_kafka_broker_listener_failures_total"]
        assert failures.total() == 3 * len(BAD_BROKERS)  # but every one is counted
    finally:
        await app.stop(drain=0)
        server.close()
