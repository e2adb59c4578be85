"""The broker's half of a KafkaCodec conversation, for tests that play the broker.

The codec is the proxy's: it never answers anything and redacts credentials.
A test broker (minibroker.py, the server-side tests) must read those
credentials and write responses; these helpers do it with the framing layer,
feeding each response back to the codec so its pairing, Exchanges and SASL
state advance exactly as when a response passes the proxy.
"""

from __future__ import annotations

import struct
from typing import Any

from protoproxy_codecs.base import DOWNSTREAM, Message
from protoproxy_codecs.kafka import KafkaCodec, framing


def unredacted_view(message: Message) -> Any:
    """The real decoded body of a secret message (a broker must see credentials).

    A raw SASL token is returned as its bytes (without the size prefix).
    """
    if message.kind == "sasl_token":
        return message.raw[4:]
    info = message.info or {}
    api_key, version = info["api_key"], info["api_version"]
    raw = message.raw
    if message.kind == "request":
        body_at = 4 + info["header_size"]
    else:
        _, body_at = framing.parse_response_header(raw, 4, len(raw), api_key, version)
    return framing.decode_body(api_key, version, message.kind == "request", raw, body_at, len(raw))


def respond(codec: KafkaCodec, request: Message, body: Any) -> bytes:
    """Encode the response to `request` and feed it to `codec` as if it passed by.

    `body` is a kafka-python response instance or a dict of its fields (bytes
    for a SASL token). Returns the complete frame to write to the client.
    """
    info = request.info or {}
    if request.kind == "sasl_token":
        frame = struct.pack(">i", len(body)) + bytes(body)
    else:
        frame = framing.encode_response(
            info["api_key"], info["api_version"], info["correlation_id"], body
        )
    codec.feed(DOWNSTREAM, frame)
    return frame
