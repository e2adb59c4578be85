"""Toxiproxy parity: each stream toxic, measured through the proxy.

Bounds come from the configured values only. Lower bounds are hard (a toxic
can never deliver early); upper bounds get a wide margin for a loaded 2-core
box, because they measure the machine, not the toxic.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.peers import wait_for

from .test_toxics_peers import (
    add_toxic,
    connect,
    echo,
    faults,
    proxied,
    read_exactly,
    read_to_eof,
    remove,
    reply_and_close,
    rtt,
    sink,
)

SLACK = 1.0  # seconds of scheduling noise tolerated on top of an upper bound


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency_within_jitter_bounds(stream):
    latency, jitter = 150, 50
    with proxied(echo) as (proxy, _):
        sock = connect(proxy)
        base = min(rtt(sock) for _ in range(3))
        add_toxic(proxy, "latency", stream=stream, latency=latency, jitter=jitter)
        samples = [rtt(sock) for _ in range(8)]
        lo = (latency - jitter) / 1000
        hi = (latency + jitter) / 1000
        assert min(samples) >= lo, samples
        assert max(samples) - base <= hi + SLACK, samples
        # jitter is drawn per chunk: eight draws from ±50 ms are not all equal
        assert max(samples) - min(samples) > 0.005, samples
        sock.close()


def test_latency_keeps_order_and_every_byte_when_the_server_closes_at_once():
    payload = bytes(range(256)) * 2000  # 512 KB, then FIN and close from the server
    with proxied(reply_and_close(payload)) as (proxy, _):
        add_toxic(proxy, "latency", latency=200)
        sock = connect(proxy)
        t0 = time.monotonic()
        sock.sendall(b"go")
        got, reads = read_to_eof(sock)
        assert got == payload
        assert reads[0][0] - t0 >= 0.2
        sock.close()


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_bandwidth_within_ten_percent_of_rate(stream):
    rate = 1000  # KB/s
    size = 2_000_000  # 2 s at the rate: fixed costs stay small beside it
    payload = b"b" * size
    got: list[bytes] = []
    server_reads: list[tuple[float, int]] = []
    handler = reply_and_close(payload) if stream == "downstream" else sink(got, server_reads)
    with proxied(handler) as (proxy, _):
        add_toxic(proxy, "bandwidth", stream=stream, rate=rate)
        sock = connect(proxy)
        t0 = time.monotonic()
        if stream == "downstream":
            sock.sendall(b"go")
            data, reads = read_to_eof(sock)
            assert data == payload
        else:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1) == b""  # the server closes once it has read all
            assert wait_for(lambda: len(got) == 1)
            assert got[0] == payload
            reads = server_reads
        # From the first byte sent to the last byte received: every byte
        # leaves at the end of its slot, so this can never beat the rate.
        measured = size / (reads[-1][0] - t0) / 1000
        assert rate * 0.9 <= measured <= rate * 1.1, measured
        sock.close()


def test_bandwidth_backpressure_bounds_memory_and_loses_nothing():
    high, low = 256 * 1024, 64 * 1024
    size = 6 * 1024 * 1024
    payload = bytes(range(251)) * (size // 251)
    got: list[bytes] = []
    with proxied(sink(got), limits={"write_buffer_high": high, "write_buffer_low": low}) as (
        proxy,
        _,
    ):
        fault = add_toxic(proxy, "bandwidth", stream="upstream", rate=100)
        sock = connect(proxy)
        sender = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
        sender.start()
        # Wait for the event, backpressure (held bytes past the high-water mark),
        # rather than for a second that a loaded machine may not fill.
        assert wait_for(lambda: bool(proxy.run(lambda: proxy.proxy.connections)), 30)
        conn = proxy.run(lambda: next(iter(proxy.proxy.connections.values())))
        stages = proxy.run(lambda: faults(proxy).stages(conn))
        assert wait_for(lambda: proxy.run(lambda: stages[0].peak) > high, 30)
        assert wait_for(lambda: proxy.run(lambda: conn.client.paused), 30)
        peak = stages[0].peak
        read = proxy.run(lambda: conn.bytes[0])
        # Paused above the high-water mark: held bytes stay within one
        # mark plus one read, and the client cannot push everything.
        assert high < peak <= high + 512 * 1024, peak
        assert read < size / 2, read
        remove(proxy, fault.name)  # lifting the toxic releases everything, in order
        sender.join(30)
        sock.shutdown(socket.SHUT_WR)
        assert wait_for(lambda: len(got) == 1, 30)
        assert got[0] == payload
        sock.close()


def test_limit_data_closes_after_exactly_n_bytes():
    with proxied(reply_and_close(b"x" * 50_000)) as (proxy, _):
        add_toxic(proxy, "limit_data", bytes=1234)
        sock = connect(proxy)
        sock.sendall(b"go")
        data, _ = read_to_eof(sock)
        assert data == b"x" * 1234
        sock.close()
    got: list[bytes] = []
    with proxied(sink(got)) as (proxy, _):
        add_toxic(proxy, "limit_data", stream="upstream", bytes=777)
        sock = connect(proxy)
        with pytest.raises(OSError):  # the proxy closes; later sends may be reset
            for _ in range(100):
                sock.sendall(b"y" * 100)
                time.sleep(0.005)
        assert wait_for(lambda: len(got) == 1)
        assert got[0] == b"y" * 777
        sock.close()


def test_slicer_delivers_the_same_bytes_in_slices():
    avg, var, delay_us = 100, 20, 2000
    payload = bytes(range(256)) * 40  # 10,240 bytes in one write
    with proxied(reply_and_close(payload)) as (proxy, _):
        add_toxic(proxy, "slicer", average_size=avg, size_variation=var, delay=delay_us)
        sock = connect(proxy)
        sock.sendall(b"go")
        data, reads = read_to_eof(sock)
        assert data == payload
        slices = -(-len(payload) // (avg + var))  # at least this many
        # Slices leave `delay` apart: the last one no sooner than that.
        assert reads[-1][0] - reads[0][0] >= (slices - 1) * delay_us / 1e6 * 0.9
        assert len(reads) >= slices // 4  # the reader sees many small reads, not one
        assert max(n for _, n in reads) < len(payload)
        sock.close()


def test_timeout_stops_data_then_closes():
    with proxied(echo) as (proxy, _):
        sock = connect(proxy)
        assert rtt(sock) >= 0
        t0 = time.monotonic()
        add_toxic(proxy, "timeout", timeout=300)
        sock.sendall(b"lost")
        assert sock.recv(100) == b""  # no data, then a clean close
        assert time.monotonic() - t0 >= 0.3
        sock.close()


def test_timeout_zero_holds_until_removed_without_dropping_the_connection():
    with proxied(echo) as (proxy, _):
        sock = connect(proxy)
        fault = add_toxic(proxy, "timeout", timeout=0)
        sock.sendall(b"dropped")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        remove(proxy, fault.name)
        sock.settimeout(30)
        assert rtt(sock, b"again") >= 0  # same connection, data flows again
        sock.close()


def test_reset_peer_resets_after_timeout():
    with proxied(echo) as (proxy, _):
        sock = connect(proxy)
        add_toxic(proxy, "reset_peer", stream="upstream", timeout=200)
        t0 = time.monotonic()
        sock.sendall(b"trigger")
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
        assert time.monotonic() - t0 >= 0.2
        sock.close()
        errors = proxy.run(lambda: dict(proxy.proxy.metrics.connection_errors.values))
        assert errors.get(("t", "toxic_reset_peer")) == 1


def test_slow_close_delays_the_close_not_the_data():
    with proxied(reply_and_close(b"hello")) as (proxy, _):
        add_toxic(proxy, "slow_close", delay=400)
        sock = connect(proxy)
        t0 = time.monotonic()
        sock.sendall(b"go")
        assert read_exactly(sock, 5) == b"hello"
        t_data = time.monotonic() - t0
        assert sock.recv(1) == b""
        t_eof = time.monotonic() - t0
        assert t_eof >= 0.4
        assert t_data < t_eof
        sock.close()


def test_toxicity_is_per_connection_and_counted():
    with proxied(echo) as (proxy, _):
        fault = add_toxic(proxy, "latency", latency=1, toxicity=0.5)
        applied = 0
        for _ in range(30):
            sock = connect(proxy)
            rtt(sock)
            conn = proxy.run(lambda: max(proxy.proxy.connections.values(), key=lambda c: c.id))
            applied += bool(proxy.run(lambda c=conn: c.extra.get("toxics")))
            sock.close()
        injected = proxy.run(lambda: fault.injected)
        assert injected == applied
        assert 3 <= applied <= 27  # p = 0.5 over 30 connections
        counted = proxy.run(
            lambda: proxy.proxy.stats.families["protoproxy_faults_injected_total"].values
        )
        assert counted[(fault.name, "toxic")] == applied


def test_toxics_chain_and_come_off_live():
    with proxied(echo) as (proxy, _):
        sock = connect(proxy)
        lat = add_toxic(proxy, "latency", latency=100)
        sl = add_toxic(proxy, "slicer", average_size=2, delay=1000)
        assert rtt(sock, b"0123456789") >= 0.1
        remove(proxy, lat.name)
        remove(proxy, sl.name)
        conn = proxy.run(lambda: next(iter(proxy.proxy.connections.values())))
        assert proxy.run(lambda: conn.outlets[1] is conn.client)  # unwrapped to the Side
        assert rtt(sock) < 10
        sock.close()


def test_max_active_caps_connections_under_a_toxic_at_once():
    with proxied(echo) as (proxy, _):
        fault = proxy.run(
            lambda: faults(proxy).add(
                name="one-at-a-time",
                match={"listener": "t"},
                toxic={"type": "latency", "attributes": {"latency": 1}},
                schedule={"max_active": 1},
            )
        )

        def applied() -> list[bool]:
            conns = sorted(proxy.proxy.connections.values(), key=lambda c: c.id)
            return [bool(c.extra.get("toxics")) for c in conns]

        a, b = connect(proxy), connect(proxy)
        rtt(a), rtt(b)
        assert proxy.run(applied) == [True, False]
        assert proxy.run(lambda: fault.active) == 1
        a.close()
        assert wait_for(lambda: proxy.run(lambda: fault.active) == 0)
        c = connect(proxy)
        rtt(c)
        assert proxy.run(applied) == [False, True]
        b.close()
        c.close()
