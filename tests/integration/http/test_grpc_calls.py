"""Acceptance 1: grpcio makes all four kinds of call through the proxy.

Over h2c, over TLS terminated and re-originated by the proxy (ALPN h2 on
both legs), and over TLS passed through untouched. What the client sees
through the proxy must equal what it sees calling the service directly, and
where the proxy decodes (h2c, terminate) its per-method counters of calls,
statuses and messages must equal what the clients saw.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from protoproxy.app import App
from testbed.grpc import Behaviour, FakeGrpcService
from testbed.grpc.client import AioClient, CallResult

from .conftest import Pki, address, http_metrics, running_app

SERVICE = "protoproxy.testbed.v1.TestService"

# (method, behaviour, requests sent): every kind, OK and failing, small and large.
CALLS: list[tuple[str, Behaviour | None, int]] = [
    ("Unary", Behaviour.make(size=100), 1),
    ("Unary", Behaviour.make(size=70_000), 1),  # DATA spans frames
    ("Unary", Behaviour.make(status="NOT_FOUND", message="no such thing: ü"), 1),
    ("ServerStream", Behaviour.make(count=5, size=10), 1),
    ("ServerStream", Behaviour.make(count=3, status="ABORTED", message="after three"), 1),
    ("ServerStream", Behaviour.make(count=5, size=3, fail_after=2), 1),
    ("ClientStream", None, 4),
    ("ClientStream", Behaviour.make(status="INVALID_ARGUMENT", message="bad"), 3),
    ("Bidi", Behaviour.make(count=2, size=20), 3),
    ("Bidi", Behaviour.make(count=1, status="RESOURCE_EXHAUSTED"), 2),
]


@dataclass
class Setup:
    app: App
    service: FakeGrpcService
    proxied: str  # address clients use through the proxy
    credentials: grpc.ChannelCredentials | None
    decoded: bool  # the proxy decodes HTTP/2 on this path


@pytest.fixture(params=["h2c", "tls-terminate", "tls-passthrough"])
async def setup(request: pytest.FixtureRequest, pki: Pki) -> AsyncIterator[Setup]:
    mode = request.param
    tls = mode != "h2c"
    async with FakeGrpcService(tls=pki.server_tls() if tls else None) as service:
        upstream: dict[str, Any] = {"name": "svc", "endpoints": [service.address]}
        listener: dict[str, Any] = {"name": "grpc", "listen": "127.0.0.1:0", "upstream": "svc"}
        if mode == "h2c":
            listener["protocol"] = "grpc"
        elif mode == "tls-terminate":
            listener["tls"] = {"cert": str(pki.cert), "key": str(pki.key), "alpn": ["h2"]}
            upstream["tls"] = {"ca": str(pki.ca_file)}
        else:
            listener["tls"] = {"mode": "passthrough"}
        async with running_app([listener], [upstream]) as app:
            yield Setup(
                app,
                service,
                address(app, "grpc"),
                pki.credentials() if tls else None,
                decoded=mode != "tls-passthrough",
            )


def _comparable(result: CallResult) -> dict[str, Any]:
    """What must match between direct and proxied calls (the echoed :authority differs)."""
    responses = []
    for r in result.responses:
        r = type(r).FromString(r.SerializeToString())
        echoed = {k: v for k, v in r.metadata.items() if k not in (":authority", "authority")}
        r.ClearField("metadata")
        responses.append((r.SerializeToString(deterministic=True), sorted(echoed.items())))
    return {
        "method": result.method,
        "code": result.code,
        "details": result.details,
        "responses": responses,
        "trailing": sorted(result.trailing_metadata),
        "initial": sorted(k for k, _ in result.initial_metadata),
    }


async def _run_all(client: AioClient) -> list[CallResult]:
    out = []
    for method, behaviour, n in CALLS:
        out.append(
            await client.call(
                method, behaviour, n=n, payload=b"p" * 33, tag="t", metadata=[("x-case", method)]
            )
        )
    return out


async def test_four_kinds_equal_direct_and_counted(setup: Setup) -> None:
    async with AioClient.connect(setup.service.address, credentials=setup.credentials) as c:
        direct = await _run_all(c)
    async with AioClient.connect(setup.proxied, credentials=setup.credentials) as c:
        proxied = await _run_all(c)

    assert [_comparable(r) for r in proxied] == [_comparable(r) for r in direct]
    codes = [r.code for r in proxied]
    assert grpc.StatusCode.OK in codes and grpc.StatusCode.UNAVAILABLE in codes
    assert any(len(r.responses) == 2 and not r.ok for r in proxied)  # cut after two

    if not setup.decoded:
        conns = setup.app.proxy.metrics.connections
        assert conns.get(("grpc",)) >= 1
        assert http_metrics(setup.app).grpc_finished.total() == 0  # opaque TLS: nothing decoded
        return

    # What the clients saw, per method.
    calls: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[tuple[str, str]] = collections.Counter()
    sent: collections.Counter[str] = collections.Counter()
    received: collections.Counter[str] = collections.Counter()
    for (method, _b, n), r in zip(CALLS, proxied, strict=True):
        calls[method] += 1
        statuses[(method, r.code.name)] += 1
        sent[method] += n
        received[method] += len(r.responses)

    m = http_metrics(setup.app)
    for method in calls:
        base = ("grpc", SERVICE, method)
        assert m.grpc_started.get(base) == calls[method], method
        assert m.grpc_latency.count(base) == calls[method], method
        assert m.grpc_messages.get((*base, "upstream")) == sent[method], method
        assert m.grpc_messages.get((*base, "downstream")) == received[method], method
    finished = {
        (k[2], k[3]): v for k, v in m.grpc_finished.values.items() if k[:2] == ("grpc", SERVICE)
    }
    assert finished == dict(statuses)

    inventory = setup.app.grpc.snapshot()
    methods = inventory["services"][SERVICE]
    assert {k: v["calls"] for k, v in methods.items()} == dict(calls)
    assert methods["Bidi"]["kind"] == "bidi_streaming"
    assert methods["Unary"]["kind"] == "unary"
    assert methods["ServerStream"]["kind"] == "server_streaming"
    assert methods["ClientStream"]["kind"] == "client_streaming"
