"""WireMock's own Python admin client, unchanged, drives the fake through the proxy.

The client (PyPI `wiremock`) is what WireMock users already have in their
test suites; if it works against the testbed's fake with nothing but its
base URL changed, their suites move over unchanged. Every call goes through
the proxy's HTTP listener in front of the fake, as a user's would, and every
check is made twice: in WireMock's request journal (through the client) and
in the testbed's one journal (`tb.journal.http`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from wiremock.constants import Config
from wiremock.exceptions import NotFoundException
from wiremock.resources.mappings import (
    HttpMethods,
    Mapping,
    MappingRequest,
    MappingResponse,
)
from wiremock.resources.mappings.resource import Mappings
from wiremock.resources.near_misses import NearMissMatchPatternRequest
from wiremock.resources.near_misses.resource import NearMisses
from wiremock.resources.requests.resource import Requests
from wiremock.resources.scenarios.resource import Scenarios

from testbed.threaded import TestbedThread
from tests import wiremock_real
from tests.tools import in_ci

HELLO = {
    "id": "6d2a8b1e-0000-4000-8000-000000000001",
    "request": {"method": "GET", "url": "/hello"},
    "response": {"status": 200, "body": "hi", "headers": {"Content-Type": "text/plain"}},
}


def _scenario(mappings: Path) -> dict[str, object]:
    return {
        "kafka": {"enabled": False},
        "grpc": {"enabled": False},
        "echo": {"enabled": False},
        "http": {"services": [{"name": "api", "mappings": [str(mappings)]}]},
    }


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestbedThread, str]]:
    """A testbed whose one HTTP fake starts with HELLO; yields it and the proxy's base URL.

    The client's Config is a process-wide singleton: restored after the test.
    """
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "hello.json").write_text(json.dumps(HELLO))
    saved = Config.base_url
    with TestbedThread(_scenario(tmp_path)) as tb:
        base = f"http://{tb.addresses['api']}"
        Config.base_url = base + "/__admin"
        try:
            yield tb, base
        finally:
            Config.base_url = saved


def test_the_client_creates_lists_and_deletes_mappings_and_reads_the_journal(
    api: tuple[TestbedThread, str],
) -> None:
    tb, base = api
    listed = Mappings.retrieve_all_mappings()
    assert [m.id for m in listed.mappings] == [HELLO["id"]]

    created = Mappings.create_mapping(
        Mapping(
            priority=1,
            request=MappingRequest(method=HttpMethods.POST, url="/orders"),
            response=MappingResponse(status=201, json_body={"id": 7}),
            persistent=False,
        )
    )
    assert created.id
    assert {m.id for m in Mappings.retrieve_all_mappings().mappings} == {HELLO["id"], created.id}
    assert Mappings.retrieve_mapping(created.id).request.url == "/orders"

    with requests.Session() as http:
        hello = http.get(base + "/hello")
        order = http.post(base + "/orders", json={"item": "tea"})
        missing = http.get(base + "/nowhere")
    assert (hello.status_code, hello.text) == (200, "hi")
    assert (order.status_code, order.json()) == (201, {"id": 7})
    assert missing.status_code == 404

    every = Requests.get_all_received_requests()
    assert every.meta.total == 3
    assert sorted(r.request.url for r in every.requests) == ["/hello", "/nowhere", "/orders"]
    pattern = NearMissMatchPatternRequest(url="/orders", method="POST")
    assert Requests.get_matching_request_count(pattern).count == 1
    found = Requests.get_matching_requests(pattern)
    assert [json.loads(r.body) for r in found.requests] == [{"item": "tea"}]
    assert [r.url for r in Requests.get_unmatched_requests().requests] == ["/nowhere"]
    near = Requests.get_unmatched_requests_near_misses()
    assert near.near_misses, "the unmatched GET /nowhere is near some stub"
    assert NearMisses.find_nearest_misses_by_request_pattern(
        NearMissMatchPatternRequest(url="/hello", method="GET")
    ).near_misses

    Mappings.delete_mapping(created.id)
    assert [m.id for m in Mappings.retrieve_all_mappings().mappings] == [HELLO["id"]]
    with pytest.raises(NotFoundException):
        Mappings.retrieve_mapping(created.id)
    assert requests.post(base + "/orders", json={}).status_code == 404

    # the testbed's journal: the fake's four requests, none of the admin calls
    http_log = tb.journal.http(service="api")
    assert [(e.method, e.path, e.status) for e in http_log] == [
        ("GET", "/hello", 200),
        ("POST", "/orders", 201),
        ("GET", "/nowhere", 404),
        ("POST", "/orders", 404),
    ]
    orders = tb.journal.http(method="POST", path="/orders")
    orders.assert_called(times=2)
    assert [e.stub for e in orders] == [created.id, None]
    assert tb.journal.http(service="api").unmatched.count() == 2
    assert tb.journal.http(path="/nowhere")[0].near_misses, "unmatched entries say what was near"

    Requests.reset_request_journal()
    assert Requests.get_all_received_requests().meta.total == 0
    assert tb.journal.http(service="api").count() == 4, "WireMock's reset is WireMock's journal"


def test_reset_brings_back_the_files_mappings_and_scenarios_reset(
    api: tuple[TestbedThread, str],
) -> None:
    _tb, base = api
    Mappings.delete_all_mappings()
    assert Mappings.retrieve_all_mappings().mappings == []
    assert requests.get(base + "/hello").status_code == 404
    Mappings.reset_mappings()
    assert [m.id for m in Mappings.retrieve_all_mappings().mappings] == [HELLO["id"]]
    assert requests.get(base + "/hello").text == "hi"
    Scenarios.reset_all_scenarios()
    Mappings.persist_mappings()  # answered, and writes nothing (docs/testbed.md)
    assert [m.id for m in Mappings.retrieve_all_mappings().mappings] == [HELLO["id"]]


def test_update_and_remove_by_metadata(api: tuple[TestbedThread, str]) -> None:
    _tb, base = api
    created = Mappings.create_mapping(
        Mapping(
            request=MappingRequest(method=HttpMethods.GET, url="/team"),
            response=MappingResponse(status=200, body="one"),
            metadata={"team": "payments"},
        )
    )
    assert requests.get(base + "/team").text == "one"
    created.response = MappingResponse(status=200, body="two")
    Mappings.update_mapping(created)
    assert requests.get(base + "/team").text == "two"
    Mappings.delete_mapping_by_metadata(
        {"matchesJsonPath": {"expression": "$.team", "equalTo": "payments"}}
    )
    assert [m.id for m in Mappings.retrieve_all_mappings().mappings] == [HELLO["id"]]


def _client_story(base: str) -> list[object]:
    """The client's calls in a fixed order, and what each showed (ids and order
    included): run on the fake and on real WireMock, the lists must be equal."""
    seen: list[object] = []
    Config.base_url = base + "/__admin"
    seen.append([m.id for m in Mappings.retrieve_all_mappings().mappings])
    orders = Mapping(
        id="6d2a8b1e-0000-4000-8000-000000000002",
        request=MappingRequest(method=HttpMethods.POST, url="/orders"),
        response=MappingResponse(status=201, json_body={"id": 7}),
        metadata={"team": "payments"},
    )
    seen.append(Mappings.create_mapping(orders).id)
    seen.append(sorted(m.id for m in Mappings.retrieve_all_mappings().mappings))
    with requests.Session() as http:
        seen.append(http.get(base + "/hello").text)
        seen.append(http.post(base + "/orders", json={"item": "tea"}).json())
        seen.append(http.get(base + "/nowhere").status_code)
    every = Requests.get_all_received_requests()
    seen.append((every.meta.total, [r.request.url for r in every.requests]))
    seen.append(Requests.get_request(every.requests[-1].id).request.url)
    pattern = NearMissMatchPatternRequest(url="/orders", method="POST")
    seen.append(Requests.get_matching_request_count(pattern).count)
    seen.append([r.body for r in Requests.get_matching_requests(pattern).requests])
    seen.append([r.url for r in Requests.get_unmatched_requests().requests])
    near = Requests.get_unmatched_requests_near_misses().near_misses
    seen.append([n.request.url for n in near])
    by_pattern = NearMisses.find_nearest_misses_by_request_pattern(
        NearMissMatchPatternRequest(url="/hello", method="GET")
    ).near_misses
    seen.append(sorted(n.request.url for n in by_pattern))
    orders.response = MappingResponse(status=200, body="updated")
    Mappings.update_mapping(orders)
    seen.append(requests.post(base + "/orders").text)
    Mappings.delete_mapping_by_metadata(
        {"matchesJsonPath": {"expression": "$.team", "equalTo": "payments"}}
    )
    seen.append([m.id for m in Mappings.retrieve_all_mappings().mappings])
    try:
        Mappings.retrieve_mapping(orders.id)
        seen.append("found")
    except NotFoundException:
        seen.append("not found")
    Mappings.create_mapping(orders)
    Mappings.reset_mappings()  # back to the files' mappings
    seen.append([m.id for m in Mappings.retrieve_all_mappings().mappings])
    # last: real WireMock 3 deletes the mapping files too (the fake never
    # touches them, docs/testbed.md), so nothing after it could compare
    Mappings.delete_all_mappings()
    seen.append(Mappings.retrieve_all_mappings().meta.total)
    Scenarios.reset_all_scenarios()
    # not Requests.reset_request_journal(): its POST /__admin/requests/reset is
    # gone from WireMock 3 (404 there; the fake still answers it)
    assert requests.delete(base + "/__admin/requests").status_code == 200
    seen.append(Requests.get_all_received_requests().meta.total)
    return seen


def test_the_client_sees_the_same_on_real_wiremock(
    api: tuple[TestbedThread, str], tmp_path: Path
) -> None:
    why = wiremock_real.missing()
    if why is not None:
        if in_ci():
            pytest.fail(why + "; CI=true forbids skipping", pytrace=False)
        pytest.skip(why)
    _tb, base = api
    ours = _client_story(base)
    root = tmp_path / "real"
    (root / "mappings").mkdir(parents=True)
    (root / "mappings" / "hello.json").write_text(json.dumps(HELLO))
    with wiremock_real.RealWireMock(root) as real:
        theirs = _client_story(f"http://{real.address}")
    assert ours == theirs


def test_through_the_proxy_a_web_pages_writes_are_refused(api: tuple[TestbedThread, str]) -> None:
    tb, base = api
    stub = {"request": {"url": "/evil"}, "response": {"status": 200}}
    cross_site = requests.post(
        base + "/__admin/mappings", json=stub, headers={"Origin": "http://evil.example"}
    )
    assert cross_site.status_code == 403 and "other sites" in cross_site.text
    form = requests.post(base + "/__admin/mappings", data={"x": "1"})
    assert form.status_code == 403 and "application/json" in form.text
    rebound = requests.get(base + "/__admin/requests", headers={"Host": "evil.example"})
    assert rebound.status_code == 403 and "rebinding" in rebound.text
    own = requests.post(base + "/__admin/mappings", json=stub, headers={"Origin": base})
    assert own.status_code == 201
    assert tb.journal.http(service="api").count() == 0, "admin requests are not journaled"
