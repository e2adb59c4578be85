"""The WireMock fake's socket side: framing, bounds, faults, the admin API's guard.

Each test talks raw HTTP/1.1 over loopback to a real `WireMockService`, so
what is asserted is what a client's socket sees: a fault is a RST or a
close, not a flag in an object.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from protoproxy.config_errors import ConfigError
from testbed.harness import Testbed
from testbed.journal import Journal
from testbed.scenario import Scenario
from testbed.wiremock.engine import WireMockEngine
from testbed.wiremock.service import MAX_REQUEST_BODY, WireMockService

#: Seconds any one read may take: a bound against hangs, not a speed check.
DEADLINE = 30.0

MAPPINGS = [
    {
        "request": {"method": "POST", "url": "/echo-size"},
        "response": {"status": 200, "body": "posted"},
    },
    {
        "request": {"method": "GET", "url": "/hello"},
        "response": {"status": 200, "body": "hi", "headers": {"X-Kind": "greeting"}},
    },
    {
        "request": {"method": "ANY", "url": "/any"},
        "response": {"status": 200, "body": "hi"},
    },
    {
        "request": {"method": "GET", "url": "/secret"},
        "response": {"status": 204},
    },
    {"request": {"method": "GET", "url": "/early"}, "response": {"status": 101}},
    {
        "request": {"method": "GET", "url": "/split"},
        "response": {"headers": {"X-Bad": "a\r\nInjected: yes"}},
    },
    *(
        {"request": {"method": "GET", "url": f"/fault/{f}"}, "response": {"fault": f}}
        for f in (
            "CONNECTION_RESET_BY_PEER",
            "EMPTY_RESPONSE",
            "MALFORMED_RESPONSE_CHUNK",
            "RANDOM_DATA_THEN_CLOSE",
        )
    ),
]


@pytest.fixture
async def svc(tmp_path: Path) -> WireMockService:
    for i, m in enumerate(MAPPINGS):
        (tmp_path / f"m{i}.json").write_text(json.dumps(m))
    engine = WireMockEngine(seed=1)
    engine.load_paths([str(tmp_path)])
    service = WireMockService(engine, "api", journal=Journal())
    await service.start()
    yield service  # type: ignore[misc]
    await service.stop()


async def _exchange(svc: WireMockService, raw: bytes) -> bytes:
    """Send `raw`, half-close, return every byte the fake sent until it closed."""
    reader, writer = await asyncio.open_connection(*svc.address)
    writer.write(raw)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(-1), DEADLINE)
    finally:
        writer.close()


def _get(path: str, *headers: str, method: str = "GET", close: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_keep_alive_answers_several_requests_on_one_connection(
    svc: WireMockService,
) -> None:
    raw = _get("/hello", close=False) + _get("/nowhere", close=False) + _get("/hello")
    answer = await _exchange(svc, raw)
    assert answer.count(b"HTTP/1.1 200") == 2
    assert answer.count(b"HTTP/1.1 404") == 1
    assert answer.count(b"\r\n\r\nhi") == 2
    assert svc.connections == 1
    assert [e.status for e in svc.journal.http()] == [200, 404, 200]  # type: ignore[union-attr]


async def test_chunked_and_sized_request_bodies_reach_the_engine(svc: WireMockService) -> None:
    chunked = (
        b"POST /echo-size HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    assert b"posted" in await _exchange(svc, chunked)
    sized = (
        b"POST /echo-size HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n"
        b"Connection: close\r\n\r\nwxyz"
    )
    assert b"posted" in await _exchange(svc, sized)
    bodies = [e.body for e in svc.journal.http(method="POST")]  # type: ignore[union-attr]
    assert bodies == ["abcde", "wxyz"]
    logged = svc.engine.requests()["requests"]
    assert sorted(r["request"]["body"] for r in logged) == ["abcde", "wxyz"]


async def test_head_gets_the_headers_and_no_body(svc: WireMockService) -> None:
    answer = await _exchange(svc, _get("/any", method="HEAD"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 2" in head.lower()
    assert body == b""


async def test_a_declared_body_over_the_bound_is_refused_before_it_is_sent(
    svc: WireMockService,
) -> None:
    head = (
        f"POST /echo-size HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
        f"Content-Length: {MAX_REQUEST_BODY + 1}\r\n\r\n"
    ).encode()
    answer = await _exchange(svc, head)
    assert answer.startswith(b"HTTP/1.1 413")
    assert svc.journal.http().count() == 0  # type: ignore[union-attr]


async def test_a_chunked_body_over_the_bound_is_cut_off_413(svc: WireMockService) -> None:
    n = MAX_REQUEST_BODY + 1
    head = b"POST /echo-size HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    reader, writer = await asyncio.open_connection(*svc.address)
    writer.write(head + b"%x\r\n" % n)
    block = b"x" * (1 << 20)
    for sent in range(0, n, len(block)):
        writer.write(block[: n - sent])  # the chunk's data only: nothing left unread
        await writer.drain()
    answer = await asyncio.wait_for(reader.read(-1), DEADLINE)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 413")
    assert svc.journal.http().count() == 0  # type: ignore[union-attr]


async def test_connection_reset_by_peer_is_a_rst(svc: WireMockService) -> None:
    reader, writer = await asyncio.open_connection(*svc.address)
    writer.write(_get("/fault/CONNECTION_RESET_BY_PEER"))
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(-1), DEADLINE)
    writer.close()


async def test_empty_response_closes_with_no_bytes(svc: WireMockService) -> None:
    assert await _exchange(svc, _get("/fault/EMPTY_RESPONSE")) == b""


async def test_malformed_chunk_sends_a_head_then_garbage_framed_as_jetty_does(
    svc: WireMockService,
) -> None:
    keep_alive = await _exchange(svc, _get("/fault/MALFORMED_RESPONSE_CHUNK", close=False))
    assert keep_alive == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nlskdu018973t09sylgasjkfg1][]'./.sdlv"
    )
    closing = await _exchange(svc, _get("/fault/MALFORMED_RESPONSE_CHUNK"))
    assert closing == (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nlskdu018973t09sylgasjkfg1][]'./.sdlv"
    )


async def test_random_data_then_close_is_not_http(svc: WireMockService) -> None:
    answer = await _exchange(svc, _get("/fault/RANDOM_DATA_THEN_CLOSE"))
    assert answer and not answer.startswith(b"HTTP/")
    entry = svc.journal.http(path="/fault/RANDOM_DATA_THEN_CLOSE")[0]  # type: ignore[union-attr]
    assert entry.status == 0 and entry.matched


async def test_the_journal_redacts_secrets_but_wiremock_keeps_them(svc: WireMockService) -> None:
    raw = _get("/secret", "Authorization: Bearer s3cr3t", "Cookie: sid=42")
    assert (await _exchange(svc, raw)).startswith(b"HTTP/1.1 204")
    entry = svc.journal.http(path="/secret")[0]  # type: ignore[union-attr]
    assert entry.headers["authorization"] == "[redacted]"
    assert entry.headers["cookie"] == "[redacted]"
    assert "s3cr3t" not in json.dumps(entry.to_json())


def _admin(method: str, path: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} /__admin/{path} HTTP/1.1", *headers, "Connection: close"]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (("Host: attacker.example",), b"rebinding"),
        (("Host: 127.0.0.1", "Origin: http://attacker.example"), b"other sites"),
        (("Host: 127.0.0.1", "Sec-Fetch-Site: cross-site"), b"another site"),
        (("Host: 127.0.0.1", "Content-Type: text/plain"), b"application/json"),
    ],
)
async def test_admin_refuses_what_a_web_page_could_send(
    svc: WireMockService, headers: tuple[str, ...], why: bytes
) -> None:
    body = json.dumps({"request": {"url": "/evil"}, "response": {"status": 200}}).encode()
    answer = await _exchange(svc, _admin("POST", "mappings", *headers, body=body))
    assert answer.startswith(b"HTTP/1.1 403") and why in answer
    assert all(m["request"].get("url") != "/evil" for m in svc.engine.list_mappings()["mappings"])


async def test_admin_answers_its_own_origin_and_json(svc: WireMockService) -> None:
    host = f"127.0.0.1:{svc.port}"
    body = json.dumps({"request": {"url": "/ok"}, "response": {"status": 200}}).encode()
    headers = (f"Host: {host}", f"Origin: http://{host}", "Content-Type: application/json")
    answer = await _exchange(svc, _admin("POST", "mappings", *headers, body=body))
    assert answer.startswith(b"HTTP/1.1 201")


async def test_shutdown_is_refused_and_unknown_routes_are_404(svc: WireMockService) -> None:
    answer = await _exchange(svc, _admin("POST", "shutdown", "Host: 127.0.0.1"))
    assert answer.startswith(b"HTTP/1.1 403") and b"testbed" in answer
    assert (await _exchange(svc, _get("/hello"))).startswith(b"HTTP/1.1 200")
    assert (await _exchange(svc, _admin("GET", "nope", "Host: 127.0.0.1"))).startswith(
        b"HTTP/1.1 404"
    )
    bad = _admin("POST", "mappings", "Host: 127.0.0.1", "Content-Type: application/json", body=b"{")
    answer = await _exchange(svc, bad)
    assert answer.startswith(b"HTTP/1.1 422") and b"not JSON" in answer


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("{not json", "bad.json"),
        (json.dumps({"request": {"bodyPatterns": [{"equalTox": "a"}]}}), "bodyPatterns"),
    ],
)
async def test_a_bad_mapping_file_stops_start_up_naming_it(
    tmp_path: Path, content: str, where: str
) -> None:
    (tmp_path / "bad.json").write_text(content)
    scenario = Scenario.ephemeral(
        kafka={"enabled": False},
        grpc={"enabled": False},
        echo={"enabled": False},
        http={"services": [{"name": "api", "mappings": [str(tmp_path)]}]},
    )
    with pytest.raises(ConfigError) as caught:
        async with Testbed(scenario):
            pass
    text = str(caught.value)
    assert "http.services[0].mappings" in text and "bad.json" in text and where in text


def _json_answer(answer: bytes) -> tuple[int, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else None


async def test_import_scenarios_settings_health_and_version(svc: WireMockService) -> None:
    own = ("Host: 127.0.0.1", "Content-Type: application/json")
    stateful = {
        "mappings": [
            {
                "scenarioName": "cart",
                "requiredScenarioState": "Started",
                "request": {"method": "GET", "url": "/cart"},
                "response": {"body": "empty"},
            },
            {
                "scenarioName": "cart",
                "requiredScenarioState": "full",
                "request": {"method": "GET", "url": "/cart"},
                "response": {"body": "one item"},
            },
        ]
    }
    body = json.dumps(stateful).encode()
    assert (await _exchange(svc, _admin("POST", "mappings/import", *own, body=body))).startswith(
        b"HTTP/1.1 200"
    )
    assert (await _exchange(svc, _get("/cart"))).endswith(b"empty")
    state = json.dumps({"state": "full"}).encode()
    answer = await _exchange(svc, _admin("PUT", "scenarios/cart/state", *own, body=state))
    assert answer.startswith(b"HTTP/1.1 200")
    assert (await _exchange(svc, _get("/cart"))).endswith(b"one item")
    status, listed = _json_answer(await _exchange(svc, _admin("GET", "scenarios", *own)))
    assert status == 200 and [(s["name"], s["state"]) for s in listed["scenarios"]] == [  # type: ignore[index]
        ("cart", "full")
    ]
    answer = await _exchange(svc, _admin("PUT", "scenarios/nope/state", *own, body=state))
    assert answer.startswith(b"HTTP/1.1 404")

    delay = json.dumps({"fixedDelay": 5}).encode()
    assert (await _exchange(svc, _admin("POST", "settings", *own, body=delay))).startswith(
        b"HTTP/1.1 200"
    )
    assert svc.global_delay_s == 0.005
    status, settings = _json_answer(await _exchange(svc, _admin("GET", "settings", *own)))
    assert (status, settings) == (200, {"settings": {"fixedDelay": 5}})
    odd = json.dumps({"proxyPassThrough": False}).encode()
    answer = await _exchange(svc, _admin("POST", "settings", *own, body=odd))
    assert answer.startswith(b"HTTP/1.1 422") and b"proxyPassThrough" in answer
    assert (await _exchange(svc, _admin("POST", "reset", *own))).startswith(b"HTTP/1.1 200")
    assert svc.global_delay_s == 0

    status, health = _json_answer(await _exchange(svc, _admin("GET", "health", *own)))
    assert status == 200 and health["status"] == "healthy"  # type: ignore[index]
    status, version = _json_answer(await _exchange(svc, _admin("GET", "version", *own)))
    assert status == 200 and version["version"].startswith("3.")  # type: ignore[index]


@pytest.mark.parametrize("path", ["/early", "/split"])
async def test_a_stub_answer_that_is_not_http_is_a_500_saying_why(
    svc: WireMockService, path: str
) -> None:
    answer = await _exchange(svc, _get(path))
    assert answer.startswith(b"HTTP/1.1 500") and b"not valid HTTP/1.1" in answer
    assert b"Injected: yes\r\n" not in answer


def test_every_bad_service_is_named_at_once(tmp_path: Path) -> None:
    from testbed.setup_http_fakes import load_engines

    (tmp_path / "bad.json").write_text('{"request": {"method": 7}}')
    scenario = Scenario.ephemeral(
        http={
            "services": [
                {"name": "good", "mappings": []},
                {"name": "typo", "mappings": [str(tmp_path / "bad.json")]},
                {"name": "gone", "mappings": [str(tmp_path / "nowhere")]},
            ]
        }
    )
    with pytest.raises(ConfigError) as caught:
        load_engines(scenario)
    paths = [(p, m.split(":")[0]) for p, m in caught.value.problems]
    assert paths == [
        ("http.services[1].mappings", str(tmp_path / "bad.json")),
        ("http.services[2].mappings", str(tmp_path / "nowhere")),
    ]
    assert "request.method" in caught.value.problems[0][1]
