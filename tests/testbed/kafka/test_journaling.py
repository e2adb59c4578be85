"""The fake cluster's KafkaEvents: what a produced record looks like in the journal,
that decoding waits for a read, and that the journal's bound holds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder

from protoproxy_codecs.kafka.api_keys import ApiKey
from testbed.journal import Journal, KafkaEvent
from testbed.kafka import FakeKafkaCluster, errors
from testbed.kafka.journaling import BINARY_MARKER, as_text

from .helpers import RawClient


def _batch(records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    for i, (key, value, headers) in enumerate(records):
        builder.append(i, 1_700_000_000_000 + i, key, value, headers)
    return bytes(builder.build())


async def _produce(cluster: FakeKafkaCluster, topic: str, records: bytes) -> int:
    client = await RawClient.connect(cluster.servers[cluster.leader(topic, 0)].address)
    try:
        body = {
            "acks": -1,
            "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}],
        }
        resp = await client.request(ApiKey.PRODUCE, 9, body)
    finally:
        await client.close()
    return int(resp.responses[0].partition_responses[0].error_code)


async def test_produced_records_become_events_when_read() -> None:
    journal = Journal()
    async with FakeKafkaCluster(brokers=1, journal=journal) as cluster:
        cluster.create_topic("j", 1)
        records = [
            (b"k1", "héllo".encode(), [("h", b"v"), ("bin", b"\x00\x01")]),
            (b"\xff\x00", None, []),
        ]
        assert await _produce(cluster, "j", _batch(records)) == errors.NONE
        assert cluster.journal is not None
        assert cluster.journal.pending == 1  # one batch kept, nothing decoded yet
        events = list(journal.kafka(topic="j"))
        assert cluster.journal.pending == 0
    assert [(e.operation, e.partition, e.offset) for e in events] == [
        ("produce", 0, 0),
        ("produce", 0, 1),
    ]
    first, second = events
    assert isinstance(first, KafkaEvent) and isinstance(second, KafkaEvent)
    assert (first.key, first.value) == ("k1", "héllo")
    assert first.headers == {"h": "v", "bin": BINARY_MARKER + "AAE="}
    assert (second.key, second.value) == (BINARY_MARKER + "/wA=", None)
    assert first.service == "kafka" and first.client_id == "raw-test"
    assert first.transactional_id is None
    # Read twice: the same entries, recorded once.
    assert journal.kafka(topic="j").count() == 2


async def test_the_journal_bound_holds_and_clear_drops_undecoded_batches() -> None:
    journal = Journal(limit=5)
    async with FakeKafkaCluster(brokers=1, journal=journal) as cluster:
        cluster.create_topic("b", 1)
        for n in range(3):
            batch = _batch([(None, b"%d-%d" % (n, i), []) for i in range(3)])
            assert await _produce(cluster, "b", batch) == errors.NONE
        entries = journal.kafka(topic="b")
        assert len(entries) == 5
        assert journal.dropped == 4
        assert [e.value for e in journal.entries()] == ["1-1", "1-2", "2-0", "2-1", "2-2"]
        assert await _produce(cluster, "b", _batch([(None, b"later", [])])) == errors.NONE
        journal.clear()
        assert journal.kafka(topic="b").count() == 0


async def test_no_journal_records_nothing() -> None:
    async with FakeKafkaCluster(brokers=1) as cluster:
        cluster.create_topic("n", 1)
        assert await _produce(cluster, "n", _batch([(None, b"x", [])])) == errors.NONE
        assert cluster.journal is None


@given(st.binary(max_size=64))
def test_as_text_is_text_or_marked_base64(data: bytes) -> None:
    import base64

    text = as_text(data)
    assert text is not None
    if text.startswith(BINARY_MARKER) and not _printable(data):
        assert base64.b64decode(text[len(BINARY_MARKER) :]) == data
    else:
        assert text.encode() == data


def _printable(data: bytes) -> bool:
    try:
        s = data.decode()
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\n\r" for c in s)


async def test_an_offset_commit_is_one_commit_event_per_partition() -> None:
    journal = Journal()
    async with FakeKafkaCluster(brokers=1, journal=journal) as cluster:
        cluster.create_topic("c", 2)
        client = await RawClient.connect(cluster.bootstrap)
        try:
            body = {
                "group_id": "g",
                "generation_id_or_member_epoch": -1,
                "member_id": "",
                "group_instance_id": None,
                "topics": [
                    {
                        "name": "c",
                        "partitions": [
                            {
                                "partition_index": p,
                                "committed_offset": 5 + p,
                                "committed_leader_epoch": -1,
                                "committed_metadata": None,
                            }
                            for p in (0, 1)
                        ],
                    }
                ],
            }
            resp = await client.request(ApiKey.OFFSET_COMMIT, 8, body)
        finally:
            await client.close()
    assert [p.error_code for p in resp.topics[0].partitions] == [errors.NONE, errors.NONE]
    commits = journal.kafka(topic="c", operation="commit")
    assert [(e.group, e.partition, e.offset) for e in commits] == [("g", 0, 5), ("g", 1, 6)]
