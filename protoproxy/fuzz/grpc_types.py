"""What the gRPC driver and its stream machine share: a method, an answer, and
how a message is shown in a replay file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format, text_format

#: message nesting drawn: a recursive message (a tree) costs about 2.3x per level more
#: to draw, and drawing is most of a case's time
MAX_DEPTH = 2


@dataclass(frozen=True)
class Method:
    """One method of the schema, as a case needs it."""

    label: str  # "pkg.Service/Method"
    request: Any  # the request's Descriptor
    response: Any  # the response's message class
    client_streaming: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        return "/" + self.label


@dataclass
class Answer:
    """What one call got back: its response bytes, status and trailers."""

    responses: list[bytes]
    code: grpc.StatusCode
    details: str
    trailers: Sequence[tuple[str, str | bytes]]
    took_ns: int


def as_json(msg: Any) -> Any:
    """The message as JSON for the replay file; text format for what JSON cannot carry
    (an Any of an unknown type, a Timestamp out of range)."""
    try:
        return json_format.MessageToDict(msg, preserving_proto_field_name=True)
    except (json_format.Error, TypeError, ValueError, KeyError):
        return {"_text": text_format.MessageToString(msg)}
