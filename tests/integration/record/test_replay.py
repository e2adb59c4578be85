"""Acceptance 3 of issue 13: record, then replay with the real servers stopped.

The same client calls are made through the recording proxy (real grpcio and
aiohttp servers behind it) and then against a Testbed started from the
recording's scenario.yaml; responses must be byte-equal: every response
message, status code, status message, rich error details and HTTP body.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from testbed.harness import Testbed
from testbed.scenario import GrpcScenario, load_scenario

from .calls import GrpcResult, HttpResult, grpc_calls, http_calls
from .conftest import address, recording_app
from .servers import PROTO, SERVICE, demo_schema, grpc_server, http_server


def _missing(need: dict[str, str]) -> list[str]:
    """The reader branches a replay needs, by the modules they add to the testbed."""
    out = []
    for module, branch in need.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            out.append(branch)
    return out


MISSING_GRPC = _missing(
    {
        "testbed.setup_grpc_fakes": "wip/grpcfakes (grpc.services fakes)",
        "testbed.grpc_stubs": "wip/grpcstubs (the GripMock stub engine)",
    }
)
MISSING_HTTP = _missing(
    {
        "testbed.setup_http_fakes": "wip/wmservice (http.services fakes)",
        "testbed.wiremock.engine": "wip/wmengine (the WireMock engine)",
    }
)


async def _record(rec: Path) -> tuple[list[GrpcResult], list[HttpResult]]:
    """Make the calls through a recording proxy; the real servers stop after."""
    schema = demo_schema()
    Req = schema.method(f"/{SERVICE}/Unary").request  # type: ignore[union-attr]
    record = {"dir": str(rec), "schema": {"protos": [str(PROTO)]}}
    async with (
        grpc_server(schema) as gport,
        http_server() as hport,
        recording_app(record, gport, hport) as app,  # its stop writes what is queued
    ):
        return (
            await grpc_calls(address(app, "grpc"), Req),
            await http_calls(f"http://{address(app, 'http')}"),
        )


@pytest.mark.xfail(
    bool(MISSING_GRPC),
    reason=f"the gRPC replay's readers are not merged yet: {', '.join(MISSING_GRPC)}",
    strict=False,
)
async def test_grpc_replay_answers_as_the_real_server_did(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    live, _ = await _record(rec)
    assert [r[2] for r in live] == ["OK", "OK", "OK", "FAILED_PRECONDITION", "OK", "OK", "OK"]
    scenario = load_scenario(rec / "scenario.yaml").with_ephemeral_ports()
    Req = demo_schema().method(f"/{SERVICE}/Unary").request  # type: ignore[union-attr]
    async with Testbed(scenario) as tb:
        replay = await grpc_calls(tb.addresses[scenario.grpc.services[0].name], Req)
    assert replay == live


@pytest.mark.xfail(
    bool(MISSING_HTTP),
    reason=f"the HTTP replay's readers are not merged yet: {', '.join(MISSING_HTTP)}",
    strict=False,
)
async def test_http_replay_answers_as_the_real_server_did(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    _, live = await _record(rec)
    scenario = load_scenario(rec / "scenario.yaml").with_ephemeral_ports()
    scenario = scenario.model_copy(update={"grpc": GrpcScenario(enabled=False)})  # HTTP only
    async with Testbed(scenario) as tb:
        replay = await http_calls(f"http://{tb.addresses[scenario.http.services[0].name]}")
    assert replay == live
    assert [r[1] for r in live] == [200, 201, 200, 200, 404]
