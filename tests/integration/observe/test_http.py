"""HTTP/1 through the proxy: credential headers (request and response) never show in
clear; the observe routes obey the admin token rules; component snapshots are served."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from testbed.grpc.client import SyncClient
from testbed.grpc.threaded import ThreadedGrpcService
from testbed.http import FakeHttpService
from tests.peers import ProxyThread, ServiceThread

from .helpers import (
    access_lines,
    assert_not_in_clear,
    get,
    get_json,
    outputs,
    proxy_config,
)

AUTH = "Basic YWxpY2U6aHR0cC1wYXNzd29yZA=="  # alice:http-password
COOKIE = "sid=req-c00kie-0123"
SET_COOKIE = "sid=resp-c00kie-4567; HttpOnly"


@pytest.fixture(scope="module")
def http_server():
    with ServiceThread(FakeHttpService) as server:
        server.service.route(
            "GET", "/login", status=200, body=b"hi", headers=[("set-cookie", SET_COOKIE)]
        )
        yield server


def _addr(server: ServiceThread) -> str:
    host, port = server.service.address
    return f"{host}:{port}"


def test_http1_credentials_redacted_everywhere(http_server, tmp_path: Path, caplog) -> None:
    log_path = tmp_path / "access.log"
    caplog.set_level(logging.DEBUG)
    with ProxyThread(proxy_config(_addr(http_server), protocol="http", access_log=log_path)) as p:
        req = urllib.request.Request(
            f"http://127.0.0.1:{p.port('front')}/login",
            headers={"Authorization": AUTH, "Cookie": COOKIE, "X-Plain": "visible"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.read() == b"hi"
            assert resp.headers["Set-Cookie"] == SET_COOKIE  # relayed untouched
        assert http_server.run(lambda: http_server.service.requests[-1].header(b"authorization"))
        messages = get(p.admin_url + "/messages?protocol=http").decode()
        config = get(p.admin_url + "/config").decode()
        p.run(p.app.observe.access_log.flush)
    heads = [m for m in json.loads(messages)["messages"] if m["kind"] == "head"]
    assert len(heads) == 2
    req_headers = {k.lower(): v for k, v in heads[0]["headers"]}
    resp_headers = {k.lower(): v for k, v in heads[1]["headers"]}
    assert req_headers["authorization"] == "<redacted>"
    assert req_headers["cookie"] == "<redacted>"
    assert req_headers["x-plain"] == "visible"
    assert resp_headers["set-cookie"] == "<redacted>"
    lines = access_lines(log_path)
    assert [(ln["operation"], ln["status"]) for ln in lines] == [("GET /login", "200")]
    texts = outputs(messages, config, log_path, caplog.records)
    assert_not_in_clear(
        texts, ("YWxpY2U6aHR0cC1wYXNzd29yZA", "req-c00kie-0123", "resp-c00kie-4567")
    )


def _status(url: str, token: str | None = None, method: str = "GET") -> int:
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


ROUTES = (
    "/metrics",
    "/stats",
    "/connections",
    "/upstreams",
    "/config",
    "/messages",
    "/kafka/brokers",
    "/grpc/methods",
)


def test_observe_routes_follow_the_token_rules(http_server) -> None:
    # Off loopback: every route needs the token, GET included.
    cfg = proxy_config(_addr(http_server), protocol="http")
    cfg["admin"] = {"listen": "0.0.0.0:0", "token": "tok-off-loopback"}
    with ProxyThread(cfg) as p:
        base = f"http://127.0.0.1:{p.app.admin.address[1]}"
        for route in ROUTES:
            assert _status(base + route) == 401, route
            assert _status(base + route, "wrong") == 401, route
            assert _status(base + route, "tok-off-loopback") == 200, route
    # On loopback with a token: reads are open, DELETE /messages needs it.
    cfg["admin"] = {"listen": "127.0.0.1:0", "token": "tok-loopback"}
    with ProxyThread(cfg) as p:
        for route in ROUTES:
            assert _status(p.admin_url + route) == 200, route
        assert _status(p.admin_url + "/messages", method="DELETE") == 401
        assert _status(p.admin_url + "/messages", "tok-loopback", method="DELETE") == 200


def test_component_snapshots_and_upstream_errors() -> None:
    with ThreadedGrpcService() as grpc_server:
        cfg = proxy_config(grpc_server.address)
        cfg["listeners"].append(
            {"name": "dead", "listen": "127.0.0.1:0", "protocol": "grpc", "upstream": "nowhere"}
        )
        cfg["upstreams"].append({"name": "nowhere", "endpoints": ["127.0.0.1:1"]})
        with ProxyThread(cfg) as p:
            with SyncClient.connect(f"127.0.0.1:{p.port('front')}") as client:
                assert client.unary(timeout=10).ok
            with SyncClient.connect(f"127.0.0.1:{p.port('dead')}") as client:
                assert not client.unary(timeout=5).ok
            methods = get_json(p.admin_url + "/grpc/methods")
            brokers = get_json(p.admin_url + "/kafka/brokers")
            ups = {u["name"]: u for u in get_json(p.admin_url + "/upstreams")["upstreams"]}
    assert methods["installed"] is True
    assert "Unary" in json.dumps(methods)
    assert brokers["installed"] is True
    dead = ups["nowhere"]["endpoints"][0]
    assert dead["connect_failures"].get("upstream_refused", 0) >= 1
    assert dead["errors_total"] >= 1
    ok = ups["svc"]["endpoints"][0]
    assert ok["connections_total"] >= 1 and ok["errors_total"] == 0
