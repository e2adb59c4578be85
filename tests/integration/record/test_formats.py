"""The recorder's small parsers and encoders, driven by hypothesis.

De-chunking, the body forms of a mapping, seed-line fields and scenario
service names each round-trip (or stay inside their grammar) for any input.
"""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy.record.capture import dechunk
from protoproxy.record.model import HttpExchange
from protoproxy.record.redact import REDACTED, Redactor
from protoproxy.record.scenario_file import service_name
from protoproxy.record.wiremock import build_mapping

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


def _chunked(parts: list[bytes], ext: bool) -> bytes:
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(p), b";x=1" if ext else b"", p) for p in parts if p)
    return out + b"0\r\n\r\n"


@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_dechunk_gives_back_the_payload(parts: list[bytes], ext: bool) -> None:
    assert dechunk(_chunked(parts, ext)) == b"".join(parts)


@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=1000))
def test_a_response_body_is_kept_exactly_in_one_of_three_forms(body: bytes, inline: int) -> None:
    ex = HttpExchange("GET", "/x", [], b"", 200, [("content-type", "x/y")], body)
    mapping, file_bytes = build_mapping(ex, Redactor([]), inline, "f.body")
    resp = mapping["response"]
    if file_bytes is not None:
        assert resp["bodyFileName"] == "f.body" and file_bytes == body
    elif "body" in resp:
        assert resp["body"].encode() == body
    elif "base64Body" in resp:
        assert base64.b64decode(resp["base64Body"]) == body
    else:
        assert body == b""
    json.dumps(mapping)  # always JSON


@given(st.binary(min_size=1, max_size=500))
def test_a_request_body_pattern_matches_the_bytes_sent(body: bytes) -> None:
    ex = HttpExchange("POST", "/x", [], body, 200, [], b"")
    [pattern] = build_mapping(ex, Redactor([]), 4096, "f")[0]["request"]["bodyPatterns"]
    if "binaryEqualTo" in pattern:
        assert base64.b64decode(pattern["binaryEqualTo"]) == body
    elif "equalTo" in pattern:
        assert pattern["equalTo"].encode() == body
    else:
        assert pattern["equalToJson"] == json.loads(body)


@given(st.lists(st.text(max_size=80), max_size=6))
def test_service_names_fit_the_scenario_grammar_and_differ(names: list[str]) -> None:
    taken: set[str] = set()
    out = [service_name(n, taken) for n in names]
    assert all(_NAME.match(n) for n in out)
    assert len(set(out)) == len(out)
    assert not {"grpc", "http", "kafka", "echo", "admin"} & set(out)


@given(st.sampled_from(["Authorization", "set-cookie", "X-Api-Key", "x-my-token", "db-password"]))
def test_secret_headers_are_redacted_unless_kept(name: str) -> None:
    assert Redactor([]).value(name, "v") == REDACTED
    assert Redactor([name.upper()]).value(name, "v") == "v"
    assert Redactor([]).value("x-trace", "v") == "v"


def test_seed_lines_carry_binary_headers_and_bad_ones_are_named() -> None:
    from testbed.kafka.seeds import SeedError, parse_record

    rec = parse_record({"headers": {"a": "x", "n": None}, "headers_b64": {"b": "AQI="}}, 1)
    assert rec.headers == (("a", b"x"), ("n", None), ("b", b"\x01\x02"))
    for bad, field in [
        ({"headers_b64": {"b": "%%"}}, "headers_b64.b"),
        ({"headers_b64": [1]}, "headers_b64"),
    ]:
        with pytest.raises(SeedError) as err:
            parse_record(bad, 1)
        assert err.value.field == field
