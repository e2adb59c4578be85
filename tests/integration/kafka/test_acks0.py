"""acks=0 Produce: no response exists, so records count as sent and no latency sample
is taken; every other request still gets exactly one."""

from __future__ import annotations

import time

from .checks import log_by_partition, per_partition
from .clients import kafka_python_produce, values
from .rig import KafkaRig

N = 2000


def test_acks0_records_counted_as_sent(rig: KafkaRig) -> None:
    rig.create_topic("fire", 3)
    kafka_python_produce(rig.bootstrap, "fire", values(N), acks=0)
    deadline = time.monotonic() + 30
    while sum(map(len, log_by_partition(rig, "fire", 3).values())) < N:
        assert time.monotonic() < deadline, "records never arrived"
        time.sleep(0.05)
    stored = {p: len(v) for p, v in log_by_partition(rig, "fire", 3).items() if v}
    assert per_partition(rig.family("protoproxy_kafka_produce_records_total"), "fire") == stored
    samples = rig.histogram_counts("protoproxy_kafka_request_duration_seconds")
    assert not any(api == "Produce" for _, api in samples)
    requests = rig.family("protoproxy_kafka_requests_total")
    assert sum(v for (_l, api, _v, _c), v in requests.items() if api == "Produce") > 0
    responses = rig.family("protoproxy_kafka_responses_total")
    assert not any(api == "Produce" for (_l, api, _v, _c) in responses)
    assert samples == _by_api(responses)


def _by_api(family: dict[tuple[str, ...], float]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for (listener, api, _v, _c), n in family.items():
        out[(listener, api)] = out.get((listener, api), 0) + int(n)
    return out
