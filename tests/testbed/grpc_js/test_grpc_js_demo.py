"""@grpc/grpc-js through the proxy against the demo TestService: every call kind.

The fakes of the user's services are the acceptance test (test_grpc_js_shop.py);
this one pins the plumbing (the Node client, its plan, the proxy's `grpc`
listener) against the service whose answers are fixed by its own behaviour
programs, so a failure here is the client's or the proxy's, not a stub's.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from testbed.threaded import TestbedThread

from .node_client import CLIENT, ROOT, require_grpc_js, run_plan

SERVICE = "protoproxy.testbed.v1.TestService"


def _plan() -> dict[str, Any]:
    return {
        "protos": [str(ROOT / "fixtures" / "protos" / "testbed.proto")],
        "service": SERVICE,
        "calls": [
            {"method": "Unary", "requests": [{"tag": "u"}], "metadata": {"x-who": "node"}},
            {"method": "ServerStream", "requests": [{"tag": "s", "behaviour": {"count": 3}}]},
            {"method": "ClientStream", "requests": [{"tag": "c1"}, {"tag": "c2"}, {"tag": "c3"}]},
            {
                "method": "Bidi",
                "requests": [
                    {"tag": "b1", "behaviour": {"count": 2}},
                    {"tag": "b2", "behaviour": {"count": 1}},
                ],
            },
            {
                "method": "Unary",
                "requests": [{"behaviour": {"status_code": 5, "status_message": "no such thing"}}],
            },
        ],
    }


def test_every_call_kind_through_the_proxy(tmp_path: Path) -> None:
    node = require_grpc_js()
    scenario = {"kafka": {"enabled": False}, "http": {"enabled": False}}
    with TestbedThread(scenario) as tb:
        unary, server, client, bidi, failed = run_plan(
            node, tb.addresses["grpc"], _plan(), tmp_path
        )

    assert [c["kind"] for c in (unary, server, client, bidi)] == [
        "unary",
        "server_streaming",
        "client_streaming",
        "bidi",
    ]
    for call in (unary, server, client, bidi):
        assert (call["code"], call["status"]) == (0, "OK"), call
    assert len(unary["messages"]) == 1
    answer = unary["messages"][0]
    assert (answer["tag"], answer["seq"], answer["method"]) == ("u", "1", f"/{SERVICE}/Unary")
    assert answer["metadata"]["x-who"] == "node"  # the proxy forwarded the client's metadata
    assert [(m["tag"], m["seq"]) for m in server["messages"]] == [
        ("s", "1"),
        ("s", "2"),
        ("s", "3"),
    ]
    assert [(m["tag"], m["requests_seen"]) for m in client["messages"]] == [("c3", "3")]
    assert [(m["tag"], m["seq"]) for m in bidi["messages"]] == [
        ("b1", "1"),
        ("b1", "2"),
        ("b2", "3"),
    ]
    assert (failed["code"], failed["status"], failed["details"]) == (
        5,
        "NOT_FOUND",
        "no such thing",
    )
    assert failed["messages"] == []


def test_a_plan_naming_an_unknown_service_is_refused_by_name(tmp_path: Path) -> None:
    """A typo in a plan must say which name is wrong, not hang or call nothing."""
    node = require_grpc_js()
    plan = {**_plan(), "service": "protoproxy.testbed.v1.NoSuchService"}
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    done = subprocess.run(
        [node, str(CLIENT), "127.0.0.1:1", str(plan_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert '"protoproxy.testbed.v1.NoSuchService" is not in the protos' in done.stderr
    assert "protoproxy.testbed.v1.TestService" in done.stderr  # what it does have
    assert done.stdout == ""
