"""Real peers for runtime tests: scripted TCP/TLS servers and clients on threads.

Both ends run on plain blocking sockets so that the proxy under test, on its
own event loop in another thread, is the only asyncio code in the path. TLS
peers use OpenSSL through `ssl.SSLObject` so that they can half-close with
close_notify while still reading, which blocking `SSLSocket`s cannot do.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import queue
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Self

from protoproxy.app import App
from protoproxy.config import Config, from_dict
from protoproxy.proxy import Proxy
from protoproxy.tls import TlsEngine


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (what `protoproxy run` uses), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopThread:
    """An event loop in a daemon thread.

    Blocking test code hops onto the loop with `call` and `run`, so that state the
    loop owns (a proxy's, a fake service's) is only ever touched from its thread.
    """

    call_timeout: ClassVar[float] = 30

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop if loop is not None else asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start_loop(self) -> None:
        self._thread.start()

    def stop_loop(self, timeout: float = 5) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    def call(self, coro_fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Await `coro_fn()` on the loop and return its result."""
        if timeout is None:
            timeout = self.call_timeout
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(timeout)

    def run(self, fn: Callable[[], Any], timeout: float = 30) -> Any:
        """Run a plain function on the loop (to read or change its state safely)."""

        async def wrapper() -> Any:
            return fn()

        return self.call(wrapper, timeout)


class ServiceThread(LoopThread):
    """An asyncio service (an async context manager made by `make`) on its own loop,
    so that blocking clients in the test thread can talk to it and to a proxy."""

    def __init__(self, make: Callable[[], Any]) -> None:
        super().__init__()
        self.make = make
        self.service: Any = None

    def __enter__(self) -> Self:
        self.start_loop()

        async def boot() -> Any:
            svc = self.make()
            await svc.__aenter__()
            return svc

        self.service = self.call(boot)
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(lambda: self.service.__aexit__(None, None, None))
        self.stop_loop()
        if not self._thread.is_alive():
            self.loop.close()


def _ephemeral_admin(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with its admin API on an ephemeral port unless it names one.

    The default (127.0.0.1:9901) is the testbed's too, which the docs tests hold
    in another pytest worker meanwhile: a test that does not care where its
    admin API listens must not take a fixed port.
    """
    admin = config.get("admin")
    if admin is None:
        return {**config, "admin": {"listen": "127.0.0.1:0"}}
    if isinstance(admin, dict) and "listen" not in admin and admin.get("enabled", True):
        return {**config, "admin": {**admin, "listen": "127.0.0.1:0"}}
    return config


class ProxyThread(LoopThread):
    """A Proxy on its own event loop in a daemon thread."""

    def __init__(
        self, config: Config | dict[str, Any], setup: Callable[[Proxy], Any] | None = None
    ):
        super().__init__(new_loop())
        if isinstance(config, dict):
            config = _ephemeral_admin(config)
        self.config = config if isinstance(config, Config) else from_dict(config)
        self.setup = setup
        self.proxy: Proxy | None = None
        self._app: App | None = None

    def __enter__(self) -> ProxyThread:
        self.start_loop()
        self.call(self._start)
        return self

    async def _start(self) -> None:
        self._app = App(self.config)
        self.proxy = self._app.proxy
        if self.setup is not None:
            self.setup(self.proxy)
        await self._app.start()

    @property
    def app(self) -> App:
        """The running App (its components: `app.faults`, `app.observe`...)."""
        assert self._app is not None, "the proxy thread is not started"
        return self._app

    @property
    def admin_url(self) -> str:
        assert self.app.admin is not None
        return self.app.admin.url

    def port(self, listener: str) -> int:
        assert self.proxy is not None
        return self.proxy.listeners[listener].port

    def __exit__(self, *exc: object) -> None:
        assert self.proxy is not None
        with contextlib.suppress(Exception):
            self.call(lambda: self.app.stop(drain=0), timeout=10)
        self.stop_loop()


def free_port() -> int:
    """A loopback port that was free a moment ago: for a config that must name its port
    before the process that binds it starts, or for an address nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `pred` until it holds or `timeout` passes; the caller asserts the result,
    so a failure points at the test's own condition."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def connect_when_listening(
    port: int,
    proc: subprocess.Popen[Any] | None = None,
    timeout: float = 20,
    what: str = "",
) -> socket.socket:
    """Connect to a loopback port that a child process is still opening.

    Returns the connection, which the upstream behind a proxy also sees; gives up
    after `timeout`, or at once when `proc` has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                raise AssertionError(what or f"nothing listened on port {port}") from None
            time.sleep(0.05)


def protoproxy_run(config: Path, **popen: Any) -> subprocess.Popen[Any]:
    """`protoproxy run <config>` as a child process of this interpreter."""
    return subprocess.Popen([sys.executable, "-m", "protoproxy", "run", str(config)], **popen)


def chunked(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """Split `data` by cycling through `sizes` (each >= 1)."""
    pos, i = 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)] if sizes else len(data)
        yield data[pos : pos + n]
        pos += n
        i += 1


class Stream:
    """A blocking socket, plain or TLS-over-MemoryBIO, with half-close.

    An SSLObject is not thread-safe, and our reader and writer threads both
    produce ciphertext; so every TLS operation runs under one lock and every
    resulting byte goes out through one sender thread, in production order.
    """

    def __init__(self, sock: socket.socket, engine: TlsEngine | None = None) -> None:
        self.sock = sock
        self.engine = engine
        self._plain: list[bytes] = []
        self._lock = threading.Lock()
        self._out: queue.Queue[bytes | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        if engine is not None:
            self._handshake()
            self._sender = threading.Thread(target=self._send_loop, daemon=True)
            self._sender.start()

    def _handshake(self) -> None:
        eng = self.engine
        assert eng is not None
        if not eng.obj.server_side:
            self.sock.sendall(eng.start())
        while not eng.handshaked:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed during TLS handshake")
            out = eng.receive(data, self._plain.append)
            if out:
                self.sock.sendall(out)

    def _send_loop(self) -> None:
        while True:
            data = self._out.get()
            if data is None:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                return

    def _tls(self, op: Callable[[], bytes]) -> None:
        with self._lock:
            out = op()
            if out:
                self._out.put(out)

    def send(self, data: bytes) -> None:
        if self.engine is None:
            self.sock.sendall(data)
        else:
            self._tls(lambda: self.engine.send(data))  # type: ignore[union-attr]

    def shutdown_write(self) -> None:
        if self.engine is None:
            self.sock.shutdown(socket.SHUT_WR)
        else:
            self._tls(self.engine.close_notify)
            self.flush()

    def flush(self, timeout: float = 60) -> None:
        """Wait until everything queued for the socket has been written."""
        if self._sender is not None:
            self._out.put(None)
            self._sender.join(timeout)
            self._sender = threading.Thread(target=self._send_loop, daemon=True)
            self._sender.start()

    def read_all(self) -> bytes:
        """Read until the peer half-closes (FIN or close_notify)."""
        out = bytearray(b"".join(self._plain))
        self._plain.clear()
        while True:
            data = self.sock.recv(262144)
            if not data:
                if self.engine is not None and not self.engine.eof:
                    raise ConnectionError("TCP closed without close_notify")
                return bytes(out)
            if self.engine is None:
                out += data
                continue
            eng = self.engine
            self._tls(partial(eng.receive, data, out.extend))
            if eng.eof:
                return bytes(out)

    def close(self) -> None:
        if self._sender is not None:
            self._out.put(None)
        self.sock.close()


@dataclass
class Script:
    """What a scripted server sends back, and how."""

    payload: bytes = b""
    chunks: list[int] = field(default_factory=lambda: [65536])


class ThreadedServer:
    """Accepts on a loopback port and handles each connection on a thread of its own,
    so that one slow or stuck peer never holds up the next accept.

    Subclasses set their own state before calling ``__init__``, which starts accepting.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


class ScriptedServer(ThreadedServer):
    """Accepts connections; for each, takes the next Script, sends it, reports what it got.

    Reading and writing run on separate threads so that a multi-MB exchange in
    both directions cannot deadlock on full socket buffers.
    """

    def __init__(self, tls: ssl.SSLContext | None = None, default: Script | None = None) -> None:
        self.tls = tls
        self.default = default
        self.scripts: queue.Queue[Script] = queue.Queue()
        self.received: queue.Queue[bytes | BaseException] = queue.Queue()
        super().__init__()

    def _handle(self, conn: socket.socket) -> None:
        try:
            engine = TlsEngine(self.tls, server_side=True) if self.tls else None
            stream = Stream(conn, engine)
            if self.default is not None and self.scripts.empty():
                script = self.default
            else:
                script = self.scripts.get(timeout=30)
            writer = threading.Thread(target=self._write, args=(stream, script), daemon=True)
            writer.start()
            got = stream.read_all()
            writer.join(60)
            self.received.put(got)
        except BaseException as exc:  # a test peer: report anything to the test thread
            self.received.put(exc)
        finally:
            with contextlib.suppress(OSError):
                # Wait for the proxy to close after both half-closes, then close.
                conn.settimeout(5)
                conn.recv(1)
            conn.close()

    @staticmethod
    def _write(stream: Stream, script: Script) -> None:
        # A proxy that ends the connection first (a reset, a refused route) is
        # what some tests provoke; they judge by what was received.
        with contextlib.suppress(OSError):
            for piece in chunked(script.payload, script.chunks):
                stream.send(piece)
            stream.shutdown_write()


def exchange(
    port: int,
    payload: bytes,
    chunks: list[int],
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> bytes:
    """Connect, send `payload` in `chunks`, half-close, and read until the peer's EOF."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        engine = TlsEngine(tls, server_side=False, server_hostname=server_hostname) if tls else None
        stream = Stream(sock, engine)
        result: dict[str, Any] = {}

        def read() -> None:
            try:
                result["got"] = stream.read_all()
            except BaseException as exc:  # handed to the test thread
                result["error"] = exc

        reader = threading.Thread(target=read)
        reader.start()
        for piece in chunked(payload, chunks):
            stream.send(piece)
        stream.shutdown_write()
        reader.join(60)
        if "error" in result:
            raise result["error"]
        if "got" not in result:
            raise TimeoutError("no EOF from the proxy")
        return result["got"]
    finally:
        sock.close()


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs.

    The socket is bound but never listens: connects get RST, and no other process
    can take the number meanwhile, which a port closed after `free_port` allows."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


class ChildStderr:
    """A child's stderr, read on a thread so the pipe never fills: lines as they
    come (`wait_for`) and all of them at the end (`text`)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None, "start the child with stderr=PIPE, text=True"
        self.proc = proc
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first line matching `pattern`; fails at the deadline or when the
        child ended without printing it."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if m := regex.search(line):
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    raise AssertionError(
                        f"no stderr line matched {pattern!r}:\n" + "".join(self.lines)
                    )
                self._changed.wait(min(left, 0.5))

    def text(self, timeout: float = 10) -> str:
        self._thread.join(timeout)
        with self._changed:
            return "".join(self.lines)


def listener_port(stderr: ChildStderr, listener: str, timeout: float = 30) -> int:
    """The port a `protoproxy run` child bound for `listener` (configured with port 0),
    from its "listener NAME on HOST:PORT" log line: no port is picked before the
    child binds it, so no other process can take it in between."""
    m = stderr.wait_for(rf"listener {re.escape(listener)} on \S+:(\d+) ", timeout)
    return int(m.group(1))


#: Attempts at a setup whose ports must be chosen before they are bound.
PORT_ATTEMPTS = 5


def port_taken(exc: BaseException) -> bool:
    """Whether `exc`, or what it came from, is a bind that found its port in use:
    the one failure a test that picks its ports in advance cannot prevent, since
    another process may take a number between the pick and the bind."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.EADDRINUSE:
            return True
        if "address already in use" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False
