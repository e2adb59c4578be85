"""Assertions shared by the client tests: log contents, metrics, rewrites, no bypass."""

from __future__ import annotations

from collections import Counter

from .capture import RewriteCapture, check_rewrites
from .clients import Consumed, Produced
from .rig import KafkaRig

PRODUCE, FETCH = "Produce", "Fetch"


def log_by_partition(rig: KafkaRig, topic: str, partitions: int) -> Produced:
    cluster = rig.cluster
    assert cluster is not None
    return rig.run(
        lambda: {p: [r.value for r in cluster.records(topic, p)] for p in range(partitions)}
    )


def per_partition(family: dict[tuple[str, ...], float], topic: str) -> dict[int, int]:
    """Sum a (listener, topic, partition) family over listeners."""
    out: Counter[int] = Counter()
    for (_listener, t, p), v in family.items():
        if t == topic:
            out[int(p)] += int(v)
    return dict(out)


def check_metrics(rig: KafkaRig, topic: str, produced: Produced, consumed: Consumed) -> None:
    """Proxy metrics equal what the clients saw; one latency sample per answered request."""
    produce = per_partition(rig.family("protoproxy_kafka_produce_records_total"), topic)
    assert produce == {p: len(v) for p, v in produced.items() if v}
    fetched = per_partition(rig.family("protoproxy_kafka_fetch_records_total"), topic)
    assert fetched == {p: len(v) for p, v in consumed.items() if v}

    by_api_resp: Counter[tuple[str, str]] = Counter()
    for (listener, api, _v, _cid), n in rig.family("protoproxy_kafka_responses_total").items():
        by_api_resp[(listener, api)] += int(n)
    by_api_req: Counter[tuple[str, str]] = Counter()
    for (listener, api, _v, _cid), n in rig.family("protoproxy_kafka_requests_total").items():
        by_api_req[(listener, api)] += int(n)
    samples = rig.histogram_counts("protoproxy_kafka_request_duration_seconds")
    assert samples == dict(by_api_resp)
    for key, n in by_api_resp.items():
        assert by_api_req[key] >= n
        if key[1] == PRODUCE:  # producers flushed and closed: every request answered
            assert by_api_req[key] == n
    assert any(api == PRODUCE for _, api in samples)
    assert any(api == FETCH for _, api in samples)


def proxy_and_real_addresses(
    rig: KafkaRig,
) -> tuple[dict[int, tuple[str, int]], dict[int, tuple[str, int]]]:
    cluster = rig.cluster
    assert cluster is not None
    proxy: dict[int, tuple[str, int]] = {}
    real: dict[int, tuple[str, int]] = {}
    for node, (upstream, _listener, advertised) in rig.component.broker_map("kafka").items():
        assert advertised is not None
        host, _, port = advertised.rpartition(":")
        proxy[node] = (host, int(port))
        real_host, _, real_port = cluster.servers[node].address.rpartition(":")
        real[node] = (real_host, int(real_port))
        assert upstream == cluster.servers[node].address
    return proxy, real


def check_all(
    rig: KafkaRig,
    capture: RewriteCapture,
    topic: str,
    partitions: int,
    produced: Produced,
    consumed: Consumed,
) -> set[tuple[int, int]]:
    """Everything a round trip through the proxy must satisfy; returns rewritten versions."""
    from .clients import check_exactly_once_in_order

    check_exactly_once_in_order(consumed, produced)
    assert log_by_partition(rig, topic, partitions) == {
        p: produced.get(p, []) for p in range(partitions)
    }
    rig.assert_no_bypass()
    check_metrics(rig, topic, produced, consumed)
    proxy, real = proxy_and_real_addresses(rig)
    checked = check_rewrites(capture, proxy, real)
    assert 3 in {k for k, _ in checked} and 10 in {k for k, _ in checked}
    return checked
