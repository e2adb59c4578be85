"""One HTTP/2 frame as a Message whose `info` dict is built on first use.

Why lazy: the proxy relays every frame, but on the plain path nothing reads
`info` except the call-start counter (once per request HEADERS); building a
dict per frame was a measurable share of the per-frame cost. Everything in
`info` but the decoded header list, the gRPC message events and a
CONTINUATION's block-level fields can be read back from `raw` (a frame the
codec accepted is well formed), so the codec stores only those few as
`extra` and the rest is parsed here when someone asks. The keys and values
are exactly what docs/http2-grpc-codec.md lists.
"""

from __future__ import annotations

import struct
from typing import Any

from ..base import Direction, Message
from . import frames as F

_U32 = struct.Struct(">L")
_GOAWAY = struct.Struct(">LL")
#: The base class's `info` slot, which the property below shadows: the built
#: dict is cached there, so `info` is built at most once per message.
_INFO_SLOT = Message.__dict__["info"]
_get_info = _INFO_SLOT.__get__
_set_info = _INFO_SLOT.__set__


def frame_info(raw: bytes, extra: dict[str, Any] | None) -> dict[str, Any]:
    """The `info` of an accepted frame: header fields, per-type fields, `extra`."""
    length = (raw[0] << 16) | (raw[1] << 8) | raw[2]
    ftype = raw[3]
    flags = raw[4]
    info: dict[str, Any] = {
        "type": ftype,
        "flags": flags,
        "stream_id": _U32.unpack_from(raw, 5)[0] & 0x7FFFFFFF,
        "length": length,
    }
    if ftype == F.DATA:
        info["end_stream"] = bool(flags & F.FLAG_END_STREAM)
    elif ftype == F.HEADERS:
        if flags & F.FLAG_PRIORITY:
            _priority(raw, 10 if flags & F.FLAG_PADDED else 9, info)
        info["end_stream"] = bool(flags & F.FLAG_END_STREAM)
    elif ftype == F.RST_STREAM:
        info["error_code"] = _U32.unpack_from(raw, 9)[0]
    elif ftype == F.WINDOW_UPDATE:
        info["increment"] = _U32.unpack_from(raw, 9)[0] & 0x7FFFFFFF
    elif ftype == F.SETTINGS:
        if flags & F.FLAG_ACK:
            info["ack"] = True
        else:
            info["ack"] = False
            info["settings"] = F.parse_settings(memoryview(raw)[9:])
    elif ftype == F.PING:
        info["ack"] = bool(flags & F.FLAG_ACK)
    elif ftype == F.PRIORITY:
        _priority(raw, 9, info)
    elif ftype == F.GOAWAY:
        last, code = _GOAWAY.unpack_from(raw, 9)
        info["last_stream_id"] = last & 0x7FFFFFFF
        info["error_code"] = code
    if extra:
        info.update(extra)
    return info


def _priority(raw: bytes, at: int, info: dict[str, Any]) -> None:
    dep = _U32.unpack_from(raw, at)[0]
    info["depends_on"] = dep & 0x7FFFFFFF
    info["exclusive"] = bool(dep >> 31)
    info["weight"] = raw[at + 4] + 1


class FrameMessage(Message):
    """A relayed frame; `info` as for any Message, computed when first read."""

    __slots__ = ("_extra",)

    def __init__(
        self, direction: Direction, kind: str, raw: bytes, key: int, extra: dict[str, Any] | None
    ) -> None:
        # The base __init__ would assign `info` through the property; set the
        # slots directly instead (this runs once per frame).
        self.direction = direction
        self.kind = kind
        self.raw = raw
        self.key = key
        self._extra = extra
        self._decode = None
        self._view = None

    @property  # type: ignore[override]
    def info(self) -> dict[str, Any]:
        try:
            return _get_info(self, FrameMessage)  # type: ignore[no-any-return]
        except AttributeError:
            info = frame_info(self.raw, self._extra)
            _set_info(self, info)
            return info

    @info.setter
    def info(self, value: dict[str, Any] | None) -> None:
        _set_info(self, value)

    @property
    def extra(self) -> dict[str, Any] | None:
        """What the codec found that `raw` does not hold (headers, gRPC events)."""
        return self._extra
