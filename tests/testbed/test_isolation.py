"""The fake gRPC service in its own process: grpcio's C-core out of the proxy's
process, controlled as before, gone with the testbed however the testbed ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pytest

from testbed.grpc import FakeGrpcService
from testbed.grpc.client import SyncClient
from testbed.grpc_process import ChildGone, GrpcServiceProcess
from testbed.threaded import TestbedThread

GRPC_ONLY = {"kafka": {"enabled": False}, "http": {"enabled": False}, "echo": {"enabled": True}}
ROOT = Path(__file__).resolve().parents[2]
#: seconds for a process to be seen gone once its end is set in motion
DEADLINE = 60.0


def _gone(pid: int) -> bool:
    """No such process, or a zombie (exited, waiting for whoever reaps it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _wait_gone(pid: int) -> bool:
    end = time.monotonic() + DEADLINE
    while not _gone(pid) and time.monotonic() < end:
        time.sleep(0.01)
    return _gone(pid)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "codecs"), env.get("PYTHONPATH", "")]
    )
    return env


def test_the_service_runs_in_a_child_and_obeys_the_control_api() -> None:
    with TestbedThread(GRPC_ONLY) as tb:
        service = tb.call(lambda t: t.services["grpc"])
        assert isinstance(service, GrpcServiceProcess)
        assert service.pid != os.getpid() and service.returncode is None
        assert tb.faults.grpc_method("Unary", status="UNAVAILABLE", message="down") == {
            "status": "UNAVAILABLE",
            "message": "down",
        }
        with SyncClient.connect(tb.grpc_target) as client:
            failed = client.unary()
            assert failed.code is grpc.StatusCode.UNAVAILABLE and failed.details == "down"
            tb.faults.grpc_reset()  # in force for the very next call
            assert client.unary().ok
        stats = tb.call(lambda t: t.services["grpc"].stats("Unary"))
        assert (stats.started, stats.finished, dict(stats.statuses)) == (1, 1, {"OK": 1})
        assert tb.call(lambda t: t.services["grpc"].counters())["Unary"]["finished"] == 1
        with pytest.raises(ValueError, match="unknown method"):
            tb.faults.grpc_method("Nope")
        with pytest.raises(ValueError, match="no gRPC status"):
            tb.faults.grpc_method("Unary", status="NOPE")
        tb.faults.grpc_serving(False)
        assert tb.call(lambda t: t.faults.service_history[-1]) == ("grpc", "serving False")
    assert service.returncode == 0  # stopped cleanly, not killed


def test_in_process_keeps_the_live_service() -> None:
    with TestbedThread({**GRPC_ONLY, "grpc": {"in_process": True}}) as tb:
        assert isinstance(tb.call(lambda t: t.services["grpc"]), FakeGrpcService)
        with SyncClient.connect(tb.grpc_target) as client:
            assert client.unary().ok


@pytest.mark.protoproxy_scenario(GRPC_ONLY, grpc={"in_process": True})
def test_the_marker_chooses_in_process(protoproxy_testbed) -> None:
    service = protoproxy_testbed.call(lambda t: t.services["grpc"])
    assert isinstance(service, FakeGrpcService)


def test_a_crashed_service_leaves_the_proxy_serving() -> None:
    """What the isolation is for: the service's process dies (as of a glibc abort),
    the proxy reports the upstream gone and keeps serving everything else."""
    with TestbedThread(GRPC_ONLY) as tb:
        service = tb.call(lambda t: t.services["grpc"])
        os.kill(service.pid, signal.SIGABRT)
        assert _wait_gone(service.pid)
        with SyncClient.connect(tb.grpc_target) as client:
            assert client.unary().code is grpc.StatusCode.UNAVAILABLE
        host, port = tb.echo_address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as s:
            s.sendall(b"still here")
            assert s.recv(10) == b"still here"
        assert tb.admin.get("/healthz") == {"status": "ok"}
    assert service.returncode == -signal.SIGABRT


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_child_dies_with_the_testbed_process(how: signal.Signals) -> None:
    """SIGKILL gives the parent no chance to stop anything: the child sees its
    control socket close (and PR_SET_PDEATHSIG) and goes."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from testbed.harness import Testbed
        from testbed.scenario import Scenario

        async def main():
            sc = Scenario.ephemeral(kafka={"enabled": False}, http={"enabled": False},
                                    echo={"enabled": False})
            async with Testbed(sc) as tb:
                print(tb.services["grpc"].pid, "grpc" in sys.modules, flush=True)
                await asyncio.Event().wait()

        asyncio.run(main())
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=_env(), text=True
    )
    try:
        assert parent.stdout is not None
        child_pid, grpc_loaded = parent.stdout.readline().split()
        assert grpc_loaded == "False"  # no grpcio (nor its C-core) in the proxy's process
        assert not _gone(int(child_pid))
        parent.send_signal(how)
        parent.wait(DEADLINE)
        assert _wait_gone(int(child_pid))
    finally:
        parent.kill()
        parent.wait()


async def test_the_process_handle_on_its_own() -> None:
    """`GrpcServiceProcess` without a Testbed: ready means callable, a control call
    after the child died says so, and stop reaps it."""
    service = GrpcServiceProcess.launch()
    try:
        await service.wait_ready()
        assert service.port > 0
        assert service.program("Unary", count=3) == {"count": 3}
        assert service.counters()["Unary"]["started"] == 0
        assert service.stats("Unary").statuses["OK"] == 0  # a Counter, as in-process
        os.kill(service.pid, signal.SIGKILL)
        with pytest.raises(ChildGone, match="is gone"):
            service.reset()
    finally:
        await service.stop()
    assert service.returncode == -signal.SIGKILL
