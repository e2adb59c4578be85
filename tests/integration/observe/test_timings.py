"""Exchange timings through the real proxy on loopback (issue 10, acceptance 2).

Stamps come from one nanosecond clock, so loopback exchanges (tens to hundreds
of microseconds) get durations with a sub-millisecond part, where the event
loop's millisecond clock gave 0.0 or 0.001. Every access-log line carries the
timing breakdown; the assertions are consistency (the parts add up, proxy time
fits inside the duration) and lower bounds that load cannot break (an upstream
that sleeps 5 ms, a fault that holds 200 ms), never upper time windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder

from testbed.grpc.client import SyncClient
from testbed.grpc.threaded import ThreadedGrpcService
from tests.peers import ProxyThread

from .helpers import KafkaRaw, KafkaServer, access_lines, proxy_config, scrape, total

UNARY = "/protoproxy.testbed.v1.TestService/Unary"
N = 1000
S = 1_000_000_000
MS = 1_000_000
TIMINGS = (
    "upstream_connect",
    "request_duration",
    "upstream_service_time",
    "response_duration",
    "proxy_time",
    "fault_delay",
)
FAMILIES = {
    "request_duration": "protoproxy_exchange_request_duration_seconds",
    "upstream_service_time": "protoproxy_exchange_upstream_service_time_seconds",
    "response_duration": "protoproxy_exchange_response_duration_seconds",
    "proxy_time": "protoproxy_exchange_proxy_time_seconds",
}


def ns(seconds: float | None) -> int | None:
    """An access-log value back to the ns it was written from (9 decimals)."""
    return None if seconds is None else round(seconds * S)


@pytest.fixture(scope="module")
def grpc_server():
    with ThreadedGrpcService() as server:
        yield server


@pytest.fixture(scope="module")
def kafka():
    with KafkaServer() as server:
        server.run(lambda: server.service.create_topic("timed", partitions=1))
        yield server


def _batch(i: int) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    builder.append(0, 1_700_000_000_000 + i, None, b"v%d" % i, [])
    return bytes(builder.build())


def _produce(i: int) -> dict[str, Any]:
    return {
        "acks": -1,
        "timeout_ms": 5000,
        "topic_data": [{"name": "timed", "partition_data": [{"index": 0, "records": _batch(i)}]}],
    }


def _flushed_lines(proxy: ProxyThread, path: Path) -> list[dict[str, Any]]:
    proxy.run(proxy.app.observe.access_log.flush)
    return access_lines(path)


def _check_breakdown(lines: list[dict[str, Any]]) -> None:
    """What every line of a one-connection run of sequential exchanges must hold."""
    sub_ms = sum(1 for ln in lines if ns(ln["duration"]) % MS)
    assert sub_ms >= 0.9 * len(lines), f"only {sub_ms} of {len(lines)} have a sub-ms part"
    for i, ln in enumerate(lines):
        assert all(name in ln for name in TIMINGS), ln
        d = {name: ns(ln[name]) for name in ("duration", *TIMINGS)}
        assert 0 < d["proxy_time"] <= d["duration"], ln
        assert d["fault_delay"] == 0, ln
        # Request, upstream, response: consecutive, so they partition the duration.
        parts = d["request_duration"] + d["upstream_service_time"] + d["response_duration"]
        assert parts == d["duration"], ln
        assert d["upstream_service_time"] > 0, ln
        # The connection's connect time rides on its first exchange only.
        if i == 0:
            assert d["upstream_connect"] is not None and d["upstream_connect"] > 0, ln
        else:
            assert d["upstream_connect"] is None, ln


def _check_histograms(m: dict, lines: list[dict[str, Any]], operation: str) -> None:
    for name, family in FAMILIES.items():
        assert total(m[family + "_count"], operation=operation) == len(lines), family
        logged = sum(ns(ln[name]) for ln in lines)
        assert abs(total(m[family + "_sum"], operation=operation) * S - logged) < 1000, family
    connects = m["protoproxy_exchange_upstream_connect_seconds_count"]
    assert total(connects, operation=operation) == 1


def test_grpc_unary_calls_have_sub_millisecond_timings(grpc_server, tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    with ProxyThread(proxy_config(grpc_server.address, access_log=log_path, tail=False)) as proxy:
        with SyncClient.connect(f"127.0.0.1:{proxy.port('front')}") as client:
            for i in range(N):
                assert client.unary(payload=b"p%d" % i, timeout=10).ok
        m = scrape(proxy.admin_url)
        lines = [ln for ln in _flushed_lines(proxy, log_path) if ln["operation"] == UNARY]
    assert len(lines) == N
    _check_breakdown(lines)
    _check_histograms(m, lines, UNARY)
    # not a speed check: a whole-millisecond clock summed these to 0.0 (issue 10)
    assert total(m["protoproxy_grpc_call_duration_seconds_sum"], method="Unary") > 0
    assert total(m["protoproxy_grpc_call_duration_seconds_count"], method="Unary") == N
    # The first bucket is 25 µs: the smallest bound exported.
    bounds = {
        float(dict(labels)["le"])
        for labels in m["protoproxy_exchange_duration_seconds_bucket"]
        if dict(labels)["le"] != "+Inf"
    }
    assert min(bounds) == 25e-6


def test_grpc_calls_started_counts_every_call_with_repeated_or_varying_heads(
    grpc_server, tmp_path: Path
) -> None:
    """Without a deadline grpcio sends the same request head every call (the
    HPACK cache hands the codec the same headers object, which the call-start
    counter and the call builder read once); with one, grpc-timeout varies.
    Both kinds count once each, under the right method."""
    with ProxyThread(proxy_config(grpc_server.address, tail=False)) as proxy:
        with SyncClient.connect(f"127.0.0.1:{proxy.port('front')}") as client:
            for i in range(300):
                assert client.unary(payload=b"p%d" % i, timeout=None if i % 3 else 10).ok
            assert client.server_stream(payload=b"s").ok
        m = scrape(proxy.admin_url)
    assert total(m["protoproxy_grpc_calls_started_total"], method="Unary") == 300
    assert total(m["protoproxy_grpc_calls_started_total"], method="ServerStream") == 1
    assert total(m["protoproxy_grpc_calls_total"], method="Unary") == 300


def test_kafka_produce_requests_have_sub_millisecond_timings(kafka, tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    cfg = proxy_config(kafka.address, protocol="kafka", access_log=log_path, tail=False)
    with ProxyThread(cfg) as proxy:
        client = KafkaRaw(proxy.port("front"), client_id="timings")
        try:
            for i in range(N):
                resp = client.request(0, 9, _produce(i))
                assert resp.responses[0].partition_responses[0].error_code == 0
        finally:
            client.close()
        m = scrape(proxy.admin_url)
        lines = _flushed_lines(proxy, log_path)
    assert [ln["operation"] for ln in lines] == ["Produce v9"] * N
    _check_breakdown(lines)
    _check_histograms(m, lines, "Produce v9")
    # not a speed check: a whole-millisecond clock summed these to 0.0 (issue 10)
    assert total(m["protoproxy_kafka_request_duration_seconds_sum"], api="Produce") > 0


def test_upstream_latency_is_upstream_service_time_not_proxy_time(
    grpc_server, tmp_path: Path
) -> None:
    """A 5 ms behaviour program: the upstream's sleep shows in upstream_service_time.

    The request's write stamp is read before its bytes reach the socket, so the
    upstream cannot have started sleeping before it: >= 5 ms whatever the load.
    """
    log_path = tmp_path / "access.log"
    grpc_server.program("Unary", latency=0.005)
    try:
        with (
            ProxyThread(
                proxy_config(grpc_server.address, access_log=log_path, tail=False)
            ) as proxy,
            SyncClient.connect(f"127.0.0.1:{proxy.port('front')}") as client,
        ):
            for _ in range(20):
                assert client.unary(timeout=10).ok
            lines = [ln for ln in _flushed_lines(proxy, log_path) if ln["operation"] == UNARY]
    finally:
        grpc_server.reset()
    assert len(lines) == 20
    for ln in lines:
        assert ns(ln["upstream_service_time"]) >= 5 * MS, ln
        assert ns(ln["proxy_time"]) < ns(ln["upstream_service_time"]), ln
        assert ns(ln["duration"]) >= 5 * MS, ln


def test_message_fault_delay_is_fault_delay_not_proxy_time(kafka, tmp_path: Path) -> None:
    """A 200 ms delay on Produce requests (the Gate) lands in fault_delay, and the
    exchange is reported once the held request has really been written."""
    log_path = tmp_path / "access.log"
    cfg = proxy_config(
        kafka.address,
        protocol="kafka",
        access_log=log_path,
        tail=False,
        faults=[
            {
                "name": "slow-produce",
                "match": {"protocol": "kafka", "api": "Produce"},
                "action": {"delay": "200ms"},
            }
        ],
    )
    with ProxyThread(cfg) as proxy:
        client = KafkaRaw(proxy.port("front"), client_id="delayed")
        try:
            for i in range(3):
                client.request(0, 9, _produce(i))
        finally:
            client.close()
        m = scrape(proxy.admin_url)
        lines = _flushed_lines(proxy, log_path)
    assert len(lines) == 3
    for ln in lines:
        d = {name: ns(ln[name]) for name in ("duration", *TIMINGS[1:])}
        # The Gate's timer runs on the loop's clock: half the delay is a bound
        # no early timer tick can break.
        assert d["fault_delay"] >= 100 * MS, ln
        assert d["proxy_time"] < d["fault_delay"], ln
        assert d["proxy_time"] + d["fault_delay"] <= d["duration"], ln
        # The hold is on the request's way: it ends request_duration.
        assert d["request_duration"] >= d["fault_delay"], ln
    delays = m["protoproxy_exchange_fault_delay_seconds_count"]
    assert total(delays, operation="Produce v9") == 3


def test_stream_toxic_hold_is_fault_delay_and_reported_once(kafka, tmp_path: Path) -> None:
    """A 50 ms latency toxic on responses: its hold is fault_delay, each exchange
    gives one line (reported when the held response really left)."""
    log_path = tmp_path / "access.log"
    cfg = proxy_config(
        kafka.address,
        protocol="kafka",
        access_log=log_path,
        tail=False,
        faults=[
            {
                "name": "slow-responses",
                "match": {"listener": "front"},
                "toxic": {"type": "latency", "stream": "downstream", "attributes": {"latency": 50}},
            }
        ],
    )
    with ProxyThread(cfg) as proxy:
        client = KafkaRaw(proxy.port("front"), client_id="toxic")
        try:
            for i in range(5):
                client.request(0, 9, _produce(i))
        finally:
            client.close()
        lines = _flushed_lines(proxy, log_path)
    assert len(lines) == 5
    for ln in lines:
        d = {name: ns(ln[name]) for name in ("duration", *TIMINGS[1:])}
        assert d["fault_delay"] >= 25 * MS, ln  # half the latency: early ticks cannot break it
        assert d["proxy_time"] < d["fault_delay"], ln
        assert d["response_duration"] >= d["fault_delay"], ln
