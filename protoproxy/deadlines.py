"""Per-protocol deadlines: ``timeouts.header`` and ``timeouts.frame``.

Why: the idle timeout restarts on every byte, so a client that sends one byte
every few seconds (slowloris) holds a connection, and the head or frame it
never finishes, forever. These deadlines run from the *first* byte of a unit
and ignore later ones:

- ``timeouts.header``: an HTTP/1 request head, the HTTP/2 client preface and
  first SETTINGS, an HTTP/2 header block (HEADERS..CONTINUATION with
  END_HEADERS), and, before the codec is known, the client bytes being
  sniffed or the ClientHello being read. Past it: HEADER_TIMEOUT, with a 408
  (HTTP/1, while a status line may still go) or GOAWAY ENHANCE_YOUR_CALM
  (HTTP/2) to the client, then the close.
- ``timeouts.frame``: a Kafka request frame, from its first byte to its last.
  Past it: FRAME_TIMEOUT, a close (Kafka has no way to say why).

No timer per connection or per read: the codecs keep when their unfinished
unit began (`unfinished()`, read here only), and one periodic sweep per
Proxy (`Proxy._sweep_limits`) compares. A deadline fires up to one sweep
period late (at most 250 ms, and a quarter of the shortest deadline).
Only clients are held to these: a slow server is the idle timeout's job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protoproxy_codecs.base import NS, now_ns

from .connection_state import Event, State

if TYPE_CHECKING:
    from .connection import Connection
    from .proxy import Proxy

_SNIFFING = frozenset({State.SNIFF, State.SNIFF_CONNECTED})
_EVENTS = {"header": Event.HEADER_TIMEOUT, "frame": Event.FRAME_TIMEOUT}


class Deadlines:
    """The header and frame deadlines of one Proxy's connections."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        timeouts = proxy.config.timeouts
        self.limits_ns = {"header": int(timeouts.header * NS), "frame": int(timeouts.frame * NS)}
        self.seconds = {"header": timeouts.header, "frame": timeouts.frame}
        self.expired = proxy.stats.counter(
            "protoproxy_deadline_timeouts_total",
            "Connections closed because a client did not finish a unit in time",
            ("listener", "timeout"),
        )

    def sweep(self) -> None:
        now = now_ns()
        for conn in list(self.proxy.connections.values()):
            self.check(conn, now)

    def check(self, conn: Connection, now: int) -> None:
        found = self._unfinished(conn)
        budgets = conn.budgets
        if found is None:
            budgets.unfinished_seen = 0
            return
        kind, since = found
        if not since:  # the codec does not know when: from when we first saw it
            since = budgets.unfinished_seen = budgets.unfinished_seen or now
        else:
            budgets.unfinished_seen = 0
        if now - since <= self.limits_ns[kind]:
            return
        self.expired.inc((conn.listener.name, kind))
        conn.overstep(
            _EVENTS[kind],
            f"client did not finish a {conn.protocol} {kind} within "
            f"timeouts.{kind} ({self.seconds[kind]:g}s)",
        )

    @staticmethod
    def _unfinished(conn: Connection) -> tuple[str, int] | None:
        state = conn.machine.state
        if state is State.OPEN:
            unfinished = getattr(conn.codec, "unfinished", None)  # stand-ins may lack it
            return unfinished() if unfinished is not None else None
        if state in _SNIFFING and conn.pending:
            return "header", conn.pending_at
        if state is State.HELLO and conn.head:
            return "header", 0
        return None  # connecting (timeouts.connect), TLS (handshake_timeout), ended
