"""The admin API's parsing, fuzzed: whatever arrives, a WireMock-shaped answer.

A body that is not JSON, a mapping that cannot be used, a query parameter out
of bounds or a path that names no route must each get a 4xx with WireMock's
``{"errors": [...]}`` saying what is wrong, never an exception that drops the
connection; what the API accepts it must give back as it was sent.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from testbed.wiremock.admin import AdminApi
from testbed.wiremock.engine import HttpIn, WireMockEngine
from testbed.wiremock.service import WireMockService

JSON_HEADERS = [("Host", "127.0.0.1"), ("Content-Type", "application/json")]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
SEGMENTS = [
    "mappings",
    "requests",
    "near-misses",
    "scenarios",
    "reset",
    "find",
    "count",
    "unmatched",
    "import",
    "state",
    "x",
    "",
    "%2F",
    "settings",
    "health",
]


def _api() -> AdminApi:
    return WireMockService(WireMockEngine(seed=3), "api", port=1).admin


def _errors(status: int, body: bytes) -> list[str]:
    data = json.loads(body)
    assert 400 <= status < 500, (status, data)
    return [e["title"] for e in data["errors"]]


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    parts=st.lists(st.sampled_from(SEGMENTS), max_size=4),
    body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
    query=st.text(max_size=30),
)
def test_any_admin_request_gets_an_answer_never_an_exception(
    method: str, parts: list[str], body: bytes, query: str
) -> None:
    url = "/__admin/" + "/".join(parts) + ("?" + query if query else "")
    reply = _api().handle(HttpIn(method, url, JSON_HEADERS, body))
    assert 200 <= reply.status < 500
    if reply.status >= 400:
        assert _errors(reply.status, reply.body)


@given(st.binary(max_size=200).filter(lambda b: b.strip() != b""))
def test_a_body_that_is_not_a_mapping_is_422_saying_so(body: bytes) -> None:
    reply = _api().handle(HttpIn("POST", "/__admin/mappings", JSON_HEADERS, body))
    if reply.status != 201:
        assert reply.status == 422 and _errors(reply.status, reply.body)


@given(
    st.text(min_size=1, max_size=12).filter(
        lambda t: not (t.isascii() and t.isdigit() and int(t) <= 10_000_000)
    )
)
def test_a_bad_limit_is_400_naming_it(limit: str) -> None:
    from urllib.parse import quote

    reply = _api().handle(
        HttpIn("GET", "/__admin/mappings?limit=" + quote(limit), JSON_HEADERS, b"")
    )
    assert reply.status == 400 and "limit" in _errors(reply.status, reply.body)[0]


@given(
    status=st.integers(200, 599),
    body=st.text(max_size=40),
    name=st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=10),
)
def test_a_mapping_posted_reads_back_the_same(status: int, body: str, name: str) -> None:
    api = _api()
    mapping = {
        "name": name,
        "request": {"method": "GET", "url": "/" + name},
        "response": {"status": status, "body": body},
    }
    created = api.handle(
        HttpIn("POST", "/__admin/mappings", JSON_HEADERS, json.dumps(mapping).encode())
    )
    assert created.status == 201
    got = json.loads(created.body)
    read = api.handle(HttpIn("GET", f"/__admin/mappings/{got['id']}", JSON_HEADERS, b""))
    assert json.loads(read.body) == got
    assert {k: got[k] for k in ("name", "request", "response")} == mapping
