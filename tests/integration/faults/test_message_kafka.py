"""Acceptance 2: Kafka aborts are well-formed responses that real clients decode and act on.

Every abort is a response of the request's API and version, with its
correlation id, built with kafka-python's classes; kafka-python checks
correlation ids in order, so any slip fails its connection. Clients run in
the test thread against a fake cluster behind the proxy (KafkaRig).
"""

from __future__ import annotations

import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from protoproxy.faults.message_kafka import error_code, error_response
from protoproxy.faults.model import FaultSpec
from protoproxy_codecs.kafka import framing, schema, summary
from tests.integration.kafka.clients import (
    check_exactly_once_in_order,
    confluent_consume,
    confluent_produce,
    kafka_python_consume,
    kafka_python_produce,
    values,
)
from tests.integration.kafka.rig import KafkaRig
from tests.testbed.kafka.helpers import make_batch

NOT_LEADER = error_code("NOT_LEADER_OR_FOLLOWER")


# -- the responses themselves ---------------------------------------------------------------

REQUESTS: list[tuple[str, int, dict[str, Any]]] = [
    (
        "Produce",
        9,
        {
            "acks": -1,
            "timeout_ms": 1000,
            "topic_data": [{"name": "t", "partition_data": [{"index": 0}, {"index": 2}]}],
        },
    ),
    (
        "Produce",
        3,
        {
            "acks": 1,
            "timeout_ms": 1000,
            "topic_data": [{"name": "t", "partition_data": [{"index": 1}]}],
        },
    ),
    ("Fetch", 11, {"max_wait_ms": 1, "topics": [{"topic": "t", "partitions": [{"partition": 0}]}]}),
    ("Fetch", 4, {"max_wait_ms": 1, "topics": [{"topic": "t", "partitions": [{"partition": 1}]}]}),
    ("ListOffsets", 7, {"topics": [{"name": "t", "partitions": [{"partition_index": 0}]}]}),
    ("Metadata", 12, {"topics": [{"name": "t"}]}),
    ("Metadata", 1, {"topics": [{"name": "t"}]}),
    (
        "OffsetCommit",
        8,
        {"group_id": "g", "topics": [{"name": "t", "partitions": [{"partition_index": 3}]}]},
    ),
    ("OffsetFetch", 7, {"group_id": "g", "topics": [{"name": "t", "partition_indexes": [0]}]}),
    (
        "OffsetFetch",
        8,
        {"groups": [{"group_id": "g", "topics": [{"name": "t", "partition_indexes": [0]}]}]},
    ),
    ("FindCoordinator", 4, {"key_type": 0, "coordinator_keys": ["g"]}),
    ("FindCoordinator", 2, {"key": "g", "key_type": 0}),
    (
        "JoinGroup",
        5,
        {
            "group_id": "g",
            "session_timeout_ms": 1000,
            "member_id": "",
            "protocol_type": "consumer",
            "protocols": [],
        },
    ),
    ("SyncGroup", 3, {"group_id": "g", "generation_id": 1, "member_id": "m"}),
    ("Heartbeat", 3, {"group_id": "g", "generation_id": 1, "member_id": "m"}),
    ("LeaveGroup", 3, {"group_id": "g", "members": [{"member_id": "m"}]}),
    ("InitProducerId", 4, {"transaction_timeout_ms": 1000}),
    ("ApiVersions", 3, {"client_software_name": "x", "client_software_version": "1"}),
]


@pytest.mark.parametrize(("api", "version", "fields"), REQUESTS, ids=lambda v: str(v)[:16])
def test_error_response_decodes_with_the_error_everywhere(api, version, fields):
    key = schema.api_key_of(api)
    frame = framing.encode_request(key, version, 4242, "c", fields)
    _, request = framing.decode_request(frame[4:])
    body = error_response(key, version, request, NOT_LEADER)
    out = framing.encode_response(key, version, 4242, body)
    corr, decoded = framing.decode_response(key, version, out[4:])
    assert corr == 4242
    codes = summary.error_codes(key, version, decoded)
    assert codes and set(codes) == {NOT_LEADER}, (decoded, codes)
    named = [p for _, _, parts in _named(key, fields) for p in parts]
    if named:  # one error per topic-partition the request named
        assert len(codes) == len(named)


def _named(key: int, fields: dict[str, Any]) -> list[tuple[str, None, list[int]]]:
    for arr, part_arr, idx in (
        ("topic_data", "partition_data", "index"),
        ("topics", "partitions", None),
    ):
        if arr in fields and all(part_arr in t for t in fields[arr]):
            out = []
            for t in fields[arr]:
                parts = t[part_arr]
                name = idx or next(k for k in parts[0] if k.startswith("partition"))
                out.append(("", None, [p[name] for p in parts]))
            return out
    return []


# -- through the proxy, with real clients -------------------------------------------------------


@pytest.fixture(scope="module")
def rig() -> Iterator[KafkaRig]:
    with KafkaRig(brokers=3) as r:
        yield r


class Seen:
    """Exchanges the proxy reported: (operation, status, fault mark)."""

    def __init__(self, rig: KafkaRig) -> None:
        self.ops: list[tuple[str, str, str | None]] = []
        #: (operation, fault mark) of exchanges a fault kept from the client
        self.undelivered: list[tuple[str, str | None]] = []
        proxy = rig.app.proxy

        def observe(conn: Any, exchanges: list[Any]) -> None:
            self.ops.extend(
                (e.operation.split()[0], e.status, e.attrs.get("fault")) for e in exchanges
            )
            self.undelivered.extend(
                (e.operation.split()[0], e.attrs.get("fault"))
                for e in exchanges
                if e.attrs.get("undelivered")
            )

        rig.run(lambda: proxy.exchange_observers.append(observe))

    def count(self, api: str) -> int:
        return sum(1 for op, _, _ in list(self.ops) if op == api)

    def faulted(self) -> Counter[tuple[str, str]]:
        return Counter((op, st) for op, st, f in list(self.ops) if f)


@pytest.fixture
def seen(rig: KafkaRig) -> Iterator[Seen]:
    s = Seen(rig)
    yield s
    engine = rig.app.faults
    rig.run(engine.reset)


def _fault(rig: KafkaRig, **spec: Any) -> Any:
    engine = rig.app.faults
    return rig.run(lambda: engine.add(FaultSpec(**spec)))


def _injected(rig: KafkaRig, name: str) -> int:
    engine = rig.app.faults
    return rig.run(lambda: engine.get(name).injected)


def _acknowledged(rig: KafkaRig, topic: str) -> float:
    """The proxy's count of records acknowledged to clients on `topic`."""
    metrics = rig.app.kafka.metrics
    return rig.run(
        lambda: sum(v for k, v in metrics.produce_records.values.items() if k[1] == topic)
    )


def test_not_leader_on_produce_refreshes_metadata_and_retries(rig, seen):
    rig.run(lambda: rig.cluster.create_topic("nl", partitions=3))
    _fault(
        rig,
        name="nl",
        match={"protocol": "kafka", "api": "Produce", "topic": "nl"},
        action={"abort": {"error": "NOT_LEADER_OR_FOLLOWER"}},
        schedule={"first": 2},
    )
    vals = values(50, b"nl")
    before = seen.count("Metadata")
    produced = kafka_python_produce(rig.bootstrap, "nl", vals, linger_ms=5)
    assert _injected(rig, "nl") == 2
    assert seen.count("Metadata") > before, "no metadata refresh after NOT_LEADER_OR_FOLLOWER"
    assert seen.faulted()[("Produce", "NOT_LEADER_OR_FOLLOWER")] == 2
    # The aborted batches were not acknowledged: each record counts once.
    assert _acknowledged(rig, "nl") == len(vals)
    consumed = kafka_python_consume(rig.bootstrap, "nl", "g-nl", len(vals))
    check_exactly_once_in_order(consumed, produced)


def test_coordinator_not_available_makes_the_group_retry(rig, seen):
    rig.run(lambda: rig.cluster.create_topic("cna", partitions=2))
    produced = kafka_python_produce(rig.bootstrap, "cna", values(20, b"c"))
    _fault(
        rig,
        name="cna",
        match={"protocol": "kafka", "api": "FindCoordinator"},
        action={"abort": {"error": "COORDINATOR_NOT_AVAILABLE"}},
        schedule={"first": 2},
    )
    consumed = kafka_python_consume(rig.bootstrap, "cna", "g-cna", 20)
    check_exactly_once_in_order(consumed, produced)
    assert _injected(rig, "cna") == 2
    assert seen.count("FindCoordinator") >= 3  # two refused, then the real one


# Retriable errors per API kafka-python uses on a produce + group-consume round trip.
KAFKA_PYTHON_APIS = [
    ("Metadata", "LEADER_NOT_AVAILABLE"),
    ("Produce", "NOT_LEADER_OR_FOLLOWER"),
    ("Fetch", "NOT_LEADER_OR_FOLLOWER"),
    ("ListOffsets", "NOT_LEADER_OR_FOLLOWER"),
    ("FindCoordinator", "COORDINATOR_NOT_AVAILABLE"),
    ("JoinGroup", "COORDINATOR_LOAD_IN_PROGRESS"),
    ("SyncGroup", "REBALANCE_IN_PROGRESS"),
    ("OffsetFetch", "COORDINATOR_LOAD_IN_PROGRESS"),
    ("OffsetCommit", "REBALANCE_IN_PROGRESS"),
    ("InitProducerId", "COORDINATOR_LOAD_IN_PROGRESS"),
]


def _abort_first(rig: KafkaRig, prefix: str, api: str, error: str) -> str:
    """A fresh topic, and fault "a": the first `api` request answered with `error`."""
    topic = f"{prefix}-{api.lower()}"
    rig.run(lambda: rig.cluster.create_topic(topic, partitions=2))
    _fault(
        rig,
        name="a",
        match={"protocol": "kafka", "api": api},
        action={"abort": {"error": error}},
        schedule={"first": 1},
    )
    return topic


@pytest.mark.parametrize(("api", "error"), KAFKA_PYTHON_APIS, ids=[a for a, _ in KAFKA_PYTHON_APIS])
def test_kafka_python_survives_an_abort_of_each_api(rig, seen, api, error):
    topic = _abort_first(rig, "each", api, error)
    vals = values(20, api.encode())
    extra = {"enable_idempotence": True} if api == "InitProducerId" else {}
    produced = kafka_python_produce(rig.bootstrap, topic, vals, **extra)
    consumed = kafka_python_consume(
        rig.bootstrap,
        topic,
        f"g-{topic}",
        len(vals),
        enable_auto_commit=True,
        auto_commit_interval_ms=100,
    )
    check_exactly_once_in_order(consumed, produced)
    assert _injected(rig, "a") == 1, f"{api} was never aborted"
    marked = seen.faulted()
    assert sum(n for (op, _), n in marked.items() if op == api) == 1
    if api != "Metadata":  # a Metadata for all topics has nowhere to carry an error
        assert marked[(api, error)] == 1


LIBRDKAFKA_APIS = [
    ("Metadata", "LEADER_NOT_AVAILABLE"),
    ("Produce", "NOT_LEADER_OR_FOLLOWER"),
    ("Fetch", "NOT_LEADER_OR_FOLLOWER"),
    ("FindCoordinator", "COORDINATOR_NOT_AVAILABLE"),
    ("JoinGroup", "COORDINATOR_LOAD_IN_PROGRESS"),
    ("OffsetFetch", "COORDINATOR_LOAD_IN_PROGRESS"),
    ("InitProducerId", "COORDINATOR_LOAD_IN_PROGRESS"),
]


@pytest.mark.parametrize(("api", "error"), LIBRDKAFKA_APIS, ids=[a for a, _ in LIBRDKAFKA_APIS])
def test_librdkafka_survives_an_abort_of_each_api(rig, seen, api, error):
    pytest.importorskip("confluent_kafka")
    topic = _abort_first(rig, "rd", api, error)
    vals = values(20, api.encode())
    produced = confluent_produce(rig.bootstrap, topic, vals)
    consumed = confluent_consume(rig.bootstrap, topic, f"g-{topic}", len(vals))
    check_exactly_once_in_order(consumed, produced)
    assert _injected(rig, "a") == 1, f"{api} was never aborted"


def test_duplicate_reaches_the_broker_twice_but_the_client_once(rig, seen):
    rig.run(lambda: rig.cluster.create_topic("dup", partitions=1))
    _fault(
        rig,
        name="dup",
        match={"protocol": "kafka", "api": "Produce", "topic": "dup"},
        action={"duplicate": {}},
        schedule={"first": 1},
    )
    produced = kafka_python_produce(rig.bootstrap, "dup", [b"once"], enable_idempotence=False)
    assert produced == {0: [b"once"]}
    deadline = time.monotonic() + 10
    while rig.run(lambda: rig.cluster.end_offsets("dup"))[0] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r.value for r in rig.run(lambda: rig.cluster.records("dup", 0))] == [b"once", b"once"]
    assert seen.count("Produce") == 1  # the duplicate's response was swallowed


@pytest.mark.parametrize("direction", ["upstream", "downstream"])
def test_drop_stalls_the_connection_until_the_client_times_out(rig, seen, caplog, direction):
    """A dropped request or response is never answered, and in Kafka's
    in-order protocol neither is anything after it on that connection: the
    proxy withholds the rest, so the client's own request timeout fires
    (no correlation-id mismatch), it reconnects and its idempotent retries
    land every record once. Withheld responses do not count as acknowledged."""
    topic = f"drop-{direction}"
    rig.run(lambda: rig.cluster.create_topic(topic, partitions=1))
    _fault(
        rig,
        name="drop",
        match={"protocol": "kafka", "api": "Produce", "topic": topic, "direction": direction},
        action={"drop": {}},
        schedule={"after": 3, "first": 4},
    )
    vals = values(400, direction.encode())
    caplog.set_level("WARNING", logger="kafka")
    produced = kafka_python_produce(
        rig.bootstrap,
        topic,
        vals,
        enable_idempotence=True,
        linger_ms=0,
        batch_size=256,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=1000,
    )
    assert produced == {0: vals}
    assert _injected(rig, "drop") == 1
    log = [r.value for r in rig.run(lambda: rig.cluster.records(topic, 0))]
    assert log == vals  # each record once, in order
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "timed out" in messages  # the client's own timeout fired...
    assert "orrelation" not in messages  # ...and it never saw a response out of order
    assert _acknowledged(rig, topic) == len(vals)
    if direction == "downstream":
        assert ("Produce", "drop") in seen.undelivered


@pytest.mark.parametrize("direction", ["upstream", "downstream"])
def test_a_dropped_message_stalls_what_was_asked_after_it(rig, seen, direction):
    """Three pipelined Metadata requests, the second (or its response)
    dropped: the first is answered, nothing after it is, and the responses
    the proxy withheld are marked undelivered with the fault's name."""
    _fault(
        rig,
        name="stall",
        match={"protocol": "kafka", "api": "Metadata", "direction": direction},
        action={"drop": {}},
        schedule={"after": 1, "first": 2},
    )
    host, port = rig.bootstrap.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(
            b"".join(framing.encode_request(3, 1, c, "stall", {"topics": []}) for c in (1, 2, 3))
        )
        head = s.recv(4, socket.MSG_WAITALL)
        size = struct.unpack(">i", head)[0]
        body = s.recv(size, socket.MSG_WAITALL)
        assert struct.unpack_from(">i", body)[0] == 1  # the first is answered
        s.settimeout(1.0)
        with pytest.raises(TimeoutError):
            s.recv(1)  # and nothing after the drop
    assert _injected(rig, "stall") == 1
    if direction == "downstream":  # the broker answered 2 and 3; both were withheld
        deadline = time.monotonic() + 5
        while len(seen.undelivered) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seen.undelivered == [("Metadata", "stall"), ("Metadata", "stall")]
    else:  # neither 2 nor 3 reached the broker
        assert seen.count("Metadata") == 1 and not seen.undelivered


def test_delay_keeps_order_and_counts_active(rig, seen):
    rig.run(lambda: rig.cluster.create_topic("slow", partitions=1))
    fault = _fault(
        rig,
        name="slow",
        match={"protocol": "kafka", "api": "Produce", "topic": "slow"},
        action={"delay": {"uniform": ["100ms", "300ms"]}},
        probability=0.5,
    )
    vals = values(60, b"s")  # ~60 Produce requests, half held 100-300 ms, 5 in flight
    produced = kafka_python_produce(
        rig.bootstrap,
        "slow",
        vals,
        linger_ms=0,
        batch_size=64,
        max_in_flight_requests_per_connection=5,
    )
    assert produced[0] == vals
    assert rig.run(lambda: fault.injected) > 0
    assert rig.run(lambda: fault.active) == 0
    assert [r.value for r in rig.run(lambda: rig.cluster.records("slow", 0))] == vals


@pytest.mark.parametrize("action", [{"truncate": {"bytes": 30}}, {"reset": {}}, {"close": {}}])
def test_idempotent_producer_rides_out_cut_produce_requests(rig, seen, action):
    kind = next(iter(action))
    topic = f"cut-{kind}"
    rig.run(lambda: rig.cluster.create_topic(topic, partitions=1))
    _fault(
        rig,
        name="cut",
        match={"protocol": "kafka", "api": "Produce", "topic": topic},
        action=action,
        schedule={"first": 1},
    )
    vals = values(30, kind.encode())
    produced = kafka_python_produce(
        rig.bootstrap, topic, vals, enable_idempotence=True, request_timeout_ms=3000
    )
    assert produced == {0: vals}
    assert _injected(rig, "cut") == 1
    log = [r.value for r in rig.run(lambda: rig.cluster.records(topic, 0))]
    assert log == vals  # each record once, in order


#: seeds of the corrupt sweep: each puts the flipped bit in one place, the same every run
CORRUPT_SEEDS = range(64)
CORRUPT_VALUE = b"value-as-sent"


@pytest.fixture(scope="module")
def lone_broker() -> Iterator[KafkaRig]:
    """One broker: the bootstrap connection is the leader's, so a raw client can produce."""
    with KafkaRig(brokers=1) as r:
        r.run(lambda: r.cluster.create_topic("corrupt", partitions=1))
        yield r


def _corrupt_produce_once(rig: KafkaRig, seed: int) -> str:
    """Send one Produce that the seeded `corrupt` fault flips a bit of, then an
    ApiVersions on the same connection, and say what came back.

    The ApiVersions makes every outcome end without a timeout: the broker
    answers it (after the Produce's answer, or alone when the flip made the
    request acks=0) or closes the connection on a body it cannot parse.
    """
    engine = rig.app.faults

    def arm() -> None:
        engine.reset(seed)
        engine.add(
            FaultSpec(
                name="flip",
                match={"protocol": "kafka", "api": "Produce", "topic": "corrupt"},
                action={"corrupt": {"bytes": 1}},
            )
        )

    rig.run(arm)
    body = {
        "acks": -1,
        "timeout_ms": 5000,
        "topic_data": [
            {
                "name": "corrupt",
                "partition_data": [{"index": 0, "records": make_batch([CORRUPT_VALUE])}],
            }
        ],
    }
    produce = framing.encode_request(0, 7, 1, "raw", body)
    versions = framing.encode_request(18, 0, 2, "raw", {})
    host, port = rig.bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(produce + versions)
        reader = sock.makefile("rb")
        outcome = "unanswered"  # acks became 0
        while True:
            head = reader.read(4)
            if len(head) < 4:
                outcome = "closed" if outcome == "unanswered" else outcome
                break
            frame = reader.read(struct.unpack(">i", head)[0])
            (corr,) = struct.unpack_from(">i", frame)
            assert corr in (1, 2), f"seed {seed}: correlation id {corr} (the header is never hit)"
            if corr == 2:
                break
            _, resp = framing.decode_response(0, 7, frame)
            parts = [
                (t.name, p.index, p.error_code)
                for t in resp.responses
                for p in t.partition_responses
            ]
            outcome = "; ".join(f"{t}-{i}: {schema.error_name(e)}" for t, i, e in parts)
    assert rig.run(lambda: engine.get("flip").injected) == 1
    return outcome


def test_corrupt_produce_keeps_kafka_framing(lone_broker):
    """`corrupt` flips bits in the body, never in the size prefix or the header: for
    every place the bit lands, the broker answers the request (correlation id
    intact), or closes on a body it cannot parse, and the proxy's own framing
    never breaks. A flipped batch fails its CRC-32C: CORRUPT_MESSAGE, nothing
    stored. Whatever the broker stored (a flip in a topic name, `timeout_ms` or
    the base offset is harmless to the records) is exactly what was sent.

    A raw client, not kafka-python: its sender raises KeyError in a callback
    when the answer names a topic it did not ask about (the flip renamed it),
    and its producer then never completes. The seeds are fixed, so each run
    flips the same bits.
    """
    rig = lone_broker
    outcomes = {seed: _corrupt_produce_once(rig, seed) for seed in CORRUPT_SEEDS}
    decode_errors = rig.run(lambda: rig.app.proxy.metrics.decode_errors.total())
    assert decode_errors == 0, outcomes  # the proxy's own Kafka framing never broke

    def stored() -> dict[str, list[bytes | None]]:
        cluster = rig.cluster
        return {
            (name, i): [r.value for r in cluster.records(name, i)]
            for name in cluster.topics()
            for i in range(len(cluster.end_offsets(name)))
        }

    logs = rig.run(stored)
    for (name, i), vals in logs.items():
        assert set(vals) <= {CORRUPT_VALUE}, f"{name}-{i} holds a record nobody sent: {vals}"
    answered_ok = sum(1 for o in outcomes.values() if o == "corrupt-0: NONE")
    assert len(logs.get(("corrupt", 0), [])) == answered_ok
    # The sweep reaches the batch (CRC), the request's fields and the topic name.
    kinds = set(outcomes.values())
    assert "corrupt-0: CORRUPT_MESSAGE" in kinds, outcomes
    assert any(not o.startswith("corrupt-0") for o in kinds), outcomes
    assert kafka_python_produce(rig.bootstrap, "after-corrupt", [b"ok"]) == {0: [b"ok"]}
