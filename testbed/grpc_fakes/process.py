"""The user's gRPC fakes' child process, driven from the testbed's process.

Why a child: `testbed.grpc_process` (the TestService's) says it; this is the
same lifecycle (launch at once, wait for "ready", stop by closing the control
socket) for the process that serves every ``grpc.services`` entry. This module
imports no grpcio and no protobuf: the proxy's process stays free of both.

Control requests are blocking, and tests read the journal from threads other
than the testbed's (`TestbedThread` users) while the admin API asks from the
loop's worker threads, so one lock keeps each request and its answer together
on the one socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

#: Seconds for the child to import grpcio, compile the protos and load stubs.
START_TIMEOUT = 60.0
#: Seconds for one control request.
CONTROL_TIMEOUT = 30.0
#: Seconds for the child to exit once asked, before it is killed.
STOP_TIMEOUT = 10.0


class ChildGone(RuntimeError):
    """The fakes' process exited (a crash in grpcio, or a kill)."""


class StartFailed(ValueError):
    """The child could not build or bind a fake; `service` names it when known."""

    def __init__(self, message: str, service: str | None) -> None:
        super().__init__(message)
        self.service = service


class UnknownService(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class GrpcFakesProcess:
    """``proc = GrpcFakesProcess.launch(configs, host)``; ``await proc.wait_ready()``."""

    def __init__(self, proc: subprocess.Popen[bytes], control: socket.socket) -> None:
        self._proc = proc
        self._control = control
        self._buffer = b""
        self._lock = threading.Lock()
        #: service name -> "host:port" of its grpcio server, once ready
        self.addresses: dict[str, str] = {}

    @classmethod
    def launch(
        cls, configs: list[dict[str, Any]], host: str = "127.0.0.1", journal_limit: int = 10_000
    ) -> GrpcFakesProcess:
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parent.parent.parent)  # where `testbed` is
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        argv = [
            sys.executable,
            "-m",
            "testbed.grpc_fakes.child",
            "--control-fd",
            str(theirs.fileno()),
            "--parent-pid",
            str(os.getpid()),
            "--host",
            host,
            "--journal-limit",
            str(journal_limit),
            "--config",
            json.dumps(configs),
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
        return cls(proc, ours)

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> dict[str, str]:
        """The servers' addresses once the child says they accept calls."""
        message = await asyncio.wait_for(self._areceive(), timeout)
        if "failed" in message:
            raise StartFailed(message["failed"], message.get("service"))
        self.addresses = dict(message["ready"])
        self._control.setblocking(True)
        self._control.settimeout(CONTROL_TIMEOUT)
        return self.addresses

    async def stop(self) -> None:
        with self._lock:
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

    # -- control ---------------------------------------------------------------------------

    def request(self, op: str, args: dict[str, Any]) -> Any:
        """One control request, answered; blocking, from any thread."""
        with self._lock:
            try:
                self._control.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
                reply = self._receive()
            except (BrokenPipeError, ConnectionResetError):
                raise self._gone() from None
        if "error" in reply:
            kind = reply.get("type", "")
            if kind == "UnknownService":
                raise UnknownService(reply["error"])
            kinds: dict[str, type[Exception]] = {"KeyError": KeyError, "TypeError": TypeError}
            raise kinds.get(kind, ValueError)(reply["error"])
        return reply["ok"]

    async def arequest(self, op: str, args: dict[str, Any]) -> Any:
        """`request` off the event loop, for the admin API's routes."""
        return await asyncio.to_thread(self.request, op, args)

    def _receive(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            chunk = self._control.recv(1 << 20)
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
        return ChildGone(f"the gRPC fakes' process {self._proc.pid} is gone ({status})")
