"""`info` of relayed frames, built lazily from `raw`: every key of every frame type."""

from __future__ import annotations

import struct

import hpack

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM
from protoproxy_codecs.http2 import PREFACE, Http2Codec
from protoproxy_codecs.http2 import frames as F
from protoproxy_codecs.http2.message import FrameMessage

_GET = hpack.Encoder().encode([(":method", "GET"), (":path", "/x"), (":scheme", "http")])
_HEADERS = ((":method", "GET"), (":path", "/x"), (":scheme", "http"))


def _base(ftype: int, flags: int, sid: int, length: int, **more: object) -> dict[str, object]:
    return {"type": ftype, "flags": flags, "stream_id": sid, "length": length, **more}


def test_info_of_every_frame_type() -> None:
    codec = Http2Codec()
    prio = struct.pack(">LB", 0x80000000 | 3, 15)  # exclusive on 3, weight 16
    padded_prio = bytes([2]) + prio + _GET + b"\0\0"
    up = [
        F.build_settings([(F.SettingId.ENABLE_PUSH, 1), (F.SettingId.MAX_FRAME_SIZE, 20000)]),
        F.frame(F.HEADERS, F.FLAG_PADDED | F.FLAG_PRIORITY | F.FLAG_END_HEADERS, 1, padded_prio),
        F.frame(F.DATA, F.FLAG_PADDED | F.FLAG_END_STREAM, 1, bytes([3]) + b"abc" + b"\0" * 3),
        F.frame(F.HEADERS, 0, 5, _GET[:2]),
        F.frame(F.CONTINUATION, 0, 5, _GET[2:3]),
        F.frame(F.CONTINUATION, F.FLAG_END_HEADERS, 5, _GET[3:]),
        F.frame(F.PRIORITY, 0, 7, struct.pack(">LB", 5, 0)),
        F.build_rst_stream(5, 8),
        F.build_window_update(0, 1000),
        F.build_ping(b"12345678", ack=True),
        F.frame(0x0C, 0x3, 9, b"origin"),
        F.build_goaway(7, 2, b"bye"),
    ]
    msgs = codec.feed(UPSTREAM, PREFACE + b"".join(up))
    assert msgs[0].info == {"type": -1, "length": 24}
    assert all(type(m) is FrameMessage for m in msgs[1:])
    infos = [m.info for m in msgs[1:]]
    assert infos == [
        _base(4, 0, 0, 12, ack=False, settings=[(2, 1), (5, 20000)]),
        _base(
            1,
            0x2C,
            1,
            len(padded_prio),
            depends_on=3,
            exclusive=True,
            weight=16,
            end_stream=False,
            headers=_HEADERS,
        ),
        _base(0, 0x9, 1, 7, end_stream=True),
        _base(1, 0, 5, 2, end_stream=False),
        _base(9, 0, 5, 1),
        _base(9, 4, 5, len(_GET) - 3, end_stream=False, headers=_HEADERS),
        _base(2, 0, 7, 5, depends_on=5, exclusive=False, weight=1),
        _base(3, 0, 5, 4, error_code=8),
        _base(8, 0, 0, 4, increment=1000),
        _base(6, 1, 0, 8, ack=True),
        _base(0x0C, 3, 9, 6),
        _base(7, 0, 0, 11, last_stream_id=7, error_code=2),
    ]
    assert msgs[2].info is msgs[2].info  # built once


def test_push_promise_and_settings_ack_and_grpc_events() -> None:
    codec = Http2Codec()
    codec.feed(UPSTREAM, PREFACE + F.build_settings())
    (ack,) = codec.feed(DOWNSTREAM, F.build_settings())[:1]
    assert ack.info == _base(4, 0, 0, 0, ack=False, settings=[])
    (sack,) = codec.feed(UPSTREAM, F.build_settings(ack=True))
    assert sack.info == _base(4, 1, 0, 0, ack=True)
    grpc = hpack.Encoder().encode(
        [
            (":method", "POST"),
            (":path", "/s/M"),
            (":scheme", "http"),
            ("content-type", "application/grpc"),
        ]
    )
    codec.feed(UPSTREAM, F.build_header_block(1, grpc))
    (data,) = codec.feed(UPSTREAM, F.build_data(1, b"\0\0\0\0\x02hi"))
    (event,) = data.info["grpc_messages"]
    assert bytes(event.payload) == b"hi"
    assert data.info["end_stream"] is False
    promise = struct.pack(">L", 2) + _GET
    (pp,) = codec.feed(DOWNSTREAM, F.frame(F.PUSH_PROMISE, F.FLAG_END_HEADERS, 1, promise))
    assert pp.info == _base(5, 4, 1, len(promise), promised_stream_id=2, headers=_HEADERS)
    pp.info = {"replaced": True}  # settable like any Message's
    assert pp.info == {"replaced": True}
