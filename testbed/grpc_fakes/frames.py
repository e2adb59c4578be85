"""Hostile answers at the HTTP/2 frame level: a relay in front of grpcio.

grpcio frames its own HTTP/2; a handler cannot ask for CONTINUATION frames or
a SETTINGS change. So a hostile fake listens through `FrameRelay`, which
passes every byte through unchanged except on the calls whose plan
(testbed/grpc_fakes/hostile.py) is a frame kind. The handler says so in the
call's own headers, ``x-testbed-frames: PLAN`` (initial metadata and
trailers), and the relay, which decodes the server's header blocks with its
own HPACK decoder to find it, carries the plan out:

- ``continuation CHAIN PAD``: every header block of the call (headers and
  trailers) goes out as HEADERS with PAD bytes of padding and then CHAIN
  CONTINUATION frames. 64 is the most a defended peer accepts by default
  (our proxy's ``max_continuations``, Envoy's and nghttp2's limits are alike);
- ``settings ID=VALUE ...``: a SETTINGS frame mid-connection, just before the
  call's first header block, and one restoring the server's own values of
  the known settings it changed, after the call's last block. The client's
  ACKs of the relay's frames are dropped, so the server sees only the ACKs
  of its own.

Only changes a client must follow and a server cannot be hurt by are drawn:
the relay never claims a bigger window, table or frame than the server has.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import hpack

log = logging.getLogger(__name__)

MARKER = "x-testbed-frames"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, SETTINGS, RST_STREAM, CONTINUATION = 0x0, 0x1, 0x4, 0x3, 0x9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
_HEADER = struct.Struct(">HBBBL")
#: (type, flags, stream id, payload, the frame's bytes)
Frame = tuple[int, int, int, bytes, bytes]
_SETTING = struct.Struct(">HL")
#: what a server that never said otherwise has (RFC 9113 6.5.2); "no limit" as the largest value
_DEFAULTS = {0x1: 4096, 0x3: 2**31 - 1, 0x5: 16384, 0x6: 2**31 - 1}
#: a frame piece small enough for any peer's SETTINGS_MAX_FRAME_SIZE
_PIECE_MAX = 16384 - 256


@dataclass(frozen=True, slots=True)
class FramePlan:
    """One call's frame-level edit, as the marker header carries it."""

    kind: str
    chain: int = 0
    pad: int = 0
    settings: tuple[tuple[int, int], ...] = ()

    def value(self) -> str:
        if self.kind == "continuation":
            return f"continuation {self.chain} {self.pad}"
        return " ".join(("settings", *(f"{i}={v}" for i, v in self.settings)))

    @classmethod
    def parse(cls, value: str) -> FramePlan | None:
        """The plan a marker names; None (and a log line) for one this relay did not write."""
        kind, *args = value.split()
        try:
            if kind == "continuation":
                chain, pad = (int(a) for a in args)
                return cls(kind, chain=chain, pad=pad)
            if kind == "settings":
                pairs = tuple(tuple(int(x) for x in a.split("=")) for a in args)
                return cls(kind, settings=pairs)  # type: ignore[arg-type]
        except ValueError:
            pass
        log.warning("ignoring a malformed %s header: %r", MARKER, value)
        return None


def frame(ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    n = len(payload)
    return _HEADER.pack(n >> 8, n & 0xFF, ftype, flags, stream_id) + payload


def settings_frame(pairs: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(i, v) for i, v in pairs))


def chained(block: bytes, stream_id: int, end_stream: bool, chain: int, pad: int) -> bytes:
    """`block` as HEADERS (padded by `pad` bytes) and then `chain` CONTINUATION frames."""
    pieces = max(chain + 1, -(-len(block) // _PIECE_MAX))
    size = -(-len(block) // pieces) if block else 0
    parts = [block[i * size : (i + 1) * size] for i in range(pieces)]
    flags = (END_STREAM if end_stream else 0) | (PADDED if pad else 0)
    first = bytes((pad,)) + parts[0] + b"\0" * pad if pad else parts[0]
    out = [frame(HEADERS, flags | (END_HEADERS if pieces == 1 else 0), stream_id, first)]
    for n, part in enumerate(parts[1:], 2):
        out.append(frame(CONTINUATION, END_HEADERS if n == pieces else 0, stream_id, part))
    return b"".join(out)


class _Frames:
    """Frames out of a byte stream, whole ones only."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """(type, flags, stream id, payload, the frame's bytes) of each whole frame."""
        self.buf += data
        out = []
        at = 0
        buf = self.buf
        while len(buf) - at >= 9:
            hi, lo, ftype, flags, sid = _HEADER.unpack_from(buf, at)
            end = at + 9 + (hi << 8 | lo)
            if end > len(buf):
                break
            raw = bytes(buf[at:end])
            out.append((ftype, flags, sid & 0x7FFFFFFF, raw[9:], raw))
            at = end
        del buf[:at]
        return out


def _fragment(ftype: int, flags: int, payload: bytes) -> bytes:
    """A HEADERS or CONTINUATION frame's piece of the header block."""
    if ftype != HEADERS:
        return payload
    start, end = 0, len(payload)
    if flags & PADDED:
        start, end = 1, end - payload[0]
    if flags & PRIORITY:
        start += 5
    return payload[start:end]


class _Connection:
    """One client connection and its twin to grpcio."""

    def __init__(self) -> None:
        #: per SETTINGS frame sent to the client, in order: True when the relay
        #: wrote it (its ACK is dropped), False when the server did
        self.acks: deque[bool] = deque()
        self.server_settings: dict[int, int] = {}
        self.decoder: hpack.Decoder | None = hpack.Decoder(max_header_list_size=2**24)
        self.decoder.max_allowed_table_size = 2**32  # an observer: the server's encoder rules
        self.plans: dict[int, FramePlan] = {}
        #: the header block being gathered: (stream id, flags of its HEADERS, frames, pieces)
        self.block: tuple[int, int, list[bytes], list[bytes]] | None = None
        #: streams whose settings plan has sent its change (and owes the restore)
        self.changed: set[int] = set()

    def from_client(self, frames: list[Frame]) -> bytes:
        out = []
        for ftype, flags, _sid, _payload, raw in frames:
            if ftype == SETTINGS and flags & ACK and self.acks and self.acks.popleft():
                continue
            out.append(raw)
        return b"".join(out)

    def from_server(self, frames: list[Frame]) -> bytes:
        out: list[bytes] = []
        for ftype, flags, sid, payload, raw in frames:
            if ftype == SETTINGS and not flags & ACK:
                for i in range(0, len(payload) - 5, 6):
                    key, value = _SETTING.unpack_from(payload, i)
                    self.server_settings[key] = value
                self.acks.append(False)
                out.append(raw)
            elif ftype in (HEADERS, CONTINUATION):
                if ftype == HEADERS:
                    self.block = (sid, flags, [], [])
                if self.block is None:  # not ours to judge: pass it on
                    out.append(raw)
                    continue
                self.block[2].append(raw)
                self.block[3].append(_fragment(ftype, flags, payload))
                if flags & END_HEADERS:
                    out.append(self._block_done())
            else:
                if ftype == RST_STREAM:
                    out.append(self._restore(sid))
                out.append(raw)
        return b"".join(out)

    def _block_done(self) -> bytes:
        assert self.block is not None
        sid, flags, raws, pieces = self.block
        self.block = None
        block = b"".join(pieces)
        plan = self.plans.get(sid)
        if self.decoder is not None:
            try:
                headers = self.decoder.decode(block, raw=True)
            except hpack.HPACKError as exc:  # grpcio's blocks decode; stop judging if not
                log.warning("frame relay stops reading header blocks: %s", exc)
                self.decoder = None
                headers = []
            for name, value in headers:
                if plan is None and name == MARKER.encode():
                    plan = FramePlan.parse(bytes(value).decode("latin-1"))
                    if plan is not None:
                        self.plans[sid] = plan
        end_stream = bool(flags & END_STREAM)
        if plan is None:
            return b"".join(raws)
        if plan.kind == "continuation":
            out = chained(block, sid, end_stream, plan.chain, plan.pad)
        else:
            out = b"".join(raws)
            if sid not in self.changed:
                self.changed.add(sid)
                self.acks.append(True)
                out = settings_frame(plan.settings) + out
        if end_stream:
            out += self._restore(sid)
        return out

    def _restore(self, sid: int) -> bytes:
        """The end of `sid`'s plan: for a settings plan, the server's own values back."""
        plan = self.plans.pop(sid, None)
        if plan is None or sid not in self.changed:
            return b""
        self.changed.discard(sid)
        back = sorted(
            {
                (key, self.server_settings.get(key, _DEFAULTS[key]))
                for key, _ in plan.settings
                if key in _DEFAULTS
            }
        )
        if not back:
            return b""
        self.acks.append(True)
        return settings_frame(back)


class FrameRelay:
    """``relay = FrameRelay(upstream)``; ``await relay.start(host)`` gives the public port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    async def _accept(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            sreader, swriter = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            log.warning("frame relay cannot reach grpcio at %s: %s", self.upstream, exc)
            cwriter.close()
            return
        conn = _Connection()
        up = asyncio.create_task(self._pump(creader, swriter, conn.from_client, PREFACE))
        down = asyncio.create_task(self._pump(sreader, cwriter, conn.from_server, b""))
        for task in (up, down):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for writer in (cwriter, swriter):
            writer.close()

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        edit: Callable[[list[Frame]], bytes],
        preface: bytes,
    ) -> None:
        """Copy one direction, edited frame by frame, after the preface (as is).
        A reset ends the copy like EOF: the twin connection is closed either way."""
        frames = _Frames()
        pending = len(preface)
        try:
            while data := await reader.read(65536):
                if pending:
                    head, data = data[:pending], data[pending:]
                    pending -= len(head)
                    writer.write(head)
                if data:
                    writer.write(edit(frames.feed(data)))
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except ConnectionError:
            return
