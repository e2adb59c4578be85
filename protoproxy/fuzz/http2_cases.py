"""The cases `protoproxy fuzz http2` sends: a client's conversation, as frames and as writes.

A case is the client side of `protoproxy_codecs.strategies.http2_conversations`
(preface, SETTINGS, then valid frames: padding, priority, CONTINUATION,
trailers, flow-control edges, SETTINGS changes, HPACK table-size updates),
cut into writes, plus a closing write the driver needs to read a complete
answer: END_STREAM on every stream the conversation left open (a server
answers a request once it has all of it) and, when the conversation's last
SETTINGS left the client's stream windows below the default, the default back
(a server cannot send a body into a window of 0). Both are part of `wire`, so
a replay sends exactly what the run sent.

`decoded` is each frame as protoproxy's own codec reads it (the client bytes
are decoded once, here), so a replay file reads without a hex dump.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from protoproxy_codecs.base import UPSTREAM, DecodeError, Message
from protoproxy_codecs.http2 import frames as F
from protoproxy_codecs.http2.codec import Http2Codec
from protoproxy_codecs.strategies.http2 import chunks, http2_conversations

from .driver import Case

PROTOCOL = "http2"

#: operations per conversation: the strategy's default
MAX_OPS = 25

TYPE_NAMES: dict[int, str] = {i: kind.upper() for i, kind in enumerate(F.FRAME_KINDS)}

#: flag bits by frame type, as the decoded view spells them
_FLAGS: dict[int, tuple[tuple[int, str], ...]] = {
    F.DATA: ((F.FLAG_END_STREAM, "END_STREAM"), (F.FLAG_PADDED, "PADDED")),
    F.HEADERS: (
        (F.FLAG_END_STREAM, "END_STREAM"),
        (F.FLAG_END_HEADERS, "END_HEADERS"),
        (F.FLAG_PADDED, "PADDED"),
        (F.FLAG_PRIORITY, "PRIORITY"),
    ),
    F.SETTINGS: ((F.FLAG_ACK, "ACK"),),
    F.PING: ((F.FLAG_ACK, "ACK"),),
    F.CONTINUATION: ((F.FLAG_END_HEADERS, "END_HEADERS"),),
}

_SETTING_NAMES = {int(s): s.name for s in F.SettingId}
_ERROR_NAMES = {int(e): e.name for e in F.ErrorCode}

#: how the conversation is cut into writes: whole, one write per frame, or at
#: arbitrary byte offsets (a server must reassemble frames across reads)
_SPLITS = st.sampled_from(["whole", "frames", "bytes"])


def type_name(ftype: int) -> str:
    return TYPE_NAMES.get(ftype, "UNKNOWN")


def error_name(code: int) -> str:
    return _ERROR_NAMES.get(code, hex(code))


def flag_names(ftype: int, flags: int) -> list[str] | int:
    """Named flags for the known types; an unknown type's flags stay a number."""
    table = _FLAGS.get(ftype)
    if table is None:
        return flags if ftype not in TYPE_NAMES else []
    return [name for bit, name in table if flags & bit]


def describe(message: Message) -> dict[str, Any]:
    """One frame as the replay file shows it (JSON-able)."""
    if message.kind == "preface":
        return {"type": "PREFACE"}
    info = message.info or {}
    ftype = info["type"]
    raw = message.raw
    out: dict[str, Any] = {
        "type": type_name(ftype),
        "stream": info["stream_id"],
        "flags": flag_names(ftype, info["flags"]),
        "length": info["length"],
    }
    if ftype not in TYPE_NAMES:
        out["type_code"] = ftype
    if ftype in (F.DATA, F.HEADERS) and info["flags"] & F.FLAG_PADDED:
        out["pad"] = raw[9]
    if "depends_on" in info:
        out["priority"] = {
            "depends_on": info["depends_on"],
            "weight": info["weight"],
            "exclusive": info["exclusive"],
        }
    if "headers" in info:
        out["headers"] = [list(h) for h in info["headers"]]
    if ftype == F.SETTINGS and not info.get("ack"):
        out["settings"] = [[_SETTING_NAMES.get(k, hex(k)), v] for k, v in info["settings"]]
    elif ftype == F.PING:
        out["data"] = raw[9:17].hex()
    elif ftype == F.WINDOW_UPDATE:
        out["increment"] = info["increment"]
    elif ftype == F.RST_STREAM:
        out["error_code"] = error_name(info["error_code"])
    return out


def decode_client(data: bytes) -> tuple[Http2Codec, list[Message]]:
    """The client's bytes as protoproxy's codec reads them, one Message per frame.

    Raises DecodeError if the codec refuses them: the strategy's conversations
    are valid, so that is a codec bug (the proxy in front would refuse them too).
    """
    codec = Http2Codec()
    return codec, codec.feed(UPSTREAM, data)


def closing_frames(messages: list[Message]) -> bytes:
    """What the driver appends so every stream the client opened gets a full answer."""
    opened: list[int] = []
    done: set[int] = set()
    initial_window = F.DEFAULT_WINDOW
    for m in messages:
        info = m.info
        if not info or m.kind == "preface":
            continue
        ftype, sid, flags = info["type"], info["stream_id"], info["flags"]
        if ftype == F.HEADERS and sid not in done and sid not in opened:
            opened.append(sid)
        if (ftype in (F.HEADERS, F.DATA) and flags & F.FLAG_END_STREAM) or ftype == F.RST_STREAM:
            done.add(sid)
        elif ftype == F.SETTINGS and not flags & F.FLAG_ACK:
            for key, value in info["settings"]:
                if key == F.SettingId.INITIAL_WINDOW_SIZE:
                    initial_window = value
    out = bytearray()
    if initial_window < F.DEFAULT_WINDOW:
        out += F.build_settings([(int(F.SettingId.INITIAL_WINDOW_SIZE), F.DEFAULT_WINDOW)])
    for sid in opened:
        if sid not in done:
            out += F.build_data(sid, b"", end_stream=True)
    return bytes(out)


def label(frames: list[dict[str, Any]]) -> str:
    """The coverage key: the drawn frame types after the first SETTINGS, each
    once, in order of first appearance ("HEADERS+CONTINUATION+DATA")."""
    seen: list[str] = []
    for f in frames[2:]:
        if not f.get("closing") and f["type"] not in seen:
            seen.append(f["type"])
    return "+".join(seen) or "SETTINGS"


def build_case(data: bytes, writes: list[bytes]) -> Case:
    """A Case from the conversation `data` cut into `writes` (which join to `data`)."""
    codec, messages = decode_client(data)
    closing = closing_frames(messages)
    frames = [describe(m) for m in messages]
    if closing:
        frames += [{**describe(m), "closing": True} for m in codec.feed(UPSTREAM, closing)]
    wire = [*writes, closing] if closing else list(writes)
    return Case(PROTOCOL, label(frames), wire, frames)


def _frame_writes(data: bytes) -> list[bytes]:
    """The preface, then one write per frame."""
    out = [data[: len(F.PREFACE)]]
    pos = len(F.PREFACE)
    while pos < len(data):
        end = pos + 9 + int.from_bytes(data[pos : pos + 3], "big")
        out.append(data[pos:end])
        pos = end
    return out


@st.composite
def _cases(draw: st.DrawFn, max_ops: int) -> Case:
    data = draw(http2_conversations("client", max_ops)).data
    split = draw(_SPLITS)
    if split == "whole":
        writes = [data]
    elif split == "frames":
        writes = _frame_writes(data)
    else:
        writes = draw(chunks(data))
    try:
        return build_case(data, writes)
    except DecodeError as exc:  # the strategy's own output: a bug here, not in the target
        raise AssertionError(f"protoproxy's codec refuses a valid conversation: {exc}") from exc


def cases(max_ops: int = MAX_OPS) -> SearchStrategy[Case]:
    return _cases(max_ops)
