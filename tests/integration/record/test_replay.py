"""Acceptance 3 of issue 13: record, then replay with the real servers stopped.

The same client calls are made through the recording proxy (real grpcio and
aiohttp servers behind it) and then against a Testbed started from the
recording's scenario.yaml; responses must be byte-equal: every response
message, status code, status message, rich error details and HTTP body.
"""

from __future__ import annotations

from pathlib import Path

from testbed.harness import Testbed
from testbed.scenario import load_scenario

from .calls import GrpcResult, HttpResult, grpc_calls, http_calls
from .conftest import address, recording_app
from .servers import PROTO, SERVICE, demo_schema, grpc_server, http_server


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


async def test_replay_answers_as_the_real_servers_did(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    live_grpc, live_http = await _record(rec)
    assert [r[2] for r in live_grpc] == [
        "OK",
        "OK",
        "OK",
        "FAILED_PRECONDITION",
        "OK",
        "OK",
        "OK",
    ]
    assert [r[1] for r in live_http] == [200, 201, 200, 200, 404]
    scenario = load_scenario(rec / "scenario.yaml").with_ephemeral_ports()
    Req = demo_schema().method(f"/{SERVICE}/Unary").request  # type: ignore[union-attr]
    async with Testbed(scenario) as tb:
        replay_grpc = await grpc_calls(tb.addresses[scenario.grpc.services[0].name], Req)
        replay_http = await http_calls(f"http://{tb.addresses[scenario.http.services[0].name]}")
        journal = tb.journal
        assert journal.grpc("Demo/Unary").matched.count() == 3
        assert journal.grpc("Demo/Fail").matched.count() == 1
        assert journal.grpc(service=scenario.grpc.services[0].name).count() == 7
        assert journal.grpc().unmatched.count() == 0
        assert journal.http().matched.count() == 5
        assert journal.http(method="POST", path="/echo").count() == 1
    assert replay_grpc == live_grpc
    assert replay_http == live_http
