"""fault_schedules' wider Kafka vocabulary (aborts=, apis=, delays=, toxics=, cut steps):
what the resilience test draws is valid, stays inside what it asked for, and reaches
every variant; the defaults keep acting on Produce."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import find, given, settings

from protoproxy.faults.model import FaultSpec
from protoproxy.fuzz import FaultPlan, fault_schedules
from protoproxy.fuzz.schedules import KAFKA_ERRORS
from testbed.faults import ServiceFault, TestbedFaults
from testbed.scenario import Scenario

ABORTS = [("Produce", "REQUEST_TIMED_OUT"), ("JoinGroup", "COORDINATOR_LOAD_IN_PROGRESS")]
APIS: dict[str, tuple[str | None, ...]] = {
    "drop": ("Produce",),
    "cut": ("Fetch", "Metadata"),
    "delay": (None,),
}
DELAYS = ({"uniform": ["5ms", "50ms"]},)
TOXICS = {"lag": {"type": "latency", "stream": "downstream", "attributes": {"latency": 20}}}


def wide(max_steps: int = 3, **options: Any) -> Any:
    return fault_schedules(
        "kafka",
        max_steps=max_steps,
        partitions=2,
        aborts=ABORTS,
        apis=APIS,
        delays=DELAYS,
        toxics=TOXICS,
        **options,
    )


def _parsed(plan: FaultPlan) -> list[tuple[Any, dict[str, Any]]]:
    """Every non-remove step as the testbed parses it (FaultSpec or ServiceFault)."""
    out = []
    for i, entry in enumerate(plan.schedule()):
        entry = {k: v for k, v in entry.items() if k != "at"}
        if "remove" not in entry:
            out.append((TestbedFaults.parse(i, entry), entry))
    return out


def test_wide_plans_are_valid_scenarios_within_the_vocabulary() -> None:
    @settings(max_examples=100, deadline=None, database=None, derandomize=True)
    @given(wide())
    def check(plan: FaultPlan) -> None:
        Scenario.model_validate(yaml.safe_load(plan.to_scenario_yaml()))
        for parsed, entry in _parsed(plan):
            if isinstance(parsed, ServiceFault):
                continue
            spec: FaultSpec = parsed[0]
            if spec.toxic is not None:
                assert entry["toxic"] in TOXICS.values()
                assert spec.schedule is None  # every connection, until a remove step
                continue
            (kind,) = spec.action or {}
            api = spec.match.get("api")
            if kind == "abort":
                assert (api, spec.action["abort"]) in ABORTS  # type: ignore[index]
            elif kind == "drop":
                assert api in APIS["drop"]
                assert spec.match["direction"] in ("upstream", "downstream")
            elif kind in ("reset", "close"):
                assert api in APIS["cut"]
            else:
                assert kind == "delay" and api is None
                assert spec.action == {"delay": DELAYS[0]}
            assert spec.schedule is not None and spec.schedule.first in (1, 2, 3)

    check()


def _reached(strategy: Any, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    plan = find(
        strategy,
        lambda p: any(condition(e) for e in p.schedule()),
        settings=settings(max_examples=2000, database=None, derandomize=True),
    )
    return next(e for e in plan.schedule() if condition(e))


@pytest.mark.parametrize(
    "condition",
    [
        lambda e: (
            e.get("action") == {"abort": "COORDINATOR_LOAD_IN_PROGRESS"}
            and e["match"]["api"] == "JoinGroup"
        ),
        lambda e: e.get("action") == {"drop": {}} and e["match"]["direction"] == "downstream",
        lambda e: e.get("action") == {"close": {}} and e["match"]["api"] == "Fetch",
        lambda e: e.get("action") == {"reset": {}} and e["match"]["api"] == "Metadata",
        lambda e: "delay" in e.get("action", {}) and "api" not in e["match"],
        lambda e: e.get("toxic") == TOXICS["lag"],
        lambda e: e.get("action", {}).get("move_leader", {}).get("partition") == 1,
    ],
    ids=[
        "abort-joingroup",
        "drop-response",
        "close-on-fetch",
        "reset-on-metadata",
        "delay-any-api",
        "given-toxic",
        "move-leader",
    ],
)
def test_every_variant_is_reachable(condition: Callable[[dict[str, Any]], bool]) -> None:
    assert condition(_reached(wide(max_steps=1), condition))


def test_cut_can_be_asked_for_alone_and_brokers_start_again() -> None:
    entry = _reached(wide(1, faults=["cut"]), lambda e: "match" in e)
    assert next(iter(entry["action"])) in ("reset", "close")
    started = _reached(
        wide(2, faults=["stop_broker", "remove"]), lambda e: e.get("action") == {"start_broker": 2}
    )
    assert started["service"] == "kafka"


def test_defaults_act_on_produce_with_one_connection_toxics() -> None:
    @settings(max_examples=100, deadline=None, database=None, derandomize=True)
    @given(fault_schedules("kafka", max_steps=3))
    def check(plan: FaultPlan) -> None:
        for parsed, _entry in _parsed(plan):
            if isinstance(parsed, ServiceFault):
                continue
            spec: FaultSpec = parsed[0]
            if spec.toxic is not None:
                assert spec.schedule is not None and spec.schedule.limit == 1
            else:
                assert spec.match["api"] == "Produce"
                if "abort" in (spec.action or {}):
                    assert spec.action["abort"] in KAFKA_ERRORS  # type: ignore[index]

    check()


@pytest.mark.parametrize(
    ("protocol", "options", "message"),
    [
        ("grpc", {"aborts": ABORTS}, "Kafka options"),
        ("kafka", {"apis": {"abort": ("Fetch",)}}, "apis= takes"),
        ("kafka", {"aborts": []}, "must not be empty"),
        ("kafka", {"toxics": {}}, "must not be empty"),
    ],
)
def test_bad_vocabulary_is_refused(protocol: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fault_schedules(protocol, **options)


def test_broker_steps_hold_in_applied_order() -> None:
    """Found at 80 examples: sorting by `at` once put a move_leader to a broker
    before that broker's restart. Applied in order, every step's assumption holds."""

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(wide(6, faults=["move_leader", "stop_broker", "remove"]))
    def check(plan: FaultPlan) -> None:
        ats = [s.at for s in plan.steps]
        assert ats == sorted(ats)
        stopped: set[int] = set()
        for step in plan.steps:
            action = step.entry.get("action", {})
            if "stop_broker" in action:
                assert action["stop_broker"] not in stopped
                stopped.add(action["stop_broker"])
                assert len(stopped) < 3, "every broker stopped"
            elif "start_broker" in action:
                stopped.remove(action["start_broker"])
            elif "move_leader" in action:
                assert action["move_leader"]["broker"] not in stopped

    check()
