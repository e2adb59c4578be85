"""The fault engine's schedule and seeded RNG: deterministic, replayable decisions."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from protoproxy.faults.engine import FaultEngine
from protoproxy.faults.model import FaultSpec
from protoproxy.observe.stats import Stats


class _P:
    def __init__(self) -> None:
        self.stats = Stats()


def _engine(seed: int = 1, clock=None) -> FaultEngine:
    return FaultEngine(_P(), seed=seed, clock=clock or (lambda: 0.0))  # type: ignore[arg-type]


def _spec(**kw) -> FaultSpec:
    return FaultSpec(name=kw.pop("name", "f"), action=kw.pop("action", {"drop": True}), **kw)


def _decisions(engine: FaultEngine, name: str, n: int) -> list[int]:
    fault = engine.get(name)
    return [i + 1 for i in range(n) if engine.decide(fault)]


def test_first_every_after_limit():
    e = _engine()
    e.add(_spec(name="first", schedule={"first": 3}))
    e.add(_spec(name="every", schedule={"every": 4}))
    e.add(_spec(name="after", schedule={"after": 7}))
    e.add(_spec(name="limit", schedule={"every": 2, "limit": 2}))
    assert _decisions(e, "first", 10) == [1, 2, 3]
    assert _decisions(e, "every", 10) == [4, 8]
    assert _decisions(e, "after", 10) == [8, 9, 10]
    assert _decisions(e, "limit", 10) == [2, 4]


def test_between_window_and_max_active():
    now = [0.0]
    e = _engine(clock=lambda: now[0])
    e.add(_spec(name="w", schedule={"between": ["1s", "2s"]}))
    fault = e.get("w")
    assert not e.decide(fault)
    now[0] = 1.5
    assert e.decide(fault)
    now[0] = 2.0
    assert not e.decide(fault)
    e.add(_spec(name="k", schedule={"max_active": 1}))
    k = e.get("k")
    assert e.decide(k)
    k.active += 1
    assert not e.decide(k)
    k.active -= 1
    assert e.decide(k)


@given(seed=st.integers(0, 2**32), p=st.floats(0.05, 0.95), n=st.integers(1, 300))
def test_same_seed_same_injections(seed, p, n):
    runs = []
    for _ in range(2):
        e = _engine(seed)
        e.add(_spec(name="a", probability=p))
        e.add(_spec(name="b", probability=p / 2, schedule={"every": 2}))
        for _ in range(n):
            for name in ("a", "b"):
                e.decide(e.get(name))
        runs.append(list(e.history))
    assert runs[0] == runs[1]


def test_probability_is_roughly_honoured():
    e = _engine(7)
    e.add(_spec(name="p", probability=0.2))
    hits = len(_decisions(e, "p", 10_000))
    assert 1_800 < hits < 2_200
    assert e.injected.get(("p", "drop")) == hits


def test_spec_validation_names_the_problem():
    with pytest.raises(ValidationError, match="exactly one of action"):
        FaultSpec(name="x")
    with pytest.raises(ValidationError, match="unknown action 'explode'"):
        FaultSpec(name="x", action={"explode": True})
    with pytest.raises(ValidationError, match="not understood for protocol kafka"):
        FaultSpec(name="x", match={"protocol": "kafka", "method": "Foo"}, action={"drop": True})
    with pytest.raises(ValidationError, match="latency toxic has no attribute"):
        FaultSpec(name="x", toxic={"type": "latency", "attributes": {"rate": 1}})
    with pytest.raises(ValidationError, match="between: start must not be after end"):
        FaultSpec(name="x", action={"drop": True}, schedule={"between": ["5s", "1s"]})


# -- an abort is read by the protocol it meets ----------------------------------------------

_README_FAULT = {
    "name": "produce-errors",
    "match": {"protocol": "kafka", "api": "Produce", "topic": "orders"},
    "action": {"abort": "NOT_LEADER_OR_FOLLOWER"},
    "probability": 0.5,
}


@pytest.mark.parametrize(
    ("protocol", "value"),
    [
        ("kafka", "NOT_LEADER_OR_FOLLOWER"),
        ("kafka", 6),
        ("grpc", "UNAVAILABLE"),
        ("http2", "DEADLINE_EXCEEDED"),
        ("http", 503),
        ("http", "429"),
    ],
)
def test_bare_abort_is_the_match_protocols_error(protocol, value):
    spec = FaultSpec(name="x", match={"protocol": protocol}, action={"abort": value})
    assert spec.protocols is None  # the match names its protocol


@pytest.mark.parametrize(
    ("protocol", "value", "problem"),
    [
        ("grpc", "NOT_LEADER_OR_FOLLOWER", "unknown gRPC status 'NOT_LEADER_OR_FOLLOWER'"),
        ("kafka", "UNAVAILABLE", "unknown Kafka error 'UNAVAILABLE'"),
        ("http", "UNAVAILABLE", "'UNAVAILABLE' is not an HTTP status"),
        ("http", 42, "HTTP status 42 is not in 200-599"),
        ("grpc", 42, "gRPC status 42 is not one of 0-16"),
        ("tcp", "UNAVAILABLE", "abort has no meaning for tcp"),
    ],
)
def test_bare_abort_foreign_to_the_protocol_is_refused(protocol, value, problem):
    with pytest.raises(ValidationError, match=re.escape(problem) + r".*match.protocol is"):
        FaultSpec(name="x", match={"protocol": protocol}, action={"abort": value})


def test_abort_parameters_are_the_protocols_own():
    with pytest.raises(ValidationError, match="abort for kafka takes no status"):
        FaultSpec(name="x", match={"protocol": "kafka"}, action={"abort": {"status": 14}})
    FaultSpec(name="x", match={"protocol": "kafka"}, action={"abort": {"error": "NONE"}})
    FaultSpec(name="x", match={"protocol": "grpc"}, action={"abort": {"status": 14}})


def test_readme_fault_is_accepted_by_config_and_engine():
    from protoproxy.config import from_dict

    cfg = from_dict(
        {
            "listeners": [
                {"name": "kafka", "listen": "127.0.0.1:0", "protocol": "kafka", "upstream": "k"}
            ],
            "upstreams": [{"name": "k", "endpoints": ["127.0.0.1:9092"]}],
            "faults": [_README_FAULT],
        }
    )
    engine = _engine()
    fault = engine.add(cfg.faults[0])
    assert engine.candidates("kafka", "kafka") == [fault]
    assert engine.candidates("kafka", "http2") == []


def test_abort_without_protocol_is_confined_to_the_protocol_it_fits():
    engine = _engine()
    kafka = engine.add(_spec(name="k", action={"abort": "NOT_LEADER_OR_FOLLOWER"}))
    grpc = engine.add(_spec(name="g", action={"abort": "UNAVAILABLE"}))
    http = engine.add(_spec(name="h", action={"abort": {"status": 429}}))
    anything = engine.add(_spec(name="a", action={"abort": True}))
    assert kafka.spec.protocols == {"kafka"}
    assert engine.candidates("l", "kafka") == [kafka, anything]
    assert engine.candidates("l", "http2") == [grpc, anything]
    assert engine.candidates("l", "http") == [http, anything]
    # Match keys name the protocol too: `topic` is Kafka's.
    FaultSpec(name="t", match={"topic": "orders"}, action={"abort": "NOT_LEADER_OR_FOLLOWER"})


@pytest.mark.parametrize("value", ["UNKNOWN", 14, 0])
def test_ambiguous_abort_without_protocol_asks_for_match_protocol(value):
    with pytest.raises(ValidationError, match=r"set match\.protocol"):
        FaultSpec(name="x", action={"abort": value})


def test_the_fault_vocabulary_is_a_leaf():
    """faults/actions.py (match keys, actions, error names) loads no runtime module,
    so the config model, the admin API and tools can share it without a proxy."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys, protoproxy.faults.actions\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('protoproxy.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert loaded <= {"protoproxy.faults", "protoproxy.faults.actions", "protoproxy.units"}, loaded
