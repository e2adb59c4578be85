"""Properties: mappings round-trip through JSON, garbage fails only with MappingError, ignoreArrayOrder is a multiset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.wiremock import MappingError, WireMockEngine
from testbed.wiremock.matchers import parse_value_matcher

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
safe_regex = st.sampled_from(["[a-z]+", ".*", "/x/[0-9]{1,3}", "a|b"])
value_matcher = st.one_of(
    st.builds(lambda v: {"equalTo": v}, text),
    st.builds(lambda v, c: {"equalTo": v, "caseInsensitive": c}, text, st.booleans()),
    st.builds(lambda v: {"contains": v}, text),
    st.builds(lambda v: {"doesNotContain": v}, text),
    st.builds(lambda v: {"matches": v}, safe_regex),
    st.builds(lambda v: {"doesNotMatch": v}, safe_regex),
    st.just({"absent": True}),
)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), text)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
body_matcher = st.one_of(
    value_matcher,
    st.builds(
        lambda v, o, e: {"equalToJson": v, "ignoreArrayOrder": o, "ignoreExtraElements": e},
        json_value,
        st.booleans(),
        st.booleans(),
    ),
    st.builds(
        lambda k: {"matchesJsonPath": f"$.{k}"},
        st.sampled_from(["a", "a.b", "items[0]", "items[*].id"]),
    ),
)
names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8)
url_part = st.one_of(
    st.builds(lambda u: {"url": u}, st.from_regex(r"/[a-z0-9/?=&]{0,12}", fullmatch=True)),
    st.builds(lambda u: {"urlPath": u}, st.from_regex(r"/[a-z0-9/]{0,12}", fullmatch=True)),
    st.builds(lambda u: {"urlPathPattern": u}, safe_regex),
    st.just({}),
)


@st.composite
def mappings(draw: st.DrawFn) -> dict[str, Any]:
    request: dict[str, Any] = {
        **draw(url_part),
        "method": draw(st.sampled_from(["GET", "POST", "ANY"])),
    }
    for key in ("headers", "queryParameters", "cookies"):
        block = draw(st.dictionaries(names, value_matcher, max_size=2))
        if block:
            request[key] = block
    patterns = draw(st.lists(body_matcher, max_size=2))
    if patterns:
        request["bodyPatterns"] = patterns
    response: dict[str, Any] = {}
    status = draw(st.none() | st.integers(100, 599))
    if status is not None:
        response["status"] = status
    response.update(
        draw(
            st.one_of(
                st.just({}),
                st.builds(lambda b: {"body": b}, text),
                st.builds(lambda j: {"jsonBody": j}, json_value),
            )
        )
    )
    headers = draw(st.dictionaries(names, text, max_size=2))
    if headers:
        response["headers"] = headers
    mapping: dict[str, Any] = {"request": request, "response": response}
    if draw(st.booleans()):
        mapping["priority"] = draw(st.integers(1, 100))
    if draw(st.booleans()):
        mapping["scenarioName"] = draw(names)
        mapping["requiredScenarioState"] = "Started"
    return mapping


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(mappings(), min_size=1, max_size=4))
def test_dict_to_file_to_list_round_trip(tmp_path: Path, items: list[dict[str, Any]]) -> None:
    path = tmp_path / "round.json"
    path.write_text(json.dumps({"mappings": items}))
    engine = WireMockEngine(seed=1)
    assert engine.load_paths([path]) == len(items)
    listed = engine.list_mappings()["mappings"]
    shown = [{k: v for k, v in m.items() if k not in ("id", "uuid")} for m in listed]
    assert sorted(map(canonical, shown)) == sorted(canonical(as_wiremock_shows(m)) for m in items)
    # listed in matching order: priority (default 5), then the file's later mappings first
    priorities = [m.get("priority", 5) for m in listed]
    assert priorities == sorted(priorities)
    # and what was listed loads again to the same listing
    again = WireMockEngine(seed=1)
    again.import_mappings({"mappings": listed})
    assert again.list_mappings()["mappings"] == listed


def as_wiremock_shows(mapping: dict[str, Any]) -> dict[str, Any]:
    """WireMock 3 lists a mapping with `request.method` and `response.status` filled in."""
    return {
        **mapping,
        "request": {"method": "ANY", **mapping["request"]},
        "response": {"status": 200, **mapping["response"]},
    }


def canonical(mapping: dict[str, Any]) -> str:
    return json.dumps(mapping, sort_keys=True)


garbage = st.recursive(
    json_leaf | st.floats(allow_nan=True),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "request",
                    "response",
                    "url",
                    "method",
                    "headers",
                    "bodyPatterns",
                    "equalTo",
                    "status",
                    "priority",
                    "matches",
                    "jsonBody",
                    "fault",
                    "x",
                ]
            )
            | text,
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(garbage)
def test_garbage_mappings_give_mapping_error_only(document: Any) -> None:
    engine = WireMockEngine()
    try:
        engine.add_mapping(document)
    except MappingError as exc:
        assert str(exc)
    try:
        engine.import_mappings(document)
    except MappingError as exc:
        assert str(exc)


@settings(max_examples=300, deadline=None)
@given(garbage)
def test_garbage_matchers_give_mapping_error_only(spec: Any) -> None:
    try:
        matcher = parse_value_matcher(spec, "m")
    except MappingError:
        return
    matcher.match("probe")
    matcher.match(None)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_value, max_size=6), st.randoms(use_true_random=False))
def test_ignore_array_order_accepts_every_permutation(items: list[Any], rnd: Any) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    matcher = parse_value_matcher({"equalToJson": {"list": items}, "ignoreArrayOrder": True}, "m")
    assert matcher.match(json.dumps({"list": shuffled})) == 0
    if items:
        assert matcher.match(json.dumps({"list": shuffled[1:]})) > 0


requests_ = st.tuples(
    st.sampled_from(["GET", "POST", "PUT"]),
    st.from_regex(
        r"/[a-z0-9/]{0,8}(\?[a-z]=[a-z0-9]{0,3}(&[a-z]=[a-z0-9]{0,3})?)?", fullmatch=True
    ),
    st.lists(st.tuples(names, text), max_size=3),
    st.one_of(st.just(b""), text.map(str.encode), json_value.map(lambda v: json.dumps(v).encode())),
)


@settings(max_examples=300, deadline=None)
@given(mappings(), requests_)
def test_fast_match_agrees_with_the_distance(mapping: dict[str, Any], request: Any) -> None:
    """Serving uses is_match (no distances); near misses use match(): they must agree on exactness."""
    from testbed.wiremock.request_pattern import RequestPattern, RequestView

    pattern = RequestPattern.parse(mapping["request"])
    method, url, headers, body = request
    view = RequestView(method, url, headers, body)
    assert pattern.is_match(view) == pattern.match(view).exact


template_parts = st.sampled_from(
    [
        "{{",
        "}}",
        "{{{",
        "}}}",
        "request",
        ".",
        "[",
        "]",
        "0",
        "path",
        "query",
        "headers",
        "X",
        "a",
        "'",
        '"',
        " ",
        "=",
        "jsonPath",
        "randomValue",
        "now",
        "length=3",
        "type='UUID'",
        "$.a",
        "!",
        "--",
        "#if",
        "\\",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(template_parts, max_size=14).map("".join))
def test_garbage_templates_give_mapping_error_or_render(body: str) -> None:
    engine = WireMockEngine()
    try:
        engine.add_mapping(
            {"request": {}, "response": {"body": body, "transformers": ["response-template"]}}
        )
    except MappingError as exc:
        assert str(exc).startswith("response.body: ")
        return
    from testbed.wiremock import HttpIn

    out = engine.handle(HttpIn("POST", "/x/y?a=1", [("X", "y")], b'{"a": 1}'))
    assert out.status == 200
