"""A tap of kafka-python (SASL/PLAIN, produce and consume) through the real proxy.

Read back with tshark (Kafka dissector on every listener and broker port)
and with `protoproxy decode`. Two taps record the same connections: one
with `redact: false`, one redacting; the password must not be anywhere in
the redacted file while tshark still dissects its SaslAuthenticate frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from protoproxy.decode.decoder import decode, rows
from protoproxy_codecs.kafka.api_keys import ApiKey
from testbed.kafka.sasl_mechanisms import Credentials
from tests.integration.kafka.rig import KafkaRig
from tests.peers import wait_for

from .tshark import dump, problems, streams

PASSWORD = "Pa55-w0rd-0f-alice-XYZZY"
#: issue 15: tshark reads a tap of 10,000 Kafka records cleanly
RECORDS = 10_000
SASL = {
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": "PLAIN",
    "sasl_plain_username": "alice",
    "sasl_plain_password": PASSWORD,
    # tshark 4.0's Kafka dissector knows Produce up to v8, Fetch v11, Metadata v9:
    # the versions of a 2.5 broker; newer ones it flags as malformed
    "api_version": (2, 5, 0),
}


@pytest.fixture(scope="module")
def recorded() -> Iterator[dict[str, Any]]:
    creds = Credentials({"alice": PASSWORD}, ["PLAIN"])
    with KafkaRig(brokers=1, cluster_options={"sasl": creds}) as rig:
        rig.create_topic("orders", 1)
        app = rig.app
        proxy = app.proxy
        closed: list[tuple[int, int]] = []
        rig.run(lambda: proxy.close_observers.append(lambda c: closed.append(tuple(c.bytes))))

        async def start() -> None:
            app.captures.start(name="raw", redact=False)
            app.captures.start(name="red", protocol="kafka")

        rig.call(start)
        producer = KafkaProducer(bootstrap_servers=rig.bootstrap, client_id="tapper", **SASL)
        for i in range(RECORDS):
            producer.send("orders", key=b"k%d" % i, value=b"value-%d" % i)
        producer.flush(30)
        producer.close()
        consumer = KafkaConsumer(
            "orders", bootstrap_servers=rig.bootstrap, client_id="tapper-c",
            auto_offset_reset="earliest", consumer_timeout_ms=3000, **SASL,
        )  # fmt: skip
        consumed = [m.value for m in consumer]
        consumer.close()
        assert wait_for(lambda: rig.run(lambda: not proxy.connections), 20)

        async def stop() -> dict[str, Any]:
            out = {}
            for name in ("raw", "red"):
                tap = app.captures.stop(name)
                await tap.wait_stopped()
                out[name] = tap.describe()
            return out

        taps = rig.call(stop)
        assert rig.cluster is not None
        ports = {lst.port for lst in proxy.listeners.values()}
        ports |= {int(a.rsplit(":", 1)[1]) for a in rig.cluster.bootstrap_servers.split(",")}
        yield {
            "taps": taps,
            "files": {n: Path(t["files"][0]) for n, t in taps.items()},
            "consumed": consumed,
            "closed": closed,
            "ports": ports,
            "listeners": {lst.port for lst in proxy.listeners.values()},
        }


def _decode_as(rec: dict[str, Any]) -> tuple[str, ...]:
    return tuple(f"tcp.port=={p},kafka" for p in sorted(rec["ports"]))


def test_clients_did_their_work(recorded: dict[str, Any]) -> None:
    assert recorded["consumed"] == [b"value-%d" % i for i in range(RECORDS)]
    for tap in recorded["taps"].values():
        assert tap["connections"] >= 2 and tap["dropped"] == 0


def test_tshark_reads_both_taps_cleanly(recorded: dict[str, Any]) -> None:
    for path in recorded["files"].values():
        assert problems(path, _decode_as(recorded)) == []


def test_streams_equal_what_was_sent(recorded: dict[str, Any]) -> None:
    got = streams(recorded["files"]["raw"], _decode_as(recorded))
    listeners, ports = recorded["listeners"], recorded["ports"]
    from_clients = sorted(v for (s, d), v in got.items() if d in listeners)
    to_upstream = sorted(v for (s, d), v in got.items() if d in ports - listeners)
    from_upstream = sorted(len(v) for (s, d), v in got.items() if s in ports - listeners)
    # the proxy forwards requests unchanged: both legs carry the same request bytes
    assert from_clients == to_upstream
    # and each stream holds exactly what the proxy read: its own per-connection counts
    assert sorted(len(v) for v in from_clients) == sorted(up for up, _ in recorded["closed"])
    assert from_upstream == sorted(down for _, down in recorded["closed"])


def test_password_is_redacted_and_frames_still_dissect(recorded: dict[str, Any]) -> None:
    raw = recorded["files"]["raw"].read_bytes()
    red = recorded["files"]["red"].read_bytes()
    assert PASSWORD.encode() in raw
    assert PASSWORD.encode() not in red
    assert len(red) == len(raw)

    def sasl_frames(path: Path) -> list[tuple[str, str]]:
        return [
            (r["kafka.api_key"], r["kafka.correlation_id"])
            for r in dump(path, _decode_as(recorded))
            if str(int(ApiKey.SASL_AUTHENTICATE)) in r["kafka.api_key"].split("|")
        ]

    assert sasl_frames(recorded["files"]["red"]) == sasl_frames(recorded["files"]["raw"])
    assert len(sasl_frames(recorded["files"]["red"])) >= 4  # request and response, both legs


def test_decode_of_the_tap_agrees_with_the_clients_and_tshark(recorded: dict[str, Any]) -> None:
    path = recorded["files"]["red"]
    ours = list(rows(decode(path)))
    produced = [r for r in ours if r["api_key"] == int(ApiKey.PRODUCE)]
    fetched = [r for r in ours if r["api_key"] == int(ApiKey.FETCH)]
    assert produced and fetched
    assert {r["client_id"] for r in produced} == {"tapper"}
    assert {r["client_id"] for r in fetched} == {"tapper-c"}
    assert all("orders" in str(r.get("topics")) for r in produced)
    # every request tshark dissects, protoproxy decode pairs with a response
    theirs = sorted(
        (int(k), int(c))
        for r in dump(path, _decode_as(recorded))
        if int(r["tcp.dstport"] or 0) in recorded["ports"] and r["kafka.api_version"]
        for k, c in zip(r["kafka.api_key"].split("|"), r["kafka.correlation_id"].split("|"), strict=False)
    )  # fmt: skip
    assert sorted((r["api_key"], r["correlation_id"]) for r in ours) == theirs
