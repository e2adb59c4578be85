"""An HTTP/2 server (h2c, the h2 library) with a planted bug: `protoproxy fuzz http2`'s subject.

It answers every request with ``200`` and a two-byte body, once the request
has ended. The planted bug (unless ``fixed``): a stream opened by a HEADERS
frame with padding, after a PRIORITY frame named that stream as its
dependency while it was still idle, kills the server. It closes every
connection without a GOAWAY and serves no new one (each is closed at once),
as a crashed process would, so the case fails and the alive probe fails
after it. With ``revive_s`` it serves again that long after dying (a
supervisor's restart), which is what lets the fuzzer shrink the case.

The minimal case the strategy can draw is: HEADERS on stream 1, PRIORITY on
stream 1 depending on stream 3, then a padded HEADERS opening stream 3.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from protoproxy.fuzz.driver import Target
from protoproxy_codecs.http2 import frames as F

BODY = b"ok"


class BugDetector:
    """Watches a client's frames for the planted sequence (sans-IO, any chunking)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.preface_left = len(F.PREFACE)
        self.opened: set[int] = set()
        #: idle streams a PRIORITY frame was sent on
        self.named: set[int] = set()

    def feed(self, data: bytes) -> bool:
        """True once the planted sequence has been seen."""
        self.buf += data
        if self.preface_left:
            take = min(self.preface_left, len(self.buf))
            del self.buf[:take]
            self.preface_left -= take
        buf = self.buf
        while len(buf) >= 9:
            end = 9 + int.from_bytes(buf[:3], "big")
            if len(buf) < end:
                break
            ftype, flags = buf[3], buf[4]
            sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            if ftype == F.PRIORITY and sid not in self.opened and self.opened:
                self.named.add(sid)
            elif ftype == F.HEADERS and sid not in self.opened:
                if flags & F.FLAG_PADDED and sid in self.named:
                    return True
                self.opened.add(sid)
            del buf[:end]
        return False


class _Connection:
    """One client connection served by h2 on its own thread."""

    def __init__(self, server: PlantedHttp2Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.detector = BugDetector()
        #: stream -> body bytes still to send (the client's window was short)
        self.pending: dict[int, bytes] = {}

    def serve(self) -> None:
        conn = self.h2
        conn.initiate_connection()
        try:
            self.sock.sendall(conn.data_to_send())
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                if self.detector.feed(data) and not self.server.fixed:
                    self.server.die()
                    return
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.sock.sendall(conn.data_to_send())  # h2's GOAWAY
                    return
                for event in events:
                    self._on(event)
                self._flush()
                self.sock.sendall(conn.data_to_send())
        except OSError:
            return  # closed by die(), or by the client
        finally:
            self.server.forget(self.sock)

    def _on(self, event: Any) -> None:
        conn = self.h2
        if isinstance(event, h2.events.DataReceived):
            if event.flow_controlled_length:
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            sid = event.stream_id
            try:
                conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(BODY)))])
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                return  # the stream, or (after a GOAWAY) the connection, is closed
            self.pending[sid] = BODY
        elif isinstance(event, h2.events.StreamReset):
            self.pending.pop(event.stream_id, None)

    def _flush(self) -> None:
        """Send what the windows allow of each pending body."""
        conn = self.h2
        for sid, body in list(self.pending.items()):
            try:
                room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if room <= 0 and body:
                    continue
                chunk, rest = body[:room], body[room:]
                conn.send_data(sid, chunk, end_stream=not rest)
            except h2.exceptions.StreamClosedError:
                rest = b""
            if rest:
                self.pending[sid] = rest
            else:
                del self.pending[sid]


class PlantedHttp2Server:
    """``with PlantedHttp2Server() as server:``; ``server.target`` is where to fuzz."""

    def __init__(self, fixed: bool = False, revive_s: float | None = 0.005) -> None:
        self.fixed = fixed
        self.revive_s = revive_s
        self.deaths = 0
        self.dead = False
        self.lock = threading.Lock()
        self.conns: set[socket.socket] = set()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def target(self) -> Target:
        return Target("127.0.0.1", self.listener.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return  # stopped
            with self.lock:
                if self.dead:
                    # Dead: nothing serves the port. (The socket stays bound, so
                    # the port cannot go to another process; a connect succeeds
                    # and is closed at once, which a client sees as a refusal.)
                    sock.close()
                    continue
                self.conns.add(sock)
            threading.Thread(target=_Connection(self, sock).serve, daemon=True).start()

    def forget(self, sock: socket.socket) -> None:
        with self.lock:
            self.conns.discard(sock)
        sock.close()

    def die(self) -> None:
        """The crash: every connection closed without a GOAWAY, no more serving."""
        with self.lock:
            self.deaths += 1
            self.dead = True
            conns = list(self.conns)
            self.conns.clear()
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self.revive_s is not None:
            timer = threading.Timer(self.revive_s, self._revive)
            timer.daemon = True
            timer.start()

    def _revive(self) -> None:
        with self.lock:
            self.dead = False

    def __enter__(self) -> PlantedHttp2Server:
        self.listener.listen(128)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.revive_s = None
        with self.lock:
            self.dead = True
            conns = list(self.conns)
        self.listener.close()
        for sock in conns:
            sock.close()


@contextlib.contextmanager
def planted_child(fixed: bool = False) -> Iterator[Target]:
    """The planted server in a child process (its own GIL, so the fuzzer's
    generation and the server do not take turns on one core)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fuzz.planted_http2", *(["--fixed"] if fixed else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"planted server did not start: {line!r}")
        yield Target("127.0.0.1", int(line))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.fuzz.planted_http2 [--fixed]``: serve, print the port, run
    until stdin closes (a child of the test, on its own core and its own GIL)."""
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--fixed", action="store_true")
    p.add_argument("--revive", type=float, default=0.005, help="seconds dead (<0: forever)")
    args = p.parse_args(argv)
    revive = args.revive if args.revive >= 0 else None
    with PlantedHttp2Server(fixed=args.fixed, revive_s=revive) as server:
        print(server.target.port, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
