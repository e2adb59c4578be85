"""The 20 fixture mapping files answer each case in fixtures/wiremock/cases.json.

wmservice replays the same cases over HTTP against real WireMock and the
testbed; here the engine answers them directly, in order, on one engine.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from testbed.wiremock import HttpIn, HttpOut, WireMockEngine

ROOT = Path(__file__).resolve().parents[3] / "fixtures" / "wiremock"
CASES: list[dict[str, Any]] = json.loads((ROOT / "cases.json").read_text())


def check(out: HttpOut, expected: dict[str, Any]) -> list[str]:
    if "fault" in expected:
        return (
            [] if out.fault == expected["fault"] else [f"fault {out.fault} != {expected['fault']}"]
        )
    problems = []
    if out.status != expected["status"]:
        problems.append(f"status {out.status} != {expected['status']}")
    headers = dict(out.headers)
    for name, value in expected.get("headers", {}).items():
        if headers.get(name) != value:
            problems.append(f"header {name}: {headers.get(name)!r} != {value!r}")
    text = out.body.decode("utf-8", "replace")
    if "body" in expected and text != expected["body"]:
        problems.append(f"body {text!r} != {expected['body']!r}")
    if "bodyJson" in expected and json.loads(out.body) != expected["bodyJson"]:
        problems.append(f"json body {text!r}")
    if "bodyRegex" in expected and not re.search(expected["bodyRegex"], text):
        problems.append(f"body {text[:200]!r} does not match {expected['bodyRegex']!r}")
    if "bodyBase64" in expected and out.body != base64.b64decode(expected["bodyBase64"]):
        problems.append(f"body {out.body!r}")
    if "minDelayMs" in expected and out.delay_s * 1000 < expected["minDelayMs"]:
        problems.append(f"delay {out.delay_s}s under {expected['minDelayMs']}ms")
    return problems


def test_twenty_files_exercise_every_case() -> None:
    files = sorted(p.name for p in (ROOT / "mappings").glob("*.json"))
    assert len(files) == 20
    assert {Path(c["mapping"]).name for c in CASES} == set(files)


def test_every_case_answers_as_wiremock_documents() -> None:
    engine = WireMockEngine(seed=0)
    assert engine.load_paths([ROOT / "mappings"]) == 29
    failures = []
    for case in CASES:
        req = case["request"]
        out = engine.handle(
            HttpIn(req["method"], req["url"], list(req["headers"].items()), req["body"].encode())
        )
        failures += [
            f"{case['mapping']} {req['method']} {req['url']}: {p}"
            for p in check(out, case["expected"])
        ]
    assert failures == []
    unmatched = [c for c in CASES if c["expected"].get("status") == 404]
    assert engine.count_requests({})["count"] == len(CASES)
    assert len(engine.unmatched()["requests"]) == len(unmatched)
