"""A bad mapping fails at load with the file and the path inside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testbed.wiremock import MappingError, WireMockEngine
from testbed.wiremock.mapping import MAX_MAPPING_FILE_BYTES


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"request": {"bodyPatterns": [{"equalTox": "a"}]}},
            "request.bodyPatterns[0]: unknown matcher 'equalTox'",
        ),
        ({"response": {}}, "request: missing"),
        ({"request": {}, "respones": {}}, "respones: unknown field"),
        ({"request": {"urll": "/"}}, "request.urll: unknown field"),
        ({"request": {"url": "/a", "urlPath": "/a"}}, "request: only one of url, urlPath"),
        ({"request": {"url": 3}}, "request.url: must be a string"),
        ({"request": {"urlPattern": "("}}, "request.urlPattern.matches: bad regex"),
        ({"request": {"headers": []}}, "request.headers: must be an object of name: matcher"),
        (
            {"request": {"headers": {"X": {"equalTo": 1}}}},
            "request.headers.X: equalTo takes a string",
        ),
        (
            {"request": {"queryParameters": {"q": "x"}}},
            "request.queryParameters.q: a matcher must be an object",
        ),
        ({"request": {"bodyPatterns": {}}}, "request.bodyPatterns: must be a list of matchers"),
        ({"request": {"formParameters": {}}}, "request.formParameters: not supported"),
        ({"request": {}, "priority": 0}, "priority: must be between 1 and"),
        ({"request": {}, "priority": "1"}, "priority: must be an integer"),
        ({"request": {}, "requiredScenarioState": "x"}, "scenarioName: required with"),
        ({"request": {}, "response": {"status": "200"}}, "response.status: must be an integer"),
        (
            {"request": {}, "response": {"body": "a", "jsonBody": {}}},
            "response: only one of body, jsonBody",
        ),
        (
            {"request": {}, "response": {"body": {"a": 1}}},
            "response.body: must be a string (use jsonBody for JSON)",
        ),
        (
            {"request": {}, "response": {"base64Body": "!!"}},
            "response.base64Body: must be base64 text",
        ),
        ({"request": {}, "response": {"fault": "BOOM"}}, "response.fault: unknown fault 'BOOM'"),
        (
            {"request": {}, "response": {"transformers": ["other"]}},
            "response.transformers[0]: unknown transformer 'other'",
        ),
        (
            {"request": {}, "response": {"headers": {"A": {"x": 1}}}},
            "response.headers.A: must be a string",
        ),
        (
            {"request": {}, "response": {"fixedDelayMilliseconds": -1}},
            "response.fixedDelayMilliseconds: must be between",
        ),
        (
            {"request": {}, "response": {"delayDistribution": {"type": "poisson"}}},
            "response.delayDistribution.type: unknown distribution",
        ),
        (
            {"request": {}, "response": {"delayDistribution": {"type": "uniform", "lower": 5}}},
            "response.delayDistribution.upper: missing",
        ),
        (
            {
                "request": {},
                "response": {"delayDistribution": {"type": "uniform", "lower": 5, "upper": 1}},
            },
            "lower is above upper",
        ),
        (
            {
                "request": {},
                "response": {
                    "delayDistribution": {"type": "lognormal", "median": 5, "sigma": 1, "x": 1}
                },
            },
            "delayDistribution.x: unknown field",
        ),
        (
            {"request": {}, "response": {"proxyBaseUrl": "http://x"}},
            "response.proxyBaseUrl: not supported",
        ),
        (
            {
                "request": {},
                "response": {"body": "{{nope x}}", "transformers": ["response-template"]},
            },
            "response.body: unknown helper 'nope'",
        ),
        ([1], "a mapping must be a JSON object"),
    ],
)
def test_errors_name_file_and_path(tmp_path: Path, mapping: Any, message: str) -> None:
    path = tmp_path / "mappings" / "a.json"
    path.parent.mkdir()
    path.write_text(json.dumps(mapping))
    with pytest.raises(MappingError) as caught:
        WireMockEngine().load_paths([tmp_path / "mappings"])
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_wrapped_files_name_the_index(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"mappings": [{"request": {}}, {"request": {"method": 1}}]}))
    with pytest.raises(
        MappingError, match=r"many\.json: mappings\[1\]\.request\.method: must be a method name"
    ):
        WireMockEngine().load_paths([path])


def test_not_json_and_missing_paths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(MappingError, match=r"bad\.json: not JSON"):
        WireMockEngine().load_paths([bad])
    with pytest.raises(MappingError, match="no such file or folder"):
        WireMockEngine().load_paths([tmp_path / "absent"])


def test_file_size_is_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(MAX_MAPPING_FILE_BYTES + 1)
    with pytest.raises(MappingError, match=r"big\.json: .* bytes \(limit"):
        WireMockEngine().load_paths([big])


def test_mapping_count_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from testbed.wiremock import engine as engine_module

    monkeypatch.setattr(engine_module, "MAX_MAPPINGS", 3)
    path = tmp_path / "four.json"
    path.write_text(json.dumps({"mappings": [{"request": {}}] * 4}))
    with pytest.raises(MappingError, match="more than 3 mappings"):
        WireMockEngine().load_paths([path])
    engine = WireMockEngine()
    for _ in range(3):
        engine.add_mapping({"request": {}})
    with pytest.raises(MappingError, match="more than 3 mappings"):
        engine.add_mapping({"request": {}})


def test_admin_errors_name_the_path_without_a_file() -> None:
    with pytest.raises(MappingError) as caught:
        WireMockEngine().add_mapping({"request": {"headers": {"X": {"matches": "["}}}})
    assert str(caught.value).startswith("request.headers.X.matches: bad regex")
