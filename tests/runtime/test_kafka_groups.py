"""Lag arithmetic and the consumer-group state's gauges, edge cases first."""

from __future__ import annotations

import pytest

from protoproxy.kafka import groups as groups_module
from protoproxy.kafka.groups import ClusterGroups, lag
from protoproxy.kafka.metrics import KafkaMetrics
from protoproxy.observe.stats import Stats


@pytest.mark.parametrize(
    ("hw", "committed", "want"),
    [
        (100, 40, 60),
        (None, 40, None),  # no high watermark seen yet
        (100, None, None),  # no commit yet
        (100, -1, None),  # -1 on the wire: no committed offset
        (100, 120, 0),  # a commit beyond the HW seen: the HW seen is older
        (100, 100, 0),
        (0, 0, 0),
        (-1, 5, None),  # a broker's "unknown" HW
    ],
)
def test_lag_edge_cases(hw: int | None, committed: int | None, want: int | None) -> None:
    assert lag(hw, committed) == want


def _state() -> tuple[ClusterGroups, KafkaMetrics]:
    metrics = KafkaMetrics(Stats())
    return ClusterGroups("kafka", metrics), metrics


KEY = ("kafka", "g", "t", "0")


def test_lag_follows_commits_and_watermarks_in_any_order() -> None:
    state, m = _state()
    state.committed("g", {("t", 0): 40})
    assert m.committed_offset.values[KEY] == 40
    assert KEY not in m.group_lag.values  # no HW yet: no lag series
    state.watermarks_seen([("t", 0, 100)])
    assert m.group_lag.values[KEY] == 60
    assert m.high_watermark.values[("kafka", "t", "0")] == 100
    state.watermarks_seen([("t", 0, 130)])  # new records: the lag grows
    assert m.group_lag.values[KEY] == 90
    state.committed("g", {("t", 0): 200})  # beyond the HW seen
    assert m.group_lag.values[KEY] == 0
    # an OffsetFetch answer of -1: the group has no offset there any more
    left = m.group_lag.budget.left
    state.fetched([("g", "t", 0, -1)])
    assert KEY not in m.committed_offset.values and KEY not in m.group_lag.values
    assert m.group_lag.budget.left == left + 2  # both series' slots given back
    assert state.committers == {}
    assert state.snapshot()["groups"][0]["partitions"] == []
    state.watermarks_seen([("t", 0, 140)])  # no longer moves a lag
    assert KEY not in m.group_lag.values


def test_unknown_group_answered_none_is_not_created() -> None:
    state, _ = _state()
    state.fetched([("nobody", "t", 0, -1)])
    assert state.groups == {}


def test_caps_keep_what_they_hold_and_count_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(groups_module, "MAX_GROUPS", 2)
    monkeypatch.setattr(groups_module, "MAX_OFFSETS", 3)
    monkeypatch.setattr(groups_module, "MAX_WATERMARKS", 1)
    monkeypatch.setattr(groups_module, "MAX_MEMBERS", 1)
    state, _ = _state()
    for g in ("a", "b", "c"):
        state.committed(g, {("t", 0): 1, ("t", 1): 1})
    assert set(state.groups) == {"a", "b"}
    assert state.offsets == 3
    assert state.dropped["groups"] == 1 and state.dropped["offsets"] == 1
    state.watermarks_seen([("t", 0, 5), ("t", 1, 5)])
    assert state.watermarks == {("t", 0): 5} and state.dropped["watermarks"] == 1
    join = {"group": "a", "generation": 1, "member_id": "m1"}
    state.joined(join, "c1", "127.0.0.1")
    state.joined({**join, "member_id": "m2"}, "c2", "127.0.0.1")
    assert list(state.groups["a"].members) == ["m1"] and state.dropped["members"] == 1


def test_new_generation_drops_members_not_seen_in_it_and_leave_removes() -> None:
    state, _ = _state()
    state.joined({"group": "g", "generation": 1, "member_id": "a"}, "ca", "h")
    state.synced(
        {"group": "g", "generation": 1, "member_id": "b", "assignment": {"t": [0]}}, "cb", "h"
    )
    assert set(state.groups["g"].members) == {"a", "b"} and state.assigned == 1
    state.synced(
        {"group": "g", "generation": 2, "member_id": "a", "assignment": {"t": [0, 1]}}, "ca", "h"
    )
    assert set(state.groups["g"].members) == {"a"} and state.assigned == 2
    state.left("g", ["a"])
    assert state.groups["g"].members == {} and state.assigned == 0 and state.members == 0
