"""Answers a fault made up reach /messages, marked injected with the fault's name,
and the message that triggered them is marked as never forwarded: gRPC and HTTP/1
here (the Kafka case is in test_kafka_tail.py)."""

from __future__ import annotations

import urllib.error
import urllib.request

import grpc
import pytest

from testbed.grpc import Behaviour
from testbed.grpc.client import SyncClient
from testbed.grpc.threaded import ThreadedGrpcService
from testbed.http import FakeHttpService
from tests.peers import ProxyThread, ServiceThread

from .helpers import get_json, proxy_config

SVC = "/protoproxy.testbed.v1.TestService/"


@pytest.fixture(scope="module")
def grpc_server():
    with ThreadedGrpcService() as server:
        yield server


def test_a_grpc_abort_shows_its_trailers_only_answer_marked_injected(grpc_server) -> None:
    fault = {
        "name": "quota",
        "match": {"protocol": "grpc", "method": "Unary"},
        "action": {"abort": {"status": "RESOURCE_EXHAUSTED", "message": "slow down"}},
    }
    with ProxyThread(proxy_config(grpc_server.address, faults=[fault])) as proxy:
        with SyncClient.connect(f"127.0.0.1:{proxy.port('front')}") as client:
            r = client.unary(Behaviour.make(size=3), timeout=10)
        messages = get_json(proxy.admin_url + "/messages?method=Unary")["messages"]
    assert r.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    start = [m for m in messages if m["kind"] == "headers" and m["direction"] == "upstream"]
    assert len(start) == 1
    assert start[0]["forwarded"] is False and start[0]["fault"] == "quota"
    made_up = [m for m in messages if m.get("injected")]
    assert len(made_up) == 1  # the call start was never forwarded: no RST_STREAM upstream
    (answer,) = made_up
    assert answer["direction"] == "downstream" and answer["kind"] == "headers"
    assert answer["fault"] == "quota" and answer["method"] == SVC + "Unary"
    assert answer["info"]["end_stream"] is True
    headers = dict(answer["headers"])
    assert headers[":status"] == "200" and headers["grpc-status"] == "8"
    assert headers["grpc-message"] == "slow down"
    assert "injected" not in answer["info"] and "not_forwarded" not in start[0]["info"]
    assert messages.index(start[0]) < messages.index(answer)


def test_a_grpc_abort_mid_call_shows_the_reset_sent_upstream(grpc_server) -> None:
    fault = {
        "name": "mid",
        "match": {
            "protocol": "grpc",
            "method": "Bidi",
            "direction": "upstream",
            "message_index": 0,
        },
        "action": {"abort": {"status": "UNAUTHENTICATED", "message": "who?"}},
    }
    with ProxyThread(proxy_config(grpc_server.address, faults=[fault])) as proxy:
        with SyncClient.connect(f"127.0.0.1:{proxy.port('front')}") as client:
            client.bidi(Behaviour.make(count=1), n=1, timeout=10)
        messages = get_json(proxy.admin_url + "/messages?method=Bidi")["messages"]
    made_up = [(m["direction"], m["kind"], m["fault"]) for m in messages if m.get("injected")]
    assert made_up == [("upstream", "rst_stream", "mid"), ("downstream", "headers", "mid")]
    (trigger,) = [m for m in messages if m.get("forwarded") is False]
    assert trigger["kind"] == "data" and trigger["fault"] == "mid"


def test_a_grpc_reset_shows_the_rst_stream_frames_sent_both_ways(grpc_server) -> None:
    fault = {
        "name": "cut",
        "match": {"protocol": "grpc", "method": "Unary"},
        "action": {"rst_stream": {}},
    }
    with ProxyThread(proxy_config(grpc_server.address, faults=[fault])) as proxy:
        with SyncClient.connect(f"127.0.0.1:{proxy.port('front')}") as client:
            r = client.unary(Behaviour.make(size=3), timeout=10)
        messages = get_json(proxy.admin_url + "/messages?method=Unary")["messages"]
    assert r.code != grpc.StatusCode.OK
    made_up = [(m["direction"], m["kind"], m["fault"]) for m in messages if m.get("injected")]
    assert made_up == [("upstream", "rst_stream", "cut"), ("downstream", "rst_stream", "cut")]
    assert all(m["info"]["error_code"] == 8 for m in messages if m.get("injected"))  # CANCEL


@pytest.fixture(scope="module")
def http_server():
    with ServiceThread(FakeHttpService) as server:
        server.service.route("GET", "/ok", status=200, body=b"fine")
        yield server


def test_an_http1_abort_shows_its_made_up_response_marked_injected(http_server) -> None:
    host, port = http_server.service.address
    fault = {
        "name": "busy",
        "match": {"protocol": "http", "path_prefix": "/ok"},
        "action": {"abort": {"status": 503, "body": "try later"}},
    }
    with ProxyThread(proxy_config(f"{host}:{port}", protocol="http", faults=[fault])) as proxy:
        url = f"http://127.0.0.1:{proxy.port('front')}/ok"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)
        assert err.value.code == 503 and err.value.read() == b"try later"
        messages = get_json(proxy.admin_url + "/messages?protocol=http")["messages"]
    assert http_server.run(lambda: len(http_server.service.requests)) == 0
    request, end, answer = messages  # the request's head carries the mark for it
    assert end["kind"] == "end" and end["key"] == request["key"]
    assert request["direction"] == "upstream" and request["kind"] == "head"
    assert request["forwarded"] is False and request["fault"] == "busy"
    assert answer["direction"] == "downstream" and answer["kind"] == "head"
    assert answer["injected"] is True and answer["fault"] == "busy"
    assert answer["info"]["status"] == 503 and answer["key"] == request["key"]
    assert dict(answer["headers"])["Content-Length"] == "9"
