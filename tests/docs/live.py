"""The `protoproxy testbed` the examples run against: one process per session, default ports.

Started exactly as the README tells a user to (``protoproxy testbed --access-log``),
so the banner it prints and the access log lines it writes are what the docs
show. Other tests use ephemeral ports; this one owns the defaults while it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ADMIN = "127.0.0.1:9901"
#: every port the default scenario binds: admin, Kafka bootstrap and its three brokers,
#: gRPC, HTTP, echo
DEFAULT_PORTS = {
    "admin": 9901,
    "kafka": 19092,
    "kafka-broker0": 19093,
    "kafka-broker1": 19094,
    "kafka-broker2": 19095,
    "grpc": 15051,
    "http": 18080,
    "echo": 17000,
}
BANNER_END = "Press Ctrl-C to stop."


class PortBusy(RuntimeError):
    pass


def check_ports_free() -> None:
    busy = []
    for name, port in DEFAULT_PORTS.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError as exc:
                busy.append(f"127.0.0.1:{port} ({name}: {exc.strerror})")
    if busy:
        raise PortBusy(
            "the docs examples need protoproxy testbed's default ports, but these are in use: "
            + ", ".join(busy)
            + ". Stop whatever holds them (another `protoproxy testbed`?) and run again."
        )


def admin(method: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    """One admin API call; the status and the parsed body (text if not JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{ADMIN}{path}", data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def reset() -> None:
    """Every fault and toxic off, so one example's faults never reach the next."""
    for path in ("/faults/reset", "/reset"):
        status, body = admin("POST", path)
        if status >= 300:
            raise RuntimeError(f"POST {path} answered {status}: {body}")


class LiveTestbed:
    def __init__(self, workdir: Path) -> None:
        self.stdout = workdir / "testbed.stdout"
        self.stderr = workdir / "testbed.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, deadline: float = 60) -> None:
        check_ports_free()
        cmd = [sys.executable, "-m", "protoproxy", "testbed", "--access-log"]
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=os.environ.copy()
            )
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"protoproxy testbed exited {self.proc.returncode}:\n{self.stderr.read_text()}"
                )
            if BANNER_END in self.stdout.read_text() and self._ready():
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"protoproxy testbed not up after {deadline}s:\n{self.stderr.read_text()}"
        )

    def _ready(self) -> bool:
        with contextlib.suppress(OSError):
            return admin("GET", "/ready", timeout=2)[0] == 200
        return False

    def banner(self) -> str:
        """What `protoproxy testbed` printed about itself, from its first line to Ctrl-C."""
        text = self.stdout.read_text()
        start = text.index("protoproxy testbed is up:")
        end = text.index(BANNER_END, start) + len(BANNER_END)
        return text[start:end] + "\n"

    def access_log(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.stdout.read_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(line))
        return lines

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
