"""Listeners added at run time: Toxiproxy's `POST /proxies` with a `protocol`, and the
native `/listeners` routes, against a fake Kafka cluster with real clients."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.kafka.clients import kafka_python_consume, kafka_python_produce
from tests.integration.kafka.rig import KafkaRig


@pytest.fixture(scope="module")
def rig() -> Iterator[KafkaRig]:
    with KafkaRig(brokers=2, config={"admin": {"listen": "127.0.0.1:0"}}) as r:
        r.create_topic("rt", 2)
        yield r


def call(rig: KafkaRig, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    assert rig.app is not None and rig.app.admin is not None
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(rig.app.admin.url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    return status, json.loads(raw) if raw else None


def _refused(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def _listeners(rig: KafkaRig) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in call(rig, "GET", "/listeners")[1]["listeners"]}


def test_toxiproxy_proxy_with_a_protocol_decodes_its_traffic(rig: KafkaRig) -> None:
    assert rig.cluster is not None
    broker = rig.cluster.bootstrap_servers.split(",")[0]
    status, body = call(
        rig, "POST", "/proxies", {"name": "tk", "upstream": broker, "protocol": "kafka"}
    )
    assert status == 201, body
    assert body["protocol"] == "kafka" and body["enabled"] is True
    # Kafka clients are sent to per-broker listeners of the new one (address rewriting).
    got = kafka_python_produce(body["listen"], "rt", [b"a", b"b", b"c"])
    assert sorted(v for vals in got.values() for v in vals) == [b"a", b"b", b"c"]
    requests = rig.family("protoproxy_kafka_requests_total")
    listeners = {k[0] for k in requests}
    assert "tk" in listeners and {"tk-broker0", "tk-broker1"} & listeners, listeners
    records = rig.family("protoproxy_kafka_produce_records_total")
    assert sum(v for k, v in records.items() if k[0].startswith("tk")) == 3
    assert "tk-broker0" in _listeners(rig) or "tk-broker1" in _listeners(rig)
    # The broker listeners go with it.
    status, _ = call(rig, "DELETE", "/proxies/tk")
    assert status == 204
    assert not [n for n in _listeners(rig) if n.startswith("tk")]
    assert _refused(body["listen"])


def test_toxiproxy_clients_still_get_tcp_and_bad_protocols_are_refused(rig: KafkaRig) -> None:
    status, body = call(rig, "POST", "/proxies", {"name": "plain", "upstream": "127.0.0.1:1"})
    assert status == 201 and body["protocol"] == "tcp"
    status, body = call(
        rig, "POST", "/proxies", {"name": "odd", "upstream": "127.0.0.1:1", "protocol": "mqtt"}
    )
    assert status == 400 and "protocol 'mqtt' is not one of" in body["error"]
    assert call(rig, "DELETE", "/proxies/plain")[0] == 204


def test_native_listener_routes_add_use_and_remove(rig: KafkaRig) -> None:
    entry = {"name": "more", "listen": "127.0.0.1:0", "protocol": "kafka", "upstream": "kafka"}
    status, body = call(rig, "POST", "/listeners", entry)
    assert status == 201, body
    assert body["name"] == "more" and body["protocol"] == "kafka" and body["upstream"] == "kafka"
    address = body["listen"]
    assert call(rig, "POST", "/listeners", entry)[0] == 409
    # A fault may name it now; its traffic is decoded, and counted under its name.
    fault = {"name": "on-more", "match": {"listener": "more"}, "action": {"delay": "1ms"}}
    assert call(rig, "POST", "/faults", fault)[0] == 201
    kafka_python_produce(address, "rt", [b"x"])
    assert kafka_python_consume(address, "rt", "g-more", 1)
    assert any(k[0] == "more" for k in rig.family("protoproxy_kafka_requests_total"))
    status, cfg = call(rig, "GET", "/config")
    assert "more" in [lst["name"] for lst in cfg["listeners"]]
    assert call(rig, "DELETE", "/faults/on-more")[0] == 204
    # Broker listeners belong to it: not removable on their own, gone with it.
    brokers = [n for n in _listeners(rig) if n.startswith("more-broker")]
    assert brokers
    status, body = call(rig, "DELETE", f"/listeners/{brokers[0]}")
    assert status == 409 and "remove that one" in body["error"]
    assert call(rig, "DELETE", "/listeners/more")[0] == 204
    assert not [n for n in _listeners(rig) if n.startswith("more")]
    assert _refused(address)
    assert call(rig, "DELETE", "/listeners/more")[0] == 404
    status, body = call(rig, "POST", "/faults", fault)
    assert status == 400 and "no listener named 'more'" in body["error"]


@pytest.mark.parametrize(
    ("entry", "status", "problem"),
    [
        (
            {"name": "x", "listen": "127.0.0.1:70000", "upstream": "kafka"},
            400,
            "listen: port 70000 is out of range",
        ),
        (
            {"name": "x", "listen": "127.0.0.1:0", "protocol": "mqtt", "upstream": "kafka"},
            400,
            "protocol: Input should be",
        ),
        (
            {"name": "x", "listen": "127.0.0.1:0", "upstream": "nope"},
            400,
            "upstream: unknown upstream 'nope' (known: kafka)",
        ),
        ({"name": "x", "listen": "127.0.0.1:0"}, 400, "needs an upstream"),
        (
            {"name": "x", "listen": "127.0.0.1:0", "upstream": "kafka", "colour": "red"},
            400,
            "colour: unknown key",
        ),
        (
            {"name": "x", "listen": "0.0.0.0:0", "upstream": "kafka"},
            403,
            "listen: 0.0.0.0 is not a loopback address; listeners made at run time bind to "
            "loopback unless admin.allow_public_listeners is true",
        ),
    ],
)
def test_listener_errors_name_the_field(
    rig: KafkaRig, entry: dict[str, Any], status: int, problem: str
) -> None:
    got, body = call(rig, "POST", "/listeners", entry)
    assert got == status and problem in body["error"], body
    assert "x" not in _listeners(rig)


def test_public_listeners_when_the_config_allows_them() -> None:
    cfg = {"admin": {"listen": "127.0.0.1:0", "allow_public_listeners": True}}
    with KafkaRig(brokers=1, config=cfg) as rig:
        entry = {"name": "wide", "listen": "0.0.0.0:0", "protocol": "tcp", "upstream": "kafka"}
        status, body = call(rig, "POST", "/listeners", entry)
        assert status == 201, body
        assert body["listen"].startswith("0.0.0.0:")
        status, body = call(
            rig,
            "POST",
            "/proxies",
            {"name": "tp", "upstream": "127.0.0.1:1", "listen": "0.0.0.0:0"},
        )
        assert status == 201, body


def test_python_api_adds_and_removes_listeners(rig: KafkaRig) -> None:
    from protoproxy.faults.api import Faults
    from protoproxy.runtime_listeners import ListenerApiError

    assert rig.app is not None
    faults = Faults(rig.app)
    entry = {"name": "py", "listen": "127.0.0.1:0", "protocol": "kafka", "upstream": "kafka"}
    lst = rig.call(lambda: faults.add_listener(entry))
    assert lst.config.protocol == "kafka" and "py" in _listeners(rig)
    with pytest.raises(ListenerApiError, match="listen: port 70000 is out of range"):
        rig.call(lambda: faults.add_listener({**entry, "name": "bad", "listen": "127.0.0.1:70000"}))
    proxy = rig.call(lambda: faults.create_proxy("pk", "127.0.0.1:1", protocol="http"))
    assert proxy.config.protocol == "http"
    rig.call(lambda: faults.remove_listener("py"))
    rig.call(lambda: faults.delete_proxy("pk"))
    assert not {"py", "pk"} & set(_listeners(rig))
