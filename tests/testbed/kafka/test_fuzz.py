"""Hostile bytes: whatever a peer sends, the cluster keeps serving everyone else."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.kafka import framing
from testbed.kafka import FakeKafkaCluster
from testbed.kafka.versions import SUPPORTED
from tests.peers import ServiceThread


@pytest.fixture(scope="module")
def threaded_cluster() -> Iterator[FakeKafkaCluster]:
    """A cluster on its own loop in a thread, so sync hypothesis tests can share it."""
    with ServiceThread(lambda: FakeKafkaCluster(brokers=1, seed=5)) as running:
        yield running.service


def _connect(cluster: FakeKafkaCluster) -> socket.socket:
    host, _, port = cluster.bootstrap.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.settimeout(0.2)
    return sock


def _still_serving(cluster: FakeKafkaCluster) -> None:
    with _connect(cluster) as sock:
        sock.settimeout(5)
        sock.sendall(framing.encode_request(3, 9, 42, "probe", {"topics": None}))
        head = sock.recv(8)
        assert struct.unpack(">i", head[4:8])[0] == 42


# Everything but the APIs that legitimately wait (a random max_wait can be days).
_QUICK = sorted(set(SUPPORTED) - {1, 11, 14})


@given(
    api_key=st.one_of(st.sampled_from(_QUICK), st.integers(-5, 120)),
    version=st.integers(-2, 15),
    body=st.binary(max_size=200),
    size_delta=st.sampled_from([0, 0, 0, -3, 5, 1 << 30]),
)
def test_garbage_requests_never_take_the_cluster_down(
    threaded_cluster, api_key, version, body, size_delta
):
    header = struct.pack(">hhih", api_key, version, 7, 4) + b"fuzz"
    frame = header + body
    with _connect(threaded_cluster) as sock:
        sock.sendall(struct.pack(">i", len(frame) + size_delta) + frame)
        try:
            sock.recv(1 << 16)  # a response, a close, or nothing yet: all fine
        except (TimeoutError, ConnectionError):
            pass
    _still_serving(threaded_cluster)


async def test_null_arrays_in_any_served_request_get_an_answer():
    """kafka-python decodes length -1 as None even where the schema forbids null;
    every handler must still answer (here: with everything an array left null)."""
    from protoproxy_codecs.kafka import schema

    from .helpers import RawClient

    async with FakeKafkaCluster(brokers=1, seed=2) as cluster:
        cluster.create_topic("t", 1)
        client = await RawClient.connect(cluster.bootstrap)
        try:
            for key, (lo, hi) in sorted(SUPPORTED.items()):
                for version in (lo, hi):
                    struct_ = schema.request_class(key, version)[None]._struct
                    body: dict = {
                        f.name: None
                        for f in struct_.fields.values()
                        if f.for_version_q(version) and (f.is_array() or f.is_struct_array())
                    }
                    if key == 0:
                        body["acks"] = 1  # acks=0 would rightly get no answer
                    async with asyncio.timeout(5):
                        await client.request(key, version, body)
        finally:
            await client.close()
