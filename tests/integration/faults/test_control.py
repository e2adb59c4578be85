"""Fault control: config, native /faults routes, the Toxiproxy API (with the real
`toxiproxy-python` client), and listeners taken down and back up."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
import toxiproxy  # the PyPI toxiproxy-python client, unchanged (a test extra)
import toxiproxy.api

from .test_toxics_peers import Server, connect, echo, proxied, rtt, tcp_config


def call(proxy, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(proxy.admin_url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    text = raw.decode()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_toxiproxy_python_client_works_unchanged():
    server = Server(echo)
    try:
        with proxied(echo) as (proxy, _):
            host, port = proxy.admin_url.removeprefix("http://").split(":")
            client = toxiproxy.Toxiproxy()
            client.update_api_consumer(host, int(port))
            assert client.running()
            assert json.loads(client.version())["version"]
            assert "t" in client.proxies()  # config listeners show as proxies

            p = client.create(upstream=server.address, name="shop")
            listen_port = int(p.listen.rsplit(":", 1)[1])
            assert listen_port > 0 and p.enabled
            with pytest.raises(toxiproxy.api.ProxyExists):
                client.create(upstream=server.address, name="shop")

            sock = socket.create_connection(("127.0.0.1", listen_port), timeout=30)
            base = rtt(sock)
            p.add_toxic(type="latency", attributes={"latency": 300})
            assert rtt(sock) >= 0.3  # live on the open connection
            toxic = p.get_toxic("latency_downstream")
            assert toxic.type == "latency" and toxic.attributes["latency"] == 300
            assert toxic.attributes["jitter"] == 0 and toxic.toxicity == 1
            with pytest.raises(toxiproxy.api.InvalidToxic):
                p.add_toxic(type="latency", attributes={"rate": 1}, name="bad")
            with pytest.raises(toxiproxy.api.NotFound):
                toxiproxy.api.APIConsumer.get("/proxies/nope")
            p.destroy_toxic("latency_downstream")
            assert p.toxics() == {}
            assert rtt(sock) < base + 5
            sock.close()

            with p.down():
                assert refused(listen_port)
                assert client.get_proxy("shop").enabled is False
            s2 = socket.create_connection(("127.0.0.1", listen_port), timeout=30)
            assert rtt(s2) >= 0
            s2.close()

            p.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
            p.disable()
            assert client.reset()  # enabled again, toxics gone
            assert client.get_proxy("shop").enabled is True
            assert p.toxics() == {}

            made = client.populate(
                [{"name": "shop", "upstream": server.address, "listen": p.listen}]
            )
            assert made == []  # same name and addresses: kept
            assert client.destroy(client.get_proxy("shop"))
            assert client.get_proxy("shop") is None
            assert refused(listen_port)
    finally:
        server.close()


def test_toxiproxy_api_shapes_and_errors():
    with proxied(echo) as (proxy, server):
        status, body = call(proxy, "GET", "/proxies/t")
        assert status == 200
        assert body["upstream"] == server.address and body["toxics"] == []
        status, body = call(
            proxy,
            "POST",
            "/proxies/t/toxics",
            {"type": "bandwidth", "stream": "upstream", "attributes": {"rate": 10}},
        )
        assert status == 200 and body["name"] == "bandwidth_upstream"
        status, body = call(
            proxy, "POST", "/proxies/t/toxics", {"type": "bandwidth", "stream": "upstream"}
        )
        assert status == 409 and body == {"error": "toxic already exists", "status": 409}
        status, body = call(proxy, "POST", "/proxies/t/toxics", {"type": "bogus"})
        assert status == 400 and body["status"] == 400
        status, body = call(
            proxy, "POST", "/proxies/t/toxics", {"type": "latency", "stream": "sideways"}
        )
        assert status == 400
        # update merges attributes and toxicity
        status, body = call(
            proxy, "POST", "/proxies/t/toxics/bandwidth_upstream", {"toxicity": 0.5}
        )
        assert status == 200 and body["toxicity"] == 0.5 and body["attributes"] == {"rate": 10}
        # the same fault through the native API, under its engine name
        status, body = call(proxy, "GET", "/faults/t/bandwidth_upstream")
        assert status == 200 and body["match"] == {"listener": "t"}
        status, _ = call(proxy, "DELETE", "/proxies/t/toxics/bandwidth_upstream")
        assert status == 204
        status, body = call(proxy, "DELETE", "/proxies/t/toxics/bandwidth_upstream")
        assert status == 404 and body["error"] == "toxic not found"
        status, body = call(proxy, "POST", "/proxies", {"name": "x"})
        assert status == 400 and "upstream" in body["error"]
        status, body = call(
            proxy,
            "POST",
            "/populate",
            [
                {"name": "p1", "upstream": server.address},
                {"name": "p2", "upstream": server.address},
            ],
        )
        assert status == 201 and [p["name"] for p in body["proxies"]] == ["p1", "p2"]
        status, _ = call(proxy, "POST", "/proxies/p1", {"enabled": False})
        assert status == 200
        assert call(proxy, "GET", "/proxies/p1")[1]["enabled"] is False
        # moving a proxy's upstream restarts it on the same name
        other = Server(echo)
        try:
            status, body = call(proxy, "POST", "/proxies/p2", {"upstream": other.address})
            assert status == 200 and body["upstream"] == other.address
            port = int(body["listen"].rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                assert rtt(s) >= 0
            assert call(proxy, "POST", "/reset")[0] == 204
            assert call(proxy, "GET", "/proxies/p1")[1]["enabled"] is True
        finally:
            other.close()


def test_native_fault_routes():
    with proxied(echo) as (proxy, _):
        spec = {
            "name": "slow",
            "match": {"listener": "t"},
            "toxic": {"type": "latency", "attributes": {"latency": 200}},
        }
        status, body = call(proxy, "POST", "/faults", spec)
        assert status == 201 and body["name"] == "slow" and body["stats"]["injected"] == 0
        assert call(proxy, "POST", "/faults", spec)[0] == 409
        sock = connect(proxy)
        assert rtt(sock) >= 0.2
        status, body = call(proxy, "GET", "/faults")
        assert [f["name"] for f in body["faults"]] == ["slow"] and body["seed"] == 7
        assert body["faults"][0]["stats"]["injected"] == 1
        # PATCH merges: latency off, the same connection speeds up
        status, body = call(
            proxy, "PATCH", "/faults/slow", {"toxic": {"attributes": {"latency": 0}}}
        )
        assert status == 200 and body["toxic"]["attributes"] == {"latency": 0}
        assert rtt(sock) < 0.2 + 5
        # PUT replaces (or creates)
        status, body = call(
            proxy,
            "PUT",
            "/faults/other",
            {"action": {"drop": True}, "match": {"protocol": "kafka"}},
        )
        assert status == 201 and body["name"] == "other"
        status, body = call(proxy, "PUT", "/faults/other", {"action": {"delay": "5ms"}})
        assert status == 200 and body["action"] == {"delay": "5ms"}
        # validation names the field
        status, body = call(
            proxy,
            "POST",
            "/faults",
            {"name": "bad", "toxic": {"type": "latency", "attributes": {"rate": 1}}},
        )
        assert status == 400 and "toxic" in body["error"] and "no attribute" in body["error"]
        status, body = call(
            proxy, "POST", "/faults", {"name": "bad", "action": {"x": 1}, "oops": 1}
        )
        assert status == 400 and "oops: unknown key" in body["error"]
        assert call(proxy, "GET", "/faults/nope")[0] == 404
        assert call(proxy, "DELETE", "/faults/other")[0] == 204
        assert call(proxy, "GET", "/faults/seed")[1] == {"seed": 7}
        assert call(proxy, "PUT", "/faults/seed", {"seed": 11})[1] == {"seed": 11}
        assert call(proxy, "PUT", "/faults/seed", {"seed": "x"})[0] == 400
        status, body = call(proxy, "POST", "/faults/reset", {"seed": 3})
        assert status == 200 and body["seed"] == 3
        assert call(proxy, "GET", "/faults")[1]["faults"] == []
        # the connection survived every change
        assert rtt(sock) >= 0
        sock.close()
        conns = call(proxy, "GET", "/connections")[1]
        assert conns["count"] >= 0


def test_config_faults_apply_from_start_and_show_on_connections_and_metrics():
    server = Server(echo)
    try:
        cfg = tcp_config(
            server.address,
            faults=[
                {
                    "name": "cfg-latency",
                    "match": {"listener": "t"},
                    "toxic": {
                        "type": "latency",
                        "stream": "upstream",
                        "attributes": {"latency": 150},
                    },
                }
            ],
        )
        from tests.peers import ProxyThread

        with ProxyThread(cfg) as proxy:
            sock = connect(proxy)
            assert rtt(sock) >= 0.15
            status, body = call(proxy, "GET", "/connections")
            assert status == 200
            (row,) = body["connections"]
            assert row["toxics"] == ["cfg-latency"]
            _, text = call(proxy, "GET", "/metrics")
            assert 'protoproxy_faults_injected_total{fault="cfg-latency",kind="toxic"} 1.0' in text
            sock.close()
    finally:
        server.close()


def test_listener_down_and_up_through_the_python_api():
    with proxied(echo) as (proxy, _):
        from protoproxy.faults.api import Faults

        port = proxy.port("t")
        sock = connect(proxy)
        faults = Faults(proxy.app)
        proxy.call(lambda: faults.listener_enabled("t", False))
        assert sock.recv(10) in (b"",)  # its connections are closed
        assert refused(port)
        proxy.call(lambda: faults.listener_enabled("t", True))  # bound when it returns
        s2 = connect(proxy)
        assert rtt(s2) >= 0
        s2.close()
        sock.close()


def test_unknown_listener_in_a_match_is_refused_by_name():
    server = Server(echo)
    try:
        with proxied(echo) as (proxy, _):
            from protoproxy.faults.api import Faults

            spec = {"name": "x", "match": {"listener": "nosuch"}, "action": {"drop": True}}
            status, body = call(proxy, "POST", "/faults", spec)
            assert status == 400, body
            assert body["error"] == "match.listener: no listener named 'nosuch' (listeners: t)"
            assert call(proxy, "PUT", "/faults/x", spec)[0] == 400
            faults = Faults(proxy.app)
            with pytest.raises(ValueError, match="no listener named 'nosuch'"):
                proxy.run(lambda: faults.add(spec))
            # A listener added at run time counts from then on.
            status, _ = call(
                proxy, "POST", "/proxies", {"name": "nosuch", "upstream": server.address}
            )
            assert status == 201
            status, body = call(proxy, "POST", "/faults", spec)
            assert status == 201, body
            # PATCH to an unknown listener is refused too; the fault stays as it was.
            status, body = call(proxy, "PATCH", "/faults/x", {"match": {"listener": "gone"}})
            assert status == 400 and "no listener named 'gone'" in body["error"]
            assert call(proxy, "GET", "/faults/x")[1]["match"] == {"listener": "nosuch"}
    finally:
        server.close()
