"""`fault_search`: run a workload on the testbed under drawn fault plans, shrink a failure.

One testbed serves every example (three fake brokers and grpcio take seconds
to start, an example a fraction of that): between examples the faults are
reset with the plan's seed, stopped brokers are started and the gRPC fake's
programs are cleared, then the plan is loaded as the testbed's `schedule:`,
the same code a replayed scenario runs. The failure hypothesis keeps is the
smallest plan it found; its message is that plan as a scenario YAML.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed

from .schedules import FaultPlan, Protocol, fault_schedules

Workload = Callable[[Any, "SearchContext"], None]
Invariant = Callable[["SearchContext"], None]


@dataclass
class SearchContext:
    """What one example's workload sees and records; invariants read it."""

    tb: Any  #: the TestbedThread
    plan: FaultPlan
    example: int
    #: whatever the workload recorded: name -> values, in order
    seen: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))

    def step(self) -> int:
        """The workload finished a step: apply the plan's steps now due."""
        return int(self.tb.advance())

    def record(self, name: str, value: Any) -> None:
        self.seen[name].append(value)

    def name(self, prefix: str) -> str:
        """A name unique to this example (a topic, a group), since the testbed is shared."""
        return f"{prefix}-{self.example}"


class FaultSearchFailure(AssertionError):
    """An invariant broke; `plan` is the (shrunk) plan, `scenario_yaml` replays it."""

    def __init__(self, message: str, plan: FaultPlan, scenario_yaml: str) -> None:
        super().__init__(message)
        self.plan = plan
        self.scenario_yaml = scenario_yaml


def fault_search(
    workload: Workload,
    invariants: Sequence[Invariant],
    *,
    scenario: dict[str, Any] | None = None,
    protocol: Protocol = "kafka",
    max_examples: int = 10,
    max_steps: int = 3,
    workload_steps: int = 5,
    faults: Sequence[str] | None = None,
    plans: Any = None,
    seed: int = 0,
    testbed: Any = None,
    **schedule_options: Any,
) -> int:
    """Search for a plan that breaks an invariant; returns the number of examples run.

    `workload(tb, ctx)` drives clients against `tb` (a TestbedThread) and
    calls `ctx.step()` between its steps; each invariant `inv(ctx)` raises
    AssertionError when broken (a workload raising AssertionError counts too).
    `plans` replaces the drawn strategy (e.g. `fault_schedules(...)` with
    other options); `testbed` reuses a started TestbedThread instead of one
    made from `scenario` plus what the plans assume.
    """
    from testbed.threaded import TestbedThread

    strategy = (
        plans
        if plans is not None
        else fault_schedules(
            protocol,
            max_steps=max_steps,
            workload_steps=workload_steps,
            faults=tuple(faults) if faults is not None else None,
            seed=seed,
            **schedule_options,
        )
    )
    base = dict(scenario or {})
    counter = itertools.count()
    last: dict[str, Any] = {}

    def run(tb: Any, plan: FaultPlan) -> None:
        n = next(counter)
        _reset(tb, plan.seed)
        ctx = SearchContext(tb, plan, n)
        error: AssertionError | None = None
        try:
            tb.call(lambda t: t.schedule.load(plan.schedule()))
            workload(tb, ctx)
            for invariant in invariants:
                invariant(ctx)
        except AssertionError as exc:
            error = exc
        finally:
            tb.call(lambda t: t.schedule.load([]))
        if error is not None:
            text = plan.to_scenario_yaml(base)
            last["plan"] = plan
            raise FaultSearchFailure(
                f"{error}\n\nunder {plan}; this scenario replays it "
                f"(a workload calls tb.advance() between its steps):\n\n{text}",
                plan,
                text,
            ) from error

    options = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )

    def search(tb: Any) -> None:
        @hypothesis_seed(seed)
        @options
        @given(strategy)
        def example(plan: FaultPlan) -> None:
            run(tb, plan)

        example()

    if testbed is not None:
        search(testbed)
    else:
        merged = _scenario_for(base, strategy)
        with TestbedThread(overrides=merged) as tb:
            search(tb)
    return next(counter)


def _scenario_for(base: dict[str, Any], strategy: Any) -> dict[str, Any]:
    """The user's scenario plus what the plans assume (brokers, the plan topic)."""
    probe = FaultPlan(scenario=_assumed(strategy))
    merged = probe.to_scenario(base)
    merged.pop("schedule")
    merged.pop("seed")
    if "seed" in base:
        merged["seed"] = base["seed"]
    return merged


def _assumed(strategy: Any) -> dict[str, Any]:
    from hypothesis import find

    plan: FaultPlan = find(strategy, lambda p: True, settings=settings(database=None))
    return plan.scenario


def _reset(tb: Any, seed: int) -> None:
    """Back to no faults: RNG restarted, toxics off, brokers up, gRPC programs cleared."""

    async def reset(t: Any) -> None:
        t.faults.reset(seed)
        cluster = t.services.get("kafka")
        if cluster is not None:
            for node, server in cluster.servers.items():
                if not server.running:
                    await t.faults.start_broker(node)
        if t.services.get("grpc") is not None:
            t.faults.grpc_reset()

    tb.call(reset)
