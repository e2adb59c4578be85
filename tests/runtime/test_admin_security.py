"""Admin API security: loopback by default, token required off loopback and for writes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest

from protoproxy.admin.server import AdminSecurityError, AdminServer
from protoproxy.config import Address, Admin, ConfigError, from_dict
from tests.peers import ProxyThread, Script, ScriptedServer


def _get(url: str, token: str | None = None, method: str = "GET") -> tuple[int, dict]:
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            return err.code, json.loads(body or b"{}")
        except ValueError:
            return err.code, {"text": body.decode(errors="replace")}


def _cfg(server: ScriptedServer, admin: dict) -> dict:
    return {
        "admin": admin,
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}],
        "upstreams": [{"name": "u", "endpoints": [server.address]}],
    }


def test_non_loopback_without_token_refuses_to_start(tmp_path):
    with pytest.raises(
        ConfigError, match=r"admin: admin listens on non-loopback 0\.0\.0\.0; set admin\.token"
    ):
        from_dict({"admin": {"listen": "0.0.0.0:9901"}, "listeners": [], "upstreams": []})
    # Also when built in Python without going through the config loader.
    admin = Admin.model_construct(listen=Address("0.0.0.0:0"), token=None, enabled=True)
    with pytest.raises(AdminSecurityError, match="without a token"):
        AdminServer(object(), admin)  # type: ignore[arg-type]
    cfg = tmp_path / "open.yaml"
    cfg.write_text(
        textwrap.dedent(
            """
            admin: {listen: "0.0.0.0:0"}
            listeners: [{name: l, listen: "127.0.0.1:0", upstream: u}]
            upstreams: [{name: u, endpoints: ["127.0.0.1:1"]}]
            """
        )
    )
    res = subprocess.run(
        [sys.executable, "-m", "protoproxy", "run", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert "set admin.token" in res.stderr


def test_token_required_off_loopback():
    server = ScriptedServer(default=Script(b""))
    with ProxyThread(_cfg(server, {"listen": "0.0.0.0:0", "token": "s3cret"})) as proxy:
        url = f"http://127.0.0.1:{proxy.app.admin.address[1]}/healthz"
        assert _get(url)[0] == 401
        assert _get(url, token="wrong")[0] == 401
        assert _get(url, token="s3cret") == (200, {"status": "ok"})
    server.close()


def test_loopback_reads_are_open_but_writes_need_the_token():
    server = ScriptedServer(default=Script(b""))
    with ProxyThread(_cfg(server, {"listen": "127.0.0.1:0", "token": "t0k"})) as proxy:
        base = proxy.admin_url
        assert _get(base + "/healthz")[0] == 200
        assert _get(base + "/ready") == (200, {"ready": True})
        assert _get(base + "/healthz", method="POST")[0] == 401
        assert (
            _get(base + "/healthz", token="t0k", method="POST")[0] == 405
        )  # authorised; no such route
    server.close()
