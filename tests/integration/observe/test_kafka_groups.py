"""Consumer-group lag and the Kafka families users asked for, with real clients.

Each test runs kafka-python, librdkafka (confluent-kafka) or aiokafka through the
proxy in front of the fake cluster (KafkaRig), and reads /metrics and
/kafka/groups over HTTP as a user would. Waits poll with a deadline.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protoproxy.faults.model import FaultSpec
from protoproxy_codecs.kafka.codec import STATUS_VERSION_NEGOTIATION
from tests.integration.kafka import clients
from tests.integration.kafka.rig import KafkaRig
from tests.peers import wait_for
from tests.tools import require_tool

from .helpers import access_lines, get_json, scrape, select, total

N = 100
COMMITTED = 40
DEADLINE = 30.0
ADMIN = {"admin": {"listen": "127.0.0.1:0"}}


def _until(read: Callable[[], Any], ok: Callable[[Any], bool], what: str) -> Any:
    """Poll `read` until `ok` holds for its value; fail with the last value at the deadline."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = read()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value!r} after {DEADLINE}s")
        time.sleep(0.05)


def _group(admin: str, group: str) -> dict[str, Any] | None:
    body = get_json(admin + "/kafka/groups")
    for g in body["clusters"].get("kafka", {}).get("groups", []):
        if g["group"] == group:
            return g
    return None


def _check_lag(rig: KafkaRig, topic: str, group: str, client_id: str) -> None:
    """Acceptance 3: lag 60 on /metrics and on /kafka/groups, with the member seen."""
    admin = rig.app.admin.url  # type: ignore[union-attr]
    want = {"listener": "kafka", "group": group, "topic": topic, "partition": "0"}

    def lag() -> float | None:
        m = scrape(admin)
        found = [v for _, v in select(m.get("protoproxy_kafka_consumer_group_lag", {}), **want)]
        return found[0] if found else None

    assert _until(lag, lambda v: v == N - COMMITTED, "consumer group lag") == N - COMMITTED
    m = scrape(admin)
    committed = m["protoproxy_kafka_consumer_group_committed_offset"]
    assert total(committed, **want) == COMMITTED
    hw = m["protoproxy_kafka_partition_high_watermark"]
    assert total(hw, listener="kafka", topic=topic, partition="0") == N

    g = _until(
        lambda: _group(admin, group),
        lambda g: g is not None and g["members"] and g["members"][0]["assignment"],
        "group member with its assignment on /kafka/groups",
    )
    assert g["protocol_type"] == "consumer"
    [member] = g["members"]
    assert member["client_id"] == client_id
    assert member["host"] == "127.0.0.1"
    assert member["assignment"] == {topic: [0]}
    assert g["leader"] == member["member_id"]
    [row] = g["partitions"]
    assert row == {
        "topic": topic,
        "partition": 0,
        "member_id": member["member_id"],
        "committed_offset": COMMITTED,
        "high_watermark": N,
        "lag": N - COMMITTED,
    }


def _check_left(rig: KafkaRig, group: str) -> None:
    """After close the member left (LeaveGroup), and the group's lag stays known."""
    admin = rig.app.admin.url  # type: ignore[union-attr]
    g = _until(lambda: _group(admin, group), lambda g: g and not g["members"], "member left")
    assert g["partitions"][0]["lag"] == N - COMMITTED


def _kafka_python(rig: KafkaRig, topic: str, group: str) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(
        bootstrap_servers=rig.bootstrap,
        group_id=group,
        client_id="lag-kafka-python",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    try:
        clients.wait_for_partitions(consumer, topic)
        consumer.subscribe([topic])
        got = clients.kafka_python_poll(consumer, defaultdict(list), 0, N, DEADLINE)
        assert got == N
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(COMMITTED, "", -1)})
        _check_lag(rig, topic, group, "lag-kafka-python")
    finally:
        consumer.close()
    _check_left(rig, group)


def _confluent(rig: KafkaRig, topic: str, group: str) -> None:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": rig.bootstrap,
            "group.id": group,
            "client.id": "lag-librdkafka",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    try:
        consumer.subscribe([topic])
        got = clients.confluent_poll(consumer, defaultdict(list), 0, N, DEADLINE)
        assert got == N
        consumer.commit(offsets=[TopicPartition(topic, 0, COMMITTED)], asynchronous=False)
        _check_lag(rig, topic, group, "lag-librdkafka")
    finally:
        consumer.close()
    _check_left(rig, group)


def _aiokafka(rig: KafkaRig, topic: str, group: str) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=rig.bootstrap,
            group_id=group,
            client_id="lag-aiokafka",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            got = 0
            async with asyncio.timeout(DEADLINE):
                while got < N:
                    batch = await consumer.getmany(timeout_ms=200)
                    got += sum(len(records) for records in batch.values())
            await consumer.commit({TopicPartition(topic, 0): COMMITTED})
            # off the client's loop, so that its heartbeats go on meanwhile
            await asyncio.to_thread(_check_lag, rig, topic, group, "lag-aiokafka")
        finally:
            await consumer.stop()

    asyncio.run(run())
    _check_left(rig, group)


@pytest.mark.parametrize(
    "consume",
    [_kafka_python, _confluent, _aiokafka],
    ids=["kafka-python", "librdkafka", "aiokafka"],
)
def test_group_that_committed_40_of_100_shows_lag_60(consume: Callable[..., None]) -> None:
    with KafkaRig(brokers=3, config=ADMIN) as rig:
        rig.create_topic("lag", 1)
        produced = clients.kafka_python_produce(rig.bootstrap, "lag", clients.values(N))
        assert sum(len(v) for v in produced.values()) == N
        consume(rig, "lag", "lag-group")


def test_version_negotiation_is_not_an_error() -> None:
    """librdkafka (confluent-kafka, then kcat) against a broker without ApiVersions v3
    (Kafka < 2.4): it asks v3, gets UNSUPPORTED_VERSION with the broker's ranges
    (KIP-511), and retries lower."""
    from confluent_kafka.admin import AdminClient

    kcat = require_tool("kcat")
    options = {"api_versions": {18: (0, 2)}}
    with KafkaRig(brokers=1, config=ADMIN, cluster_options=options) as rig:
        rig.create_topic("neg", 1)
        admin = AdminClient({"bootstrap.servers": rig.bootstrap})
        assert "neg" in admin.list_topics(timeout=DEADLINE).topics
        listing = subprocess.run(
            [kcat, "-b", rig.bootstrap, "-L", "-t", "neg"],
            check=True,
            capture_output=True,
            timeout=DEADLINE,
        )
        assert b'topic "neg"' in listing.stdout
        m = scrape(rig.app.admin.url)  # type: ignore[union-attr]
    errors = m.get("protoproxy_kafka_errors_total", {})
    assert total(errors, api="ApiVersions") == 0, errors
    negotiated = total(m.get("protoproxy_kafka_version_negotiations_total"), version="3")
    assert negotiated >= 2  # confluent-kafka's and kcat's first connection at least
    ex = m["protoproxy_exchanges_total"]
    assert total(ex, operation="ApiVersions v3", status=STATUS_VERSION_NEGOTIATION) == negotiated
    assert total(ex, operation="ApiVersions v3") == negotiated  # never an error status
    assert total(ex, operation="ApiVersions v0", status="NONE") >= 1  # the retry, answered


def test_round_trip_counts_per_client_and_sizes_per_api(tmp_path: Path) -> None:
    """kafka-python produces and consumes: records and bytes per client id equal the
    per-partition counts, and the size histograms equal the access log's sizes."""
    log = tmp_path / "access.log"
    config = {**ADMIN, "access_log": {"enabled": True, "path": str(log)}}
    with KafkaRig(brokers=3, config=config) as rig:
        rig.create_topic("sizes", 2)
        vals = clients.values(N)
        clients.kafka_python_produce(rig.bootstrap, "sizes", vals, client_id="size-producer")
        consumed = clients.kafka_python_consume(
            rig.bootstrap, "sizes", "sizes-group", N, client_id="size-consumer"
        )
        assert sum(len(v) for v in consumed.values()) == N
        # Both clients are closed, but a Fetch the broker was holding can still be
        # answered: compare the metrics and the log once no connection is left, so
        # no exchange can land between the scrape and the log's flush.
        assert wait_for(lambda: not rig.app.proxy.connections, 30), rig.app.proxy.connections
        m = scrape(rig.app.admin.url)  # type: ignore[union-attr]
        rig.run(rig.app.observe.access_log.flush)  # type: ignore[union-attr]
        lines = access_lines(log)

    records = m["protoproxy_kafka_client_records_total"]
    size = m["protoproxy_kafka_client_bytes_total"]
    assert total(records, client_id="size-producer", api="Produce") == N
    assert total(records, client_id="size-consumer", api="Fetch") >= N
    assert total(size, client_id="size-producer", api="Produce") == total(
        m["protoproxy_kafka_produce_bytes_total"], topic="sizes"
    )
    assert total(size, client_id="size-consumer", api="Fetch") == total(
        m["protoproxy_kafka_fetch_bytes_total"], topic="sizes"
    )
    # Produce requests are all answered (acks=1): one access-log line each
    produce = [ln for ln in lines if ln["operation"].startswith("Produce ")]
    assert total(m["protoproxy_kafka_request_size_bytes_count"], api="Produce") == len(produce)
    assert total(m["protoproxy_kafka_request_size_bytes_sum"], api="Produce") == sum(
        ln["request_bytes"] for ln in produce
    )
    # every answered request's response, per API
    for api in {ln["operation"].split(" v")[0] for ln in lines}:
        answered = [
            ln for ln in lines if ln["operation"].startswith(api + " v") and ln["response_bytes"]
        ]
        got = m["protoproxy_kafka_response_size_bytes_count"]
        assert total(got, api=api) == len(answered), api
        got = m["protoproxy_kafka_response_size_bytes_sum"]
        assert total(got, api=api) == sum(ln["response_bytes"] for ln in answered), api
    # a 100-record batch is well over 256 bytes: not in the smallest buckets
    buckets = m["protoproxy_kafka_request_size_bytes_bucket"]
    assert total(buckets, api="Produce", le="64.0") == 0


def test_throttle_time_is_counted_in_seconds_per_api_and_client() -> None:
    with KafkaRig(brokers=1, config=ADMIN) as rig:
        rig.create_topic("slow", 1)
        rig.run(lambda: setattr(rig.cluster, "throttle_time_ms", 7))
        clients.kafka_python_produce(
            rig.bootstrap, "slow", clients.values(20), client_id="throttled"
        )
        m = scrape(rig.app.admin.url)  # type: ignore[union-attr]
    throttled = m["protoproxy_kafka_throttle_seconds_total"]
    answered = m["protoproxy_kafka_responses_total"]
    for api in ("Produce", "Metadata"):
        n = total(answered, api=api, client_id="throttled")
        assert n >= 1
        assert total(throttled, api=api, client_id="throttled") == pytest.approx(0.007 * n)


def test_partition_errors_name_topic_and_partition() -> None:
    with KafkaRig(brokers=3, config=ADMIN) as rig:
        rig.create_topic("perr", 2)
        engine = rig.app.faults
        spec = FaultSpec(
            name="nl",
            match={"protocol": "kafka", "api": "Produce", "topic": "perr"},
            action={"abort": {"error": "NOT_LEADER_OR_FOLLOWER"}},
            schedule={"first": 2},
        )
        rig.run(lambda: engine.add(spec))
        # one record, so each Produce names one partition
        clients.kafka_python_produce(rig.bootstrap, "perr", [b"x"], linger_ms=0)
        injected = rig.run(lambda: engine.get("nl").injected)
        m = scrape(rig.app.admin.url)  # type: ignore[union-attr]
    assert injected == 2
    perr = m["protoproxy_kafka_partition_errors_total"]
    rows = [(labels["topic"], labels["error"], v) for labels, v in select(perr, api="Produce") if v]
    assert sum(v for _, _, v in rows) == 2, rows
    assert {(t, e) for t, e, _ in rows} == {("perr", "NOT_LEADER_OR_FOLLOWER")}
    partitions = {labels["partition"] for labels, _ in select(perr, api="Produce", topic="perr")}
    assert partitions <= {"0", "1"} and partitions
    # the same errors as the per-API family counts
    assert total(m["protoproxy_kafka_errors_total"], api="Produce") == 2


def test_in_flight_requests_follow_a_long_poll_and_its_connection() -> None:
    """librdkafka keeps a long-poll Fetch outstanding on an empty topic; the gauge of
    its broker's listener shows it, and all listeners are back to 0 once it closes."""
    from confluent_kafka import Consumer

    with KafkaRig(brokers=1, config=ADMIN) as rig:
        rig.create_topic("idle", 1)
        admin = rig.app.admin.url  # type: ignore[union-attr]
        consumer = Consumer(
            {
                "bootstrap.servers": rig.bootstrap,
                "group.id": "idle-group",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 5000,
            }
        )

        def in_flight() -> dict[str, float]:
            fam = scrape(admin).get("protoproxy_kafka_requests_in_flight", {})
            return {dict(k)["listener"]: v for k, v in fam.items()}

        try:
            consumer.subscribe(["idle"])

            def busy(v: dict[str, float]) -> bool:
                consumer.poll(0.05)
                return v.get("kafka-broker0", 0) >= 1

            _until(in_flight, busy, "a Fetch in flight")
        finally:
            consumer.close()
        _until(in_flight, lambda v: not any(v.values()), "nothing in flight after close")


def test_lag_from_offset_fetch_and_list_offsets_alone() -> None:
    """No Fetch and no OffsetCommit through the proxy: the commit is made straight to
    the cluster, and kafka-python asks through the proxy for the group's offset
    (OffsetFetch) and the end offset (ListOffsets, latest): lag 60 all the same."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    tp = TopicPartition("asked", 0)
    with KafkaRig(brokers=1, config=ADMIN) as rig:
        rig.create_topic("asked", 1)
        clients.kafka_python_produce(rig.bootstrap, "asked", clients.values(N))
        direct = KafkaConsumer(bootstrap_servers=rig.cluster.bootstrap, group_id="asked-group")  # type: ignore[union-attr]
        direct.commit({tp: OffsetAndMetadata(COMMITTED, "", -1)})
        direct.close()
        consumer = KafkaConsumer(bootstrap_servers=rig.bootstrap, group_id="asked-group")
        try:
            assert consumer.committed(tp) == COMMITTED
            assert consumer.end_offsets([tp]) == {tp: N}
        finally:
            consumer.close()
        m = scrape(rig.app.admin.url)  # type: ignore[union-attr]
        fetches = rig.family("protoproxy_kafka_requests_total")
    assert not [k for k in fetches if k[1] in ("Fetch", "OffsetCommit")]
    want = {"group": "asked-group", "topic": "asked", "partition": "0"}
    assert total(m["protoproxy_kafka_consumer_group_committed_offset"], **want) == COMMITTED
    assert total(m["protoproxy_kafka_partition_high_watermark"], topic="asked") == N
    assert total(m["protoproxy_kafka_consumer_group_lag"], **want) == N - COMMITTED
