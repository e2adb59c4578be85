"""The admin API against web pages: what a browser could send is refused, tools still work.

Each attack is sent as a browser would send it (a simple request: text/plain
or a form, an Origin, Sec-Fetch-Site, a rebound Host) to a real App on
loopback, and afterwards the faults, toxics, proxies and listeners are
checked to be exactly what they were: a 403 that still did the work would be
worse than none.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import toxiproxy
from hypothesis import given
from hypothesis import strategies as st  # the PyPI toxiproxy-python client, unchanged

from protoproxy.admin.guard import (
    BrowserGuard,
    RequestFacts,
    UpstreamPattern,
    origin_key,
    split_host,
    upstream_allowed,
)
from protoproxy.config import Admin, ConfigError, from_dict, is_loopback, loads
from tests.peers import ProxyThread, Script, ScriptedServer
from tests.tools import require_tool

EVIL = "http://evil.example"
FAULT = {
    "name": "slow",
    "match": {"listener": "l"},
    "toxic": {"type": "latency", "attributes": {"latency": 10}},
}
TOXIC = {"type": "latency", "attributes": {"latency": 500}}


def _cfg(upstream: str, **admin: Any) -> dict[str, Any]:
    return {
        "admin": {"listen": "127.0.0.1:0", **admin},
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}],
        "upstreams": [{"name": "u", "endpoints": [upstream]}],
    }


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ScriptedServer(default=Script(b""))
    yield server.address
    server.close()


@pytest.fixture
def proxy(upstream: str) -> Iterator[ProxyThread]:
    with ProxyThread(_cfg(upstream)) as p:
        yield p


def send(
    proxy: ProxyThread,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, http.client.HTTPMessage]:
    """One request with exactly these headers (http.client adds only Host, unless given,
    and Content-Length)."""
    assert proxy.app is not None and proxy.app.admin is not None
    host, port = proxy.app.admin.address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        answer = json.loads(raw) if raw else None
    except ValueError:
        answer = raw.decode(errors="replace")
    return resp.status, answer, resp.headers


def state(proxy: ProxyThread) -> dict[str, Any]:
    """Everything an attack could change, as the API shows it."""
    ok = {"Content-Type": "application/json"}
    faults = send(proxy, "GET", "/faults", headers=ok)[1]
    proxies = send(proxy, "GET", "/proxies", headers=ok)[1]
    listeners = send(proxy, "GET", "/listeners", headers=ok)[1]
    assert proxy.app is not None
    return {
        "faults": sorted(f["name"] for f in faults["faults"]),
        "proxies": {n: (p["upstream"], p["enabled"], len(p["toxics"])) for n, p in proxies.items()},
        "listeners": sorted(lst["name"] for lst in listeners["listeners"]),
        "upstreams": sorted(u.name for u in proxy.app.config.upstreams),
    }


def refused_count(proxy: ProxyThread, reason: str) -> float:
    text = send(proxy, "GET", "/metrics")[1]
    found = re.search(rf'^protoproxy_admin_refused_total{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


# What a page can make a browser send without a preflight: every state-changing route.
WRITES: list[tuple[str, str, bytes]] = [
    ("POST", "/proxies/l/toxics", json.dumps(TOXIC).encode()),
    ("POST", "/faults", json.dumps(FAULT).encode()),
    (
        "POST",
        "/proxies",
        json.dumps({"name": "x", "listen": "0.0.0.0:0", "upstream": "10.0.0.1:22"}).encode(),
    ),
    (
        "POST",
        "/listeners",
        json.dumps({"name": "y", "listen": "127.0.0.1:0", "upstream": "u"}).encode(),
    ),
    ("POST", "/populate", json.dumps([{"name": "z", "upstream": "127.0.0.1:1"}]).encode()),
    ("POST", "/proxies/l", b'{"enabled": false}'),
    ("POST", "/reset", b""),
    ("POST", "/faults/reset", b""),
    ("DELETE", "/proxies/l", b""),
    ("DELETE", "/listeners/l", b""),
    ("DELETE", "/messages", b""),
]


def test_simple_requests_from_another_site_are_refused_and_change_nothing(proxy):
    # One fault and one toxic exist, so that resets and deletes have something to undo.
    assert send(proxy, "POST", "/faults", json.dumps(FAULT).encode(), _json())[0] == 201
    status = send(proxy, "POST", "/proxies/l/toxics", json.dumps(TOXIC).encode(), _json())[0]
    assert status == 200
    before = state(proxy)
    assert before["faults"] == ["l/latency_downstream", "slow"]
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/json"):
        for origin in (EVIL, "null", "http://localhost:3000"):
            for method, path, body in WRITES:
                headers = {"Content-Type": content_type, "Origin": origin}
                status, answer, resp = send(proxy, method, path, body, headers)
                assert (status, answer["reason"]) == (403, "origin"), (method, path, answer)
                assert origin in answer["error"] and "admin.cors_origins" in answer["error"]
                assert not [h for h in resp if h.lower().startswith("access-control-")]
    assert state(proxy) == before
    assert refused_count(proxy, "origin") == 3 * 3 * len(WRITES)


def _json(**more: str) -> dict[str, str]:
    return {"Content-Type": "application/json", **more}


def test_sec_fetch_site_from_another_site_is_refused(proxy):
    before = state(proxy)
    for site in ("cross-site", "same-site", "Cross-Site"):
        for method, path, body in WRITES:
            status, answer, _ = send(proxy, method, path, body, _json(**{"Sec-Fetch-Site": site}))
            assert (status, answer["reason"]) == (403, "fetch_site"), (site, method, path)
        # reads too: a rebinding-free page still must not drive or probe the API
        status, answer, _ = send(proxy, "GET", "/config", headers={"Sec-Fetch-Site": site})
        assert (status, answer["reason"]) == (403, "fetch_site")
    assert state(proxy) == before
    for site in ("same-origin", "none"):  # typed in the address bar, or the API's own page
        assert send(proxy, "GET", "/config", headers={"Sec-Fetch-Site": site})[0] == 200
    assert send(proxy, "POST", "/faults", json.dumps(FAULT).encode(), _json())[0] == 201


def test_a_foreign_host_is_refused_for_every_route_reads_included(proxy):
    """DNS rebinding: evil.example resolves to 127.0.0.1, so the request reaches the API
    with Host: evil.example and the page, being same-origin with itself, could read it."""
    port = proxy.app.admin.address[1]
    for host in (
        f"evil.example:{port}",
        "evil.example",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
    ):
        for path in ("/config", "/messages", "/faults", "/proxies", "/metrics", "/healthz"):
            status, answer, _ = send(proxy, "GET", path, headers={"Host": host})
            assert (status, answer["reason"]) == (403, "host"), (host, path)
            assert "DNS rebinding" in answer["error"]
        status, answer, _ = send(
            proxy, "POST", "/faults", json.dumps(FAULT).encode(), _json(Host=host)
        )
        assert (status, answer["reason"]) == (403, "host")
    assert state(proxy)["faults"] == []
    for host in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        "LOCALHOST",
        f"[::1]:{port}",
        "127.9.9.9",
    ):
        assert send(proxy, "GET", "/config", headers={"Host": host})[0] == 200, host
    assert refused_count(proxy, "host") == 4 * 7


def test_allowed_hosts_names_more_hosts(upstream):
    with ProxyThread(_cfg(upstream, allowed_hosts=["proxy.internal"])) as p:
        assert send(p, "GET", "/config", headers={"Host": "proxy.internal:9901"})[0] == 200
        assert send(p, "GET", "/config", headers={"Host": "PROXY.internal."})[0] == 200
        assert send(p, "GET", "/config", headers={"Host": "other.internal"})[0] == 403
        assert send(p, "GET", "/config")[1]["admin"]["allowed_hosts"] == ["proxy.internal"]


def test_off_loopback_the_listen_address_and_ip_literals_are_hosts(upstream):
    cfg = _cfg(upstream, listen="0.0.0.0:0", token="s3cret")
    with ProxyThread(cfg) as p:
        auth = {"Authorization": "Bearer s3cret"}
        for host in ("10.1.2.3:9901", "[fd00::1]:9901", "127.0.0.1"):
            assert send(p, "GET", "/healthz", headers={"Host": host, **auth})[0] == 200
        # a name must still be listed: it is what a rebinding attack uses
        status, answer, _ = send(p, "GET", "/healthz", headers={"Host": "evil.example", **auth})
        assert (status, answer["reason"]) == (403, "host")


def test_form_encoded_or_text_bodies_are_refused_and_make_no_listener(proxy):
    before = state(proxy)
    body = {"name": "x", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}
    # urllib, like curl -d and an HTML form, sends application/x-www-form-urlencoded
    req = urllib.request.Request(
        proxy.admin_url + "/proxies", data=json.dumps(body).encode(), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    answer = json.loads(err.value.read())
    assert (err.value.code, answer["reason"]) == (403, "content_type")
    assert "application/x-www-form-urlencoded" in answer["error"]
    assert "-H 'Content-Type: application/json'" in answer["error"]
    for content_type in (
        "text/plain",
        "multipart/form-data; boundary=x",
        None,
        "application/jsonp",
    ):
        headers = {"Content-Type": content_type} if content_type else {}
        for method, path, data in WRITES:
            if data:
                status, answer, _ = send(proxy, method, path, data, headers)
                assert (status, answer["reason"]) == (403, "content_type"), (content_type, path)
    assert state(proxy) == before
    assert refused_count(proxy, "content_type") == 1 + 4 * sum(1 for w in WRITES if w[2])


def test_json_bodies_and_bodyless_writes_from_tools_pass(proxy):
    for n, content_type in enumerate(
        ("application/json", "application/json; charset=utf-8", "Application/JSON")
    ):
        body = json.dumps({**FAULT, "name": f"f{n}"}).encode()
        assert send(proxy, "POST", "/faults", body, {"Content-Type": content_type})[0] == 201
    # Bodyless writes declare anything or nothing (Toxiproxy's older Go client
    # posts /reset as text/plain with an empty body).
    assert send(proxy, "POST", "/faults/reset")[0] == 200
    assert send(proxy, "POST", "/reset", b"", {"Content-Type": "text/plain"})[0] == 204
    assert send(proxy, "POST", "/reset", b"", {"Content-Type": "application/json"})[0] == 204
    assert state(proxy)["faults"] == []
    assert send(proxy, "DELETE", "/messages")[0] in (200, 204)


def test_run_time_listeners_stay_on_loopback_unless_allowed(proxy, upstream):
    before = state(proxy)
    for listen in ("0.0.0.0:0", "[::]:0", "192.0.2.1:0"):
        body = json.dumps({"name": "pub", "listen": listen, "upstream": "127.0.0.1:1"}).encode()
        status, answer, _ = send(proxy, "POST", "/proxies", body, _json())
        assert status == 403 and "admin.allow_public_listeners" in answer["error"], listen
    assert state(proxy) == before
    with ProxyThread(_cfg(upstream, allow_public_listeners=True)) as p:
        body = json.dumps({"name": "pub", "listen": "0.0.0.0:0", "upstream": "127.0.0.1:1"})
        assert send(p, "POST", "/proxies", body.encode(), _json())[0] == 201
        assert send(p, "DELETE", "/proxies/pub")[0] == 204


def test_upstream_allow_list_limits_where_the_api_forwards(upstream):
    allow = ["127.0.0.1:*", "db.internal:5432", "10.0.0.0/8", "[::1]:6379"]
    with ProxyThread(_cfg(upstream, upstream_allow=allow)) as p:
        before = state(p)
        for target in (
            "192.168.1.1:80",
            "localhost:6379",
            "db.internal:5433",
            "[::1]:22",
            "11.0.0.1:1",
        ):
            body = json.dumps({"name": "bad", "upstream": target}).encode()
            status, answer, _ = send(p, "POST", "/proxies", body, _json())
            assert status == 403, target
            assert answer["error"].startswith(
                f"upstream: {target} is not allowed by admin.upstream_allow"
            )
            body = json.dumps([{"name": "bad", "upstream": target}]).encode()
            assert send(p, "POST", "/populate", body, _json())[0] == 403
        assert state(p) == before  # no listener, no upstream left behind
        for n, target in enumerate(
            ("127.0.0.1:1", "db.internal:5432", "10.9.8.7:80", "[::1]:6379")
        ):
            body = json.dumps({"name": f"ok{n}", "upstream": target}).encode()
            status, answer, _ = send(p, "POST", "/proxies", body, _json())
            assert status == 201, (target, answer)
        # POST /listeners names upstreams of the config file: the operator's own, allowed
        body = json.dumps({"name": "y", "listen": "127.0.0.1:0", "upstream": "u"}).encode()
        assert send(p, "POST", "/listeners", body, _json())[0] == 201


def test_the_token_works_on_loopback(upstream):
    with ProxyThread(_cfg(upstream, token="t0k")) as p:
        body = json.dumps(FAULT).encode()
        status, answer, resp = send(p, "POST", "/faults", body, _json())
        assert (status, answer["error"]) == (401, "missing or wrong bearer token")
        assert resp["WWW-Authenticate"] == 'Bearer realm="protoproxy"'
        assert send(p, "POST", "/faults", body, _json(Authorization="Bearer nope"))[0] == 401
        assert state(p)["faults"] == []
        assert send(p, "POST", "/faults", body, _json(Authorization="Bearer t0k"))[0] == 201
        # the browser rules come first: a right token does not make a form post pass
        status, answer, _ = send(
            p, "POST", "/faults", body, {"Authorization": "Bearer t0k", "Origin": EVIL}
        )
        assert (status, answer["reason"]) == (403, "origin")
        assert refused_count(p, "token") == 2
        assert send(p, "GET", "/config")[1]["admin"]["token"] == "<redacted>"


def test_no_cors_headers_unless_configured(proxy, upstream):
    preflight = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    status, _, resp = send(proxy, "OPTIONS", "/faults", headers=preflight)
    assert status == 403
    assert not [h for h in resp if h.lower().startswith("access-control-")]
    for path in ("/healthz", "/config", "/metrics", "/nope"):
        _, _, resp = send(proxy, "GET", path)
        assert not [h for h in resp if h.lower().startswith("access-control-")], path

    ui = "http://localhost:3000"
    with ProxyThread(_cfg(upstream, cors_origins=[ui])) as p:
        status, _, resp = send(p, "OPTIONS", "/faults", headers=preflight)
        assert status == 204
        assert resp["Access-Control-Allow-Origin"] == ui and resp["Vary"] == "Origin"
        assert "POST" in resp["Access-Control-Allow-Methods"]
        assert "Content-Type" in resp["Access-Control-Allow-Headers"]
        assert "Access-Control-Allow-Credentials" not in resp
        status, _, resp = send(p, "POST", "/faults", json.dumps(FAULT).encode(), _json(Origin=ui))
        assert status == 201 and resp["Access-Control-Allow-Origin"] == ui
        # still JSON only: the listed page's form posts are refused like anyone's
        status, answer, _ = send(
            p, "POST", "/faults", b"x", {"Origin": ui, "Content-Type": "text/plain"}
        )
        assert (status, answer["reason"]) == (403, "content_type")
        for other in ("http://localhost:3001", "https://localhost:3000", EVIL):
            status, _, resp = send(p, "OPTIONS", "/faults", headers={**preflight, "Origin": other})
            assert status == 403 and "Access-Control-Allow-Origin" not in resp, other


def test_toxiproxy_python_and_curl_with_json_still_work(upstream):
    cfg = _cfg(upstream, upstream_allow=["127.0.0.1:*"], cors_origins=["http://localhost:3000"])
    with ProxyThread(cfg) as p:
        host, port = p.admin_url.removeprefix("http://").split(":")
        client = toxiproxy.Toxiproxy()
        client.update_api_consumer(host, int(port))
        shop = client.create(upstream=upstream, name="shop")
        shop.add_toxic(type="latency", attributes={"latency": 100})
        assert shop.get_toxic("latency_downstream").attributes["latency"] == 100
        assert client.reset()
        assert shop.toxics() == {}
        assert client.destroy(client.get_proxy("shop"))

        curl = require_tool("curl")
        fault = json.dumps(FAULT)
        ok = subprocess.run(
            [
                curl,
                "-s",
                "-w",
                "\n%{http_code}",
                "-XPOST",
                p.admin_url + "/faults",
                "-H",
                "Content-Type: application/json",
                "-d",
                fault,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert ok.stdout.rsplit("\n", 1)[1] == "201"
        bare = subprocess.run(  # curl -d alone sends application/x-www-form-urlencoded
            [curl, "-s", "-w", "\n%{http_code}", "-XPOST", p.admin_url + "/faults", "-d", fault],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert bare.stdout.rsplit("\n", 1)[1] == "403"
        assert json.loads(bare.stdout.rsplit("\n", 1)[0])["reason"] == "content_type"
        reset = subprocess.run(  # a bodyless POST needs no header
            [
                curl,
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-XPOST",
                p.admin_url + "/faults/reset",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert reset.stdout == "200"


def test_run_admin_token_auto_prints_a_token_that_works(tmp_path, upstream):
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            admin: {{listen: "127.0.0.1:0"}}
            listeners: [{{name: l, listen: "127.0.0.1:0", upstream: u}}]
            upstreams: [{{name: u, endpoints: ["{upstream}"]}}]
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "protoproxy", "run", str(cfg), "--admin-token", "auto"],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        url = None
        while url is None:
            line = proc.stderr.readline()
            assert line, f"protoproxy exited: {''.join(lines)}"
            lines.append(line)
            found = re.search(r"admin API on (http://\S+)", line)
            url = found.group(1) if found else None
        tokens = [ln.split(": ", 1)[1].strip() for ln in lines if ln.startswith("admin token: ")]
        assert len(tokens) == 1 and len(tokens[0]) >= 32
        token = tokens[0]
        body = json.dumps(FAULT).encode()

        def post(auth: str | None) -> int:
            req = urllib.request.Request(url + "/faults", data=body, method="POST")
            req.add_header("Content-Type", "application/json")
            if auth:
                req.add_header("Authorization", f"Bearer {auth}")
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post(None) == 401
        assert post(token) == 201
        with urllib.request.urlopen(url + "/config", timeout=10) as resp:
            config = resp.read().decode()
        assert token not in config and "<redacted>" in config
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=30)
    others = [ln for ln in lines if not ln.startswith("admin token: ")]
    assert token not in "".join(others) + rest  # shown once, never in a log line


# -- the rules as functions --------------------------------------------------------------
def test_split_host_and_origin_key():
    assert split_host("LocalHost.:9901") == ("localhost", 9901)
    assert split_host("[::1]:80") == ("::1", 80)
    assert split_host("[::1]") == ("::1", None)
    assert split_host("::1") is None
    assert split_host("a:b") is None and split_host(":80") is None
    assert origin_key("http://localhost") == ("http", "localhost", 80)
    assert origin_key("https://a.example:8443/") == ("https", "a.example", 8443)
    for bad in ("null", "file://", "http://a/b", "ftp://a", "http://a:99999"):
        assert origin_key(bad) is None, bad


def test_own_origin_is_the_host_it_was_reached_by():
    guard = BrowserGuard(Admin())

    def facts(origin: str, host: str = "127.0.0.1:9901") -> RequestFacts:
        return RequestFacts("POST", host, origin, None, "application/json", True)

    assert guard.refusal(facts("http://127.0.0.1:9901")) is None
    assert guard.refusal(facts("http://localhost:9901", "localhost:9901")) is None
    assert guard.refusal(facts("http://localhost", "localhost")) is None
    for origin in ("http://localhost:9901", "http://127.0.0.1:9902", "https://127.0.0.1:9901"):
        refusal = guard.refusal(facts(origin))
        assert refusal is not None and refusal.reason == "origin", origin


def test_upstream_patterns():
    admin = Admin(
        upstream_allow=["127.0.0.1:*", "db.internal:5432", "10.0.0.0/8", "fd00::/8", "*:443"]
    )
    allowed = [
        ("127.0.0.1", 1),
        ("DB.internal.", 5432),
        ("10.255.0.1", 9),
        ("fd00::5", 1),
        ("x", 443),
    ]
    refused = [("127.0.0.2", 1), ("db.internal", 1), ("localhost", 80), ("fe80::1", 1), ("x", 80)]
    for host, port in allowed:
        assert upstream_allowed(admin, host, port), (host, port)
    for host, port in refused:
        assert not upstream_allowed(admin, host, port), (host, port)
    assert upstream_allowed(Admin(), "anything.example", 1)  # the default: ["*"]
    assert not upstream_allowed(Admin(upstream_allow=[]), "127.0.0.1", 1)
    assert UpstreamPattern.parse("[::1]:6379").matches("::1", 6379)
    for bad in ("host:0", "host:x", "[::1", "1.2.3.4/33", ":80"):
        with pytest.raises(ValueError):
            UpstreamPattern.parse(bad)


def test_config_names_a_bad_admin_entry():
    base = {"listeners": [], "upstreams": []}
    cases = {
        "upstream_allow": (["host:x"], r"admin\.upstream_allow: .*port 'x'"),
        "cors_origins": (["*"], r"admin\.cors_origins: .*not an origin"),
        "allowed_hosts": (["http://a"], r"admin\.allowed_hosts: .*not a host name"),
    }
    for key, (value, pattern) in cases.items():
        with pytest.raises(ConfigError, match=pattern):
            from_dict({**base, "admin": {key: value}})


def test_a_command_line_token_satisfies_the_off_loopback_rule():
    text = textwrap.dedent(
        """
        admin: {listen: "0.0.0.0:9901"}
        listeners: [{name: l, listen: "127.0.0.1:0", upstream: u}]
        upstreams: [{name: u, endpoints: ["127.0.0.1:1"]}]
        """
    )
    with pytest.raises(ConfigError, match=r"set admin\.token"):
        loads(text)
    assert loads(text, admin_token="from-cli").admin.token == "from-cli"


def test_testbed_admin_token_auto(tmp_path):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "ports: {echo: 0, admin: 0}\n"
        "kafka: {enabled: false}\ngrpc: {enabled: false}\nhttp: {enabled: false}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "protoproxy", "testbed", str(scenario), "--admin-token", "auto"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        printed = []
        for line in proc.stdout:
            printed.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        (admin,) = [ln.split()[1] for ln in printed if ln.split()[:1] == ["admin"]]
        token = None
        for line in proc.stderr:
            if line.startswith("admin token: "):
                token = line.split(": ", 1)[1].strip()
                break
        assert token and token not in "".join(printed)
        for auth, expected in ((None, 401), (token, 200)):
            req = urllib.request.Request(f"http://{admin}/faults/reset", method="POST")
            if auth:
                req.add_header("Authorization", f"Bearer {auth}")
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            assert status == expected
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


_names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True)


@given(
    scheme=st.sampled_from(["http", "https"]),
    name=_names | st.sampled_from(["localhost", "127.0.0.1", "[::1]"]),
    port=st.none() | st.integers(1, 65535),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
)
def test_only_the_own_origin_passes(scheme, name, port, method):
    """Whatever origin a page has, it passes only when it is the API's own."""
    guard = BrowserGuard(Admin())
    host = "127.0.0.1:9901"
    origin = f"{scheme}://{name}" + (f":{port}" if port is not None else "")
    refusal = guard.refusal(RequestFacts(method, host, origin, None, "application/json", True))
    own = (scheme, name, port) == ("http", "127.0.0.1", 9901)
    assert (refusal is None) == own, origin
    assert own or refusal.reason == "origin"


@given(name=_names)
def test_no_other_name_is_a_host(name):
    guard = BrowserGuard(Admin())
    for host in (name, f"{name}:9901"):
        refusal = guard.refusal(RequestFacts("GET", host, None, None, None, False))
        assert (refusal is None) == is_loopback(name), host  # localhost, 127.x.y.z
