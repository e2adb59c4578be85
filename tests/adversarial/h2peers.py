"""An upstream h2 server that counts what reaches it, and a raw attacking client."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from protoproxy_codecs.http2 import PREFACE
from protoproxy_codecs.http2 import frames as F


class CountingServer:
    """h2 (the library) answering 200 to every request; counts requests, PINGs,
    WINDOW_UPDATEs, SETTINGS and DATA frames (each flood's frames that got through)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]

    def _count(self, what: str) -> None:
        with self._lock:
            self.seen[what] += 1

    def _serve(self, sock: socket.socket) -> None:
        config = h2.config.H2Configuration(client_side=False, validate_inbound_headers=False)
        conn = h2.connection.H2Connection(config)
        conn.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100000}
        )
        conn.initiate_connection()
        conn.decoder.max_header_list_size = 1 << 24  # take HPACK bombs: the proxy must stop them
        sock.sendall(conn.data_to_send())
        try:
            while data := sock.recv(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        self._count("requests")
                        if event.stream_ended:
                            conn.send_headers(
                                event.stream_id, [(":status", "200")], end_stream=True
                            )
                    elif isinstance(event, h2.events.PingReceived):
                        self._count("pings")
                    elif isinstance(event, h2.events.WindowUpdated):
                        self._count("window_updates")
                    elif isinstance(event, h2.events.RemoteSettingsChanged):
                        self._count("settings")
                    elif isinstance(event, h2.events.DataReceived):
                        self._count("data")
                sock.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    @contextmanager
    def running(self) -> Iterator[CountingServer]:
        threading.Thread(target=self._accept, daemon=True).start()
        try:
            yield self
        finally:
            self._listener.close()


def attack(
    port: int, preamble: bytes, batches: Iterator[bytes], seconds: float = 5.0
) -> tuple[int, int] | None:
    """Write `batches` after the preface until the proxy says GOAWAY (or
    `seconds` or the batches run out): (GOAWAY error code, batches written
    before it) or None."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(2)
    received = b""
    written = 0
    try:
        sock.sendall(PREFACE + F.build_settings() + preamble)
        deadline = time.monotonic() + seconds
        for batch in batches:
            if time.monotonic() > deadline:
                break  # bounded: the attack did not get its answer in time
            sock.sendall(batch)
            written += 1
            # A short pause for the proxy's answer: an attacker writing on
            # after the GOAWAY only gets a reset, which loses the GOAWAY.
            if select.select([sock], [], [], 0.01)[0]:
                data = sock.recv(65536)
                received += data
                code = goaway_code(received)
                if code is not None or not data:
                    return None if code is None else (code, written)
        while data := sock.recv(65536):
            received += data
            code = goaway_code(received)
            if code is not None:
                return code, written
    except OSError:  # reset or timed out after the close
        pass
    finally:
        sock.close()
    code = goaway_code(received)
    return None if code is None else (code, written)


def goaway_code(buf: bytes) -> int | None:
    """The error code of the first GOAWAY among whole frames in `buf`, if any."""
    pos = 0
    while len(buf) - pos >= 9:
        length = int.from_bytes(buf[pos : pos + 3], "big")
        if len(buf) - pos < 9 + length:
            return None
        if buf[pos + 3] == F.GOAWAY:
            return int.from_bytes(buf[pos + 13 : pos + 17], "big")
        pos += 9 + length
    return None
