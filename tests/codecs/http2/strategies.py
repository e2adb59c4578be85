"""Hypothesis strategies: valid client byte streams and arbitrary chunkings."""

from __future__ import annotations

import struct

import hpack
from hypothesis import strategies as st

from protoproxy_codecs.http2 import frames as F

HEADER_NAMES = ["x-a", "x-b", "user-agent", "content-type", "x-long-header-name"]


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


def _pad(draw: st.DrawFn, payload: bytes) -> tuple[int, bytes]:
    """Optionally pad a payload: (extra flags, new payload)."""
    if not draw(st.booleans()):
        return 0, payload
    pad = draw(st.integers(min_value=0, max_value=20))
    return F.FLAG_PADDED, bytes([pad]) + payload + b"\0" * pad


@st.composite
def header_block_frames(
    draw: st.DrawFn, encoder: hpack.Encoder, sid: int, end_stream: bool
) -> bytes:
    """A request header block as HEADERS (+ CONTINUATION), padding and priority optional."""
    headers = [
        (":method", "POST"),
        (":path", f"/p/{sid}"),
        (":scheme", "http"),
        (":authority", "h"),
    ]
    for _ in range(draw(st.integers(0, 4))):
        headers.append(
            (
                draw(st.sampled_from(HEADER_NAMES)),
                draw(st.text("abcdef0123", min_size=0, max_size=30)),
            )
        )
    block = encoder.encode(headers, huffman=draw(st.booleans()))
    n_pieces = draw(st.integers(1, 4))
    size = max(1, -(-len(block) // n_pieces))
    pieces = [block[i : i + size] for i in range(0, len(block), size)] or [b""]
    flags = F.FLAG_END_STREAM if end_stream else 0
    first = pieces[0]
    if draw(st.booleans()):
        dep = draw(st.integers(0, 2**31 - 1))
        dep = 0 if dep == sid else dep  # a stream may not depend on itself
        first = (
            struct.pack(">LB", dep | (draw(st.booleans()) << 31), draw(st.integers(0, 255))) + first
        )
        flags |= F.FLAG_PRIORITY
    pflags, first = _pad(draw, first)
    flags |= pflags
    if len(pieces) == 1:
        flags |= F.FLAG_END_HEADERS
    out = F.frame(F.HEADERS, flags, sid, first)
    for i, piece in enumerate(pieces[1:], start=2):
        out += F.frame(F.CONTINUATION, F.FLAG_END_HEADERS if i == len(pieces) else 0, sid, piece)
    return out


@st.composite
def client_streams(draw: st.DrawFn) -> bytes:
    """A valid client->server byte stream: preface, SETTINGS, then a mix of frames."""
    encoder = hpack.Encoder()
    out = bytearray(F.PREFACE)
    out += F.build_settings([(F.SettingId.ENABLE_PUSH, 0)])
    next_sid = 1
    open_sids: list[int] = []
    budget = 60_000  # stay inside the default connection window
    for _ in range(draw(st.integers(1, 25))):
        op = draw(
            st.sampled_from(["open", "data", "priority", "unknown", "ping", "window", "rst", "end"])
        )
        if op == "open" or not open_sids:
            end = draw(st.booleans())
            out += draw(header_block_frames(encoder, next_sid, end))
            if not end:
                open_sids.append(next_sid)
            next_sid += 2
        elif op == "data":
            sid = draw(st.sampled_from(open_sids))
            payload = draw(st.binary(max_size=300))
            flags, payload = _pad(draw, payload)
            if len(payload) > budget:
                continue
            budget -= len(payload)
            end = draw(st.booleans())
            out += F.frame(F.DATA, flags | (F.FLAG_END_STREAM if end else 0), sid, payload)
            if end:
                open_sids.remove(sid)
        elif op == "priority":
            sid = draw(st.integers(1, 200))
            dep = draw(st.integers(0, 200))
            dep = 0 if dep == sid else dep
            out += F.frame(F.PRIORITY, 0, sid, struct.pack(">LB", dep, 16))
        elif op == "unknown":
            ftype = draw(st.integers(0x0A, 0xFF))
            out += F.frame(
                ftype,
                draw(st.integers(0, 255)),
                draw(st.integers(0, 9)),
                draw(st.binary(max_size=40)),
            )
        elif op == "ping":
            out += F.build_ping(draw(st.binary(min_size=8, max_size=8)))
        elif op == "window":
            sid = draw(st.sampled_from([0, *open_sids]))
            out += F.build_window_update(sid, draw(st.integers(1, 1000)))
        elif op == "rst":
            sid = draw(st.sampled_from(open_sids))
            out += F.build_rst_stream(sid, draw(st.integers(0, 13)))
            open_sids.remove(sid)
        elif op == "end":
            sid = draw(st.sampled_from(open_sids))
            out += F.build_data(sid, b"", end_stream=True)
            open_sids.remove(sid)
    return bytes(out)
