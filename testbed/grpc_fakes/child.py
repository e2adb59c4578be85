"""The user's gRPC fakes in a child process: ``python -m testbed.grpc_fakes.child``.

The same design as the TestService's child (`testbed.grpc.child`, which says
why grpcio lives out of the proxy's process): one child for all of a
scenario's user services, each on its own ephemeral port. ``--config`` is the
JSON list of the scenario's ``grpc.services`` entries; the child compiles the
schemas, loads and checks the stubs, starts the servers and says
``{"ready": {"name": "host:port", ...}}`` (or ``{"failed": message}``) on the
control socket, then answers control requests ``{"op", "args"}`` with
``{"ok": result}`` or ``{"error": message, "type": kind}`` until EOF.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
from typing import Any

from ..grpc.child import die_with_parent
from .fakes import BuildError, ChildJournal, FakeSet, UnknownService


class Control:
    """The control requests: stubs per service, and the journal."""

    def __init__(self, fakes: FakeSet, journal: ChildJournal) -> None:
        self.fakes = fakes
        self.journal = journal

    def handle(self, op: str, args: dict[str, Any]) -> Any:
        if op.startswith("stubs_"):
            return self.fakes.control(op, args)
        if op == "journal":
            return self.journal.dump()
        if op == "journal_clear":
            self.journal.journal.clear()
            return None
        if op == "timings":
            return self.fakes.timings
        raise ValueError(f"unknown control request {op!r}")


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sock = socket.socket(fileno=args.control_fd)
    reader, writer = await asyncio.open_connection(sock=sock, limit=64 * 1024 * 1024)

    def send(message: dict[str, Any]) -> None:
        writer.write(json.dumps(message).encode() + b"\n")

    journal = ChildJournal(args.journal_limit)
    failure: dict[str, Any] | None = None
    try:
        fakes = FakeSet.build(json.loads(args.config), journal.record)
        addresses = await fakes.start(args.host)
    except BuildError as exc:  # the parent raises it as its own, naming the service
        failure = {"failed": str(exc), "service": exc.service}
    except OSError as exc:
        failure = {"failed": str(exc)}
    if failure is not None:
        send(failure)
        await writer.drain()
        writer.close()
        return
    control = Control(fakes, journal)
    send({"ready": addresses})

    async def requests() -> None:
        while line := await reader.readline():
            request = json.loads(line)
            try:
                result = control.handle(request["op"], request.get("args", {}))
            except UnknownService as exc:
                send({"error": str(exc), "type": "UnknownService"})
            except (ValueError, KeyError, TypeError) as exc:  # StubError is a ValueError
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
        await fakes.stop()
    writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.grpc_fakes.child")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--config", required=True, help="JSON list of grpc.services entries")
    parser.add_argument("--journal-limit", type=int, default=10_000)
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
