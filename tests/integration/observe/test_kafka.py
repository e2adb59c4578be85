"""Kafka through the proxy on raw frames: exact request and record counts, the
access log, SASL redaction, and the series cap under 100,000 client ids.

A one-broker fake cluster is used with a plain `protocol: kafka` listener, so the
client never needs the broker address rewriting of the Kafka integration.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import struct
import threading
from collections import Counter
from pathlib import Path

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder

from protoproxy_codecs.kafka import framing
from protoproxy_codecs.kafka.codec import STATUS_OK
from tests.peers import ProxyThread

from .helpers import (
    KafkaRaw,
    KafkaServer,
    access_lines,
    get,
    get_json,
    outputs,
    proxy_config,
    scrape,
    total,
)

N_PRODUCE = 12
PER_BATCH = 5


def _batch(values: list[bytes]) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    for i, value in enumerate(values):
        builder.append(i, 1_700_000_000_000 + i, None, value, [])
    return bytes(builder.build())


def _produce(topic: str, records: bytes) -> dict:
    return {
        "acks": -1,
        "timeout_ms": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}],
    }


def _fetch(topic: str, offset: int) -> dict:
    return {
        "max_wait_ms": 0,
        "min_bytes": 0,
        "max_bytes": 1 << 20,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {"partition": 0, "fetch_offset": offset, "partition_max_bytes": 1 << 20}
                ],
            }
        ],
    }


def _fetched_records(resp) -> int:
    n = 0
    for t in resp.responses:
        for p in t.partitions:
            data = p.records or b""
            pos = 0
            while pos + 61 <= len(data):
                (length,) = struct.unpack_from(">i", data, pos + 8)
                (count,) = struct.unpack_from(">i", data, pos + 57)
                n += count
                pos += 12 + length
    return n


@pytest.fixture(scope="module")
def kafka():
    with KafkaServer() as server:
        server.run(lambda: server.service.create_topic("orders", partitions=1))
        yield server


def test_kafka_counts_and_access_log(kafka, tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    cfg = proxy_config(kafka.address, protocol="kafka", access_log=log_path)
    with ProxyThread(cfg) as proxy:
        client = KafkaRaw(proxy.port("front"), client_id="counts")
        did: Counter = Counter()
        client.request(18, 3, {"client_software_name": "t", "client_software_version": "1"})
        did["ApiVersions v3"] += 1
        for i in range(N_PRODUCE):
            values = [b"r%d-%d" % (i, j) for j in range(PER_BATCH)]
            resp = client.request(0, 9, _produce("orders", _batch(values)))
            assert resp.responses[0].partition_responses[0].error_code == 0
            did["Produce v9"] += 1
        start = kafka.run(lambda: kafka.service.end_offsets("orders")[0]) - N_PRODUCE * PER_BATCH
        fetched, offset = 0, start
        while fetched < N_PRODUCE * PER_BATCH:
            resp = client.request(1, 12, _fetch("orders", offset))
            did["Fetch v12"] += 1
            got = _fetched_records(resp)
            fetched += got
            offset += got
        # one more Fetch past the end: zero records, still one exchange
        client.request(1, 12, _fetch("orders", offset))
        did["Fetch v12"] += 1
        m = scrape(proxy.admin_url)
        proxy.run(proxy.app.observe.access_log.flush)
        lines = access_lines(log_path)
        client.close()

    ex = m["protoproxy_exchanges_total"]
    for op, n in did.items():
        assert total(ex, listener="front", protocol="kafka", operation=op, status=STATUS_OK) == n
        assert total(m["protoproxy_exchange_duration_seconds_count"], operation=op) == n
        mine = [ln for ln in lines if ln["operation"] == op]
        assert len(mine) == n
        hist_sum = total(m["protoproxy_exchange_duration_seconds_sum"], operation=op)
        assert math.isclose(sum(ln["duration"] for ln in mine), hist_sum, rel_tol=1e-9)
    records = m["protoproxy_exchange_records_total"]
    assert total(records, operation="Produce v9", direction="upstream") == N_PRODUCE * PER_BATCH
    assert total(records, operation="Fetch v12", direction="downstream") == fetched
    assert total(m["protoproxy_client_requests_total"], client_id="counts") == sum(did.values())
    assert len(lines) == sum(did.values())
    assert {ln["upstream"] for ln in lines} == {kafka.address}
    assert {ln["client_id"] for ln in lines} == {"counts"}
    assert sum(ln.get("record_count", 0) for ln in lines if ln["operation"] == "Produce v9") == (
        N_PRODUCE * PER_BATCH
    )


def test_messages_filter_by_api_and_topic(kafka) -> None:
    with ProxyThread(proxy_config(kafka.address, protocol="kafka")) as proxy:
        client = KafkaRaw(proxy.port("front"))
        client.request(0, 9, _produce("orders", _batch([b"tail-me"])))
        client.request(3, 9, {"topics": [{"name": "orders"}], "allow_auto_topic_creation": False})
        client.close()
        body = get_json(proxy.admin_url + "/messages?api=Produce&topic=orders")
        assert [m["direction"] for m in body["messages"]] == ["upstream"]
        produce = body["messages"][0]
        assert produce["info"]["api"] == "Produce" and produce["info"]["topics"] == ["orders"]
        assert produce["view"]["acks"] == -1  # decoded lazily when served
        meta = get_json(proxy.admin_url + "/messages?api=Metadata")["messages"]
        assert [m["direction"] for m in meta] == ["upstream", "downstream"]
        assert meta[1]["view"]["topics"][0]["name"] == "orders"
        assert get_json(proxy.admin_url + "/messages?topic=nope")["messages"] == []


# -- SASL ------------------------------------------------------------------------------

USER, PASSWORD = "alice", "pl41n-s3cret-pw"


class SaslBroker:
    """Answers SaslHandshake v1 and SaslAuthenticate v2 (PLAIN), then ApiVersions.

    The fake cluster has no SASL; these three answers are all the test needs to
    put real SASL frames through the proxy in both directions.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.tokens: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        buf = b""
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from(">i", buf)[0]:
                    size = struct.unpack_from(">i", buf)[0]
                    frame, buf = buf[4 : 4 + size], buf[4 + size :]
                    header, body = framing.decode_request(frame)
                    conn.sendall(self._answer(header, body))

    def _answer(self, header, body) -> bytes:
        api, version, corr = header.api_key, header.api_version, header.correlation_id
        if api == 17:
            resp = {"error_code": 0, "mechanisms": ["PLAIN"]}
        elif api == 36:
            self.tokens.append(body.auth_bytes)
            resp = {
                "error_code": 0,
                "error_message": None,
                "auth_bytes": b"",
                "session_lifetime_ms": 0,
            }
        else:
            resp = {"error_code": 0, "api_keys": [], "throttle_time_ms": 0}
        return framing.encode_response(api, version, corr, resp)


def test_sasl_credentials_are_redacted(tmp_path: Path, caplog) -> None:
    broker = SaslBroker()
    log_path = tmp_path / "access.log"
    cfg = proxy_config(broker.address, protocol="kafka", access_log=log_path)
    caplog.set_level(logging.DEBUG)
    with ProxyThread(cfg) as proxy:
        client = KafkaRaw(proxy.port("front"), client_id="sasl-client")
        assert client.request(17, 1, {"mechanism": "PLAIN"}).mechanisms == ["PLAIN"]
        token = b"\x00" + USER.encode() + b"\x00" + PASSWORD.encode()
        assert client.request(36, 2, {"auth_bytes": token}).error_code == 0
        client.request(18, 0, {})
        client.close()
        messages = get(proxy.admin_url + "/messages").decode()
        tail = proxy.app.observe.tail
        held = proxy.run(lambda: b"".join(e.message.raw for e in tail.entries()))
        assert PASSWORD.encode() not in held  # not even in the ring's memory
        config = get(proxy.admin_url + "/config").decode()
        proxy.run(proxy.app.observe.access_log.flush)
    assert broker.tokens == [token]  # the credentials really went through the proxy
    parsed = json.loads(messages)["messages"]
    auth = [m for m in parsed if m["info"].get("api") == "SaslAuthenticate"]
    assert len(auth) == 2 and all(m["secret"] and m["view"] == "<redacted>" for m in auth)
    assert auth[0]["size"] > len(token)  # sizes are kept, the bytes are not
    texts = outputs(messages, config, log_path, caplog.records)
    assert "SaslAuthenticate v2" in texts["access_log"]
    for where, text in texts.items():
        assert PASSWORD not in text, f"SASL password in clear in {where}"
        assert PASSWORD.encode().hex() not in text, f"SASL password (hex) in {where}"


# -- series cap --------------------------------------------------------------------------

#: 100,000 under the deep profile; CI's default run has a 10-minute budget
CLIENT_IDS = 100_000 if os.environ.get("HYPOTHESIS_PROFILE") == "deep" else 30_000
CAP = 1000


def _rss() -> int:
    """Resident memory of this process (proxy and broker threads included), bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_distinct_client_ids_stay_within_the_series_cap(kafka) -> None:
    cfg = proxy_config(
        kafka.address,
        protocol="kafka",
        tail=False,
        metrics={"max_series": 5000, "families": {"protoproxy_client_requests_total": CAP}},
    )
    with ProxyThread(cfg) as proxy:
        client = KafkaRaw(proxy.port("front"))
        base = None
        sent = 0
        while sent < CLIENT_IDS:
            n = min(2000, CLIENT_IDS - sent)
            frames = [client.frame(18, 0, {}, f"client-{sent + i}") for i in range(n)]
            client.send_many(frames)
            for _ in range(n):
                client.recv_frame()
            sent += n
            if base is None and sent >= 10_000:
                base = _rss()
        grown = _rss() - base
        obs = proxy.app.observe
        caches = proxy.run(lambda: [len(s.client) for s in obs.exchange_metrics._conns.values()])
        client.close()
        m = scrape(proxy.admin_url)
    series = m["protoproxy_client_requests_total"]
    assert len(series) <= CAP
    assert total(series) == CLIENT_IDS
    assert total(series, client_id="other") == CLIENT_IDS - (CAP - 1)
    # the ids sent after the first 10,000 (the cap long full): memory did not grow with them
    assert grown < 16 * 1024 * 1024, f"RSS grew by {grown} bytes"
    assert max(caches) <= 256  # the per-connection label cache is bounded too
    for name, samples in m.items():
        assert len(samples) <= 5000 * 20, name  # every family capped (histograms: per bucket)
