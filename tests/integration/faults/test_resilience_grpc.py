"""Acceptance 5: gRPC resilience under random faults, on `protoproxy.fuzz.fault_search`.

grpcio (C-core) calls carrying a retry policy (UNAVAILABLE, 4 attempts) go
through the testbed's proxy to its fake gRPC service while a drawn fault plan
adds message faults between calls (the former state machine's fault rules,
each a plan step; a failure shrinks to the smallest plan and prints it as a
replayable scenario). Every call must either succeed with exactly the responses its
behaviour asks for, or fail with a status that one of the faults matching
its method explains. The proxy must never see an HPACK or flow-control error.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import grpc
from hypothesis import settings
from hypothesis import strategies as st

from protoproxy.fuzz import FaultPlan, fault_search
from protoproxy.fuzz.schedules import PlanStep
from protoproxy.fuzz.search import SearchContext
from testbed.grpc import Behaviour
from testbed.grpc.client import SyncClient, channel_options

SERVICE = "protoproxy.testbed.v1.TestService"
EXAMPLES = int(
    os.environ.get(
        "PROTOPROXY_RESILIENCE_EXAMPLES", 500 if settings.default.max_examples >= 500 else 25
    )
)
METHODS = ["Unary", "ServerStream", "ClientStream", "Bidi"]
CLIENT_STREAMING = {"ClientStream", "Bidi"}
RETRY = {
    "methodConfig": [
        {
            "name": [{"service": SERVICE}],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.01s",
                "maxBackoff": "0.05s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}
S = grpc.StatusCode
#: grpcio's report of a call that ended while it was still writing requests
CORE_WRITE_RACE = (S.INTERNAL, "Internal error from Core")
CALL_TIMEOUT = 2.0

#: what each kind of fault may turn a call into
EXPLAINS: dict[str, set[S]] = {
    "abort_mid_response": {S.DATA_LOSS},
    "rst_stream": {S.CANCELLED, S.INTERNAL},
    "goaway": {S.UNAVAILABLE},
    "drop": {S.DEADLINE_EXCEEDED},
    "delay": {S.DEADLINE_EXCEEDED},
    "reset": {S.UNAVAILABLE, S.INTERNAL},
    "close": {S.UNAVAILABLE, S.INTERNAL},
    "withhold_window_updates": {S.DEADLINE_EXCEEDED},
}
CALLS = 4


def _step(kind: str, method: str | None, index: int, status: str, p: float) -> dict[str, Any]:
    """One fault of the machine's vocabulary, as a plan step (a scenario faults: entry)."""
    match: dict[str, Any] = {"protocol": "grpc"}
    if kind == "abort":
        spec: dict[str, Any] = {"action": {"abort": {"status": status}}, "probability": p}
    elif kind == "abort_mid_response":
        match.update(direction="downstream", message_index=index)
        spec = {"action": {"abort": {"status": "DATA_LOSS"}}, "probability": 0.5}
    elif kind == "rst_stream":
        spec = {"action": {"rst_stream": {}}, "probability": 0.5}
    elif kind in ("goaway", "drop", "reset", "close"):
        spec = {"action": {kind: {}}, "schedule": {"limit": 1}}
    elif kind == "delay":
        spec = {"action": {"delay": {"uniform": ["1ms", "30ms"]}}, "probability": 0.5}
    else:
        match["direction"] = "upstream"
        spec = {"action": {"withhold_window_updates": {}}}
    if method is not None:
        match["method"] = method
    return {"match": match, **spec}


@st.composite
def plans(draw: st.DrawFn) -> FaultPlan:
    """The machine's faults, each at a call of the workload (abort first: it shrinks there)."""
    steps = []
    for i in range(draw(st.integers(0, CALLS))):
        kind = draw(st.sampled_from(["abort", *EXPLAINS]))
        if kind in ("abort", "rst_stream", "drop"):
            method = draw(st.sampled_from([*METHODS, None] if kind == "abort" else METHODS))
        elif kind == "delay":
            method = draw(st.sampled_from([*METHODS, None]))
        elif kind == "abort_mid_response":
            method = draw(st.sampled_from(["ServerStream", "Bidi"]))
        elif kind == "goaway":
            # Streams past its last id were never processed: grpcio retries them.
            # Client-streaming calls are left out: about 1 in 100 of their
            # transparent retries after GOAWAY came back OK with a request message
            # missing (see docs/faults.md, "Known limits").
            method = draw(st.sampled_from(["Unary", "ServerStream"]))
        else:
            method = None
        entry = _step(
            kind,
            method,
            draw(st.integers(0, 2)),
            draw(st.sampled_from(["UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL"])),
            draw(st.sampled_from([0.3, 1.0])),
        )
        steps.append(PlanStep(draw(st.integers(0, CALLS - 1)), kind, {"name": f"g{i}", **entry}))
    return FaultPlan(tuple(sorted(steps, key=lambda s: s.at)), "grpc")


CALL = st.tuples(
    st.sampled_from(METHODS), st.sampled_from([0, 10, 3000, 70_000]), st.integers(1, 3)
)


def _explained(ctx: SearchContext, method: str) -> set[S]:
    """Statuses the faults applied so far, on this method or every method, explain."""
    out: set[S] = set()
    for step in ctx.plan.steps[: len(_applied(ctx))]:
        m = step.entry["match"].get("method")
        if m is None or m == method:
            out |= EXPLAINS.get(step.kind) or {S[step.entry["action"]["abort"]["status"]]}
    return out


def _applied(ctx: SearchContext) -> list[Any]:
    return ctx.tb.call(lambda t: list(t.schedule.applied))  # type: ignore[no-any-return]


def _decode_errors(tb: Any) -> float:
    return tb.call(lambda t: t.proxy.metrics.decode_errors.total())  # type: ignore[no-any-return]


def _workload(tb: Any, ctx: SearchContext) -> None:
    """Calls drawn from the plan itself (the same plan, the same calls: replays and shrinks)."""
    rng = random.Random(str(ctx.plan.schedule()))
    calls = [(rng.choice(METHODS), rng.choice([0, 10, 3000, 70_000]), rng.randint(1, 3))]
    calls += [
        (rng.choice(METHODS), rng.choice([0, 10, 3000, 70_000]), rng.randint(1, 3))
        for _ in range(CALLS - 1)
    ]
    ctx.record("decode_errors_before", _decode_errors(tb))
    client = _client(int(tb.grpc_target.rsplit(":", 1)[1]))
    try:
        for method, size, count in calls:
            _check_call(ctx, client, method, size, count)
            ctx.step()
    finally:
        client.close()


def _check_call(ctx: SearchContext, client: SyncClient, method: str, size: int, count: int) -> None:
    r = client.call(method, Behaviour.make(size=size, count=count), n=count, timeout=CALL_TIMEOUT)
    if r.code == S.OK:
        expected = {"Unary": 1, "ServerStream": count, "ClientStream": 1, "Bidi": count * count}[
            method
        ]
        assert len(r.responses) == expected, (method, len(r.responses), expected)
        if method in ("Unary", "ServerStream", "Bidi"):
            assert all(len(x.payload) == size for x in r.responses)
        assert all(x.method.endswith("/" + method) for x in r.responses)
        return
    explained = _explained(ctx, method)
    if method in CLIENT_STREAMING and explained and (r.code, r.details) == CORE_WRITE_RACE:
        return
    assert r.code in explained, (method, r.code, r.details, ctx.plan.kinds)


def no_hpack_or_flow_control_errors(ctx: SearchContext) -> None:
    assert _decode_errors(ctx.tb) == ctx.seen["decode_errors_before"][0]


def _client(port: int) -> SyncClient:
    options = [
        *channel_options(),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(RETRY)),
    ]
    return SyncClient(
        grpc.insecure_channel(f"127.0.0.1:{port}", options=options), owns_channel=True
    )


def test_grpc_under_faults() -> None:
    fault_search(
        _workload,
        [no_hpack_or_flow_control_errors],
        protocol="grpc",
        plans=plans(),
        max_examples=EXAMPLES,
        scenario={
            "kafka": {"enabled": False},
            "http": {"enabled": False},
            "echo": {"enabled": False},
            "grpc": {"in_process": False},
        },
    )
