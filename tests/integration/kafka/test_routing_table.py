"""The routing table: last-seen leaders and coordinators, bounded, JSON-able."""

from __future__ import annotations

import json

from protoproxy.kafka import routing
from protoproxy.kafka.routing import RoutingTable
from protoproxy_codecs.kafka.rewrite import Routing


def test_last_seen_wins_and_snapshot_is_json(monkeypatch) -> None:
    t = RoutingTable("kafka")
    t.update(Routing([], {"a": {0: 1, 1: 2}}, {"g": 0}, 0, "cid"))
    t.update(Routing([], {"a": {1: 0}}, {"g": 2}, None, None))
    snap = json.loads(json.dumps(t.snapshot()))
    assert snap["leaders"] == {"a": {"0": 1, "1": 0}}
    assert snap["coordinators"] == {"g": 2}
    assert snap["controller_id"] == 0 and snap["cluster_id"] == "cid"


def test_tables_are_bounded(monkeypatch) -> None:
    monkeypatch.setattr(routing, "MAX_TOPICS", 2)
    monkeypatch.setattr(routing, "MAX_PARTITIONS_PER_TOPIC", 3)
    monkeypatch.setattr(routing, "MAX_COORDINATORS", 1)
    t = RoutingTable("kafka")
    t.update(
        Routing(
            [],
            {f"t{i}": {p: 0 for p in range(10)} for i in range(5)},
            {"g1": 0, "g2": 1},
        )
    )
    assert len(t.leaders) == 2
    assert all(len(parts) == 3 for parts in t.leaders.values())
    assert t.coordinators == {"g1": 0}
    t.update(Routing([], {"t0": {0: 2}}, {"g1": 1}))  # known keys still update
    assert t.leaders["t0"][0] == 2 and t.coordinators == {"g1": 1}
