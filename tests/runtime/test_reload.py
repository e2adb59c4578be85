"""Config reload (SIGHUP, POST /config/reload): the difference applies, connections stay.

The first test is the issue's acceptance: a real `protoproxy run` holds 100
grpcio bidi streams while a SIGHUP adds a listener and changes a fault; every
stream is still on its connection afterwards and completes. Invalid configs,
by SIGHUP and by POST, change nothing and report `protoproxy check`'s lines.
The in-process tests cover what the subprocess cannot see cheaply: a port in
use rolls back, API-made state stays, endpoints change for new connections
only, and what needs a restart is reported and left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import signal
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from protoproxy import cli
from protoproxy import config as config_mod
from protoproxy.app import App
from protoproxy.faults.model import FaultSpec
from protoproxy.runtime_listeners import ListenerDirectory
from tests.peers import ChildStderr, listener_port, protoproxy_run

STREAMS = 100
CHANNELS = 4  # 25 streams on each of 4 proxied HTTP/2 connections
SERVICE = "test.Svc"
#: grpcio shares one connection among channels to one target unless told not to
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


# -- a grpcio upstream: Bidi echoes, Unary answers (unless a fault aborts it) ----------
async def _bidi(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> Any:
    async for message in requests:
        yield message


async def _unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"ok"


async def grpc_upstream() -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
            "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def unary_status(port: int) -> tuple[grpc.StatusCode, str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(f"/{SERVICE}/Unary")
        try:
            await call(b"x", timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


# -- the admin API of the child, called off the event loop --------------------------------
class Admin:
    def __init__(self, url: str) -> None:
        self.url = url

    def _call(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        return status, json.loads(body) if body else None

    async def call(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        return await asyncio.to_thread(self._call, method, path, headers)

    async def get(self, path: str) -> Any:
        status, body = await self.call("GET", path)
        assert status == 200, (path, status, body)
        return body

    async def reloads(self, result: str) -> float:
        stats = await self.get("/stats")
        for row in stats.get("protoproxy_config_reloads_total", []):
            if row["labels"] == {"result": result}:
                return float(row["value"])
        return 0.0


async def until(pred: Callable[[], Awaitable[bool]], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _config(upstream_port: int, *, second: bool, message: str, status: str) -> str:
    extra = (
        '  - {name: grpc2, listen: "127.0.0.1:0", protocol: grpc, upstream: svc}\n'
        if second
        else ""
    )
    return (
        'admin: {listen: "127.0.0.1:0"}\n'
        "listeners:\n"
        '  - {name: grpc, listen: "127.0.0.1:0", protocol: grpc, upstream: svc}\n'
        f"{extra}"
        "upstreams:\n"
        f'  - {{name: svc, endpoints: ["127.0.0.1:{upstream_port}"]}}\n'
        "faults:\n"
        "  - name: gate\n"
        f"    match: {{protocol: grpc, service: {SERVICE}, method: Unary}}\n"
        f"    action: {{abort: {{status: {status}, message: {message}}}}}\n"
    )


INVALID = textwrap.dedent(
    """\
    admin: {listen: "127.0.0.1:0"}
    listeners:
      - {name: grpc, listen: "127.0.0.1:0", protocol: grpc, upstream: svc}
      - {name: grpc3, listen: "127.0.0.1:70000", protocol: grpc, upstream: svc, colour: blue}
    upstreams:
      - {name: svc, endpoints: ["127.0.0.1:1"]}
    """
)


def check_lines(path: Path) -> list[str]:
    """`protoproxy check`'s problem lines for `path` (the ones a reload must repeat);
    its own code, in process: a second interpreter would only cost start-up time."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(["check", str(path)]) == 2
    return [line.strip() for line in err.getvalue().splitlines()[1:]]


@pytest.mark.timeout(60)
async def test_sighup_keeps_100_streams_and_invalid_reloads_change_nothing(
    tmp_path: Path,
) -> None:
    server, upstream_port = await grpc_upstream()
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text(_config(upstream_port, second=False, message="before", status="UNAVAILABLE"))
    proc = protoproxy_run(cfg, stderr=subprocess.PIPE, text=True)
    stderr = ChildStderr(proc)
    channels: list[grpc.aio.Channel] = []
    try:
        m = await asyncio.to_thread(stderr.wait_for, r"admin API on (http://\S+)")
        admin = Admin(m.group(1))
        port = await asyncio.to_thread(listener_port, stderr, "grpc")
        assert await unary_status(port) == (grpc.StatusCode.UNAVAILABLE, "before")

        # 100 established streams, each with one message through already
        channels = [
            grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OWN_CONNECTION)
            for _ in range(CHANNELS)
        ]
        calls = [channels[i % CHANNELS].stream_stream(f"/{SERVICE}/Bidi")() for i in range(STREAMS)]
        for call in calls:
            await call.write(b"one")
        assert [await call.read() for call in calls] == [b"one"] * STREAMS
        before = await admin.get("/connections?listener=grpc")
        ids = sorted(c["id"] for c in before["connections"])
        assert len(ids) == CHANNELS

        # SIGHUP: a listener added, the fault changed
        cfg.write_text(
            _config(upstream_port, second=True, message="after", status="PERMISSION_DENIED")
        )
        proc.send_signal(signal.SIGHUP)

        async def added() -> bool:
            return (await admin.call("GET", "/listeners/grpc2"))[0] == 200

        await until(added, "listener grpc2")
        assert await admin.reloads("ok") == 1
        shown = await admin.get("/listeners/grpc2")
        port2 = int(shown["listen"].rpartition(":")[2])
        want = (grpc.StatusCode.PERMISSION_DENIED, "after")
        assert await unary_status(port2) == want  # the new listener serves
        assert await unary_status(port) == want  # and the fault changed on the old one
        gate = await admin.get("/faults/gate")
        assert gate["action"]["abort"]["message"] == "after"

        # every stream is alive on the connection it had, and completes
        for call in calls:
            await call.write(b"two")
        assert [await call.read() for call in calls] == [b"two"] * STREAMS
        for call in calls:
            await call.done_writing()
        assert [await call.code() for call in calls] == [grpc.StatusCode.OK] * STREAMS
        after = await admin.get("/connections?listener=grpc")
        assert sorted(c["id"] for c in after["connections"]) == ids

        # an invalid config by SIGHUP: nothing changes, the log names file and problems
        cfg.write_text(INVALID)
        expected = check_lines(cfg)
        assert "listeners[1].listen: port 70000 is out of range" in expected
        proc.send_signal(signal.SIGHUP)

        async def refused() -> bool:
            return await admin.reloads("invalid") == 1

        await until(refused, "the invalid reload")
        line = await asyncio.to_thread(stderr.wait_for, r"config reload invalid \(.*")
        assert str(cfg) in line.group(0)
        assert all(problem in line.group(0) for problem in expected), line.group(0)
        names = {row["name"] for row in (await admin.get("/listeners"))["listeners"]}
        assert names == {"grpc", "grpc2"}
        assert await unary_status(port) == want
        assert await unary_status(port2) == want
        ups = (await admin.get("/upstreams"))["upstreams"]
        assert [e["endpoint"] for e in ups[0]["endpoints"]] == [f"127.0.0.1:{upstream_port}"]

        # the same by POST: 400 with check's lines, nothing changed
        status, body = await admin.call("POST", "/config/reload")
        assert status == 400
        assert body["result"] == "invalid" and body["source"] == str(cfg)
        assert body["problems"] == expected
        assert body["error"].startswith(f"{cfg}:")
        assert (await admin.get("/faults/gate"))["action"]["abort"]["message"] == "after"

        # POST with a valid file: 200, what changed; not for a web page, though
        cfg.write_text(_config(upstream_port, second=False, message="after", status="ABORTED"))
        for foreign in ({"Origin": "http://evil.example"}, {"Host": "evil.example"}):
            status, body = await admin.call("POST", "/config/reload", foreign)
            assert status == 403, (foreign, body)
        assert await admin.reloads("ok") == 1
        assert (await admin.call("GET", "/listeners/grpc2"))[0] == 200
        status, body = await admin.call("POST", "/config/reload")
        assert status == 200, body
        assert body["result"] == "ok"
        assert body["changed"]["listeners"] == {"added": [], "removed": ["grpc2"], "changed": []}
        assert body["changed"]["faults"] == {"added": [], "removed": [], "changed": ["gate"]}
        assert body["restart_needed"] == []
        assert (await admin.call("GET", "/listeners/grpc2"))[0] == 404
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port2), timeout=5).close()
        assert await unary_status(port) == (grpc.StatusCode.ABORTED, "after")
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(admin.url + "/metrics", timeout=10).read().decode()
        )
        assert re.search(r'protoproxy_config_reloads_total\{result="ok"\} 2\.0', metrics)
        assert re.search(r'protoproxy_config_reloads_total\{result="invalid"\} 2\.0', metrics)
        assert "protoproxy_config_last_reload_success_timestamp_seconds" in metrics
    finally:
        for channel in channels:
            await channel.close()
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
        await server.stop(0)
    assert "config reload ok" in stderr.text()


# -- in process: rollback, API-made state, endpoints, restart-needed ---------------------
class Tagged:
    """A TCP server answering each read with its tag and the bytes: who served whom."""

    def __init__(self, tag: bytes) -> None:
        self.tag = tag
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(self.tag + data)
            await writer.drain()
        writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])


async def ask(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], data: bytes) -> bytes:
    reader, writer = conn
    writer.write(data)
    return await asyncio.wait_for(reader.read(1024), 5)


def tcp_config(
    upstream: int, *, faults: list[str], extra_listener: str = "", idle: str = "300s"
) -> str:
    fault_lines = "".join(
        f"  - {{name: {n}, match: {{listener: a}}, action: {{delay: 1ms}}}}\n" for n in faults
    )
    return (
        "admin: {enabled: false}\n"
        "listeners:\n"
        '  - {name: a, listen: "127.0.0.1:0", protocol: tcp, upstream: u}\n'
        f"{extra_listener}"
        "upstreams:\n"
        f'  - {{name: u, endpoints: ["127.0.0.1:{upstream}"]}}\n'
        + ("faults:\n" + fault_lines if faults else "faults: []\n")
        + f"timeouts: {{idle: {idle}}}\n"
    )


@pytest.mark.timeout(30)
async def test_reload_in_process(tmp_path: Path) -> None:
    one, two = Tagged(b"1:"), Tagged(b"2:")
    port1, port2 = await one.start(), await two.start()
    path = tmp_path / "proxy.yaml"
    path.write_text(tcp_config(port1, faults=["f1"]))
    app = App(config_mod.load(path), path)
    await app.start()
    busy = socket.socket()
    try:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        a = app.proxy.listeners["a"].port
        held = await asyncio.open_connection("127.0.0.1", a)
        assert await ask(held, b"x") == b"1:x"
        # state made through the API: a fault and a listener of its own
        app.faults.add(
            FaultSpec.model_validate(
                {"name": "api", "match": {"listener": "a"}, "action": {"delay": "1ms"}}
            )
        )
        api = config_mod.Listener.model_validate(
            {"name": "side", "listen": "127.0.0.1:0", "protocol": "tcp", "upstream": "u"}
        )
        await ListenerDirectory(app.proxy).add(api)

        # a port in use: failed, and nothing at all changed
        path.write_text(
            tcp_config(
                port2,
                faults=["f2"],
                extra_listener=f'  - {{name: b, listen: "127.0.0.1:{taken}", '
                "protocol: tcp, upstream: u}\n",
            )
        )
        out = await app.reloader.reload()
        assert out.result == "failed" and out.status == 500
        assert "address already in use" in out.error
        assert set(app.faults.faults) == {"f1", "api"}
        assert set(app.proxy.listeners) == {"a", "side"}
        fresh = await asyncio.open_connection("127.0.0.1", a)
        assert await ask(fresh, b"y") == b"1:y"  # still the old endpoint
        fresh[1].close()

        # the same with a free port, and a section that needs a restart
        path.write_text(
            tcp_config(
                port2,
                faults=["f2"],
                extra_listener='  - {name: b, listen: "127.0.0.1:0", protocol: tcp, upstream: u}\n',
                idle="60s",
            )
        )
        out = await app.reloader.reload()
        assert out.result == "ok", out
        assert out.plan is not None
        body = out.to_json()
        assert body["changed"]["upstreams"] == {"added": [], "removed": [], "changed": ["u"]}
        assert body["changed"]["faults"] == {"added": ["f2"], "removed": ["f1"], "changed": []}
        assert body["restart_needed"] == ["timeouts.idle"]
        assert app.config.timeouts.idle == 300  # left as it was
        assert set(app.faults.faults) == {"f2", "api"}  # the API's fault stays
        assert set(app.proxy.listeners) == {"a", "b", "side"}  # and its listener
        assert await ask(held, b"z") == b"1:z"  # established: the old endpoint
        for name in ("a", "b"):
            fresh = await asyncio.open_connection("127.0.0.1", app.proxy.listeners[name].port)
            assert await ask(fresh, b"w") == b"2:w"  # new connections: the new one
            fresh[1].close()

        # a file listener deleted through the API comes back: the file owns it
        await ListenerDirectory(app.proxy).remove("b")
        out = await app.reloader.reload()
        assert out.result == "ok" and out.plan is not None
        assert out.plan.listeners.added == ["b"]
        assert set(app.proxy.listeners) == {"a", "b", "side"}

        # a name the API took is refused, with its path
        path.write_text(
            tcp_config(
                port2,
                faults=["f2"],
                extra_listener='  - {name: side, listen: "127.0.0.1:0", protocol: tcp, upstream: u}\n',
            )
        )
        out = await app.reloader.reload()
        assert out.result == "invalid" and out.status == 400
        assert out.problems == [
            "listeners[1].name: listener 'side' exists, made through the admin API "
            "(delete it there, or rename this one)"
        ]
        assert set(app.proxy.listeners) == {"a", "b", "side"}
        held[1].close()
    finally:
        busy.close()
        await app.stop(drain=0)
        for server in (one, two):
            assert server.server is not None
            server.server.close()


async def test_app_without_a_file_has_nothing_to_reload() -> None:
    cfg = config_mod.from_dict(
        {
            "admin": {"enabled": False},
            "listeners": [{"name": "l", "listen": "127.0.0.1:0", "upstream": "u"}],
            "upstreams": [{"name": "u", "endpoints": ["127.0.0.1:1"]}],
        }
    )
    out = await App(cfg).reloader.reload()
    assert out.result == "failed" and out.status == 409
    assert "not started from a config file" in out.error
