"""The `protoproxy_testbed` fixture in this suite, and TestbedThread under it.

The fixture comes from the installed `pytest11` entry point, as for any user.
How it behaves in a user's project (strict mode, no pytest-asyncio) is checked
in subprocesses by test_example_project.py.
"""

from __future__ import annotations

import gc
import os
import socket
import threading

import pytest

from protoproxy.config import ConfigError
from testbed.admin_client import AdminError
from testbed.grpc.client import SyncClient
from testbed.scenario import DEFAULT_PORTS
from testbed.threaded import TestbedThread

ECHO_ONLY = {
    "kafka": {"enabled": False},
    "grpc": {"enabled": False},
    "http": {"enabled": False},
}


def echo(address: str, data: bytes) -> bytes:
    """Send `data`, half-close, and read until the proxy closes."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_default_scenario_runs_everything_on_ephemeral_ports(protoproxy_testbed) -> None:
    tb = protoproxy_testbed
    assert set(tb.addresses) == {"admin", "echo", "kafka", "grpc", "http"}
    ports = {int(a.rsplit(":", 1)[1]) for a in tb.addresses.values()}
    assert not ports & set(DEFAULT_PORTS.values())
    assert tb.admin.get("/healthz") == {"status": "ok"}
    assert tb.admin_url == f"http://{tb.addresses['admin']}"
    assert tb.http_url == f"http://{tb.addresses['http']}"
    assert echo(tb.echo_address, b"hello") == b"hello"


@pytest.mark.protoproxy_scenario(ECHO_ONLY)
def test_a_marker_dict_chooses_the_services(protoproxy_testbed) -> None:
    tb = protoproxy_testbed
    assert set(tb.addresses) == {"admin", "echo"}
    with pytest.raises(LookupError, match="no 'kafka'"):
        _ = tb.kafka_bootstrap


@pytest.mark.protoproxy_scenario(
    ECHO_ONLY, echo={"enabled": False}, http={"enabled": True}, seed=42
)
def test_marker_keywords_override_scenario_keys(protoproxy_testbed) -> None:
    tb = protoproxy_testbed
    assert set(tb.addresses) == {"admin", "http"}
    assert tb.faults.seed == 42


@pytest.mark.protoproxy_scenario(ECHO_ONLY, kafka={"brokers": 2})
def test_marker_keywords_merge_into_a_mapping_key(protoproxy_testbed) -> None:
    """`kafka={"brokers": 2}` keeps the scenario's `enabled: false`."""
    assert set(protoproxy_testbed.addresses) == {"admin", "echo"}
    assert protoproxy_testbed.scenario.kafka.brokers == 2


@pytest.mark.protoproxy_scenario(ECHO_ONLY)
@pytest.mark.parametrize(
    "protoproxy_testbed",
    [{**ECHO_ONLY, "echo": {"enabled": False}, "http": {}}, {**ECHO_ONLY, "seed": 5}],
    indirect=True,
)
def test_an_indirect_parameter_takes_the_markers_place(protoproxy_testbed) -> None:
    tb = protoproxy_testbed
    if tb.scenario.seed == 5:
        assert set(tb.addresses) == {"admin", "echo"}
    else:
        assert set(tb.addresses) == {"admin", "http"}


@pytest.mark.protoproxy_scenario(ECHO_ONLY)
def test_faults_from_the_test_thread_reach_real_traffic(protoproxy_testbed) -> None:
    tb = protoproxy_testbed
    cut = {"type": "limit_data", "attributes": {"bytes": 3}}
    with tb.faults.applied(name="cut", match={"listener": "echo"}, toxic=cut):
        assert echo(tb.echo_address, b"hello") == b"hel"
        assert tb.faults.injected("cut") == 1
        assert [f["name"] for f in tb.admin.faults()] == ["cut"]
    assert tb.faults.list() == []
    assert echo(tb.echo_address, b"hello") == b"hello"
    with pytest.raises(AdminError) as missing:
        tb.admin.fault("cut")
    assert missing.value.status == 404


@pytest.mark.protoproxy_scenario(ECHO_ONLY)
async def test_async_faults_await_on_the_tests_loop(protoproxy_testbed) -> None:
    import asyncio

    tb = protoproxy_testbed
    cut = {"type": "limit_data", "attributes": {"bytes": 2}}
    async with tb.async_faults.applied(name="cut", match={"listener": "echo"}, toxic=cut):
        host, port = tb.echo_address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"hello")
        writer.write_eof()
        assert await reader.read() == b"he"
        writer.close()
        assert await tb.async_faults.injected("cut") == 1
    assert await tb.acall(lambda testbed: testbed.faults.list()) == []


def test_a_bad_scenario_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.brokers"):
        TestbedThread({"kafka": {"brokers": 0}})
    with pytest.raises(ConfigError, match="nosuch"):
        TestbedThread(ECHO_ONLY, overrides={"nosuch": 1})


def _fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def _session(scenario: dict[str, object] | None = None) -> dict[str, str]:
    """One testbed with real traffic on each service: what a test would do."""
    from kafka import KafkaProducer

    with TestbedThread(scenario) as tb:
        thread = tb.thread
        assert thread is not None and thread.is_alive()
        producer = KafkaProducer(bootstrap_servers=tb.kafka_bootstrap)
        producer.send("orders", b"x", partition=0).get(timeout=30)
        producer.close()
        with SyncClient.connect(tb.grpc_target) as client:
            assert client.unary().ok
        assert echo(tb.echo_address, b"x") == b"x"
        addresses = dict(tb.addresses)
    assert not thread.is_alive()
    return addresses


def test_stopping_leaves_no_thread_socket_or_listener_behind() -> None:
    _session()  # the first run pays for process-wide state (grpc's core, imports)
    threads = set(threading.enumerate())
    fds = _fds()
    addresses = _session()
    # Only what appeared counts: threads and sockets of earlier tests may still be
    # ending meanwhile, which makes the sets smaller, never larger.
    assert set(threading.enumerate()) - threads == set()
    assert _fds() <= fds
    for name, address in addresses.items():
        host, port = address.rsplit(":", 1)
        with pytest.raises(ConnectionRefusedError), socket.socket() as s:
            s.connect((host, int(port)))
            pytest.fail(f"{name} still listens on {address}")


def test_a_failed_start_stops_the_thread() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runner = TestbedThread({**ECHO_ONLY, "ports": {"echo": port}}, ephemeral_ports=False)
        before = set(threading.enumerate())
        with pytest.raises((OSError, ConfigError)):  # the echo port is taken
            runner.start()
    assert set(threading.enumerate()) - before == set()
    assert runner.thread is None
