"""The taps component (`app.captures`): start, stop and list taps; attach them to connections.

A tap attaches to a connection once both its sockets exist and its codec is
known (the later of `hooks.upstream` and `hooks.codec`): at that moment no
byte has been relayed yet, and the client bytes read so far are in
`conn.pending`, so the capture starts with the handshake and holds every
byte. Connections that are already open when a tap starts join it too, with
a synthesised handshake and a comment saying they were joined mid-stream.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protoproxy_codecs.base import now_ns

from ..config import CaptureTap
from .hooks import ConnTap
from .writer import Limits, TapFiles

if TYPE_CHECKING:
    from ..connection import Connection
    from ..proxy import Proxy

log = logging.getLogger("protoproxy.capture")

DECRYPTED = "decrypted TLS: the plaintext the proxy terminated or originated"
MID_STREAM = "joined mid-stream: the handshake is synthesised, earlier bytes are not here"


class TapError(Exception):
    """A tap that cannot be started or found: an HTTP status and the problem."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class Tap:
    """One running (or stopped) tap: its filters, its files and its counts."""

    id: str
    spec: CaptureTap
    files: TapFiles
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    started: float
    connections: int = 0
    stopped: bool = False
    #: the writer thread's end (it writes what is queued first), once stopped
    closing: asyncio.Future[None] | None = None

    async def wait_stopped(self) -> None:
        """Until the files hold everything the tap queued before it stopped."""
        if self.closing is not None:
            await asyncio.shield(self.closing)

    def matches(self, conn: Connection) -> bool:
        spec = self.spec
        if spec.listener is not None and conn.listener.name != spec.listener:
            return False
        if spec.protocol is not None:
            want = "http2" if spec.protocol == "grpc" else spec.protocol
            if conn.protocol != want:
                return False
        if self.network is not None:
            peer = _peer_ip(conn)
            if peer is None or peer not in self.network:
                return False
        return True

    def describe(self) -> dict[str, Any]:
        f = self.files
        spec = self.spec.model_dump(mode="json", exclude_none=True, exclude={"name"})
        return {
            "id": self.id,
            "filters": {k: spec.pop(k) for k in ("listener", "protocol", "peer") if k in spec},
            "state": "stopped" if self.stopped else "exhausted" if f.exhausted else "running",
            "connections": self.connections,
            "packets": f.packets,
            "bytes": f.bytes,
            "dropped": f.dropped,
            "dropped_bytes": f.dropped_bytes,
            "files": [str(p) for p, _ in f.parts()],
            "redact": self.spec.redact,
            "download": f"/captures/{self.id}.pcap",
        }


def _peer_ip(conn: Connection) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    t = conn.client.transport if conn.client is not None else None
    peer = t.get_extra_info("peername") if t is not None else None
    if not peer:
        return None
    ip = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class Captures:
    """Every tap of one proxy (the Python API: `start`, `stop`, `list`, `get`)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.config = proxy.config.captures
        self.taps: dict[str, Tap] = {}
        self._ids = itertools.count(1)
        self._dir: Path | None = None
        stats = proxy.stats
        self.packets = stats.counter(
            "protoproxy_capture_packets_total", "Packets taps wrote", ("tap",)
        )
        self.bytes = stats.counter(
            "protoproxy_capture_bytes_total", "Bytes taps wrote to their files", ("tap",)
        )
        self.dropped = stats.counter(
            "protoproxy_capture_dropped_total",
            "Tap events (reads, writes, closes) not written: queue_full or budget",
            ("tap", "reason"),
        )
        self.tapped = stats.counter(
            "protoproxy_capture_connections_total", "Connections taps recorded", ("tap",)
        )

    @property
    def dir(self) -> Path:
        if self._dir is None:
            self._dir = self.config.dir or Path(tempfile.mkdtemp(prefix="protoproxy-taps-"))
        return self._dir

    # -- the Python API ---------------------------------------------------------------------
    def start(self, spec: CaptureTap | dict[str, Any] | None = None, **fields: Any) -> Tap:
        """Start a tap (on the proxy's loop); `spec` or keyword fields as in `captures.taps`."""
        if spec is None or isinstance(spec, dict):
            spec = CaptureTap.model_validate({**(spec or {}), **fields})
        if spec.listener is not None and spec.listener not in self.proxy.listeners:
            known = ", ".join(sorted(self.proxy.listeners)) or "none"
            raise TapError(f"listener: unknown listener {spec.listener!r} (known: {known})", 404)
        tap_id = spec.name or f"tap-{next(self._ids)}"
        while spec.name is None and tap_id in self.taps:
            tap_id = f"tap-{next(self._ids)}"
        if tap_id in self.taps:
            raise TapError(f"name: a tap named {tap_id!r} exists", 409)
        loop = asyncio.get_running_loop()

        def report(packets: int, nbytes: int, budget: int) -> None:
            loop.call_soon_threadsafe(self._count, tap_id, packets, nbytes, budget)

        def on_drop(reason: str) -> None:
            self.dropped.inc((tap_id, reason))

        files = TapFiles(
            tap_id,
            self.dir,
            Limits(
                max_file_bytes=int(spec.max_file_bytes),
                max_files=spec.max_files,
                max_bytes=int(spec.max_bytes),
                queue=spec.queue,
                queue_bytes=int(spec.queue_bytes),
                redact=spec.redact,
            ),
            clock_offset=time.time_ns() - now_ns(),
            report=report,
            on_drop=on_drop,
        )
        network = ipaddress.ip_network(spec.peer, strict=False) if spec.peer else None
        tap = Tap(tap_id, spec, files, network, time.time())
        self.taps[tap_id] = tap
        if not spec.redact:
            log.warning(
                "tap %s: redact: false, credentials (SASL, authorization, cookies) are "
                "written as they are",
                tap_id,
            )
        if spec.keylog is not None:
            self._keylog(spec)
        log.info("tap %s started: %s", tap_id, tap.describe()["filters"] or "every listener")
        for conn in list(self.proxy.connections.values()):  # open ones join mid-stream
            if conn.server is not None and conn.codec is not None and tap.matches(conn):
                self._attach(tap, conn, MID_STREAM)
        return tap

    def stop(self, tap_id: str) -> Tap:
        """Stop a tap: its connections end in the capture, its files are kept.

        The writer thread finishes in the background (`Tap.wait_stopped`), so
        the loop never waits for the disk.
        """
        tap = self.get(tap_id)
        if not tap.stopped:
            tap.stopped = True
            for conn in list(self.proxy.connections.values()):
                ct: ConnTap | None = conn.extra.get("tap")
                if ct is not None:
                    ct.remove(tap.files)
            tap.closing = asyncio.get_running_loop().run_in_executor(None, tap.files.close)
            log.info("tap %s stopped", tap_id)
        return tap

    def get(self, tap_id: str) -> Tap:
        tap = self.taps.get(tap_id)
        if tap is None:
            raise TapError(f"no tap {tap_id!r}", 404)
        return tap

    def list(self) -> list[Tap]:
        return list(self.taps.values())

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every running tap wrote what it queued (tests, downloads)."""
        return all(t.files.flush(timeout) for t in self.taps.values() if not t.stopped)

    async def start_configured(self) -> None:
        for spec in self.config.taps:
            self.start(spec)
        for lst in self.proxy.config.listeners:
            if lst.capture is not None:
                spec = lst.capture.model_copy(update={"listener": lst.name})
                self.start(spec if spec.name else spec.model_copy(update={"name": lst.name}))

    async def close(self) -> None:
        for tap in list(self.taps.values()):
            self.stop(tap.id)
            await tap.wait_stopped()

    # -- connections ---------------------------------------------------------------------------
    def connection_ready(self, conn: Connection) -> None:
        """Upstream connected or codec chosen: attach once both are there."""
        if not self.taps or conn.server is None or conn.codec is None or "tap_seen" in conn.extra:
            return
        conn.extra["tap_seen"] = True
        for tap in self.taps.values():
            if not tap.stopped and tap.matches(conn):
                self._attach(tap, conn, "")

    def _attach(self, tap: Tap, conn: Connection, note: str) -> None:
        ct: ConnTap | None = conn.extra.get("tap")
        if ct is None:
            ct = conn.extra["tap"] = ConnTap(conn)
        client_note = DECRYPTED if conn.listener.tls_mode == "terminate" else ""
        up_note = DECRYPTED if conn.cluster is not None and conn.cluster.tls is not None else ""
        notes = [
            "; ".join(n for n in (note, client_note) if n),
            "; ".join(n for n in (note, up_note) if n),
        ]
        ct.add(tap.files, notes)
        tap.connections += 1
        self.tapped.inc((tap.id,))

    def connection_closed(self, conn: Connection) -> None:
        ct: ConnTap | None = conn.extra.get("tap")
        if ct is not None:
            ct.closed()

    def _count(self, tap_id: str, packets: int, nbytes: int, budget: int) -> None:
        if packets:
            self.packets.inc((tap_id,), packets)
        if nbytes:
            self.bytes.inc((tap_id,), nbytes)
        if budget:
            self.dropped.inc((tap_id, "budget"), budget)

    def _keylog(self, spec: CaptureTap) -> None:
        """Point the TLS contexts of the tap's listener (and its upstreams) at the key log."""
        path = str(spec.keylog)
        listeners = (
            [self.proxy.listeners[spec.listener]]
            if spec.listener
            else list(self.proxy.listeners.values())
        )
        for lst in listeners:
            if lst.server_tls is not None:
                for ctx in [lst.server_tls.default, *(c for _, c in lst.server_tls.by_name)]:
                    ctx.keylog_filename = path
            for cluster in {id(c): c for c in [lst.default, *lst.by_sni.values()] if c}.values():
                if cluster.tls is not None:
                    cluster.tls.set_keylog(path)
        log.warning("tap keylog: TLS session keys are written to %s", path)
