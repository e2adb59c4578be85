"""Passive HTTP/2 codec: frames, HPACK, stream states, flow control (sans-IO)."""

from .codec import Http2Codec
from .flow import FlowLedger
from .frames import PREFACE, ErrorCode, SettingId
from .hpack_state import HeaderDecoder, MirrorEncoder, encode_context_free
from .streams import Event, State

__all__ = [
    "PREFACE",
    "ErrorCode",
    "Event",
    "FlowLedger",
    "HeaderDecoder",
    "Http2Codec",
    "MirrorEncoder",
    "SettingId",
    "State",
    "encode_context_free",
]
