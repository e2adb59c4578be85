"""HTTP/2 frames, conversations and HPACK blocks for hypothesis.

A conversation is one side's byte stream that a conforming peer must accept:
stream ids rise, flow-control windows are never overrun (DATA may fill them
exactly), trailers end their stream, and the HPACK encoder's dynamic table
only changes size within what the receiver allows. Around that, the draws go
to the edges a parser gets wrong: padding (the pad length counts against flow
control), PRIORITY in HEADERS and alone, header blocks cut into CONTINUATION
frames, SETTINGS changed mid-connection, DATA frames of exactly the maximum
frame size, and a connection window raised to 2**31-1.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Literal

import hpack
from hypothesis import strategies as st

from ..http2 import frames as F

HEADER_NAMES = ["x-a", "x-b", "user-agent", "content-type", "x-long-header-name"]
_VALUES = st.text("abcdef0123 -_.", min_size=0, max_size=30).map(str.strip)
#: frame types no HTTP/2 library parses (0xA ALTSVC and 0xC ORIGIN are taken)
_UNKNOWN_TYPES = st.integers(0x10, 0xFF)
# Strategies built once: hypothesis caches few of its constructors (never a
# sampled_from of a list, a `|` or a composite call), and validating a fresh
# strategy at every draw was most of a conversation's generation time.
_BOOLS = st.booleans()
_DEPENDENCIES = st.sampled_from([0, 1, 3, 2**31 - 1]) | st.integers(0, 2**31 - 1)
_WEIGHTS = st.sampled_from([0, 15, 255]) | st.integers(0, 255)
_HEADER_NAME = st.sampled_from(HEADER_NAMES)
_EXTRA_HEADERS = st.integers(0, 4)
#: a block in at most 8 pieces: with the optional empty one, at most 8
#: CONTINUATION frames, the limit nghttp2 (>= 1.61, and Debian's 1.52 with the
#: CVE-2024-27316 fix) enforces by dropping the connection
_PIECES = st.sampled_from([1, 1, 2, 4, 8])
_STATUSES = st.sampled_from([200, 204, 404, 500, 503])
_TABLE_SIZES = st.sampled_from([0, 1, 256, 4096])
_BYTE = st.integers(0, 255)
_UNKNOWN_STREAMS = st.integers(0, 9)
_UNKNOWN_PAYLOADS = st.binary(max_size=40)
_ANY_STREAM = st.integers(1, 200)
#: ops that act on an open stream
_ON_A_STREAM = frozenset({"data", "fill", "trailers", "rst", "end"})
#: whether a conversation goes on: False first, so shrinking ends it early;
#: about 12 more ops on average
_MORE = st.sampled_from([False] + [True] * 12)
#: "ping" first: it is what an op shrinks towards, and a PING (two choices)
#: is then small enough for the shrinker to delete outright
_OPS = st.sampled_from(
    [
        *("ping", "open", "data", "priority", "unknown", "window", "rst", "end"),
        *("trailers", "settings", "table", "fill", "window_max"),
    ]
)


@st.composite
def chunks(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """`data` split at arbitrary points (mitmproxy's test_http_fuzz idea)."""
    if not data:
        return [data]
    cuts = sorted(
        draw(st.sets(st.integers(min_value=1, max_value=max(1, len(data) - 1)), max_size=30))
    )
    out, prev = [], 0
    for cut in cuts:
        out.append(data[prev:cut])
        prev = cut
    out.append(data[prev:])
    return [c for c in out if c]


def _pad(draw: st.DrawFn, payload: bytes, room: int = 1 << 30) -> tuple[int, bytes]:
    """Optionally pad a payload: (extra flags, new payload); at most `room` bytes in all."""
    if not draw(_BOOLS) or room < len(payload) + 1:
        return 0, payload
    pad = draw(st.integers(min_value=0, max_value=min(255, room - len(payload) - 1)))
    return F.FLAG_PADDED, bytes([pad]) + payload + b"\0" * pad


def _priority(draw: st.DrawFn, sid: int) -> bytes:
    dep = draw(_DEPENDENCIES)
    dep = 0 if dep == sid else dep  # a stream may not depend on itself
    weight = draw(_WEIGHTS)
    return struct.pack(">LB", dep | (draw(_BOOLS) << 31), weight)


def _header_block(
    draw: st.DrawFn,
    encoder: hpack.Encoder,
    sid: int,
    end_stream: bool,
    headers: list[tuple[str, str]] | None = None,
    max_frame_size: int = F.DEFAULT_MAX_FRAME_SIZE,
) -> bytes:
    """`header_block_frames`' body, called with the caller's `draw` (no strategy per call)."""
    if headers is None:
        headers = [(":method", "POST"), (":path", f"/p/{sid}"), (":scheme", "http")]
        headers.append((":authority", "h"))
    headers = list(headers)
    for _ in range(draw(_EXTRA_HEADERS)):
        headers.append((draw(_HEADER_NAME), draw(_VALUES)))
    block = encoder.encode(headers, huffman=draw(_BOOLS))
    n_pieces = draw(_PIECES)
    size = max(1, -(-len(block) // n_pieces))
    size = min(size, max_frame_size - 6 - 256)
    pieces = [block[i : i + size] for i in range(0, len(block), size)] or [b""]
    if draw(_BOOLS):
        pieces.insert(1, b"")  # an empty CONTINUATION is legal
    flags = F.FLAG_END_STREAM if end_stream else 0
    first = pieces[0]
    if draw(_BOOLS):
        first = _priority(draw, sid) + first
        flags |= F.FLAG_PRIORITY
    pflags, first = _pad(draw, first, max_frame_size)
    flags |= pflags
    if len(pieces) == 1:
        flags |= F.FLAG_END_HEADERS
    out = F.frame(F.HEADERS, flags, sid, first)
    for i, piece in enumerate(pieces[1:], start=2):
        out += F.frame(F.CONTINUATION, F.FLAG_END_HEADERS if i == len(pieces) else 0, sid, piece)
    return out


@st.composite
def header_block_frames(
    draw: st.DrawFn,
    encoder: hpack.Encoder,
    sid: int,
    end_stream: bool,
    headers: list[tuple[str, str]] | None = None,
    max_frame_size: int = F.DEFAULT_MAX_FRAME_SIZE,
) -> bytes:
    """A header block as HEADERS (+ CONTINUATION); padding and priority optional.

    `headers` defaults to a request's pseudo-headers; extra headers are added.
    """
    return _header_block(draw, encoder, sid, end_stream, headers, max_frame_size)


@st.composite
def _opening(
    draw: st.DrawFn, encoder: hpack.Encoder, sid: int, side: Literal["client", "server"]
) -> tuple[bool, bytes]:
    """A stream's first header block (a request, or a response): (END_STREAM?, frames)."""
    end = draw(_BOOLS)
    if side == "client":
        return end, _header_block(draw, encoder, sid, end)
    status = str(draw(_STATUSES))
    return end, _header_block(draw, encoder, sid, end, [(":status", status)])


@dataclass
class Http2Conversation:
    """One side's bytes, and what the peer has to do for them to make sense.

    For a server conversation, the peer (a client) must first open `streams`
    (HEADERS with END_STREAM, ids in order) and then read `data`.
    """

    side: Literal["client", "server"]
    data: bytes
    streams: list[int] = field(default_factory=list)


class _Windows:
    """The sender's view of flow control: what it may still send."""

    def __init__(self) -> None:
        self.connection = F.DEFAULT_WINDOW
        self.initial = F.DEFAULT_WINDOW
        self.streams: dict[int, int] = {}

    def room(self, sid: int) -> int:
        return min(self.connection, self.streams.get(sid, self.initial))

    def spend(self, sid: int, n: int) -> None:
        self.connection -= n
        self.streams[sid] = self.streams.get(sid, self.initial) - n


def _settings_change(draw: st.DrawFn, side: str) -> list[tuple[int, int]]:
    """Settings a sender may change mid-connection, at their edges.

    INITIAL_WINDOW_SIZE stays small enough that the peer's stream windows
    (raised by our WINDOW_UPDATEs of at most 1000 each) cannot pass 2**31-1.
    """
    choices = [
        (F.SettingId.HEADER_TABLE_SIZE, st.sampled_from([0, 1, 4096, 65536])),
        (F.SettingId.MAX_CONCURRENT_STREAMS, st.sampled_from([100, 2**31 - 1])),
        (F.SettingId.INITIAL_WINDOW_SIZE, st.sampled_from([0, 1, 65535, 2**24])),
        (F.SettingId.MAX_FRAME_SIZE, st.sampled_from([16384, 16385, F.MAX_MAX_FRAME_SIZE])),
        (F.SettingId.MAX_HEADER_LIST_SIZE, st.sampled_from([1 << 16, 2**32 - 1])),
    ]
    if side == "client":
        choices.append((F.SettingId.ENABLE_PUSH, st.just(0)))
    picked = draw(st.lists(st.sampled_from(range(len(choices))), max_size=3))
    return [(int(choices[i][0]), draw(choices[i][1])) for i in picked]


@st.composite
def _conversation(
    draw: st.DrawFn, side: Literal["client", "server"], max_ops: int
) -> Http2Conversation:
    encoder = hpack.Encoder()
    out = bytearray(F.PREFACE if side == "client" else b"")
    first = [(int(F.SettingId.ENABLE_PUSH), 0)] if side == "client" else []
    out += F.build_settings(first + _settings_change(draw, side))
    windows = _Windows()
    peer_window = F.DEFAULT_WINDOW  # the connection window we have granted the peer
    next_sid = 1
    open_sids: list[int] = []
    answered: list[int] = []  # server side: the client streams answered so far
    headers_sent: set[int] = set()
    for i in range(max_ops):
        # "Another op?" before each one (as st.lists does), not a count drawn
        # up front: the shrinker can then delete any op, not only the last.
        if i and not draw(_MORE):
            break
        op = draw(_OPS)
        if not headers_sent or (op in _ON_A_STREAM and not open_sids):
            op = "open"  # the first op, and those needing an open stream when none is
        if op == "open":
            sid = next_sid
            next_sid += 2
            # one draw (one span) for the whole block: lowering this op to
            # "ping" and deleting the span is how the shrinker drops a stream
            end, block = draw(_opening(encoder, sid, side))
            out += block
            if side == "server":
                answered.append(sid)
            headers_sent.add(sid)
            if not end:
                open_sids.append(sid)
        elif op in ("data", "fill"):
            sid = draw(st.sampled_from(open_sids))
            room = min(windows.room(sid), F.DEFAULT_MAX_FRAME_SIZE)
            if room <= 0:
                continue
            # "fill": a frame of exactly what the window (or the frame size) allows
            fill = op == "fill"
            payload = b"\xaa" * room if fill else draw(st.binary(max_size=min(300, room)))
            flags, payload = _pad(draw, payload, room)
            windows.spend(sid, len(payload))
            end = draw(_BOOLS)
            out += F.frame(F.DATA, flags | (F.FLAG_END_STREAM if end else 0), sid, payload)
            if end:
                open_sids.remove(sid)
        elif op == "trailers":
            sid = draw(st.sampled_from(open_sids))
            trailer = [("grpc-status", "0")] if side == "server" else [("x-trailer", "t")]
            out += _header_block(draw, encoder, sid, True, trailer)
            open_sids.remove(sid)
        elif op == "priority":
            # often the next stream, still idle (RFC 9113 5.1: PRIORITY may
            # precede the HEADERS that opens it), else any stream at all
            sid = draw(st.just(next_sid) | _ANY_STREAM)
            out += F.frame(F.PRIORITY, 0, sid, _priority(draw, sid))
        elif op == "unknown":
            out += F.frame(
                draw(_UNKNOWN_TYPES),
                draw(_BYTE),
                draw(_UNKNOWN_STREAMS),
                draw(_UNKNOWN_PAYLOADS),
            )
        elif op == "ping":
            # no draw: an op the shrinker can delete with its two choices
            out += F.build_ping(struct.pack(">Q", i))
        elif op == "window":
            sid = draw(st.sampled_from([0, *open_sids]))
            inc = draw(st.integers(1, 1000))
            if sid == 0:
                inc = min(inc, F.MAX_WINDOW - peer_window)
                if inc < 1:
                    continue
                peer_window += inc
            out += F.build_window_update(sid, inc)
        elif op == "window_max":  # the connection window raised to its very top
            if peer_window >= F.MAX_WINDOW:
                continue
            out += F.build_window_update(0, F.MAX_WINDOW - peer_window)
            peer_window = F.MAX_WINDOW
        elif op == "settings":
            out += F.build_settings(_settings_change(draw, side))
        elif op == "table":
            # a dynamic-table size update, within the receiver's default 4096
            encoder.header_table_size = draw(_TABLE_SIZES)
        elif op == "rst":
            sid = draw(st.sampled_from(open_sids))
            out += F.build_rst_stream(sid, draw(st.integers(0, 13)))
            open_sids.remove(sid)
        elif op == "end":
            sid = draw(st.sampled_from(open_sids))
            out += F.build_data(sid, b"", end_stream=True)
            open_sids.remove(sid)
    return Http2Conversation(side, bytes(out), answered)


def http2_conversations(
    side: Literal["client", "server"] = "client", max_ops: int = 25
) -> st.SearchStrategy[Http2Conversation]:
    """Valid byte streams of one side of an HTTP/2 connection (client: preface first)."""
    if side not in ("client", "server"):
        raise ValueError(f"side is 'client' or 'server', not {side!r}")
    return _conversation(side, max_ops)


def client_streams() -> st.SearchStrategy[bytes]:
    """A valid client->server byte stream: preface, SETTINGS, then a mix of frames."""
    return http2_conversations("client").map(lambda c: c.data)


@st.composite
def http2_frames(draw: st.DrawFn) -> bytes:
    """One well-formed frame of any type (valid lengths, flags, ids), alone."""
    kind = draw(
        st.sampled_from(
            [
                "data",
                "headers",
                "priority",
                "rst",
                "settings",
                "ack",
                "ping",
                "goaway",
                "window",
                "unknown",
            ]
        )
    )
    sid = draw(st.sampled_from([1, 3, 2**31 - 1]) | st.integers(1, 2**31 - 1))
    if kind == "data":
        flags, payload = _pad(draw, draw(st.binary(max_size=64)))
        return F.frame(F.DATA, flags | draw(st.sampled_from([0, F.FLAG_END_STREAM])), sid, payload)
    if kind == "headers":
        return draw(header_block_frames(hpack.Encoder(), sid | 1, draw(st.booleans())))
    if kind == "priority":
        return F.frame(F.PRIORITY, 0, sid, _priority(draw, sid))
    if kind == "rst":
        return F.build_rst_stream(sid, draw(st.integers(0, 2**32 - 1)))
    if kind == "settings":
        return F.build_settings(_settings_change(draw, "client"))
    if kind == "ack":
        return F.build_settings(ack=True)
    if kind == "ping":
        return F.build_ping(draw(st.binary(min_size=8, max_size=8)), ack=draw(st.booleans()))
    if kind == "goaway":
        return F.build_goaway(sid, draw(st.integers(0, 13)), draw(st.binary(max_size=20)))
    if kind == "window":
        inc = draw(st.sampled_from([1, F.MAX_WINDOW]) | st.integers(1, F.MAX_WINDOW))
        return F.build_window_update(draw(st.sampled_from([0, sid])), inc)
    return F.frame(
        draw(_UNKNOWN_TYPES), draw(st.integers(0, 255)), sid, draw(st.binary(max_size=40))
    )


@dataclass(frozen=True)
class HpackBlock:
    """One encoded header block and the headers it decodes to (in order)."""

    headers: list[tuple[str, str]]
    block: bytes


_hpack_names = st.sampled_from(
    [":method", ":path", ":status", "content-type", "cookie", "authorization", "x-custom"]
) | st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20)
_hpack_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40) | (
    st.just("v" * 600)
)


@st.composite
def hpack_blocks(draw: st.DrawFn, max_blocks: int = 4) -> list[HpackBlock]:
    """Header blocks from one encoder, to be decoded in order by one decoder.

    They share the dynamic table, so later blocks refer to entries earlier
    ones added; size updates (down to 0 and back) and never-indexed headers
    are drawn too, and Huffman coding is on or off per block.
    """
    encoder = hpack.Encoder()
    out: list[HpackBlock] = []
    for _ in range(draw(st.integers(1, max_blocks))):
        if draw(st.booleans()):
            encoder.header_table_size = draw(st.sampled_from([0, 1, 64, 4096]))
        raw = draw(st.lists(st.tuples(_hpack_names, _hpack_values), max_size=8))
        tuples = [
            hpack.NeverIndexedHeaderTuple(n, v) if draw(st.booleans()) else (n, v) for n, v in raw
        ]
        block = encoder.encode(tuples, huffman=draw(st.booleans()))
        out.append(HpackBlock(list(raw), bytes(block)))
    return out
