"""Acceptance 5: gRPC resilience under random faults, as a hypothesis state machine.

grpcio (C-core) calls carrying a retry policy (UNAVAILABLE, 4 attempts) go
through the proxy to the fake gRPC service while random steps add message
faults. Every call must either succeed with exactly the responses its
behaviour asks for, or fail with a status that one of the faults matching
its method explains. The proxy must never see an HPACK or flow-control error.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from protoproxy.faults.model import FaultSpec
from testbed.grpc import Behaviour
from testbed.grpc.client import SyncClient, channel_options
from testbed.grpc.threaded import ThreadedGrpcService
from tests.peers import ProxyThread

SERVICE = "protoproxy.testbed.v1.TestService"
EXAMPLES = int(
    os.environ.get(
        "PROTOPROXY_RESILIENCE_EXAMPLES", 500 if settings.default.max_examples >= 500 else 50
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

_env: dict[str, Any] = {}
_ids = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def grpc_env() -> Iterator[None]:
    with ThreadedGrpcService() as svc:
        cfg = {
            "admin": {"enabled": False},
            "listeners": [
                {"name": "grpc", "listen": "127.0.0.1:0", "protocol": "grpc", "upstream": "svc"}
            ],
            "upstreams": [{"name": "svc", "endpoints": [svc.address]}],
        }
        with ProxyThread(cfg) as proxy:
            _env.update(proxy=proxy, service=svc)
            yield
            _env.clear()


def _client(port: int) -> SyncClient:
    options = [
        *channel_options(),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(RETRY)),
    ]
    return SyncClient(
        grpc.insecure_channel(f"127.0.0.1:{port}", options=options), owns_channel=True
    )


class GrpcUnderFaults(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.proxy: ProxyThread = _env["proxy"]
        self.engine = self.proxy.app.faults
        self.n = next(_ids)
        #: (method or None, statuses it explains, client-streaming race explained)
        self.explains: list[tuple[str | None, set[S]]] = []
        self.client: SyncClient | None = None
        self.decode_errors = self._decode_errors()

    @initialize()
    def connect(self) -> None:
        self.client = _client(self.proxy.port("grpc"))

    def teardown(self) -> None:
        self.proxy.run(lambda: self.engine.reset())
        if self.client is not None:
            self.client.close()

    def _decode_errors(self) -> float:
        return self.proxy.run(lambda: self.proxy.proxy.metrics.decode_errors.total())  # type: ignore[union-attr]

    def _add(self, method: str | None, explains: set[S], **spec: Any) -> None:
        match = {"protocol": "grpc", **spec.pop("match", {})}
        if method is not None:
            match["method"] = method
        name = f"g{self.n}-{len(self.explains)}"
        fault = FaultSpec(name=name, match=match, **spec)
        self.proxy.run(lambda: self.engine.add(fault))
        self.explains.append((method, explains))

    # -- calls ------------------------------------------------------------------------------------
    @rule(
        method=st.sampled_from(METHODS),
        size=st.sampled_from([0, 10, 3000, 70_000]),
        count=st.integers(1, 3),
    )
    def call(self, method: str, size: int, count: int) -> None:
        assert self.client is not None
        r = self.client.call(
            method, Behaviour.make(size=size, count=count), n=count, timeout=CALL_TIMEOUT
        )
        if r.code == S.OK:
            expected = {
                "Unary": 1,
                "ServerStream": count,
                "ClientStream": 1,
                "Bidi": count * count,
            }[method]
            assert len(r.responses) == expected, (method, len(r.responses), expected)
            if method in ("Unary", "ServerStream", "Bidi"):
                assert all(len(x.payload) == size for x in r.responses)
            assert all(x.method.endswith("/" + method) for x in r.responses)
            return
        explained: set[S] = set()
        for m, statuses in self.explains:
            if m is None or m == method:
                explained |= statuses
        if method in CLIENT_STREAMING and explained and (r.code, r.details) == CORE_WRITE_RACE:
            return
        assert r.code in explained, (method, r.code, r.details, self.explains)

    # -- faults -----------------------------------------------------------------------------------
    @rule(
        method=st.sampled_from([*METHODS, None]),
        status=st.sampled_from(["UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL"]),
        p=st.sampled_from([0.3, 1.0]),
    )
    def abort(self, method: str | None, status: str, p: float) -> None:
        self._add(method, {S[status]}, action={"abort": {"status": status}}, probability=p)

    @rule(method=st.sampled_from(["ServerStream", "Bidi"]), index=st.integers(0, 2))
    def abort_mid_response(self, method: str, index: int) -> None:
        self._add(
            method,
            {S.DATA_LOSS},
            match={"direction": "downstream", "message_index": index},
            action={"abort": {"status": "DATA_LOSS"}},
            probability=0.5,
        )

    @rule(method=st.sampled_from(METHODS))
    def rst_stream(self, method: str) -> None:
        self._add(method, {S.CANCELLED, S.INTERNAL}, action={"rst_stream": {}}, probability=0.5)

    @rule(method=st.sampled_from(["Unary", "ServerStream"]))
    def goaway(self, method: str) -> None:
        # Streams past its last id were never processed: grpcio retries them.
        # Client-streaming calls are left out: about 1 in 100 of their
        # transparent retries after GOAWAY came back OK with a request message
        # missing (see docs/faults.md, "Known limits").
        self._add(method, {S.UNAVAILABLE}, action={"goaway": {}}, schedule={"limit": 1})

    @rule(method=st.sampled_from(METHODS))
    def drop(self, method: str) -> None:
        self._add(method, {S.DEADLINE_EXCEEDED}, action={"drop": {}}, schedule={"limit": 1})

    @rule(method=st.sampled_from([*METHODS, None]))
    def delay(self, method: str | None) -> None:
        self._add(
            method,
            {S.DEADLINE_EXCEEDED},
            action={"delay": {"uniform": ["1ms", "30ms"]}},
            probability=0.5,
        )

    @rule(how=st.sampled_from(["reset", "close"]))
    def cut(self, how: str) -> None:
        self._add(None, {S.UNAVAILABLE, S.INTERNAL}, action={how: {}}, schedule={"limit": 1})

    @rule()
    def withhold_window_updates(self) -> None:
        self._add(
            None,
            {S.DEADLINE_EXCEEDED},
            match={"direction": "upstream"},
            action={"withhold_window_updates": {}},
        )

    # -- invariants -------------------------------------------------------------------------------
    @invariant()
    def no_hpack_or_flow_control_errors(self) -> None:
        assert self._decode_errors() == self.decode_errors


GrpcUnderFaults.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=8, deadline=None
)
TestGrpcUnderFaults = GrpcUnderFaults.TestCase
