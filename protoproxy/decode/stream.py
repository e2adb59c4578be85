"""One TCP stream through one codec, driven as the proxy drives it.

Bytes from the client are fed UPSTREAM, bytes from the server DOWNSTREAM,
each with its packet timestamp as the read time, and `written` is called at
that same time: a capture is one leg, so read and write coincide and
proxy_time is 0 by construction (output.py writes it as null). After a gap
(or a capture that starts mid-stream) a Kafka stream resynchronises on the
next proved frame boundary (sniff.kafka_boundary); HTTP/2 and HTTP/1 cannot
(HPACK state and message framing are lost) and stop, saying so.
"""

from __future__ import annotations

from typing import Any

from protoproxy_codecs import registry
from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError, Exchange, Sniff
from protoproxy_codecs.grpc.framing import GrpcMessage

from . import sniff as sniffing
from .tcp import Gap

#: gRPC messages kept per call and direction for the output (the rest are counted)
MAX_CALL_MESSAGES = 16
#: bytes kept of one gRPC message for display
MAX_MESSAGE_BYTES = 64 * 1024
_HTTP2 = frozenset({"http2", "grpc"})


class StreamDecoder:
    def __init__(
        self,
        conn: int,
        client: str,
        server: str,
        protocol: str | None,
        mid: bool,
        frames: bool = False,
    ) -> None:
        self.conn = conn
        self.client = client
        self.server = server
        self.protocol = protocol
        self.codec: Any = None
        self.head = bytearray()  # upstream bytes before the codec is chosen
        self.held: list[tuple[int, bytes, int]] = []  # events waiting for the choice
        self.syncing = mid  # waiting for a proved boundary
        self.sync_buf = (bytearray(), bytearray())
        self.sync_ts = [0, 0]
        self.corr_ids: set[int] = set()
        self.dead: str | None = None
        self.gaps: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.exchanges: list[Exchange] = []
        self.requests: dict[Any, dict[str, Any]] = {}
        self.upstream_connect: int | None = None
        self.now = 0  # the current packet's timestamp, ns
        #: HTTP/2 frames, one dict each, when asked for (`--frames`)
        self.frames: list[dict[str, Any]] | None = [] if frames else None
        #: stream id -> direction ("request"/"response") -> gRPC messages kept
        self.grpc: dict[int, dict[str, list[GrpcMessage]]] = {}

    # -- events from tcp.Flow
    def on(self, d: int, data: bytes | Gap, ts: int) -> None:
        self.now = ts
        if self.dead:
            return
        if isinstance(data, Gap):
            self.gaps.append(
                {"direction": "upstream" if d == 0 else "downstream", "bytes": data.nbytes}
            )
            self._lost(d)
            return
        if self.codec is None and not self.syncing:
            self.held.append((d, data, ts))
            if d == 0:
                self.head += data
            self._choose()
            return
        if self.syncing:
            self._sync(d, data, ts)
            return
        self._feed(d, data, ts)

    def _choose(self) -> None:
        name = self.protocol
        if name is None:
            found, verdict = sniffing.sniff(bytes(self.head))
            if verdict is Sniff.NEED_MORE:
                return
            name = found or "tcp"
        self._start(name)
        held, self.held = self.held, []
        for d, data, ts in held:
            self._feed(d, data, ts)

    def _start(self, name: str) -> None:
        self.protocol = name
        # The codec's clock reads the packet time: every stamp it takes, even
        # outside `feed(at=...)`, is capture time.
        self.codec = registry.get(name)(clock=self._clock)

    def _clock(self) -> int:
        return self.now

    def _lost(self, d: int) -> None:
        """Codec state after a hole is unknown: Kafka resyncs, the others stop."""
        if self.protocol in (None, "kafka"):
            self.codec = None
            self.syncing = True
            self.sync_buf = (bytearray(), bytearray())
            # Bytes held for sniffing from the other direction came after
            # its own last hole: they are where that direction resyncs.
            for hd, data, ts in self.held:
                if hd != d:
                    if not self.sync_buf[hd]:
                        self.sync_ts[hd] = ts
                    self.sync_buf[hd].extend(data)
            self.held = []
            self.head.clear()
        elif self.protocol != "tcp":
            self.dead = f"{self.protocol} stream lost sync at a gap; not resumable"

    def _sync(self, d: int, data: bytes, ts: int) -> None:
        buf = self.sync_buf[d]
        if not buf:
            self.sync_ts[d] = ts
        buf += data
        if self.codec is None:
            if d != 0:
                if len(buf) > sniffing.RESYNC_WINDOW:
                    del buf[: -sniffing.RESYNC_WINDOW]
                return
            p = sniffing.kafka_boundary(buf, True, set())
            if p is None:
                if len(buf) > sniffing.RESYNC_WINDOW:
                    self.dead = "no provable Kafka frame boundary in the resync window"
                return
            self._start("kafka")
            self.protocol = "kafka"
            rest = bytes(buf[p:])
            buf.clear()
            self._feed(0, rest, self.sync_ts[0])
            down = self.sync_buf[1]
            if down:
                self._sync_down(down)
            return
        if d == 1:
            self._sync_down(buf)
        else:  # upstream synced already; downstream still searching
            self._feed(0, bytes(buf), ts)
            buf.clear()

    def _sync_down(self, buf: bytearray) -> None:
        p = sniffing.kafka_boundary(buf, False, self.corr_ids)
        if p is None:
            return
        rest = bytes(buf[p:])
        buf.clear()
        self.syncing = False
        up = bytes(self.sync_buf[0])
        self.sync_buf[0].clear()
        if up:
            self._feed(0, up, self.sync_ts[0])
        self._feed(1, rest, self.sync_ts[1])

    def _feed(self, d: int, data: bytes, ts: int) -> None:
        codec = self.codec
        self.now = ts
        direction = UPSTREAM if d == 0 else DOWNSTREAM
        try:
            messages = codec.feed(direction, data, ts)
        except DecodeError as exc:
            self.errors.append(f"{direction.name.lower()}: {exc}")
            self._lost(d)
            return
        codec.written(ts)
        if self.protocol in _HTTP2:
            self._http2(d, messages, ts)
        for m in messages:
            info = m.info
            if (
                d == 0
                and info is not None
                and self.protocol == "kafka"
                and "correlation_id" in info
            ):
                self.corr_ids.add(info["correlation_id"])
                self.requests[info["correlation_id"]] = info
        self.exchanges.extend(codec.take_exchanges())

    def _http2(self, d: int, messages: list[Any], ts: int) -> None:
        """Frames for `--frames`, and each call's gRPC messages for the rows."""
        side = "request" if d == 0 else "response"
        for m in messages:
            if self.frames is not None and m.kind != "preface":
                info = m.info
                self.frames.append(
                    {
                        "time": round(ts / 1e9, 6),
                        "conn": self.conn,
                        "direction": "upstream" if d == 0 else "downstream",
                        "stream_id": info["stream_id"],
                        "type": m.kind.upper(),
                        "flags": info["flags"],
                        "length": info["length"],
                    }
                )
            if m.kind != "data" or m.info is None:
                continue
            events = m.info.get("grpc_messages")
            if not events:
                continue
            kept = self.grpc.setdefault(events[0].stream_id, {}).setdefault(side, [])
            for ev in events:
                if len(kept) < MAX_CALL_MESSAGES:
                    # Own the bytes: the event's view pins the frame.
                    ev.payload = bytes(ev.payload[:MAX_MESSAGE_BYTES])
                    kept.append(ev)

    def finish(self) -> None:
        if self.codec is not None:
            for direction in (UPSTREAM, DOWNSTREAM):
                try:
                    self.codec.eof(direction)
                except DecodeError as exc:
                    self.errors.append(str(exc))
            self.exchanges.extend(self.codec.take_exchanges())
