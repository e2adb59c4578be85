"""Every case of fixtures/wiremock/cases.json, through the proxy to the testbed's fake.

The 20 mapping files exercise every matcher and response field the fake
supports; each case is one request and the answer WireMock documents for it
(checked against real WireMock by test_real_wiremock.py). The fault cases are
sent straight to the fake too: through the proxy the client sees the
proxy's answer to a broken upstream, not the fault itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.threaded import TestbedThread

from .cases import ROOT, Case, load_cases, prepare, problems, send

CASES = load_cases()


@pytest.fixture(scope="module")
def testbed() -> Iterator[TestbedThread]:
    scenario = {
        "kafka": {"enabled": False},
        "grpc": {"enabled": False},
        "echo": {"enabled": False},
        "http": {"services": [{"name": "api", "mappings": [str(ROOT / "mappings")]}]},
    }
    with TestbedThread(scenario) as tb:
        yield tb


def test_the_fixture_has_20_mapping_files_each_with_cases() -> None:
    files = sorted(p.name for p in (ROOT / "mappings").glob("*.json"))
    assert len(files) == 20
    assert {c.mapping.removeprefix("mappings/") for c in CASES} == set(files)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_through_the_proxy(testbed: TestbedThread, case: Case) -> None:
    address = testbed.addresses["api"]
    prepare(address, CASES, case)
    before = testbed.journal.http(service="api").count()
    got = send(address, case.request)
    if "fault" in case.expected:
        assert got.broken or got.status >= 500, f"{case.note}: {got}"
        direct = "{}:{}".format(*testbed.testbed.services["api"].address)
        got = send(direct, case.request)
    assert problems(case, got) == [], case.note
    # the testbed's journal: this case's request (twice for a fault: proxy, then direct)
    entries = testbed.journal.http(service="api")[before:]
    path = case.request["url"].partition("?")[0]
    sent = 2 if "fault" in case.expected else 1
    assert [(e.method, e.path) for e in entries] == [(case.request["method"], path)] * sent
    unmatched = "Request was not matched" in got.body.decode("utf-8", "replace")
    assert [e.matched for e in entries] == [not unmatched] * sent
    assert all((e.stub is None) == unmatched for e in entries)
