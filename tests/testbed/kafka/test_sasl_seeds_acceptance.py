"""Acceptance (issue 13, item 4): a scenario file's seed records are consumed by kcat
through the proxy, exactly; SCRAM-SHA-256 with kcat through the proxy produces and
consumes, a wrong password fails with the broker's own words, and neither the
password nor the SCRAM proof shows in any output (kcat's, /messages, the access
log, /metrics, the logs, the journal). PLAIN and SCRAM-SHA-512 with
confluent-kafka, SCRAM with kafka-python, through the same proxy."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer

from testbed.kafka.sasl_mechanisms import ScramServer
from tests.tools import require_tool

from .rig import (
    ALICE,
    ALICE_PASSWORD,
    BOB,
    BOB_PASSWORD,
    DEADLINE,
    WRONG_PASSWORD,
    KafkaTestbed,
    confluent_sasl,
    kcat,
    sasl_flags,
)

BROKER_TEXT = (
    "Authentication failed during authentication due to invalid credentials "
    "with SASL mechanism SCRAM-SHA-256"
)

#: what kcat prints for the fixture's seed file: partition|key|value|headers
SEEDED = {
    b"0|order-1|" + b'{"id":1,"item":"book"}' + b"|source=seed",
    b"0|order-4|[1,2,3]|source=seed,kind=array",
    b"0|customer-42|by key|",  # murmur2("customer-42") % 3 == 0, as the Java client puts it
    b"0||no key, round-robin|",  # the first keyless record goes to partition 0
    b"1|order-2|plain text|",
    b"2|order-3|\x00\x01\x02\xff|",  # key_b64 / value_b64
}


@pytest.fixture
def proofs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SCRAM client proof the brokers received (the real server still checks it)."""
    seen: list[str] = []
    real = ScramServer._client_final

    def spy(self: ScramServer, text: str) -> str:
        seen.append(text.rpartition(",p=")[2])
        return real(self, text)

    monkeypatch.setattr(ScramServer, "_client_final", spy)
    return seen


@pytest.fixture
def bed(caplog: pytest.LogCaptureFixture) -> Iterator[KafkaTestbed]:
    caplog.set_level(logging.DEBUG)
    with KafkaTestbed() as t:
        yield t


def _outputs(
    bed: KafkaTestbed, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> dict[str, str]:
    bed.flush_access_log()
    return {
        "/messages": bed.get("/messages"),
        "/metrics": bed.get("/metrics"),
        "journal": bed.get("/testbed/journal"),
        "access log": capfd.readouterr().out,
        "logs": "\n".join(r.getMessage() for r in caplog.records),
    }


def _assert_secret_free(texts: dict[str, str], secrets: list[str]) -> None:
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} in {where}"
            assert secret.encode().hex() not in text, f"{secret!r} (hex) in {where}"


def test_kcat_seeds_and_scram_sha_256_through_the_proxy(
    bed: KafkaTestbed,
    proofs: list[str],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tool = require_tool("kcat")
    scram = sasl_flags("SCRAM-SHA-256", ALICE, ALICE_PASSWORD)
    fmt = "%p|%k|%s|%h\n"
    seeded = kcat(
        tool, bed.bootstrap, "-C", "-t", "orders", "-e", "-o", "beginning", "-f", fmt, *scram
    )
    assert set(seeded.stdout.splitlines()) == SEEDED
    assert len(seeded.stdout.splitlines()) == len(SEEDED)

    kcat(tool, bed.bootstrap, "-P", "-t", "scratch", "-p", "1", "-K", ":", *scram,
         stdin=b"k1:first\nk2:second\n")  # fmt: skip
    got = kcat(tool, bed.bootstrap, "-C", "-t", "scratch", "-p", "1", "-e", "-o", "beginning",
               "-f", "%k=%s\n", *scram)  # fmt: skip
    assert got.stdout.splitlines() == [b"k1=first", b"k2=second"]
    cluster = bed.tb.services["kafka"]
    assert [r.value for r in bed.run(lambda: cluster.records("scratch", 1))] == [
        b"first",
        b"second",
    ]
    # the journal: kcat's two records, as produced; the seeds are no client's produce
    produced = bed.journal.kafka(topic="scratch", operation="produce")
    assert [(e.partition, e.offset, e.key, e.value) for e in produced] == [
        (1, 0, "k1", "first"),
        (1, 1, "k2", "second"),
    ]
    assert bed.journal.kafka(topic="orders", operation="produce").count() == 0

    failures_before = bed.run(lambda: cluster.sasl_failures)
    wrong = kcat(tool, bed.bootstrap, "-L", "-m", "5",
                 *sasl_flags("SCRAM-SHA-256", ALICE, WRONG_PASSWORD), check=False)  # fmt: skip
    assert wrong.returncode != 0
    assert BROKER_TEXT.encode() in wrong.stderr
    assert bed.run(lambda: cluster.sasl_failures) > failures_before

    assert proofs, "SCRAM ran, so the brokers saw client proofs"
    texts = _outputs(bed, capfd, caplog)
    assert "SaslAuthenticate" in texts["access log"]  # the exchanges were logged, redacted
    texts["describe"] = bed.call(lambda tb: tb.describe())  # what `protoproxy testbed` prints
    assert "-X security.protocol=SASL_PLAINTEXT" in texts["describe"]
    for i, run in enumerate((seeded, got, wrong)):
        texts[f"kcat run {i} stdout"] = run.stdout.decode("utf-8", "replace")
        texts[f"kcat run {i} stderr"] = run.stderr.decode("utf-8", "replace")
    _assert_secret_free(texts, [ALICE_PASSWORD, WRONG_PASSWORD, *proofs])


def _roundtrip(
    bootstrap: str, conf: dict[str, str], topic: str, values: list[bytes]
) -> list[bytes]:
    producer = Producer(conf)
    for v in values:
        producer.produce(topic, v, partition=0)
    assert producer.flush(DEADLINE) == 0
    consumer = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        while len(got) < len(values):
            msg = consumer.poll(DEADLINE)
            assert msg is not None, "no record within the deadline"
            assert msg.error() is None, msg.error()
            got.append(msg.value())
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_confluent_kafka_plain_and_scram_sha_512(
    bed: KafkaTestbed,
    mechanism: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = "ck-" + mechanism.lower()
    values = [f"{mechanism}-{i}".encode() for i in range(5)]
    conf = confluent_sasl(bed.bootstrap, mechanism, BOB, BOB_PASSWORD)
    assert _roundtrip(bed.bootstrap, conf, topic, values) == values
    errors: list[str] = []
    bad = Producer(
        {
            **confluent_sasl(bed.bootstrap, mechanism, BOB, WRONG_PASSWORD),
            "error_cb": lambda e: errors.append(e.str()),
        }
    )
    bad.produce(topic, b"never")
    bad.poll(0)
    while not errors:
        bad.poll(1)
    want = (
        "Authentication failed: Invalid username or password"
        if mechanism == "PLAIN"
        else f"invalid credentials with SASL mechanism {mechanism}"
    )
    assert any(want in e for e in errors), errors
    bad.purge()
    _assert_secret_free(_outputs(bed, capfd, caplog), [BOB_PASSWORD, WRONG_PASSWORD])


def test_kafka_python_scram_sha_256(bed: KafkaTestbed) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError

    common = {
        "bootstrap_servers": bed.bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": ALICE,
    }
    producer = KafkaProducer(**common, sasl_plain_password=ALICE_PASSWORD)
    for i in range(3):
        producer.send("kp-scram", f"kp-{i}".encode(), partition=0).get(DEADLINE)
    producer.close()
    consumer = KafkaConsumer(
        "kp-scram",
        **common,
        sasl_plain_password=ALICE_PASSWORD,
        auto_offset_reset="earliest",
        consumer_timeout_ms=DEADLINE * 1000,
    )
    got = []
    for msg in consumer:
        got.append(msg.value)
        if len(got) == 3:
            break
    consumer.close()
    assert got == [b"kp-0", b"kp-1", b"kp-2"]
    # kafka-python reports a refused login as a failed bootstrap (it reads the
    # close, not the error text): the brokers' failure count shows why.
    cluster = bed.tb.services["kafka"]
    before = bed.run(lambda: cluster.sasl_failures)
    with pytest.raises(KafkaError):
        # kafka-python retries a failed bootstrap for bootstrap_timeout_ms (30 s by
        # default); the first refusal is what this checks, so give up sooner
        bad = KafkaProducer(
            **common,
            sasl_plain_password=WRONG_PASSWORD,
            max_block_ms=5_000,
            bootstrap_timeout_ms=2_000,
        )
        bad.send("kp-scram", b"never").get(DEADLINE)
    assert bed.run(lambda: cluster.sasl_failures) > before


def test_v0_bare_tokens_through_the_proxy_stay_redacted(
    bed: KafkaTestbed, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """SaslHandshake v0 then a bare PLAIN token (the pre-KIP-152 flow): the codec
    follows the mode switch, and the token's password shows nowhere."""
    import struct

    from tests.integration.observe.helpers import KafkaRaw

    port = int(bed.bootstrap.rpartition(":")[2])
    client = KafkaRaw(port, client_id="v0-client")
    assert client.request(17, 0, {"mechanism": "PLAIN"}).error_code == 0
    token = b"\0" + BOB.encode() + b"\0" + BOB_PASSWORD.encode()
    client.sock.sendall(struct.pack(">i", len(token)) + token)
    assert client.recv_frame() == b""  # PLAIN's empty answer, as a bare frame
    md = client.request(3, 12, {"topics": None, "allow_auto_topic_creation": False})
    assert {t.name for t in md.topics} >= {"orders", "scratch"}
    client.close()
    texts = _outputs(bed, capfd, caplog)
    assert "SaslToken" in texts["/messages"]
    _assert_secret_free(texts, [BOB_PASSWORD])
