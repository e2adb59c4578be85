"""A tiny line protocol, its server with a planted bug, and its fuzz driver: the runner's
test subject while the real drivers are written elsewhere.

The server answers each line ``WORD`` with ``OK <len>``, ``ping`` with ``pong``,
and (the planted bug, unless fixed) any word holding ``!!`` with ``ERR 500``.
The minimal failing case is therefore exactly one line, ``!!``.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule
from hypothesis.strategies import SearchStrategy

from protoproxy.fuzz.driver import Case, Observation, Options, OracleFailure, Target

#: the stateless strategy's words: too short for the stateful bug's "aaaa"
WORDS = st.text(alphabet="ab!", min_size=1, max_size=3)


class _Handler(socketserver.StreamRequestHandler):
    server: LineServer

    def handle(self) -> None:
        seen_b = False  # the stateful bug's state: per connection
        for raw in self.rfile:
            word = raw.rstrip(b"\n").decode()
            with self.server.lock:
                self.server.lines += 1
            if word == "ping":
                reply = "pong"
            elif "!!" in word and not self.server.fixed:
                reply = "ERR 500"
            elif word == "aaaa" and self.server.stateful_bug and seen_b:
                reply = "ERR 503"  # only after an earlier "b" on this connection
            else:
                seen_b = seen_b or word == "b"
                reply = f"OK {len(word)}"
            self.wfile.write(reply.encode() + b"\n")


class LineServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fixed: bool = False, stateful_bug: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fixed = fixed
        self.stateful_bug = stateful_bug
        self.lines = 0
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def target(self) -> Target:
        return Target("127.0.0.1", self.server_address[1])

    def __enter__(self) -> LineServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def line_case(words: list[str]) -> Case:
    return Case(
        protocol="line",
        label=f"lines={len(words)}",
        wire=[w.encode() + b"\n" for w in words],
        decoded=words,
    )


class LineDriver:
    """The driver contract for the line protocol: one connection per case."""

    protocol: ClassVar[str] = "line"
    listener_protocol: ClassVar[str] = "tcp"

    def __init__(self, options: Options) -> None:
        self.options = options

    def strategy(self) -> SearchStrategy[Case]:
        return st.lists(WORDS, min_size=1, max_size=4).map(line_case)

    def send(self, f: Any, s: socket.socket, chunk: bytes) -> tuple[str, int]:
        """One line out, its answer in, judged; returns the answer and its latency."""
        t0 = time.monotonic_ns()
        s.sendall(chunk)
        try:
            line = f.readline()
        except TimeoutError as exc:
            raise OracleFailure("deadline", f"no answer to {chunk!r}") from exc
        took = time.monotonic_ns() - t0
        if not line:
            raise OracleFailure("closed_with_reason", f"closed after {chunk!r}")
        reply = line.rstrip(b"\n").decode()
        status = reply.removeprefix("ERR ")
        if reply.startswith("ERR 5") and status not in self.options.allow_status:
            raise OracleFailure("not_a_server_error", f"{chunk!r} -> {reply}")
        return reply, took

    def connect(self, via: Target) -> socket.socket:
        return socket.create_connection((via.host, via.port), timeout=self.options.deadline_s)

    def execute(self, case: Case, via: Target) -> Observation:
        slowest = 0
        with self.connect(via) as s, s.makefile("rb") as f:
            for chunk in case.wire:
                slowest = max(slowest, self.send(f, s, chunk)[1])
        return Observation(case.label, slowest, len(case.wire))

    def probe(self, via: Target) -> None:
        with self.connect(via) as s, s.makefile("rb") as f:
            reply, _ = self.send(f, s, b"ping\n")
        if reply != "pong":
            raise OracleFailure("alive", f"ping -> {reply}")

    def close(self) -> None:
        pass

    def state_machine(self, via: Target) -> type[RuleBasedStateMachine] | None:
        driver = self

        class Lines(RuleBasedStateMachine):
            """One connection; each step a line on it. `case` accumulates the writes."""

            def __init__(self) -> None:
                super().__init__()
                self.case = Case("line", "stateful", [], [])
                self.sock = driver.connect(via)
                self.file = self.sock.makefile("rb")

            @rule(word=WORDS | st.just("aaaa"))
            def send(self, word: str) -> None:
                chunk = word.encode() + b"\n"
                self.case.wire.append(chunk)
                self.case.decoded.append(word)
                driver.send(self.file, self.sock, chunk)

            def teardown(self) -> None:
                self.file.close()
                self.sock.close()

        return Lines


def spec() -> str:
    return f"{__name__}:LineDriver"


def register() -> Any:
    from protoproxy.fuzz import registry

    registry.register("line", spec(), "tcp")
    return registry
