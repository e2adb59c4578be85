"""Request matching: URL kinds, method, query, headers, cookies, body, priority, scenarios."""

from __future__ import annotations

from testbed.wiremock import WireMockEngine

from .conftest import call, stub


def test_url_is_path_and_query_equality(engine: WireMockEngine) -> None:
    stub(engine, {"url": "/a?x=1"}, {"status": 200, "body": "a"})
    assert call(engine, url="/a?x=1").body == b"a"
    assert call(engine, url="/a?x=2").status == 404
    assert call(engine, url="/a").status == 404


def test_url_path_ignores_the_query(engine: WireMockEngine) -> None:
    stub(engine, {"urlPath": "/a"}, {"status": 204})
    assert call(engine, url="/a?anything=1").status == 204
    assert call(engine, url="/a/b").status == 404


def test_url_pattern_is_on_path_and_query(engine: WireMockEngine) -> None:
    stub(engine, {"urlPattern": "/a/[0-9]+\\?p=.*"}, {"status": 200})
    assert call(engine, url="/a/12?p=x").status == 200
    assert call(engine, url="/a/12").status == 404


def test_url_path_pattern_is_on_the_path(engine: WireMockEngine) -> None:
    stub(engine, {"urlPathPattern": "/a/[0-9]+"}, {"status": 200})
    assert call(engine, url="/a/12?p=x").status == 200
    assert call(engine, url="/a/x").status == 404


def test_url_path_template(engine: WireMockEngine) -> None:
    stub(engine, {"urlPathTemplate": "/users/{id}/orders"}, {"status": 200})
    assert call(engine, url="/users/7/orders?x").status == 200
    assert call(engine, url="/users/7").status == 404


def test_no_url_matches_any_url(engine: WireMockEngine) -> None:
    stub(engine, {"method": "PUT"}, {"status": 200})
    assert call(engine, "PUT", "/whatever?x").status == 200


def test_method_and_any(engine: WireMockEngine) -> None:
    stub(engine, {"method": "POST", "url": "/m"}, {"status": 201})
    stub(engine, {"method": "ANY", "url": "/any"}, {"status": 202})
    assert call(engine, "POST", "/m").status == 201
    assert call(engine, "GET", "/m").status == 404
    assert call(engine, "PATCH", "/any").status == 202


def test_query_parameters_are_decoded_and_any_value_may_match(engine: WireMockEngine) -> None:
    stub(
        engine,
        {"urlPath": "/q", "queryParameters": {"name": {"equalTo": "a b"}, "off": {"absent": True}}},
    )
    assert call(engine, url="/q?name=a%20b").status == 200
    assert call(engine, url="/q?name=x&name=a+b").status == 200
    assert call(engine, url="/q?name=a%20b&off=1").status == 404


def test_headers_are_case_insensitive_by_name(engine: WireMockEngine) -> None:
    stub(engine, {"url": "/h", "headers": {"X-Id": {"equalTo": "1"}}})
    assert call(engine, url="/h", headers={"x-id": "1"}).status == 200
    assert call(engine, url="/h", headers={"x-id": "2"}).status == 404
    assert call(engine, url="/h").status == 404


def test_cookies(engine: WireMockEngine) -> None:
    stub(engine, {"url": "/c", "cookies": {"s": {"equalTo": "1"}, "t": {"absent": True}}})
    assert call(engine, url="/c", headers={"Cookie": "a=b; s=1"}).status == 200
    assert call(engine, url="/c", headers={"Cookie": "s=1; t=2"}).status == 404
    assert call(engine, url="/c").status == 404


def test_all_body_patterns_must_match(engine: WireMockEngine) -> None:
    stub(engine, {"url": "/b", "bodyPatterns": [{"contains": "a"}, {"contains": "b"}]})
    assert call(engine, "POST", "/b", body="ab").status == 200
    assert call(engine, "POST", "/b", body="a").status == 404


def test_priority_then_newest_first(engine: WireMockEngine) -> None:
    stub(engine, {"urlPathPattern": "/p/.*"}, {"status": 200, "body": "low"}, priority=10)
    stub(engine, {"url": "/p/x"}, {"status": 200, "body": "high"}, priority=1)
    assert call(engine, url="/p/x").body == b"high"
    assert call(engine, url="/p/y").body == b"low"
    # same priority: the most recently added stub wins, as in WireMock
    stub(engine, {"url": "/same"}, {"body": "old"})
    stub(engine, {"url": "/same"}, {"body": "new"})
    assert call(engine, url="/same").body == b"new"


def test_default_priority_is_five(engine: WireMockEngine) -> None:
    stub(engine, {"url": "/d"}, {"body": "explicit 6"}, priority=6)
    stub(engine, {"url": "/d"}, {"body": "default"})
    stub(engine, {"url": "/d"}, {"body": "explicit 7"}, priority=7)
    assert call(engine, url="/d").body == b"default"


def scenario_stubs(engine: WireMockEngine) -> None:
    stub(
        engine,
        {"method": "GET", "url": "/s"},
        {"body": "first"},
        scenarioName="S",
        requiredScenarioState="Started",
    )
    stub(
        engine,
        {"method": "POST", "url": "/s"},
        {"status": 201},
        scenarioName="S",
        requiredScenarioState="Started",
        newScenarioState="Second",
    )
    stub(
        engine,
        {"method": "GET", "url": "/s"},
        {"body": "second"},
        scenarioName="S",
        requiredScenarioState="Second",
    )


def test_scenario_moves_on_a_match(engine: WireMockEngine) -> None:
    scenario_stubs(engine)
    assert engine.scenarios()["scenarios"][0]["state"] == "Started"
    assert call(engine, url="/s").body == b"first"
    assert call(engine, "POST", "/s").status == 201
    assert call(engine, url="/s").body == b"second"
    assert call(engine, "POST", "/s").status == 404  # only in Started
    (scenario,) = engine.scenarios()["scenarios"]
    assert scenario["name"] == "S"
    assert scenario["state"] == "Second"
    assert scenario["id"] == "S"  # WireMock's scenario id is its name
    assert scenario["possibleStates"] == ["Started", "Second"]  # as its stubs name them
    assert len(scenario["mappings"]) == 3


def test_scenario_reset_and_set_state(engine: WireMockEngine) -> None:
    scenario_stubs(engine)
    assert engine.set_scenario_state("S", "Second")
    assert call(engine, url="/s").body == b"second"
    engine.reset_scenarios()
    assert call(engine, url="/s").body == b"first"
    assert not engine.set_scenario_state("S", "Nowhere")
    assert engine.set_scenario_state("S", "Started")
    assert not engine.set_scenario_state("T", "Started")


def test_a_scenario_goes_with_its_last_stub(engine: WireMockEngine) -> None:
    mapping_id = stub(engine, {"url": "/x"}, scenarioName="Lonely", newScenarioState="Done")
    assert [s["name"] for s in engine.scenarios()["scenarios"]] == ["Lonely"]
    # no stub names "Started", so WireMock refuses it (422) though the scenario starts there
    assert not engine.set_scenario_state("Lonely", "Started")
    assert engine.set_scenario_state("Lonely", "Done")
    assert engine.remove_mapping(mapping_id)
    assert engine.scenarios()["scenarios"] == []


def test_method_is_case_sensitive_as_in_wiremock(engine: WireMockEngine) -> None:
    stub(engine, {"method": "get", "url": "/lower"})
    assert call(engine, "GET", "/lower").status == 404
    assert call(engine, "get", "/lower").status == 200


def test_url_equality_is_on_the_raw_url(engine: WireMockEngine) -> None:
    """As WireMock 3.13.2 answered: no decoding, no query reordering, no trailing-slash folding."""
    stub(engine, {"url": "/a%20b?x=1&y=2"})
    stub(engine, {"urlPath": "/p/x"})
    assert call(engine, url="/a%20b?x=1&y=2").status == 200
    assert call(engine, url="/a b?x=1&y=2").status == 404
    assert call(engine, url="/a%20b?y=2&x=1").status == 404
    assert call(engine, url="/p/x/").status == 404
