"""Admin operations and the request journal, in the JSON shapes WireMock 3 returns.

The PyPI `wiremock` client's model classes read each shape here, so a field
the client needs and we forget fails a test without a server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from wiremock.resources.mappings.models import AllMappings, Mapping
from wiremock.resources.near_misses.models import NearMissMatchResponse
from wiremock.resources.requests.models import (
    RequestCountResponse,
    RequestResponseAll,
    RequestResponseFindResponse,
)

from testbed.wiremock import MappingError, WireMockEngine

from .conftest import FIXED_NOW, call, stub


def test_mapping_crud_and_ids(engine: WireMockEngine) -> None:
    created = engine.add_mapping({"request": {"url": "/a"}, "response": {"body": "1"}})
    mapping_id = created["id"]
    assert created["uuid"] == mapping_id
    assert len(mapping_id) == 36
    assert Mapping.from_dict(created).id == mapping_id
    assert engine.get_mapping(mapping_id) == created
    updated = engine.update_mapping(
        mapping_id, {"request": {"url": "/a"}, "response": {"body": "2"}}
    )
    assert updated is not None and updated["id"] == mapping_id
    assert call(engine, url="/a").body == b"2"
    assert engine.update_mapping("nope", {"request": {}}) is None
    assert engine.remove_mapping(mapping_id)
    assert not engine.remove_mapping(mapping_id)
    assert engine.get_mapping(mapping_id) is None


def test_given_ids_are_kept(engine: WireMockEngine) -> None:
    given = "11111111-2222-3333-4444-555555555555"
    assert engine.add_mapping({"id": given, "request": {}})["id"] == given


def test_ids_repeat_with_the_seed() -> None:
    def ids(seed: int) -> list[str]:
        engine = WireMockEngine(seed=seed)
        return [engine.add_mapping({"request": {}})["id"] for _ in range(3)]

    assert ids(5) == ids(5)
    assert ids(5) != ids(6)


def test_list_mappings_newest_first_with_paging(engine: WireMockEngine) -> None:
    ids = [stub(engine, {"url": f"/{i}"}) for i in range(5)]
    listed = engine.list_mappings()
    parsed = AllMappings.from_dict(listed)
    assert parsed.meta.total == 5
    assert [m.id for m in parsed.mappings] == ids[::-1]
    page = engine.list_mappings(limit=2, offset=1)
    assert [m["id"] for m in page["mappings"]] == ids[::-1][1:3]
    assert page["meta"]["total"] == 5


def write(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def test_load_folder_recursively_and_wrapped_files(tmp_path: Path) -> None:
    write(tmp_path / "m" / "one.json", {"request": {"url": "/1"}})
    write(
        tmp_path / "m" / "deep" / "two.json",
        {"mappings": [{"request": {"url": "/2"}}, {"request": {"url": "/3"}}]},
    )
    write(tmp_path / "m" / "__files" / "ignored.json", {"not": "a mapping"})
    engine = WireMockEngine()
    assert engine.load_paths([tmp_path / "m"]) == 3
    assert all(call(engine, url=u).status == 200 for u in ("/1", "/2", "/3"))


def test_reset_mappings_restores_the_files(tmp_path: Path) -> None:
    write(tmp_path / "a.json", {"request": {"url": "/file"}, "response": {"body": "file"}})
    engine = WireMockEngine()
    engine.load_paths([tmp_path / "a.json"])
    file_id = engine.list_mappings()["mappings"][0]["id"]
    stub(engine, {"url": "/added"})
    engine.remove_mapping(file_id)
    engine.reset_mappings()
    assert [m["id"] for m in engine.list_mappings()["mappings"]] == [file_id]
    assert call(engine, url="/added").status == 404


def test_reset_clears_journal_and_scenarios(tmp_path: Path) -> None:
    write(
        tmp_path / "s.json",
        {"request": {"url": "/s"}, "scenarioName": "S", "newScenarioState": "B"},
    )
    engine = WireMockEngine()
    engine.load_paths([tmp_path])
    call(engine, url="/s")
    assert engine.scenarios()["scenarios"][0]["state"] == "B"
    engine.reset()
    assert engine.requests()["requests"] == []
    assert engine.scenarios()["scenarios"][0]["state"] == "Started"


def test_import_overwrite_ignore_and_delete_others(engine: WireMockEngine) -> None:
    keep = "00000000-0000-4000-8000-000000000001"
    other = stub(engine, {"url": "/other"})
    engine.add_mapping({"id": keep, "request": {"url": "/k"}, "response": {"body": "old"}})
    new = {"id": keep, "request": {"url": "/k"}, "response": {"body": "new"}}
    engine.import_mappings({"mappings": [new], "importOptions": {"duplicatePolicy": "IGNORE"}})
    assert call(engine, url="/k").body == b"old"
    engine.import_mappings({"mappings": [new]})  # OVERWRITE by default
    assert call(engine, url="/k").body == b"new"
    engine.import_mappings({"mappings": [new], "importOptions": {"deleteAllNotInImport": True}})
    assert engine.get_mapping(other) is None
    assert engine.list_mappings()["meta"]["total"] == 1


def test_import_is_all_or_nothing(engine: WireMockEngine) -> None:
    with pytest.raises(
        MappingError, match=r"mappings\[1\]\.request\.method: must be a method name"
    ):
        engine.import_mappings(
            {"mappings": [{"request": {"url": "/ok"}}, {"request": {"method": 3}}]}
        )
    assert engine.list_mappings()["meta"]["total"] == 0


def test_journal_shapes_newest_first(engine: WireMockEngine) -> None:
    stub(engine, {"url": "/j"}, {"status": 201, "body": "made"})
    call(engine, "POST", "/j", [("X-A", "1"), ("X-A", "2"), ("Cookie", "c=v")], "hi")
    call(engine, "GET", "/unmatched?q=1")
    listed = engine.requests()
    parsed = RequestResponseAll.from_dict(listed)
    assert parsed.meta.total == 2
    assert listed["requestJournalDisabled"] is False
    assert [r.request.url for r in parsed.requests] == ["/unmatched?q=1", "/j"]
    matched = listed["requests"][1]
    assert matched["wasMatched"] is True
    assert matched["request"]["headers"]["X-A"] == ["1", "2"]
    assert matched["request"]["cookies"] == {"c": "v"}
    assert matched["request"]["body"] == "hi"
    assert matched["request"]["bodyAsBase64"] == "aGk="
    assert matched["request"]["loggedDate"] == int(FIXED_NOW.timestamp() * 1000)
    assert matched["request"]["loggedDateString"] == "2026-12-02T04:30:00.000Z"
    assert matched["request"]["clientIp"] == "127.0.0.1"
    assert matched["request"]["absoluteUrl"] == "http://h/j"
    assert matched["response"]["status"] == 201
    assert matched["response"]["body"] == "made"
    assert matched["stubMapping"]["request"] == {"url": "/j", "method": "ANY"}
    unmatched = listed["requests"][0]
    assert unmatched["wasMatched"] is False
    assert unmatched["request"]["queryParams"] == {"q": {"key": "q", "values": ["1"]}}
    # WireMock journals an unmatched request with an empty response and a stand-in stub
    assert unmatched["responseDefinition"] == {"status": 404, "fromConfiguredStub": False}
    assert unmatched["response"]["body"] == ""
    assert unmatched["stubMapping"]["request"] == {"method": "ANY"}
    assert engine.get_request(matched["id"]) == matched
    assert engine.requests(limit=1)["requests"][0]["request"]["url"] == "/unmatched?q=1"


def test_find_count_remove_requests(engine: WireMockEngine) -> None:
    for url in ("/a/1", "/a/2", "/b"):
        call(engine, "GET", url)
    call(engine, "POST", "/a/3", body='{"x": 1}')
    found = RequestResponseFindResponse.from_dict(engine.find_requests({"urlPathPattern": "/a/.*"}))
    assert [r.url for r in found.requests] == ["/a/1", "/a/2", "/a/3"]
    assert RequestCountResponse.from_dict(engine.count_requests({"method": "POST"})).count == 1
    assert engine.count_requests({"bodyPatterns": [{"matchesJsonPath": "$.x"}]})["count"] == 1
    assert engine.count_requests({}) == {"count": 4, "requestJournalDisabled": False}
    removed = engine.remove_requests({"urlPath": "/b"})
    assert [r["request"]["url"] for r in removed["serveEvents"]] == ["/b"]
    assert engine.count_requests({})["count"] == 3
    engine.reset_requests()
    assert engine.count_requests({})["count"] == 0


def test_requests_since(engine: WireMockEngine) -> None:
    call(engine, url="/x")
    assert engine.requests(since="2026-12-02T04:29:00Z")["requests"]
    assert engine.requests(since="2026-12-02T04:31:00Z")["requests"] == []
    with pytest.raises(MappingError, match="since: not an ISO-8601 date"):
        engine.requests(since="yesterday")


def test_journal_is_bounded() -> None:
    engine = WireMockEngine(journal_limit=3)
    for i in range(10):
        call(engine, url=f"/{i}")
    listed = engine.requests()
    assert [r["request"]["url"] for r in listed["requests"]] == ["/9", "/8", "/7"]
    assert listed["meta"]["total"] == 3
    assert engine.journal.dropped == 7


def test_unmatched_and_near_misses(engine: WireMockEngine) -> None:
    stub(
        engine,
        {"method": "GET", "url": "/orders", "headers": {"X-Id": {"equalTo": "abc"}}},
        name="orders",
    )
    stub(engine, {"method": "POST", "url": "/elsewhere"})
    stub(engine, {"method": "GET", "url": "/orders/1"})
    call(engine, "GET", "/orders", {"X-Id": "abd"})
    unmatched = engine.unmatched()["requests"]
    assert [r["url"] for r in unmatched] == ["/orders"]
    misses = NearMissMatchResponse.from_dict(engine.unmatched_near_misses()).near_misses
    assert len(misses) == 3
    distances = [m.match_result.distance for m in misses]
    assert distances == sorted(distances)
    closest = engine.unmatched_near_misses()["nearMisses"][0]
    assert closest["stubMapping"]["name"] == "orders"
    # one wrong header out of the second phase: (1/3 edit distance) / 46 total weight
    assert closest["matchResult"]["distance"] == pytest.approx((1 / 3) / 46)
    by_request = engine.near_misses_for_request(unmatched[0])["nearMisses"]
    assert by_request[0]["stubMapping"]["name"] == "orders"


def test_near_misses_for_pattern_rank_logged_requests(engine: WireMockEngine) -> None:
    for url in ("/zzzzzz", "/ordes", "/orders/1"):
        call(engine, url=url)
    misses = engine.near_misses_for_pattern({"url": "/orders"})["nearMisses"]
    assert misses[0]["request"]["url"] == "/ordes"
    assert misses[0]["requestPattern"] == {"url": "/orders"}
    assert (
        NearMissMatchResponse.from_dict({"nearMisses": misses}).near_misses[0].match_result.distance
        > 0
    )


def test_not_matched_body_shows_the_closest_stub(engine: WireMockEngine) -> None:
    stub(engine, {"method": "GET", "url": "/far/away/place"}, name="far")
    stub(
        engine,
        {"method": "POST", "urlPath": "/orders", "bodyPatterns": [{"contains": "sku"}]},
        name="close",
    )
    out = call(engine, "POST", "/orders", body="nothing here")
    assert (out.status, out.matched) == (404, False)
    assert ("Content-Type", "text/plain") in out.headers
    text = out.body.decode()
    assert "Request was not matched" in text
    assert "close" in text and "far" not in text
    assert re.search(
        r"\[contains\]\s+\|\s+<<<<< Body does not match\nsku\s+\| nothing here\n", text
    )


def test_not_matched_with_no_stubs(engine: WireMockEngine) -> None:
    out = call(engine, url="/x")
    assert out.status == 404
    assert b"there are no stub mappings" in out.body


def test_a_wrong_scenario_state_is_a_near_miss(engine: WireMockEngine) -> None:
    stub(engine, {"url": "/s"}, scenarioName="S", requiredScenarioState="Later")
    out = call(engine, url="/s")
    assert out.status == 404
    assert "[Scenario 'S' state: Started]" in out.body.decode()
    assert "Scenario does not match" in out.body.decode()
    (miss,) = engine.unmatched_near_misses()["nearMisses"]
    assert miss["matchResult"]["distance"] == 0  # as in WireMock: the state is no distance


def test_not_matched_table_is_wiremocks_byte_for_byte(engine: WireMockEngine) -> None:
    """The same stub and request on WireMock 3.13.2 printed not_matched_wiremock_3.13.2.txt."""
    stub(
        engine,
        {
            "method": "GET",
            "urlPath": "/zz/q",
            "headers": {
                "X-Id": {"equalTo": "abc"},
                "X-C": {"contains": "k"},
                "X-Abs": {"absent": True},
            },
            "queryParameters": {"q": {"equalTo": "a"}, "p": {"matches": "[0-9]+"}},
            "cookies": {"s": {"equalTo": "1"}, "t": {"matches": "x|y"}},
            "bodyPatterns": [{"equalToJson": {"a": 1}}, {"contains": "zz"}],
        },
        name="my stub",
        scenarioName="SC",
        requiredScenarioState="Later",
    )
    headers = [("X-Id", "abd"), ("X-C", "nope"), ("X-Abs", "here"), ("Cookie", "s=2; t=z")]
    out = call(engine, "GET", "/zz/q?q=b&p=x", headers, '{"a":2}')
    assert out.body == (Path(__file__).parent / "not_matched_wiremock_3.13.2.txt").read_bytes()
    # and the distance WireMock 3.13.2 reported for this near miss
    (miss,) = engine.unmatched_near_misses()["nearMisses"]
    assert miss["matchResult"]["distance"] == pytest.approx(0.07669082125603864, rel=1e-12)
    engine.reset_requests()
    call(engine, "GET", "/zz/q?q=a", [("X-C", "k"), ("Cookie", "s=1")])
    (miss,) = engine.unmatched_near_misses()["nearMisses"]
    assert miss["matchResult"]["distance"] == pytest.approx(0.05072463768115942, rel=1e-12)


def test_a_mapping_is_shown_as_wiremock_shows_it(engine: WireMockEngine) -> None:
    """WireMock 3.13.2 answered POST /__admin/mappings {"request": {}} with exactly this shape."""
    shown = engine.add_mapping({"request": {}})
    assert shown == {
        "id": shown["id"],
        "request": {"method": "ANY"},
        "response": {"status": 200},
        "uuid": shown["id"],
    }


def test_mapping_ids_do_not_depend_on_traffic() -> None:
    quiet, busy = WireMockEngine(seed=9), WireMockEngine(seed=9)
    for _ in range(3):
        call(busy, url="/noise")
    assert quiet.add_mapping({"request": {}})["id"] == busy.add_mapping({"request": {}})["id"]
