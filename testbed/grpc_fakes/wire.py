"""Between grpcio's metadata and status and the stub engine's JSON dicts.

The stub engine (`testbed.grpc_stubs`) works on plain dicts so that it needs
no grpcio; this module is the one place that turns grpcio's metadata tuples
into those dicts and a Reply's headers, trailers and rich error details back
into what goes on the wire.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message
from google.rpc import status_pb2

from .schema import Schema

#: The trailer carrying a serialized google.rpc.Status (the rich error model).
STATUS_DETAILS_KEY = "grpc-status-details-bin"
REDACTED = "[redacted]"
#: Metadata names never written to the journal as sent.
SECRET_NAMES = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
#: Parts of a name that mark it secret (``x-auth-token``, ``client-secret``).
SECRET_PARTS = ("token", "secret", "password", "session", "api-key", "apikey")
#: Metadata grpcio adds itself, which no stub is about.
TRANSPORT_KEYS = frozenset({"user-agent", "grpc-accept-encoding", "grpc-encoding", "te"})


def metadata_dict(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """grpcio's invocation metadata as the engine's dict: lower-case names, a
    binary (``-bin``) value in base64, repeated names joined with ", " (HTTP's rule)."""
    out: dict[str, str] = {}
    for key, value in metadata or ():
        key = key.lower()
        if key in TRANSPORT_KEYS:
            continue
        text = base64.b64encode(value).decode() if isinstance(value, bytes) else value
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def is_secret(name: str) -> bool:
    name = name.lower()
    return name in SECRET_NAMES or any(part in name for part in SECRET_PARTS)


def redacted(metadata: Mapping[str, str]) -> dict[str, str]:
    """What the journal keeps: secrets replaced, everything else as sent."""
    return {k: (REDACTED if is_secret(k) else v) for k, v in metadata.items()}


def wire_metadata(values: Mapping[str, str]) -> tuple[tuple[str, str | bytes], ...]:
    """A Reply's headers or trailers for grpcio: a ``-bin`` value is base64 text
    in a stub file and bytes on the wire."""
    out: list[tuple[str, str | bytes]] = []
    for key, value in values.items():
        key = key.lower()
        if key.endswith("-bin"):
            try:
                out.append((key, base64.b64decode(value, validate=True)))
            except (binascii.Error, ValueError):
                out.append((key, value.encode()))
        else:
            out.append((key, str(value)))
    return tuple(out)


def status_details(schema: Schema, code: int, message: str, details: list[dict[str, Any]]) -> bytes:
    """A serialized google.rpc.Status whose `details` are the stub's Any JSON
    (``{"@type": "type.googleapis.com/google.rpc.ErrorInfo", ...}``), parsed in
    the fake's pool, so the user's own detail types work as well as google.rpc's.
    A detail that does not parse raises ValueError naming its type."""
    status = status_pb2.Status(code=code, message=message)
    for i, detail in enumerate(details):
        packed = any_pb2.Any()
        try:
            json_format.ParseDict(detail, packed, descriptor_pool=schema.pool)
        except (json_format.ParseError, TypeError, KeyError) as exc:
            kind = detail.get("@type", "?") if isinstance(detail, dict) else type(detail).__name__
            raise ValueError(f"error details[{i}] ({kind}): {exc}") from None
        status.details.append(packed)
    return status.SerializeToString()


def to_dict(message: Message) -> dict[str, Any]:
    """A request as the engine sees it: proto field names, defaults left out."""
    out: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return out


def from_dict(data: Any, cls: type[Message]) -> Message:
    """A stub's JSON as a message; ParseError when it does not fit the type.
    A message is a JSON object, except a well-known type's own JSON form
    (a Timestamp's string, a StringValue's string, a Struct's any object)."""
    full_name = cls.DESCRIPTOR.full_name
    if not isinstance(data, dict) and not full_name.startswith("google.protobuf."):
        raise json_format.ParseError(f"a {full_name} is a JSON object, not {data!r:.60}")
    message = cls()
    json_format.ParseDict(data, message, ignore_unknown_fields=False)
    return message
