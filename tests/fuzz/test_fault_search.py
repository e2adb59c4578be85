"""fault_search finds a deliberately wrong invariant, shrinks it to one step, and the
printed scenario replays it with kafka-python against the real testbed."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from protoproxy.fuzz import FaultPlan, fault_schedules, fault_search
from protoproxy.fuzz.search import FaultSearchFailure, SearchContext
from testbed.scenario import Scenario
from testbed.threaded import TestbedThread

kafka = pytest.importorskip("kafka")

RECORDS = 4


def produce(tb: Any, ctx: SearchContext) -> None:
    """One record per workload step, no retries: every injected error reaches the caller."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    producer = KafkaProducer(
        bootstrap_servers=tb.kafka_bootstrap,
        acks=1,
        retries=0,
        linger_ms=0,
        request_timeout_ms=800,
        reconnect_backoff_ms=20,
        retry_backoff_ms=20,
        max_block_ms=5000,
    )
    try:
        for i in range(RECORDS):
            try:
                producer.send("plan", value=b"%d" % i, partition=i % 3).get(timeout=10)
                ctx.record("acked", i)
            except KafkaError as exc:
                ctx.record("produce_errors", type(exc).__name__)
            ctx.step()
    finally:
        producer.close(timeout=5)


def no_produce_fails(ctx: SearchContext) -> None:
    assert not ctx.seen["produce_errors"], f"Produce failed: {ctx.seen['produce_errors']}"


def test_wrong_invariant_is_broken_shrunk_to_one_step_and_replays() -> None:
    with pytest.raises(FaultSearchFailure) as caught:
        fault_search(
            produce,
            [no_produce_fails],
            protocol="kafka",
            max_examples=8,
            max_steps=3,
            workload_steps=RECORDS - 1,
            # what a client meets the same way every run: whether a stopped broker
            # or a moved leader fails a Produce races the client's metadata
            # refresh, and a plan that fails once but not on replay cannot shrink
            faults=["abort", "drop", "cut", "delay"],
        )
    failure = caught.value
    assert len(failure.plan.steps) == 1, str(failure.plan)
    (step,) = failure.plan.steps
    # the simplest alternative first: an abort of Produce, at the workload's start
    assert (step.kind, step.at) == ("abort", 0), str(failure.plan)
    assert step.entry["action"] == {"abort": "NOT_LEADER_OR_FOLLOWER"}
    assert failure.scenario_yaml in str(failure)

    # replay: the printed YAML is a scenario; the same workload breaks the same invariant
    scenario = Scenario.model_validate(yaml.safe_load(failure.scenario_yaml))
    assert len(scenario.schedule) == 1
    with TestbedThread(scenario) as tb:
        ctx = SearchContext(tb, failure.plan, 0)
        produce(tb, ctx)
        with pytest.raises(AssertionError, match="NotLeaderForPartitionError"):
            no_produce_fails(ctx)


def test_a_true_invariant_holds_under_every_plan() -> None:
    """Acknowledged records were stored: holds whatever the plan does (retries=0)."""

    def acked_are_stored(ctx: SearchContext) -> None:
        stored = ctx.tb.call(
            lambda t: {r.value for p in range(3) for r in t.services["kafka"].records("plan", p)}
        )
        missing = [i for i in ctx.seen["acked"] if b"%d" % i not in stored]
        assert not missing, f"acknowledged but not stored: {missing}"

    ran = fault_search(
        produce, [acked_are_stored], protocol="kafka", max_examples=4, workload_steps=RECORDS - 1
    )
    assert ran == 4


def test_plans_validate_as_scenarios_and_steps_apply_in_order() -> None:
    from hypothesis import given, settings

    @settings(max_examples=30, deadline=None, database=None)
    @given(fault_schedules("kafka", max_steps=4))
    def check(plan: FaultPlan) -> None:
        sc = Scenario.model_validate(yaml.safe_load(plan.to_scenario_yaml()))
        ats = [e["at"] for e in sc.schedule]
        assert ats == sorted(ats)
        names = [e.get("name") for e in sc.schedule]
        for i, e in enumerate(sc.schedule):
            if "remove" in e:
                assert e["remove"] in names[:i]

    check()


def test_schedule_steps_apply_at_their_workload_step() -> None:
    entries = [
        {
            "at": 0,
            "name": "a",
            "match": {"protocol": "kafka", "api": "Produce"},
            "action": {"abort": "NOT_LEADER_OR_FOLLOWER"},
        },
        {"at": 2, "remove": "a"},
        {"at": 2, "service": "kafka", "action": {"stop_broker": 1}},
        {"at": 3, "service": "kafka", "action": {"start_broker": 1}},
    ]
    scenario = {
        "kafka": {"brokers": 2, "topics": {"plan": 1}},
        "grpc": {"enabled": False},
        "http": {"enabled": False},
        "schedule": entries,
    }
    with TestbedThread(overrides=scenario) as tb:

        def names() -> list[str]:
            return tb.call(lambda t: list(t.faults.engine.faults))

        assert names() == ["a"]
        assert tb.advance() == 1 and names() == ["a"]
        assert tb.advance() == 2 and names() == []
        assert tb.call(lambda t: t.faults.service_history) == [("kafka", "stop_broker 1")]
        tb.advance()
        assert tb.call(lambda t: t.faults.service_history)[-1] == ("kafka", "start_broker 1")
        assert tb.call(lambda t: t.schedule.pending) == 0


def test_a_bad_schedule_names_the_entry() -> None:
    bad = {"schedule": [{"at": 0, "remove": "x"}, {"at": -1, "remove": "y"}]}
    with pytest.raises(Exception, match=r"schedule\[1\]"), TestbedThread(overrides=bad):
        pass
