"""gRPC through the proxy: exact counts in /metrics, one access-log line per call,
live /messages over SSE, and redaction of credentials in every output."""

from __future__ import annotations

import json
import logging
import math
import threading
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from testbed.grpc import Behaviour
from testbed.grpc.client import SyncClient
from testbed.grpc.threaded import ThreadedGrpcService
from tests.peers import ProxyThread

from .helpers import (
    access_lines,
    assert_not_in_clear,
    get,
    get_json,
    outputs,
    proxy_config,
    scrape,
    total,
)

SVC = "/protoproxy.testbed.v1.TestService/"
M = 4  # calls of each kind


@pytest.fixture(scope="module")
def grpc_server():
    with ThreadedGrpcService() as server:
        yield server


def _workload(port: int, metadata=()) -> Counter:
    """M calls of each kind plus M failing unary calls; returns what the client saw."""
    seen: Counter = Counter()
    with SyncClient.connect(f"127.0.0.1:{port}") as client:
        for i in range(M):
            calls = [
                client.unary(payload=b"x" * i, metadata=metadata, timeout=10),
                client.server_stream(Behaviour(count=3, size=10), metadata=metadata, timeout=10),
                client.client_stream(n=4, metadata=metadata, timeout=10),
                client.bidi(Behaviour(count=2), n=3, metadata=metadata, timeout=10),
                client.unary(Behaviour.make(status="NOT_FOUND"), metadata=metadata, timeout=10),
            ]
            for r in calls:
                seen[(r.method, r.code.name)] += 1
                seen[(r.method, "responses")] += len(r.responses)
    return seen


def test_grpc_counts_access_log_and_histograms_agree(grpc_server, tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    with ProxyThread(proxy_config(grpc_server.address, access_log=log_path)) as proxy:
        seen = _workload(proxy.port("front"))
        m = scrape(proxy.admin_url)
        obs = proxy.app.observe
        proxy.run(obs.access_log.flush)
        lines = access_lines(log_path)
        exchanges = m["protoproxy_exchanges_total"]

        requests_sent = {"Unary": 1, "ServerStream": 1, "ClientStream": 4, "Bidi": 3}
        for method, n_req in requests_sent.items():
            path = SVC + method
            ok = total(exchanges, listener="front", protocol="grpc", operation=path, status="OK")
            assert ok == seen[(path, "OK")] == M
            assert total(exchanges, operation=path, status="NOT_FOUND") == seen[(path, "NOT_FOUND")]
            calls = seen[(path, "OK")] + seen[(path, "NOT_FOUND")]
            assert calls > 0
            # histogram _count equals the request count (a count of samples, not a time)
            assert total(m["protoproxy_exchange_duration_seconds_count"], operation=path) == calls
            msgs = m["protoproxy_exchange_messages_total"]
            assert total(msgs, operation=path, direction="upstream") == n_req * calls
            assert total(msgs, operation=path, direction="downstream") == seen[(path, "responses")]

            # access log: one line per call, naming the upstream endpoint
            mine = [ln for ln in lines if ln["operation"] == path]
            assert len(mine) == calls
            assert {ln["upstream"] for ln in mine} == {grpc_server.address}
            assert Counter(ln["status"] for ln in mine) == Counter(
                {s: seen[(path, s)] for s in ("OK", "NOT_FOUND") if seen[(path, s)]}
            )
            # The access log and the histogram record the same measured durations:
            # their sums agree whatever the durations were (no bound on speed).
            hist_sum = total(m["protoproxy_exchange_duration_seconds_sum"], operation=path)
            assert math.isclose(sum(ln["duration"] for ln in mine), hist_sum, rel_tol=1e-9)
        assert seen[(SVC + "Unary", "NOT_FOUND")] == M
        assert len(lines) == sum(v for (p, k), v in seen.items() if k in ("OK", "NOT_FOUND"))
        for ln in lines:
            assert ln["listener"] == "front" and ln["protocol"] == "grpc"
            assert ln["downstream"].startswith("127.0.0.1:")
            # the line's shape (an epoch start, a duration), not a speed check
            assert ln["start"] > 1.7e9 and ln["duration"] >= 0


def test_live_connections_in_bytes_and_connections(grpc_server) -> None:
    with (
        ProxyThread(proxy_config(grpc_server.address)) as proxy,
        SyncClient.connect(f"127.0.0.1:{proxy.port('front')}") as client,
    ):
        assert client.unary(payload=b"z" * 1000, timeout=10).ok
        m = scrape(proxy.admin_url)
        conns = get_json(proxy.admin_url + "/connections")["connections"]
        assert len(conns) == 1
        c = conns[0]
        assert c["listener"] == "front" and c["protocol"] == "http2"
        assert c["endpoint"] == grpc_server.address and c["upstream"] == "svc"
        assert c["downstream"].startswith("127.0.0.1:")
        assert c["bytes_upstream"] > 1000 and c["bytes_downstream"] > 0
        # the connection is still open: /metrics counts its bytes anyway
        assert total(m["protoproxy_bytes_total"], direction="upstream") >= c["bytes_upstream"]
        assert total(m["protoproxy_connections_active"], listener="front") == 1


def test_messages_follow_streams_live_decoded_messages(grpc_server) -> None:
    with ProxyThread(proxy_config(grpc_server.address)) as proxy:
        url = proxy.admin_url + "/messages?follow=1&method=Unary"
        resp = urllib.request.urlopen(url, timeout=30)
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events: list[dict] = []
        done = threading.Event()

        def read() -> None:
            event = None
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "message":
                    events.append(json.loads(line[6:]))
                    if sum(1 for e in events if e.get("grpc_messages")) >= 2 * M:
                        done.set()
                        return

        assert resp.readline().startswith(b"event: hello")  # subscribed before traffic
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        with SyncClient.connect(f"127.0.0.1:{proxy.port('front')}") as client:
            for i in range(M):
                assert client.unary(payload=b"hello-%d" % i, timeout=10).ok
        assert done.wait(20), f"only {len(events)} events arrived"
        reader.join(5)
        resp.close()
        assert {e["method"] for e in events} == {SVC + "Unary"}
        payload_msgs = [g for e in events for g in e.get("grpc_messages", [])]
        shown = json.dumps(payload_msgs)
        assert "hello-0" in shown  # decoded (schemaless protobuf), not just sizes
        heads = [e for e in events if e.get("headers")]
        assert any([":path", SVC + "Unary"] in e["headers"] for e in heads)


SECRET = "Bearer s3cr3t-t0ken-value"
COOKIE = "session=c00kie-secret-value"


def test_credentials_are_redacted_everywhere(grpc_server, tmp_path: Path, caplog) -> None:
    log_path = tmp_path / "access.log"
    cfg = proxy_config(grpc_server.address, access_log=log_path)
    cfg["admin"]["token"] = "admin-t0ken-value"
    caplog.set_level(logging.DEBUG)
    with ProxyThread(cfg) as proxy:
        md = [("authorization", SECRET), ("cookie", COOKIE)]
        with SyncClient.connect(f"127.0.0.1:{proxy.port('front')}") as client:
            r = client.unary(metadata=md, timeout=10)
            assert r.ok
            # the metadata really went through the proxy to the server in clear
            assert SECRET in str(r.responses[0].metadata)
        logging.getLogger("protoproxy.test").warning("client sent authorization: %s", SECRET)
        messages = get(proxy.admin_url + "/messages").decode()
        config = get(proxy.admin_url + "/config").decode()
        proxy.run(proxy.app.observe.access_log.flush)
        assert '"authorization","<redacted>"' in messages
        assert ":path" in messages  # the headers are shown, only the values hidden
    texts = outputs(messages, config, log_path, caplog.records)
    assert_not_in_clear(texts, ("s3cr3t-t0ken-value", "c00kie-secret-value", "admin-t0ken-value"))
    assert "<redacted>" in texts["logs"]
    assert json.loads(config)["admin"]["token"] == "<redacted>"


def test_grpc_unknown_component_routes_are_valid_before_install(grpc_server) -> None:
    with ProxyThread(proxy_config(grpc_server.address)) as proxy:
        for route, key in (("/kafka/brokers", "brokers"), ("/grpc/methods", "methods")):
            body = get_json(proxy.admin_url + route)
            assert key in body or body.get("installed") is True
        ups = get_json(proxy.admin_url + "/upstreams")["upstreams"]
        assert ups[0]["endpoints"][0]["endpoint"] == grpc_server.address


def test_access_log_marks_the_fault_applied(grpc_server, tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    cfg = proxy_config(grpc_server.address, access_log=log_path)
    cfg["faults"] = [
        {
            "name": "deny-unary",
            "match": {"protocol": "grpc", "method": "Unary"},
            "action": {"abort": "UNAVAILABLE"},
        }
    ]
    with ProxyThread(cfg) as proxy:
        with SyncClient.connect(f"127.0.0.1:{proxy.port('front')}") as client:
            assert client.unary(timeout=10).code.name == "UNAVAILABLE"
            assert client.server_stream(Behaviour(count=1), timeout=10).ok
        m = scrape(proxy.admin_url)
        proxy.run(proxy.app.observe.access_log.flush)
    lines = {ln["operation"].rsplit("/", 1)[-1]: ln for ln in access_lines(log_path)}
    assert lines["Unary"]["fault"] == "deny-unary"
    assert lines["Unary"]["status"] == "UNAVAILABLE"
    assert "fault" not in lines["ServerStream"]
    assert (
        total(m["protoproxy_exchanges_total"], operation=SVC + "Unary", status="UNAVAILABLE") == 1
    )


def test_tail_shows_payloads_by_type_with_descriptors(grpc_server) -> None:
    """With descriptor sets configured, /messages shows gRPC payloads by field name;
    without them, the same payloads appear as decode_raw field numbers."""
    desc = Path(__file__).parents[3] / "fixtures" / "protos" / "testbed.desc"
    shown = {}
    for typed in (True, False):
        cfg = proxy_config(grpc_server.address)
        if typed:
            cfg["tail"]["descriptors"] = [str(desc)]
        with ProxyThread(cfg) as proxy:
            with SyncClient.connect(f"127.0.0.1:{proxy.port('front')}") as client:
                assert client.unary(payload=b"hello", timeout=10).code.name == "OK"
            body = get_json(proxy.admin_url + "/messages?protocol=grpc&method=Unary")
        displays = [g["display"] for e in body["messages"] for g in e.get("grpc_messages", [])]
        assert len(displays) == 2  # one request, one response
        shown[typed] = json.dumps(displays)
    assert '"payload"' in shown[True] and "aGVsbG8=" in shown[True]  # bytes field, by name
    assert '"payload"' not in shown[False]
