"""Kafka through a recording listener: produced records become seed lines.

confluent-kafka (librdkafka) produces through the proxy to the testbed's
fake cluster; the seed file is then read back line by line. Records go to
the broker listeners the proxy opens, which record into their bootstrap
listener's folder.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from protoproxy.record.redact import REDACTED
from testbed.scenario import load_scenario
from testbed.threaded import TestbedThread
from tests.integration.kafka.rig import KafkaRig

RECORDS = [
    # (partition, key, value, headers)
    (0, b"k1", b"hello", [("trace", b"t-1"), ("authorization", b"Bearer x")]),
    (1, None, b"\x00\xffbinary", []),
    (1, b"k3", "gr\u00fc\u00df".encode(), [("bin", b"\x01\x02")]),
]


def _produce(bootstrap: str, compression: str) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": compression, "linger.ms": 50})
    errors: list[object] = []
    for partition, key, value, headers in RECORDS:
        p.produce(
            "orders",
            value=value,
            key=key,
            partition=partition,
            headers=headers,
            timestamp=1_700_000_000_000 + partition,
            on_delivery=lambda err, _m: errors.append(err) if err else None,
        )
    assert p.flush(30) == 0
    assert not errors


def test_produced_records_become_seed_lines(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    with KafkaRig(brokers=2, listener_options={"record": {"dir": str(rec)}}) as rig:
        rig.create_topic("orders", 2)
        _produce(rig.bootstrap, "none")
        _produce(rig.bootstrap, "gzip")  # compressed batches are opened too
    lines = [json.loads(line) for line in (rec / "kafka" / "orders.jsonl").read_text().splitlines()]
    by_partition: dict[int, list[dict]] = {}
    for line in lines:
        by_partition.setdefault(line["partition"], []).append(line)
    assert len(by_partition[0]) == 2 and len(by_partition[1]) == 4
    first = by_partition[0][0]
    assert first == {
        "partition": 0,
        "timestamp": 1_700_000_000_000,
        "key": "k1",
        "value": "hello",
        "headers": {"trace": "t-1", "authorization": "[redacted]"},
    }
    binary, text = by_partition[1][0], by_partition[1][1]
    assert "key" not in binary and "key_b64" not in binary
    assert base64.b64decode(binary["value_b64"]) == b"\x00\xffbinary"
    assert text["value"] == "gr\u00fc\u00df"
    assert base64.b64decode(text["headers_b64"]["bin"]) == b"\x01\x02"
    assert by_partition[1][2:] == by_partition[1][:2]  # the gzip round: the same records
    sc = load_scenario(rec / "scenario.yaml")
    topic = sc.kafka.topics["orders"]
    assert topic.partitions == 2 and topic.records == rec / "kafka" / "orders.jsonl"
    assert not sc.grpc.enabled and not sc.http.enabled


def _consume(bootstrap: str, partitions: int, want: int) -> list[tuple]:
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "replay", "enable.auto.commit": False}
    )
    c.assign([TopicPartition("orders", p, 0) for p in range(partitions)])
    got: list[tuple] = []
    try:
        end = time.monotonic() + 60.0
        while len(got) < want and time.monotonic() < end:
            m = c.poll(1.0)
            if m is None or m.error():
                continue
            got.append((m.partition(), m.key(), m.value(), m.headers() or [], m.timestamp()[1]))
    finally:
        c.close()
    return got


def test_recorded_topic_replays_the_same_records(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    with KafkaRig(brokers=1, listener_options={"record": {"dir": str(rec)}}) as rig:
        rig.create_topic("orders", 2)
        _produce(rig.bootstrap, "none")
    scenario = load_scenario(rec / "scenario.yaml")
    with TestbedThread(scenario) as tb:
        got = _consume(tb.kafka_bootstrap, 2, len(RECORDS))
    want = [
        (
            p,
            k,
            v,
            [(n, REDACTED.encode() if n == "authorization" else hv) for n, hv in h],
            1_700_000_000_000 + p,
        )
        for p, k, v, h in RECORDS
    ]
    assert sorted(got, key=repr) == sorted(want, key=repr)
