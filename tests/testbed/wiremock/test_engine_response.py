"""Response fields, templating, delays and faults, as WireMock renders them."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from testbed.wiremock import MappingError, WireMockEngine

from .conftest import FIXED_NOW, call, stub


def test_status_message_headers_and_stub_id(engine: WireMockEngine) -> None:
    mapping_id = stub(
        engine,
        {"url": "/r"},
        {
            "status": 418,
            "statusMessage": "Teapot",
            "headers": {"A": "1", "B": ["2", "3"]},
            "body": "x",
        },
        name="the teapot",
    )
    out = call(engine, url="/r")
    assert (out.status, out.status_message, out.body) == (418, "Teapot", b"x")
    assert ("A", "1") in out.headers
    assert [v for k, v in out.headers if k == "B"] == ["2", "3"]
    assert ("Matched-Stub-Id", mapping_id) in out.headers
    assert ("Matched-Stub-Name", "the teapot") in out.headers
    assert out.mapping_id == mapping_id


def test_default_response_is_200_empty(engine: WireMockEngine) -> None:
    engine.add_mapping({"request": {"url": "/e"}})
    out = call(engine, url="/e")
    assert (out.status, out.body) == (200, b"")


def test_base64_and_json_bodies(engine: WireMockEngine) -> None:
    stub(engine, {"url": "/bin"}, {"base64Body": base64.b64encode(b"\x00\xff").decode()})
    stub(engine, {"url": "/json"}, {"jsonBody": {"a": [1, "é"]}})
    assert call(engine, url="/bin").body == b"\x00\xff"
    assert json.loads(call(engine, url="/json").body) == {"a": [1, "é"]}


def test_body_file_from_the_mappings_root(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "__files" / "sub").mkdir(parents=True)
    (tmp_path / "__files" / "sub" / "b.txt").write_bytes(b"file body")
    (tmp_path / "mappings" / "a.json").write_text(
        json.dumps({"request": {"url": "/f"}, "response": {"bodyFileName": "sub/b.txt"}})
    )
    engine = WireMockEngine()
    assert engine.load_paths([tmp_path / "mappings"]) == 1
    assert call(engine, url="/f").body == b"file body"


def test_missing_body_file_is_a_500_naming_it(engine: WireMockEngine) -> None:
    stub(engine, {"url": "/f"}, {"bodyFileName": "nope.txt"})
    out = call(engine, url="/f")
    assert out.status == 500
    assert b"nope.txt" in out.body


def test_body_file_cannot_leave_files_root(engine: WireMockEngine) -> None:
    with pytest.raises(
        MappingError, match=re.escape("response.bodyFileName: '../x' leaves __files/")
    ):
        engine.add_mapping({"request": {}, "response": {"bodyFileName": "../x"}})


def test_delays_are_seeded_and_add_up() -> None:
    def draws(seed: int) -> list[float]:
        engine = WireMockEngine(seed=seed)
        stub(
            engine,
            {"url": "/u"},
            {
                "fixedDelayMilliseconds": 100,
                "delayDistribution": {"type": "uniform", "lower": 10, "upper": 20},
            },
        )
        stub(
            engine,
            {"url": "/l"},
            {"delayDistribution": {"type": "lognormal", "median": 50, "sigma": 0.5}},
        )
        stub(engine, {"url": "/f"}, {"delayDistribution": {"type": "fixed", "milliseconds": 30}})
        return [call(engine, url=u).delay_s for u in ("/u", "/u", "/l", "/l", "/f")]

    first = draws(3)
    assert first == draws(3)
    assert all(0.110 <= d <= 0.120 for d in first[:2])
    assert all(d > 0 for d in first[2:4])
    assert first[4] == pytest.approx(0.030)
    assert draws(4) != first


def test_lognormal_max_value_caps_the_draw() -> None:
    engine = WireMockEngine(seed=0)
    spec = {"type": "lognormal", "median": 100, "sigma": 3, "maxValue": 120}
    stub(engine, {"url": "/l"}, {"delayDistribution": spec})
    assert all(call(engine, url="/l").delay_s <= 0.120 for _ in range(50))
    with pytest.raises(MappingError, match="maxValue: must be at least the median"):
        stub(engine, {"url": "/m"}, {"delayDistribution": {**spec, "maxValue": 50}})


@pytest.mark.parametrize(
    "fault",
    [
        "CONNECTION_RESET_BY_PEER",
        "EMPTY_RESPONSE",
        "MALFORMED_RESPONSE_CHUNK",
        "RANDOM_DATA_THEN_CLOSE",
    ],
)
def test_faults_are_passed_to_the_server(engine: WireMockEngine, fault: str) -> None:
    stub(engine, {"url": "/x"}, {"fault": fault})
    assert call(engine, url="/x").fault == fault


def templated(engine: WireMockEngine, body: str, headers: dict[str, str] | None = None) -> None:
    stub(
        engine,
        {"urlPathPattern": "/t/.*"},
        {"body": body, "headers": headers or {}, "transformers": ["response-template"]},
    )


def test_template_request_fields(engine: WireMockEngine) -> None:
    templated(
        engine,
        "{{request.method}}|{{request.path}}|{{request.path.[0]}}|{{request.pathSegments.[1]}}|{{request.url}}"
        "|{{request.query.a}}|{{request.query.a.[1]}}|{{request.headers.X-Id}}|{{request.cookies.c}}|{{request.body}}"
        "|{{request.missing}}|{{{request.method}}}|{{! a comment }}",
        {"X-Back": "{{request.headers.x-id}}"},
    )
    out = call(engine, "POST", "/t/two?a=1&a=2", {"X-Id": "h", "Cookie": "c=v"}, "B")
    assert out.body == b"POST|/t/two|t|two|/t/two?a=1&a=2|1|2|h|v|B||POST|"
    assert ("X-Back", "h") in out.headers


def test_template_json_path(engine: WireMockEngine) -> None:
    templated(
        engine,
        "{{jsonPath request.body '$.a.b'}}|{{jsonPath request.body '$.a'}}|{{jsonPath request.body '$.zz'}}",
    )
    out = call(engine, "POST", "/t/j", body='{"a": {"b": 5}}')
    assert out.body == b'5|{\n  "b" : 5\n}|'


def test_template_random_value_is_seeded() -> None:
    def render(seed: int) -> bytes:
        engine = WireMockEngine(seed=seed)
        templated(
            engine,
            "{{randomValue length=10 type='ALPHANUMERIC'}} {{randomValue type='UUID'}} {{randomValue length=3 type='NUMERIC'}}",
        )
        return call(engine, url="/t/r").body

    text = render(1).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{10} [0-9a-f-]{36} [0-9]{3}", text)
    assert render(1) == render(1)
    assert render(1) != render(2)


def test_template_now(engine: WireMockEngine) -> None:
    templated(
        engine,
        "{{now}}|{{now format='yyyy-MM-dd HH:mm'}}|{{now offset='1 days' format='dd'}}|{{now format='epoch'}}",
    )
    assert (
        call(engine, url="/t/n").body.decode()
        == f"2026-12-02T04:30:00Z|2026-12-02 04:30|03|{int(FIXED_NOW.timestamp() * 1000)}"
    )


def test_templating_is_local_by_default_and_global_when_asked() -> None:
    local = WireMockEngine()
    stub(local, {"url": "/p"}, {"body": "{{request.url}}"})
    assert call(local, url="/p").body == b"{{request.url}}"
    everywhere = WireMockEngine(global_templating=True)
    stub(everywhere, {"url": "/p"}, {"body": "{{request.url}}"})
    assert call(everywhere, url="/p").body == b"/p"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{{#if request.body}}x{{/if}}", "block and partial helpers are not supported"),
        ("{{upper request.body}}", "unknown helper 'upper'"),
        ("{{randomValue type='ALPHANUMERIC'}}", "randomValue needs length=N"),
        ("{{randomValue length=9999999}}", "randomValue length must be"),
        ("{{jsonPath request.body}}", "jsonPath takes a value and a JSONPath string"),
        ("{{}}", "empty {{ }}"),
    ],
)
def test_bad_templates_fail_at_load(engine: WireMockEngine, body: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        templated(engine, body)
    assert message in str(caught.value)
    assert str(caught.value).startswith("response.body: ")


def test_template_output_is_bounded(engine: WireMockEngine) -> None:
    templated(engine, "{{request.body}}" * 64)
    out = call(engine, "POST", "/t/big", body="x" * 100_000)
    assert out.status == 500
    assert b"template output over" in out.body


def test_template_json_path_prints_as_wiremock(engine: WireMockEngine) -> None:
    """WireMock 3.13.2's answers: a null is empty, an object pretty without its null fields."""
    templated(
        engine,
        "{{jsonPath request.body '$.n'}}|{{jsonPath request.body '$.o'}}|{{jsonPath request.body '$.l'}}",
    )
    out = call(
        engine, "POST", "/t/j", body='{"n": null, "o": {"k": [1, {"z": null}]}, "l": [3, 4]}'
    )
    assert out.body == b'|{\n  "k" : [ 1, { } ]\n}|[3,4]'
