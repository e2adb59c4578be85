"""Admin request bodies are bounded: a body too deep or too large is a clear
400/413 with JSON `error`, never a 500 with a traceback, on every route that
reads one; and the proxy keeps serving afterwards."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy.admin.body import MAX_BYTES, MAX_DEPTH, nesting_depth
from protoproxy.app import App
from protoproxy.config import from_dict

#: (method, path) of every admin route that reads a JSON body
BODY_ROUTES = [
    ("POST", "/faults"),
    ("PUT", "/faults/x"),
    ("POST", "/faults/reset"),
    ("PUT", "/faults/seed"),
    ("POST", "/listeners"),
    ("POST", "/proxies"),
    ("POST", "/populate"),
    ("POST", "/proxies/t"),
    ("POST", "/proxies/t/toxics"),
]

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
async def admin_url() -> AsyncIterator[str]:
    config = from_dict(
        {
            "admin": {"listen": "127.0.0.1:0"},
            "listeners": [
                {"name": "t", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}
            ],
            "upstreams": [{"name": "u", "endpoints": ["127.0.0.1:1"]}],
        }
    )
    app = App(config)
    await app.start()
    try:
        assert app.admin is not None
        yield "http://{}:{}".format(*app.admin.address)
    finally:
        await app.stop(0)


async def _send(url: str, method: str, body: bytes) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        headers = {"Content-Type": "application/json"}
        async with session.request(method, url, data=body, headers=headers) as resp:
            return resp.status, json.loads(await resp.read())


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_a_deep_body_is_a_400_without_a_traceback(
    admin_url: str, method: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    status, body = await _send(admin_url + path, method, DEEP)
    assert status == 400, body
    assert f"deeper than {MAX_DEPTH}" in body["error"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    # still serving, and a well-formed body on the same route still works
    status, _ = await _send(admin_url + "/faults/reset", "POST", b'{"seed": 3}')
    assert status == 200


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_a_10_mib_body_is_a_413_without_a_traceback(
    admin_url: str, method: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    big = b'{"name": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    status, body = await _send(admin_url + path, method, big)
    assert status == 413, body
    assert str(MAX_BYTES) in body["error"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    async with aiohttp.ClientSession() as session, session.get(admin_url + "/healthz") as resp:
        assert resp.status == 200


async def test_a_chunked_body_is_cut_off_at_the_limit(admin_url: str) -> None:
    """No Content-Length: the limit holds while reading, not only from the header."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3 * MAX_BYTES // 65536):
            yield b" " * 65536

    headers = {"Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(admin_url + "/faults", data=chunks(), headers=headers) as resp,
    ):
        assert resp.status == 413
        assert "larger than" in (await resp.json())["error"]


async def test_the_error_shapes_stay_those_of_each_api(admin_url: str) -> None:
    """Native routes keep `problems`; Toxiproxy routes keep `status` (toxiproxy-python
    maps the status it reads)."""
    _, native = await _send(admin_url + "/faults", "POST", DEEP)
    assert native["problems"] == [native["error"]]
    _, toxi = await _send(admin_url + "/proxies", "POST", DEEP)
    assert toxi["status"] == 400
    _, listener = await _send(admin_url + "/listeners", "POST", b"[1,")
    assert listener["error"].startswith("body is not JSON")


async def test_nesting_within_the_limit_and_brackets_in_strings_are_accepted(
    admin_url: str,
) -> None:
    nested: object = []
    for _ in range(MAX_DEPTH - 2):  # the object and the innermost list: MAX_DEPTH levels
        nested = [nested]
    body = json.dumps({"seed": 5, "x": nested}).encode()
    assert nesting_depth(body, 10 * MAX_DEPTH) == MAX_DEPTH
    status, reply = await _send(admin_url + "/faults/seed", "PUT", body)
    assert (status, reply) == (200, {"seed": 5})
    too_deep = json.dumps({"seed": 5, "x": [nested]}).encode()
    status, _ = await _send(admin_url + "/faults/seed", "PUT", too_deep)
    assert status == 400
    # brackets inside a string do not count as nesting
    body = json.dumps({"seed": 6, "note": "[" * 10_000}).encode()
    status, reply = await _send(admin_url + "/faults/seed", "PUT", body)
    assert (status, reply) == (200, {"seed": 6})


@given(
    st.recursive(
        st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_the_depth_scan_agrees_with_the_document(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0

    assert nesting_depth(json.dumps(value).encode(), 10_000) == depth(value)
