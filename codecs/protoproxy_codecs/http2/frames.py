"""HTTP/2 wire constants and frame builders (RFC 9113 section 4 and 6).

Builders exist for injection: the fault engine sends frames the peers never
wrote (RST_STREAM, GOAWAY, credit-restoring WINDOW_UPDATEs...). They return
plain bytes so the runtime can write them next to relayed frames.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_LEN = 9
DEFAULT_MAX_FRAME_SIZE = 16_384
MAX_MAX_FRAME_SIZE = 16_777_215
DEFAULT_WINDOW = 65_535
MAX_WINDOW = 2**31 - 1
DEFAULT_HEADER_TABLE_SIZE = 4_096

# Frame types.
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

#: Message.kind by frame type; types past the end are "unknown" (passed through).
FRAME_KINDS: tuple[str, ...] = (
    "data",
    "headers",
    "priority",
    "rst_stream",
    "settings",
    "push_promise",
    "ping",
    "goaway",
    "window_update",
    "continuation",
)

# Flags.
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20


class ErrorCode(enum.IntEnum):
    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class SettingId(enum.IntEnum):
    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6
    ENABLE_CONNECT_PROTOCOL = 0x8


#: DecodeError.reason -> the GOAWAY error code that reports it.
REASON_CODES: dict[str, ErrorCode] = {
    "protocol_error": ErrorCode.PROTOCOL_ERROR,
    "frame_size_error": ErrorCode.FRAME_SIZE_ERROR,
    "compression_error": ErrorCode.COMPRESSION_ERROR,
    "flow_control_error": ErrorCode.FLOW_CONTROL_ERROR,
    "too_many_streams": ErrorCode.ENHANCE_YOUR_CALM,
    "header_list_too_large": ErrorCode.ENHANCE_YOUR_CALM,
    "message_too_large": ErrorCode.ENHANCE_YOUR_CALM,  # a gRPC message past Limits
    # flood.py's rules: valid frames, abusive pattern
    "flood_rapid_reset": ErrorCode.ENHANCE_YOUR_CALM,
    "flood_control_frames": ErrorCode.ENHANCE_YOUR_CALM,
    "flood_continuations": ErrorCode.ENHANCE_YOUR_CALM,
    "flood_header_bytes": ErrorCode.ENHANCE_YOUR_CALM,
    "flood_requests_per_read": ErrorCode.ENHANCE_YOUR_CALM,
}

_HEADER = struct.Struct(">HBBBL")  # 24-bit length as (hi16, lo8), type, flags, stream id
_U32 = struct.Struct(">L")
_SETTING = struct.Struct(">HL")
_GOAWAY = struct.Struct(">LL")


def frame_header(length: int, ftype: int, flags: int, stream_id: int) -> bytes:
    return _HEADER.pack(length >> 8, length & 0xFF, ftype, flags, stream_id & 0x7FFFFFFF)


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame of any type, including unknown ones (for tests and injection)."""
    return frame_header(len(payload), ftype, flags, stream_id) + payload


def build_data(
    stream_id: int,
    data: bytes,
    end_stream: bool = False,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> bytes:
    """DATA frames carrying `data`, split at `max_frame_size`; END_STREAM on the last."""
    if stream_id <= 0:
        raise ValueError("DATA needs a stream id")
    out = bytearray()
    view = memoryview(data)
    pos = 0
    while True:
        chunk = view[pos : pos + max_frame_size]
        pos += len(chunk)
        last = pos >= len(data)
        out += frame_header(
            len(chunk), DATA, FLAG_END_STREAM if (last and end_stream) else 0, stream_id
        )
        out += chunk
        if last:
            return bytes(out)


def build_header_block(
    stream_id: int,
    block: bytes,
    end_stream: bool = False,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> bytes:
    """HEADERS (+ CONTINUATION) frames carrying an already HPACK-encoded block."""
    if stream_id <= 0:
        raise ValueError("HEADERS needs a stream id")
    first = block[:max_frame_size]
    rest = block[max_frame_size:]
    flags = FLAG_END_STREAM if end_stream else 0
    if not rest:
        return frame_header(len(first), HEADERS, flags | FLAG_END_HEADERS, stream_id) + first
    out = bytearray(frame_header(len(first), HEADERS, flags, stream_id))
    out += first
    while rest:
        chunk, rest = rest[:max_frame_size], rest[max_frame_size:]
        out += frame_header(len(chunk), CONTINUATION, 0 if rest else FLAG_END_HEADERS, stream_id)
        out += chunk
    return bytes(out)


def build_rst_stream(stream_id: int, error_code: int) -> bytes:
    return frame_header(4, RST_STREAM, 0, stream_id) + _U32.pack(error_code)


def build_goaway(last_stream_id: int, error_code: int, debug: bytes = b"") -> bytes:
    payload = _GOAWAY.pack(last_stream_id & 0x7FFFFFFF, error_code) + debug
    return frame_header(len(payload), GOAWAY, 0, 0) + payload


def build_window_update(stream_id: int, increment: int) -> bytes:
    if not 1 <= increment <= MAX_WINDOW:
        raise ValueError(f"WINDOW_UPDATE increment {increment} out of range")
    return frame_header(4, WINDOW_UPDATE, 0, stream_id) + _U32.pack(increment)


def build_settings(settings: Iterable[tuple[int, int]] = (), ack: bool = False) -> bytes:
    payload = b"".join(_SETTING.pack(k, v) for k, v in settings)
    if ack and payload:
        raise ValueError("a SETTINGS ACK carries no settings")
    return frame_header(len(payload), SETTINGS, FLAG_ACK if ack else 0, 0) + payload


def build_ping(opaque: bytes = b"\0" * 8, ack: bool = False) -> bytes:
    if len(opaque) != 8:
        raise ValueError("PING carries exactly 8 bytes")
    return frame_header(8, PING, FLAG_ACK if ack else 0, 0) + opaque


def parse_settings(payload: bytes | memoryview) -> list[tuple[int, int]]:
    """(id, value) pairs in wire order; the caller validates values."""
    return [_SETTING.unpack_from(payload, i) for i in range(0, len(payload), 6)]
