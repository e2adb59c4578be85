"""The fake gRPC service in a child process, driven from the testbed's process.

The testbed runs grpcio's server out of the proxy's process by default (the
scenario key ``grpc.in_process: false``): the testbed process once aborted with
glibc "double free or corruption" after about 5M attack streams, a fault of
native code (grpcio's C-core or uvloop) that took the proxy under test down
with it. Here a crash ends the child (`testbed.grpc.child`) and the proxy
reports the upstream as gone, as it would for a real service. The parent never
loads grpcio: this module imports only the pure-Python parts of `testbed.grpc`.

`GrpcServiceProcess` has the control API of `FakeGrpcService` (`program`,
`reset`, `stats`, `counters`, `set_serving`), each a request over the control
socket. The synchronous ones block the caller until the child has applied the
request (a fraction of a millisecond on an idle child): a program set before a
call must be in force when the call arrives, and only the child's answer says
it is. `stats` is a snapshot, as `ThreadedGrpcService.stats` is.

Lifecycle: `launch` forks the child at once (so grpcio's import overlaps the
other services' start), `wait_ready` waits for its "ready" line and a first
accepted connection, `stop` closes the control socket and reaps it: the child
ends on that EOF, which it also sees when the parent dies however it dies, and
on SIGTERM from PR_SET_PDEATHSIG (Linux), so it never outlives the testbed.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .grpc.stats import MethodStats

#: Seconds for the child to import grpcio and accept calls, on a loaded 2-core machine.
START_TIMEOUT = 60.0
#: Seconds for one control request; a dict update on an idle loop.
CONTROL_TIMEOUT = 30.0
#: Seconds for the child to exit once asked, before it is killed.
STOP_TIMEOUT = 10.0


class ChildGone(RuntimeError):
    """The service process exited (a crash in grpcio, or a kill)."""


class GrpcServiceProcess:
    """``svc = GrpcServiceProcess.launch(host)``; ``await svc.wait_ready()``; ...;
    ``await svc.stop()``."""

    def __init__(self, proc: subprocess.Popen[bytes], control: socket.socket, host: str) -> None:
        self.host = host
        self._proc = proc
        self._control = control
        self._buffer = b""
        self._address: str | None = None

    @classmethod
    def launch(cls, host: str = "127.0.0.1", port: int = 0) -> GrpcServiceProcess:
        """Start the child now; it binds and reports in `wait_ready`."""
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parent.parent)  # where `testbed` is
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        argv = [
            sys.executable,
            "-m",
            "testbed.grpc.child",
            "--control-fd",
            str(theirs.fileno()),
            "--parent-pid",
            str(os.getpid()),
            "--host",
            host,
            "--port",
            str(port),
        ]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # the testbed's stdout carries the access log
                pass_fds=(theirs.fileno(),),
                env=env,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        return cls(proc, ours, host)

    # -- lifecycle ---------------------------------------------------------------------
    async def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the child's server accepts calls: its "ready" line, then one
        connection accepted on the port it names (events both, no polling)."""
        message = await asyncio.wait_for(self._areceive(), timeout)
        if "failed" in message:
            raise OSError(message["failed"])
        address: str = message["ready"]
        host, _, port = address.rpartition(":")
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port)), timeout
        )
        writer.close()
        await writer.wait_closed()
        self._address = address
        self._control.settimeout(CONTROL_TIMEOUT)  # from now on: blocking requests

    async def stop(self) -> None:
        """Close the control socket, which is the child's signal to stop (the same
        EOF it sees if the parent dies), and reap it; kill it past STOP_TIMEOUT."""
        self._control.close()
        proc = self._proc
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), STOP_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    # -- where ---------------------------------------------------------------------------
    @property
    def address(self) -> str:
        if self._address is None:
            raise RuntimeError("the gRPC service process is not ready")
        return self._address

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    # -- the FakeGrpcService control API -------------------------------------------------
    def program(self, method: str, **behaviour: Any) -> dict[str, Any]:
        """`FakeGrpcService.program`, applied in the child; returns the program's
        set fields (the status by name). A bad program raises ValueError."""
        result: dict[str, Any] = self._request("program", {"method": method, **behaviour})
        return result

    def reset(self) -> None:
        self._request("reset", {})

    def stats(self, method: str) -> MethodStats:
        """A snapshot of one method's counters."""
        data = self._request("stats", {"method": method})
        data.pop("active")
        data["statuses"] = Counter(data["statuses"])
        return MethodStats(**data)

    def counters(self) -> dict[str, dict[str, object]]:
        result: dict[str, dict[str, object]] = self._request("counters", {})
        return result

    async def set_serving(self, serving: bool, service: str | None = None) -> None:
        args: dict[str, Any] = {"serving": serving}
        if service is not None:
            args["service"] = [service]
        self._request("serving", args)

    # -- the control socket --------------------------------------------------------------
    def _request(self, op: str, args: dict[str, Any]) -> Any:
        try:
            self._control.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
            reply = self._receive()
        except (BrokenPipeError, ConnectionResetError):
            raise self._gone() from None
        if "error" in reply:
            kinds: dict[str, type[Exception]] = {"KeyError": KeyError, "TypeError": TypeError}
            raise kinds.get(reply.get("type", ""), ValueError)(reply["error"])
        return reply["ok"]

    def _receive(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            chunk = self._control.recv(65536)
            if not chunk:
                raise self._gone()
            self._buffer += chunk
        return self._pop_line()

    async def _areceive(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        while b"\n" not in self._buffer:
            chunk = await loop.sock_recv(self._control, 65536)
            if not chunk:
                raise self._gone()
            self._buffer += chunk
        return self._pop_line()

    def _pop_line(self) -> dict[str, Any]:
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def _gone(self) -> ChildGone:
        code = self._proc.poll()
        status = "still running" if code is None else f"exit status {code}"
        return ChildGone(f"the gRPC service process {self._proc.pid} is gone ({status})")
