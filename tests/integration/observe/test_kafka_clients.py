"""A real Kafka client (kcat, librdkafka) through the proxy's per-broker listeners:
every request the cluster handled is one exchange in /metrics and one access-log
line naming its broker, and the record counts equal what was produced and consumed."""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

from protoproxy_codecs.kafka import schema
from tests.integration.kafka import clients
from tests.integration.kafka.rig import KafkaRig
from tests.tools import require_tool

from .helpers import access_lines, scrape, total

N = 500
PARTITIONS = 3


def _settled(rig: KafkaRig, read, timeout: float = 10) -> tuple[int, int]:
    """(requests the cluster handled, exchanges the proxy completed), once they agree.

    A client that disconnects with a request in flight leaves one handled request
    whose response never crossed the proxy; kcat waits for its responses, so the
    counts meet within moments of its exit.
    """
    deadline = time.monotonic() + timeout
    while True:
        handled, done = rig.run(read)
        if handled == done or time.monotonic() > deadline:
            return handled, done
        time.sleep(0.05)


def test_kcat_counts_and_access_log_are_exact(tmp_path: Path) -> None:
    kcat = require_tool("kcat")
    log_path = tmp_path / "access.log"
    extra = {
        "admin": {"listen": "127.0.0.1:0"},
        "access_log": {"enabled": True, "path": str(log_path)},
        "tail": {"enabled": True},
    }
    with KafkaRig(brokers=3, config=extra) as rig:
        rig.create_topic("obs", PARTITIONS)
        admin = rig.app.admin.url
        # /messages?follow=1 sees the Produce requests live, while kcat runs.
        seen: list[dict] = []
        got_produce = threading.Event()
        resp = urllib.request.urlopen(admin + "/messages?follow=1&api=Produce", timeout=30)
        assert resp.readline().startswith(b"event: hello")

        def follow() -> None:
            event = b""
            for raw in resp:
                if raw.startswith(b"event: "):
                    event = raw[7:].strip()
                elif raw.startswith(b"data: ") and event == b"message":
                    seen.append(json.loads(raw[6:]))
                    if any(m["direction"] == "upstream" for m in seen):
                        got_produce.set()
                        return

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        vals = clients.values(N)
        clients.kcat_produce(kcat, rig.bootstrap, "obs", vals)
        assert got_produce.wait(20)
        reader.join(5)
        resp.close()
        consumed = clients.kcat_consume(kcat, rig.bootstrap, "obs", "obs-group", N)
        assert sum(len(v) for v in consumed.values()) == N
        rig.assert_no_bypass()
        cluster = rig.cluster
        exchanges_family = rig.app.proxy.stats.families["protoproxy_exchanges_total"]

        def read() -> tuple[int, int]:
            return cluster.requests_handled, int(exchanges_family.total())

        handled, done = _settled(rig, read)
        by_api = rig.run(lambda: dict(cluster.requests_by_api))
        m = scrape(admin)
        rig.run(rig.app.observe.access_log.flush)
        lines = access_lines(log_path)
        broker_addrs = set(rig.cluster.bootstrap_servers.split(","))

    assert handled == done
    ex = m["protoproxy_exchanges_total"]
    assert total(ex, protocol="kafka") == handled
    for api_key, n in by_api.items():
        name = schema.api_name(api_key)
        mine = sum(
            v for labels, v in ex.items() if dict(labels)["operation"].startswith(name + " v")
        )
        assert mine == n, name
    # histogram _count equals request counts, per operation
    counts = m["protoproxy_exchange_duration_seconds_count"]
    for labels in ex:
        op = dict(labels)["operation"]
        assert total(counts, operation=op) == total(ex, operation=op)
    records = m["protoproxy_exchange_records_total"]
    produce_ops = {dict(k)["operation"] for k in ex if dict(k)["operation"].startswith("Produce")}
    assert sum(total(records, operation=op, direction="upstream") for op in produce_ops) == N
    fetched = sum(v for labels, v in records.items() if dict(labels)["direction"] == "downstream")
    assert fetched == N
    # status counts: the access log and the counters agree, status by status
    metric_statuses: Counter = Counter()
    for labels, v in ex.items():
        metric_statuses[dict(labels)["status"]] += int(v)
    assert Counter(ln["status"] for ln in lines) == metric_statuses

    # access log: one line per exchange, each naming the broker it went to
    assert len(lines) == handled
    assert {ln["upstream"] for ln in lines} <= broker_addrs
    assert len({ln["upstream"] for ln in lines}) == 3  # all three brokers served requests
    for op in {ln["operation"] for ln in lines}:
        durs = [ln["duration"] for ln in lines if ln["operation"] == op]
        assert len(durs) == total(counts, operation=op)
        assert math.isclose(
            sum(durs),
            total(m["protoproxy_exchange_duration_seconds_sum"], operation=op),
            rel_tol=1e-9,
            abs_tol=1e-12,
        )
    produced_lines = [ln for ln in lines if ln["operation"].startswith("Produce")]
    assert sum(ln.get("record_count", 0) for ln in produced_lines) == N
    assert {ln["topics"][0] for ln in produced_lines} == {"obs"}
    assert any(m["info"].get("topics") == ["obs"] for m in seen)
