"""Bad configs name the path into the config and the problem."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from protoproxy.config import ConfigError, loads

GOOD = """
listeners:
  - name: orders
    listen: 127.0.0.1:19092
    protocol: kafka
    upstream: kafka
upstreams:
  - name: kafka
    endpoints: ["127.0.0.1:9092"]
    connect_timeout: 2s
limits:
  max_message_size: 16MiB
faults:
  - name: slow-produce
    match: {protocol: kafka, api: Produce, topic: orders}
    action: {delay: 200ms}
    probability: 0.1
"""


def test_good_config_parses_units():
    cfg = loads(GOOD)
    assert cfg.upstreams[0].connect_timeout == 2.0
    assert cfg.limits.max_message_size == 16 * 1024 * 1024
    assert cfg.listeners[0].listen.port == 19092
    assert cfg.admin.listen == "127.0.0.1:9901"


MISTAKES = [
    (
        "listen: 127.0.0.1:19092",
        "listen: 127.0.0.1:70000",
        "listeners[0].listen",
        "port 70000 is out of range",
    ),
    (
        "listen: 127.0.0.1:19092",
        "listen: 19092",
        "listeners[0].listen",
        "did you mean 127.0.0.1:19092",
    ),
    ("protocol: kafka", "protocol: mqtt", "listeners[0].protocol", "'auto'"),
    ("upstream: kafka\n", "upstream: kafak\n", "listeners[0].upstream", "unknown upstream 'kafak'"),
    (
        "connect_timeout: 2s",
        "connect_timeout: soon",
        "upstreams[0].connect_timeout",
        "not a duration",
    ),
    ("max_message_size: 16MiB", "max_message_size: huge", "limits.max_message_size", "not a size"),
    ('endpoints: ["127.0.0.1:9092"]', "endpoints: []", "upstreams[0].endpoints", "at least 1"),
    ("probability: 0.1", "probability: 1.5", "faults[0].probability", "less than or equal to 1"),
    (
        "    protocol: kafka\n",
        "    protocol: kafka\n    colour: red\n",
        "listeners[0].colour",
        "unknown key",
    ),
    ("  - name: orders\n", "  - nme: orders\n", "listeners[0].name", "is required"),
    (
        "limits:\n",
        "admin: {listen: 0.0.0.0:9901}\nlimits:\n",
        "admin",
        "set admin.token",
    ),
    (
        "    upstream: kafka\n",
        "    upstream: kafka\n    tls: {cert: a.pem}\n",
        "listeners[0].tls",
        "cert and key must be given together",
    ),
    (
        "upstreams:\n",
        "  - name: orders\n    listen: 127.0.0.1:19092\n    upstream: kafka\nupstreams:\n",
        "listeners[1].name",
        "duplicate listener name 'orders'",
    ),
    (
        "    connect_timeout: 2s\n",
        "    connect_timeout: 2s\n    tls: {cert: c.pem}\n",
        "upstreams[0].tls",
        "client cert and key",
    ),
    (
        "match: {protocol: kafka,",
        "match: {listener: ordres,",
        "faults[0].match.listener",
        "no listener named 'ordres' (listeners: orders)",
    ),
    (
        "action: {delay: 200ms}",
        "action: {abort: UNAVAILABLE}",
        "faults[0].action",
        "unknown Kafka error 'UNAVAILABLE' (match.protocol is kafka)",
    ),
]


def test_fault_may_name_a_kafka_listeners_broker_listeners():
    cfg = loads(GOOD.replace("match: {protocol: kafka,", "match: {listener: orders-broker2,"))
    assert cfg.faults[0].match["listener"] == "orders-broker2"


@pytest.mark.parametrize(("old", "new", "path", "problem"), MISTAKES)
def test_mistake_names_path_and_problem(old, new, path, problem):
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    with pytest.raises(ConfigError) as info:
        loads(text)
    message = str(info.value)
    assert any(p == path and problem in m for p, m in info.value.problems), message
    assert f"{path}: " in message


def test_not_a_mapping_and_bad_yaml():
    with pytest.raises(ConfigError, match="mapping"):
        loads("- just\n- a list\n")
    with pytest.raises(ConfigError, match=r"invalid YAML: line \d+, column \d+"):
        loads("listeners:\n  - name: [unclosed\n")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "protoproxy", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_check(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    res = _cli("check", str(good))
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("127.0.0.1:19092", "127.0.0.1:70000"))
    res = _cli("check", str(bad))
    assert res.returncode == 2
    assert "listeners[0].listen: port 70000 is out of range" in res.stderr
    missing = tmp_path / "tls.yaml"
    missing.write_text(
        GOOD.replace(
            "    upstream: kafka\n",
            "    upstream: kafka\n    tls: {cert: nope.pem, key: nope.key}\n",
            1,
        )
    )
    res = _cli("check", str(missing))
    assert res.returncode == 2
    assert "listeners[0].tls.cert: file" in res.stderr and "does not exist" in res.stderr
    res = _cli("run", str(bad))
    assert res.returncode == 2 and "port 70000" in res.stderr
    nosuch = tmp_path / "nosuch.yaml"
    nosuch.write_text(GOOD.replace("match: {protocol: kafka,", "match: {listener: nosuch,"))
    res = _cli("check", str(nosuch))
    assert res.returncode == 2
    assert "faults[0].match.listener: no listener named 'nosuch' (listeners: orders)" in res.stderr
    assert _cli("check", str(tmp_path / "absent.yaml")).returncode == 2


def test_cli_run_serves_and_shuts_down_on_sigterm(tmp_path):
    import signal
    import socket

    from tests.peers import (
        ChildStderr,
        Script,
        ScriptedServer,
        exchange,
        listener_port,
        protoproxy_run,
        wait_for,
    )

    server = ScriptedServer(default=Script(b"pong"))
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            admin: {{enabled: false}}
            listeners:
              - {{name: l, listen: "127.0.0.1:0", protocol: tcp, upstream: u}}
            upstreams:
              - {{name: u, endpoints: ["{server.address}"]}}
            timeouts: {{drain: 5s}}
            """
        )
    )
    proc = protoproxy_run(cfg, stderr=subprocess.PIPE, text=True)
    stderr = ChildStderr(proc)

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        return False

    try:
        port = listener_port(stderr, "l")
        assert exchange(port, b"ping", [4]) == b"pong"
        # A connection open at shutdown may finish within the drain deadline.
        held = socket.create_connection(("127.0.0.1", port))
        held.sendall(b"late")
        # the proxy accepted it: its upstream connection reached the server
        assert wait_for(lambda: server.accepted == 2, 30)
        proc.send_signal(signal.SIGTERM)
        assert wait_for(refused, 30)  # no longer accepting
        held.shutdown(socket.SHUT_WR)
        held.settimeout(5)
        assert held.recv(100) == b"pong"
        held.close()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        server.close()
    assert "shutting down" in stderr.text()
