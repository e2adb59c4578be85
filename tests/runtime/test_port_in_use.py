"""A port in use: the error names the listener and the address, wherever it binds."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.peers import ProxyThread


@contextmanager
def occupied() -> Iterator[int]:
    """A loopback port something else is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _protoproxy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "protoproxy", *args], capture_output=True, text=True, timeout=60
    )


def test_run_names_the_listener_whose_port_is_taken(tmp_path: Path) -> None:
    with occupied() as port:
        cfg = tmp_path / "taken.yaml"
        cfg.write_text(
            textwrap.dedent(
                f"""
                admin: {{listen: "127.0.0.1:0"}}
                listeners:
                  - {{name: free, listen: "127.0.0.1:0", protocol: tcp, upstream: u}}
                  - {{name: orders, listen: "127.0.0.1:{port}", protocol: tcp, upstream: u}}
                upstreams:
                  - {{name: u, endpoints: ["127.0.0.1:1"]}}
                """
            )
        )
        res = _protoproxy("run", str(cfg))
    assert res.returncode == 1
    want = f"error: listener 'orders' cannot listen on 127.0.0.1:{port}: address already in use"
    assert want in res.stderr, res.stderr


def test_run_names_the_admin_api_when_its_port_is_taken(tmp_path: Path) -> None:
    with occupied() as port:
        cfg = tmp_path / "admin.yaml"
        cfg.write_text(
            textwrap.dedent(
                f"""
                admin: {{listen: "127.0.0.1:{port}"}}
                listeners:
                  - {{name: l, listen: "127.0.0.1:0", protocol: tcp, upstream: u}}
                upstreams:
                  - {{name: u, endpoints: ["127.0.0.1:1"]}}
                """
            )
        )
        res = _protoproxy("run", str(cfg))
    assert res.returncode == 1
    assert f"the admin API cannot listen on 127.0.0.1:{port}: address already in use" in (
        res.stderr
    ), res.stderr


def test_testbed_names_the_listener_whose_port_is_taken(tmp_path: Path) -> None:
    with occupied() as port:
        scenario = tmp_path / "scenario.yaml"
        scenario.write_text(f"ports: {{kafka: 0, grpc: {port}, http: 0, echo: 0, admin: 0}}\n")
        res = _protoproxy("testbed", str(scenario))
    assert res.returncode == 1
    want = f"error: listener 'grpc' cannot listen on 127.0.0.1:{port}: address already in use"
    assert want in res.stderr, res.stderr


def test_runtime_listener_names_itself_when_its_port_is_taken() -> None:
    cfg = {
        "admin": {"listen": "127.0.0.1:0"},
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}],
        "upstreams": [{"name": "u", "endpoints": ["127.0.0.1:1"]}],
    }
    with ProxyThread(cfg) as proxy, occupied() as port:
        body = {"name": "shop", "upstream": "127.0.0.1:1", "listen": f"127.0.0.1:{port}"}
        req = urllib.request.Request(
            proxy.admin_url + "/proxies", data=json.dumps(body).encode(), method="POST"
        )
        req.add_header("Content-Type", "application/json")
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("a listener was created on a port in use")
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, json.loads(exc.read())
        assert status == 500
        assert answer["error"] == (
            f"listener 'shop' cannot listen on 127.0.0.1:{port}: address already in use"
        )
        assert "shop" not in proxy.run(lambda: proxy.proxy.listeners)
