"""Timed fault plans, drawn by hypothesis, replayable as a testbed scenario.

A plan is indexed by workload step, not by wall-clock time: "after the
workload's k-th `advance()`, apply X". Step indices are deterministic where
seconds are not (a loaded CI machine stretches every interval), and they shrink
well: hypothesis can drop a step or move it earlier without changing what the
others mean. Each step is one entry in the format of a scenario's `faults:`
list (a proxy fault, or a `service:` fault), or `{"remove": name}`, so a plan
*is* a scenario's `schedule:` list and replays through the same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from hypothesis import strategies as st

Protocol = Literal["kafka", "grpc"]

#: every kind of step, simplest first (hypothesis shrinks towards the first)
KINDS: dict[str, tuple[str, ...]] = {
    "kafka": ("abort", "drop", "delay", "cut", "toxic", "move_leader", "stop_broker", "remove"),
    "grpc": ("abort", "drop", "delay", "toxic", "grpc_program", "remove"),
}
KAFKA_ERRORS = ("NOT_LEADER_OR_FOLLOWER", "REQUEST_TIMED_OUT", "NOT_ENOUGH_REPLICAS")
GRPC_STATUSES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL")
TOXICS = ("latency", "reset_peer", "timeout", "slicer", "bandwidth")
#: Kafka message-fault kinds whose API `apis=` chooses (aborts take theirs from `aborts=`)
KAFKA_API_KINDS = ("drop", "delay", "cut")
DELAYS = ("50ms", "200ms")


@dataclass(frozen=True)
class PlanStep:
    """One step: `entry` is applied after the workload's `at`-th advance (0: at start)."""

    at: int
    kind: str
    entry: dict[str, Any]

    def as_schedule_entry(self) -> dict[str, Any]:
        return {"at": self.at, **self.entry}


@dataclass(frozen=True)
class FaultPlan:
    """An ordered list of steps; `to_scenario_yaml()` gives a scenario that replays it."""

    steps: tuple[PlanStep, ...] = ()
    protocol: str = "kafka"
    seed: int = 0
    #: scenario keys the plan's steps assume (brokers, topics), merged into the YAML
    scenario: dict[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> list[str]:
        return [s.kind for s in self.steps]

    def schedule(self) -> list[dict[str, Any]]:
        return [s.as_schedule_entry() for s in self.steps]

    def to_scenario(self, base: dict[str, Any] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {**self.scenario, **(base or {})}
        data.setdefault("seed", self.seed)
        data["schedule"] = self.schedule()
        return data

    def to_scenario_yaml(self, base: dict[str, Any] | None = None) -> str:
        return yaml.safe_dump(self.to_scenario(base), sort_keys=False, default_flow_style=None)

    def __str__(self) -> str:
        if not self.steps:
            return "FaultPlan(no steps)"
        return "FaultPlan(" + "; ".join(f"@{s.at} {s.kind}" for s in self.steps) + ")"


@dataclass(frozen=True)
class _Vocabulary:
    """What message and toxic steps draw from (`fault_schedules`' keyword options)."""

    aborts: tuple[tuple[str, str], ...]
    apis: Mapping[str, tuple[str | None, ...]]
    delays: tuple[Any, ...]
    toxics: Mapping[str, Mapping[str, Any]] | None


# -- strategies for one step ----------------------------------------------------------
def _kafka_match(api: str | None) -> dict[str, Any]:
    return {"protocol": "kafka"} if api is None else {"protocol": "kafka", "api": api}


def _grpc_match(method: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.just({"protocol": "grpc", "method": method})


def _gate() -> st.SearchStrategy[dict[str, Any]]:
    """Schedules that end (so a workload with retries can finish), shortest first."""
    return st.integers(1, 3).map(lambda n: {"schedule": {"first": n}})


def _toxic(
    protocol: str, given: Mapping[str, Mapping[str, Any]] | None
) -> st.SearchStrategy[dict[str, Any]]:
    if given is not None:
        # the caller's toxics, whole: on every connection of the protocol until removed
        return st.sampled_from(sorted(given)).map(
            lambda t: {"match": {"protocol": protocol}, "toxic": dict(given[t])}
        )
    attrs: dict[str, st.SearchStrategy[dict[str, int]]] = {
        "latency": st.builds(lambda ms: {"latency": ms}, st.sampled_from((20, 100, 300))),
        "reset_peer": st.just({"timeout": 0}),
        "timeout": st.sampled_from((100, 500)).map(lambda ms: {"timeout": ms}),
        "slicer": st.just({"average_size": 16, "size_variation": 8, "delay": 100}),
        "bandwidth": st.sampled_from((10, 100)).map(lambda r: {"rate": r}),
    }
    return (
        st.sampled_from(TOXICS)
        .flatmap(
            lambda t: st.tuples(st.just(t), attrs[t], st.sampled_from(("downstream", "upstream")))
        )
        .map(
            lambda x: {
                "match": {"protocol": protocol},
                "toxic": {"type": x[0], "stream": x[2], "attributes": x[1]},
                "schedule": {"limit": 1},
            }
        )
    )


def _message(
    kind: str, protocol: str, method: str, vocab: _Vocabulary
) -> st.SearchStrategy[dict[str, Any]]:
    match: st.SearchStrategy[dict[str, Any]]
    action: st.SearchStrategy[dict[str, Any]]
    if protocol == "kafka" and kind == "abort":
        # an (api, error) pair: the error is one that API's responses carry
        return st.tuples(st.sampled_from(vocab.aborts), _gate()).map(
            lambda x: {"match": _kafka_match(x[0][0]), "action": {"abort": x[0][1]}, **x[1]}
        )
    if protocol == "kafka":
        match = st.sampled_from(vocab.apis[kind]).map(_kafka_match)
    else:
        match = _grpc_match(method)
    if kind == "abort":
        action = st.sampled_from(GRPC_STATUSES).map(lambda s: {"abort": {"status": s}})
    elif kind == "drop":
        action = st.just({"drop": {}})
        if protocol == "kafka":
            # a dropped request, or a dropped response (the broker did act on it)
            match = st.tuples(match, st.sampled_from(("upstream", "downstream"))).map(
                lambda x: {**x[0], "direction": x[1]}
            )
    elif kind == "cut":
        action = st.sampled_from(("reset", "close")).map(lambda how: {how: {}})
    else:
        action = st.sampled_from(vocab.delays).map(lambda d: {"delay": d})
    return st.tuples(match, action, _gate()).map(lambda x: {"match": x[0], "action": x[1], **x[2]})


@st.composite
def _plan(
    draw: st.DrawFn,
    *,
    protocol: str,
    kinds: tuple[str, ...],
    max_steps: int,
    workload_steps: int,
    brokers: int,
    topic: str,
    partitions: int,
    method: str,
    seed: int,
    scenario: dict[str, Any],
    vocab: _Vocabulary,
) -> FaultPlan:
    n = draw(st.integers(0, max_steps))
    # The drawn order is the applied order (the `at`s drawn first, then sorted), so
    # what each step assumes when drawn holds when it applies: a leader moves to a
    # live broker, a broker is started after its stop, one broker is always up.
    ats = sorted(draw(st.integers(0, workload_steps)) for _ in range(n))
    steps: list[PlanStep] = []
    added: list[str] = []
    stopped: list[int] = []
    for i, at in enumerate(ats):
        choices = [
            k
            for k in kinds
            if not (k == "remove" and not added and not stopped)
            and not (k == "stop_broker" and len(stopped) >= brokers - 1)
        ]
        kind = draw(st.sampled_from(choices))
        name = f"plan-{i}"
        entry: dict[str, Any]
        if kind in ("abort", "drop", "delay", "cut"):
            entry = {"name": name, **draw(_message(kind, protocol, method, vocab))}
            added.append(name)
        elif kind == "toxic":
            entry = {"name": name, **draw(_toxic(protocol, vocab.toxics))}
            added.append(name)
        elif kind == "move_leader":
            live = [b for b in range(brokers) if b not in stopped]
            entry = {
                "service": "kafka",
                "action": {
                    "move_leader": {
                        "topic": topic,
                        "partition": draw(st.integers(0, partitions - 1)),
                        "broker": draw(st.sampled_from(live)),
                    }
                },
            }
        elif kind == "stop_broker":
            node = draw(st.sampled_from([b for b in range(brokers) if b not in stopped]))
            stopped.append(node)
            entry = {"service": "kafka", "action": {"stop_broker": node}}
        elif kind == "grpc_program":
            program = draw(
                st.one_of(
                    st.just({"status": "UNAVAILABLE", "fail_after": 0}),
                    st.just({"latency": 0.2}),
                )
            )
            entry = {"service": "grpc", "action": {"program": {"method": method, **program}}}
        else:  # remove: a fault added before, or restart a stopped broker
            targets = [*added, *(f"broker:{b}" for b in stopped)]
            target = draw(st.sampled_from(targets))
            if target.startswith("broker:"):
                node = int(target.split(":")[1])
                stopped.remove(node)
                kind = "start_broker"
                entry = {"service": "kafka", "action": {"start_broker": node}}
            else:
                added.remove(target)
                entry = {"remove": target}
        steps.append(PlanStep(at, kind, entry))
    return FaultPlan(tuple(steps), protocol, seed, scenario)


def fault_schedules(
    protocol: Protocol = "kafka",
    *,
    max_steps: int = 3,
    workload_steps: int = 5,
    faults: tuple[str, ...] | list[str] | None = None,
    brokers: int = 3,
    topic: str = "plan",
    partitions: int = 3,
    method: str = "Unary",
    seed: int = 0,
    aborts: Sequence[tuple[str, str]] | None = None,
    apis: Mapping[str, Sequence[str | None]] | None = None,
    delays: Sequence[Any] = DELAYS,
    toxics: Mapping[str, Mapping[str, Any]] | None = None,
) -> st.SearchStrategy[FaultPlan]:
    """Plans of up to `max_steps` steps at workload steps 0..`workload_steps`.

    `faults` limits the kinds (see `KINDS`); Kafka plans act on Produce and on
    `topic`'s partitions, gRPC plans on `method` of the testbed's demo service.
    The vocabulary can be widened: `aborts` are the Kafka (api, error) pairs
    an abort draws from (default: Produce with each of `KAFKA_ERRORS`); `apis`
    maps `drop`, `delay` and `cut` to the Kafka APIs they match (None: every
    API; default: Produce); `delays` are the `delay` actions' arguments (a
    duration or `{uniform: [lo, hi]}`); `toxics` replaces the random toxics
    with named toxic specs (type, stream, attributes), each put on every
    connection until a `remove` step takes it off.
    """
    if protocol not in KINDS:
        raise ValueError(f"protocol must be one of {', '.join(KINDS)}, not {protocol!r}")
    kinds = KINDS[protocol]
    if faults is not None:
        unknown = set(faults) - set(kinds) - {"start_broker"}
        if unknown:
            raise ValueError(f"unknown fault kinds for {protocol}: {', '.join(sorted(unknown))}")
        kinds = tuple(k for k in kinds if k in faults)
        if not kinds:
            raise ValueError("faults= leaves no kind of step")
    if protocol != "kafka" and (aborts is not None or apis is not None):
        raise ValueError("aborts= and apis= are Kafka options")
    unknown_apis = set(apis or {}) - set(KAFKA_API_KINDS)
    if unknown_apis:
        raise ValueError(
            f"apis= takes {', '.join(KAFKA_API_KINDS)}, not {', '.join(sorted(unknown_apis))}"
        )
    vocab = _Vocabulary(
        aborts=tuple(aborts) if aborts is not None else tuple(("Produce", e) for e in KAFKA_ERRORS),
        apis={k: tuple((apis or {}).get(k, ("Produce",))) for k in KAFKA_API_KINDS},
        delays=tuple(delays),
        toxics=dict(toxics) if toxics is not None else None,
    )
    if not vocab.aborts or not vocab.delays or not all(vocab.apis.values()) or toxics == {}:
        raise ValueError("aborts=, apis=, delays= and toxics= must not be empty")
    scenario: dict[str, Any] = {}
    if protocol == "kafka":
        scenario["kafka"] = {"brokers": brokers, "topics": {topic: partitions}}
    return _plan(
        protocol=protocol,
        kinds=kinds,
        max_steps=max_steps,
        workload_steps=workload_steps,
        brokers=brokers,
        topic=topic,
        partitions=partitions,
        method=method,
        seed=seed,
        scenario=scenario,
        vocab=vocab,
    )
