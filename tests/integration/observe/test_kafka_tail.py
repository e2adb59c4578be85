"""/messages shows Kafka records as real clients produce them: decompressed (gzip,
snappy, lz4, zstd), each key and value previewed to 256 bytes, binary ones as hex;
and a Kafka abort's made-up response shows, marked injected with the fault's name."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.kafka.clients import confluent_produce, kafka_python_produce
from tests.integration.kafka.rig import KafkaRig
from tests.peers import ProxyThread

from .helpers import KafkaRaw, KafkaServer, get_json, proxy_config
from .test_kafka import _batch, _fetch, _produce

PREVIEW = 256
#: long enough that every record waits for the producer's flush(), which sends at
#: once: one batch per send, so compressing always pays (a batch of one small
#: record is left uncompressed by the producer)
LINGER = 5000
TEXT = [b"order %d: shipped" % i for i in range(6)]
BINARY = [bytes([0, 1, 2, 0xFF, i]) for i in range(6)]
LARGE = b"L" * 1000 + b"\x00" * 1000  # printable head, longer than a preview


def _values() -> list[bytes]:
    return [v for trio in zip(TEXT, BINARY, [LARGE] * 6, strict=True) for v in trio]


@pytest.fixture(scope="module")
def rig():
    extra = {"admin": {"listen": "127.0.0.1:0"}, "tail": {"enabled": True}}
    with KafkaRig(brokers=1, config=extra) as rig:
        yield rig


def _records_of(messages: list[dict[str, Any]], topic: str) -> list[tuple[dict, dict]]:
    """(batch, record) for every record shown in Produce requests to `topic`."""
    out = []
    for m in messages:
        for t in m["view"]["topic_data"]:
            if t["name"] != topic:
                continue
            for p in t["partition_data"]:
                for batch in p["records"]["batches"]:
                    assert "error" not in batch, batch["error"]
                    out.extend((batch, r) for r in batch["records"])
    return out


def _produced_in_tail(rig: KafkaRig, topic: str, n: int) -> list[tuple[dict, dict]]:
    """The records of `topic` in /messages, once all `n` are there (bounded wait)."""
    url = rig.app.admin.url + f"/messages?api=Produce&topic={topic}&limit=1000"
    deadline = time.monotonic() + 10
    while True:
        records = _records_of(get_json(url)["messages"], topic)
        if len(records) >= n or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def _check(records: list[tuple[dict, dict]], codec: str) -> None:
    values = _values()
    assert len(records) == len(values)
    assert {b["compression"] for b, _ in records} == {codec}
    by_text = {}
    for _b, r in records:
        v = r["value"]
        assert v["length"] <= len(LARGE)
        shown = v.get("text", v.get("hex"))
        assert shown is not None and len(shown) <= 2 * PREVIEW
        by_text[(v["length"], shown)] = v
    keys = sorted(r["key"]["text"] for _b, r in records)
    assert keys == sorted(f"key-{i}" for i in range(len(values)))
    for t in TEXT:
        assert by_text[(len(t), t.decode())] == {
            "length": len(t),
            "truncated": False,
            "text": t.decode(),
        }
    for b in BINARY:
        assert by_text[(len(b), b.hex())] == {"length": len(b), "truncated": False, "hex": b.hex()}
    large = [r["value"] for _b, r in records if r["value"]["length"] == len(LARGE)]
    assert len(large) == 6
    assert all(v == {"length": 2000, "truncated": True, "text": "L" * PREVIEW} for v in large)
    for batch, r in records:  # a producer's base offset is 0: offsets are the deltas
        assert 0 <= r["offset"] - batch["base_offset"] < batch["record_count"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_records_are_decompressed_and_previewed(rig: KafkaRig, codec: str) -> None:
    topic = f"tail-kp-{codec}"
    rig.create_topic(topic, 1)
    kafka_python_produce(rig.bootstrap, topic, _values(), compression_type=codec, linger_ms=LINGER)
    _check(_produced_in_tail(rig, topic, len(_values())), codec)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_librdkafka_records_are_decompressed_and_previewed(rig: KafkaRig, codec: str) -> None:
    topic = f"tail-rd-{codec}"
    rig.create_topic(topic, 1)
    confluent_produce(
        rig.bootstrap, topic, _values(), {"compression.codec": codec, "linger.ms": LINGER}
    )
    _check(_produced_in_tail(rig, topic, len(_values())), codec)


def test_fetch_responses_show_records_at_their_log_offsets(rig: KafkaRig) -> None:
    topic = "tail-fetch"
    rig.create_topic(topic, 1)
    first, second = _values()[:9], _values()[9:]
    kafka_python_produce(rig.bootstrap, topic, first, compression_type="gzip", linger_ms=LINGER)
    kafka_python_produce(rig.bootstrap, topic, second, compression_type="zstd", linger_ms=LINGER)
    client = KafkaRaw(int(rig.bootstrap.rsplit(":", 1)[1]), client_id="tail-fetch")
    client.request(1, 12, _fetch(topic, 0))
    client.close()
    url = rig.app.admin.url + "/messages?api=Fetch&limit=1000"
    down = [m for m in get_json(url)["messages"] if m["direction"] == "downstream"]
    (answer,) = [m for m in down if _fetched(m, topic)]
    records = _fetched(answer, topic)
    assert [r["offset"] for _b, r in records] == list(range(len(_values())))
    assert {b["compression"] for b, _r in records} == {"gzip", "zstd"}
    assert min(b["base_offset"] for b, _r in records if b["compression"] == "zstd") == len(first)
    shown = [r["value"].get("text", r["value"].get("hex")) for _b, r in records]
    assert shown[:2] == [TEXT[0].decode(), BINARY[0].hex()]


def _fetched(message: dict, topic: str) -> list[tuple[dict, dict]]:
    out = []
    for t in message["view"]["responses"]:
        if t["topic"] != topic:
            continue
        for p in t["partitions"]:
            for batch in (p["records"] or {"batches": []})["batches"]:
                assert "error" not in batch, batch["error"]
                out.extend((batch, r) for r in batch["records"])
    return out


def _gzip_bomb(declared: int) -> bytes:
    """One v2 batch whose single record declares a `declared`-byte value of zeros."""
    import struct
    import zlib

    def varint(n: int) -> bytes:
        n = (n << 1) ^ (n >> 63)
        out = bytearray()
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes(out) + bytes([n])

    body_len = 4 + len(varint(declared)) + declared + 1
    head = varint(body_len) + b"\x00" + varint(0) + varint(0) + varint(-1) + varint(declared)
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    blob = co.compress(head) + b"".join(co.compress(zeros) for _ in range(declared >> 20))
    blob += co.compress(bytes(1)) + co.flush()
    header = struct.pack(">qiibIhiqqqhii", 0, 49 + len(blob), 0, 2, 0, 1, 0, 0, 0, -1, -1, -1, 1)
    return header + blob


def test_hostile_records_are_noted_in_the_view_and_end_nothing(kafka) -> None:
    bomb = _gzip_bomb(64 << 20)
    junk = bytes(12) + b"\x00\x00\x00\x00\x07" + bytes(range(256)) * 3  # magic 7
    junk = junk[:8] + (len(junk) - 12).to_bytes(4, "big") + junk[12:]
    with ProxyThread(proxy_config(kafka.address, protocol="kafka")) as proxy:
        client = KafkaRaw(proxy.port("front"))
        client.request(0, 9, _produce("orders", bomb))
        client.request(0, 9, _produce("orders", junk))
        ok = client.request(0, 9, _produce("orders", _batch([b"after"])))
        assert ok.responses[0].partition_responses[0].error_code == 0  # the connection lives on
        client.close()
        messages = get_json(proxy.admin_url + "/messages?api=Produce")["messages"]
    views = [
        m["view"]["topic_data"][0]["partition_data"][0]["records"]
        for m in messages
        if m["direction"] == "upstream"
    ]
    bombed, broken, fine = views
    (batch,) = bombed["batches"]
    assert batch["truncated_by"] == "decompressed_bytes"
    assert batch["decompressed_bytes"] == 1 << 20
    (rec,) = batch["records"]
    assert rec["partial"] and rec["value"]["length"] == 64 << 20
    assert rec["value"] == {"length": 64 << 20, "truncated": True, "hex": "00" * 256}
    assert broken["error"] == "unknown record magic 7" and broken["batches"] == []
    assert fine["batches"][0]["records"][0]["value"]["text"] == "after"


# -- injected responses ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kafka():
    with KafkaServer() as server:
        server.run(lambda: server.service.create_topic("orders", partitions=1))
        yield server


def test_an_aborted_produce_shows_its_made_up_response_marked_injected(kafka) -> None:
    fault = {
        "name": "produce-errors",
        "match": {"protocol": "kafka", "api": "Produce", "topic": "orders"},
        "action": {"abort": {"error": "NOT_LEADER_OR_FOLLOWER"}},
        "schedule": {"first": 1},
    }
    with ProxyThread(proxy_config(kafka.address, protocol="kafka", faults=[fault])) as proxy:
        client = KafkaRaw(proxy.port("front"))
        first = client.request(0, 9, _produce("orders", _batch([b"aborted"])))
        second = client.request(0, 9, _produce("orders", _batch([b"stored"])))
        client.close()
        messages = get_json(proxy.admin_url + "/messages?api=Produce")["messages"]
    assert first.responses[0].partition_responses[0].error_code == 6  # NOT_LEADER_OR_FOLLOWER
    assert second.responses[0].partition_responses[0].error_code == 0
    assert [
        (m["direction"], m["info"]["correlation_id"] if m["direction"] == "upstream" else m["key"])
        for m in messages
    ] == [
        ("upstream", 1),
        ("downstream", 1),
        ("upstream", 2),
        ("downstream", 2),
    ]
    req, made_up, req2, real = messages
    assert req["forwarded"] is False and req["fault"] == "produce-errors"
    assert made_up["injected"] is True and made_up["fault"] == "produce-errors"
    (part,) = made_up["view"]["responses"][0]["partition_responses"]
    assert part["error_code"] == 6
    assert "injected" not in real and "forwarded" not in req2
    assert "injected" not in made_up["info"] and "not_forwarded" not in req["info"]


def test_an_abort_behind_an_owed_response_shows_in_wire_order(kafka) -> None:
    """Made-up responses wait behind responses still owed; the tail shows them there."""
    fault = {
        "name": "second-fails",
        "match": {"protocol": "kafka", "api": "Produce", "topic": "orders"},
        "action": {"abort": {"error": "NOT_LEADER_OR_FOLLOWER"}},
        "schedule": {"after": 1, "first": 2},
    }
    with ProxyThread(proxy_config(kafka.address, protocol="kafka", faults=[fault])) as proxy:
        client = KafkaRaw(proxy.port("front"))
        frames = [
            client.frame(0, 9, _produce("orders", _batch([b"one"])), "pipelined"),
            client.frame(0, 9, _produce("orders", _batch([b"two"])), "pipelined"),
        ]
        client.send_many(frames)
        client.recv_frame()
        client.recv_frame()
        client.close()
        messages = get_json(proxy.admin_url + "/messages?api=Produce")["messages"]
    down = [m for m in messages if m["direction"] == "downstream"]
    assert [m["key"] for m in down] == [1, 2]
    assert "injected" not in down[0]
    assert down[1]["injected"] is True and down[1]["fault"] == "second-fails"
