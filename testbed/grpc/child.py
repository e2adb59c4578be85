"""The fake gRPC service as a child process of the testbed: ``python -m testbed.grpc.child``.

Why a process: grpcio's C-core is native code with threads of its own, and
the testbed process once died of a glibc "double free or corruption" after
millions of attack streams. With the service here, a crash in grpcio kills
this child, not the proxy under test, and the proxy's process holds no gRPC
C-core at all (this child runs stdlib asyncio, the proxy uvloop: the two
native suspects never share a process).

The parent (`testbed.grpc_process.GrpcServiceProcess`) passes one end of a
socket pair as ``--control-fd``. Over it, as JSON lines: this child says
``{"ready": "host:port"}`` once the server accepts calls, then answers each
control request (``{"op": "program", "args": {...}}``) with ``{"ok": result}``
or ``{"error": message}``. The child ends when the socket reaches EOF (the
parent closed it to stop the service, or is gone, however it died), or on
SIGTERM, which Linux sends when the parent thread that started it exits
(PR_SET_PDEATHSIG), so no orphan keeps a port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
from typing import Any

from .behaviour import Behaviour
from .service import FakeGrpcService

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """SIGTERM when the parent goes (Linux); elsewhere the control EOF does it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        raise SystemExit(1)


def behaviour_json(behaviour: Behaviour) -> dict[str, Any]:
    """The set fields of a program, the status by name: what the parent returns."""
    out: dict[str, Any] = {}
    for name in Behaviour.__slots__:
        value = getattr(behaviour, name)
        if value is not None:
            out[name] = value.name if name == "status" else value
    return out


class Control:
    """The control requests, each a call of the FakeGrpcService API."""

    def __init__(self, service: FakeGrpcService) -> None:
        self.service = service

    async def handle(self, op: str, args: dict[str, Any]) -> Any:
        svc = self.service
        if op == "program":
            method = args.pop("method")
            return behaviour_json(svc.program(method, **args))
        if op == "reset":
            svc.reset()
            return None
        if op == "stats":
            return svc.stats(args["method"]).as_dict()
        if op == "counters":
            return svc.counters()
        if op == "serving":
            await svc.set_serving(bool(args["serving"]), *args.get("service", []))
            return None
        raise ValueError(f"unknown control request {op!r}")


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sock = socket.socket(fileno=args.control_fd)
    reader, writer = await asyncio.open_connection(sock=sock)

    def send(message: dict[str, Any]) -> None:
        writer.write(json.dumps(message).encode() + b"\n")

    service = FakeGrpcService(args.host, args.port)
    try:
        await service.start()
    except OSError as exc:  # the port is taken: the parent raises it as its own
        send({"failed": str(exc)})
        await writer.drain()
        writer.close()
        return
    control = Control(service)
    send({"ready": service.address})

    async def requests() -> None:
        while line := await reader.readline():
            request = json.loads(line)
            try:
                result = await control.handle(request["op"], request.get("args", {}))
            except (ValueError, KeyError, TypeError) as exc:
                send({"error": str(exc), "type": type(exc).__name__})
            else:
                send({"ok": result})
            await writer.drain()
        stop.set()  # EOF: stop (the parent closed the socket, or is gone)

    task = loop.create_task(requests())
    try:
        await stop.wait()
    finally:
        task.cancel()
        await service.stop()
    writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.grpc.child")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
