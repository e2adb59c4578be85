"""Kafka frames: size prefix, request/response headers, and body (de)serialisation.

Headers are split here by hand (a few struct.unpack_from calls) instead of via
kafka-python's ``decode(header=True)``, which copies the whole frame into a
BytesIO first. Bodies go through kafka-python's generated decoders, called on
a memoryview so that nothing is copied before decoding.

Body arguments to the encoders may be a kafka-python message instance or a
plain ``dict`` of its fields (snake_case names, nested structs as dicts or
instances, struct arrays as lists of dicts); missing fields take the schema's
defaults.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from ..base import DecodeError
from . import schema

_HEADER = struct.Struct(">hhih")  # api_key, api_version, correlation_id, client_id length
_SIZE = struct.Struct(">i")
_I32 = struct.Struct(">i")
_HEADER_TAGS = schema.HEADER_TAGS

# What kafka-python's generated decoders raise on bytes that do not fit the
# schema (short buffer, bad UTF-8, bad UUID, nonsense lengths).
BODY_ERRORS: tuple[type[BaseException], ...] = (
    struct.error,
    IndexError,
    ValueError,
    TypeError,
    OverflowError,
    AssertionError,
    KeyError,
    AttributeError,
    MemoryError,
    RecursionError,
)


class BodyError(Exception):
    """A body that does not decode at the version its header claims."""


class RequestHeaderInfo(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    header_size: int  # bytes of header after the size prefix (tagged fields included)


# --------------------------------------------------------------------------- headers


def read_uvarint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    """Unsigned varint at pos (at most 5 bytes); DecodeError if it runs past end."""
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise DecodeError("varint runs past the end of the frame", "bad_header")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise DecodeError("varint longer than 5 bytes", "bad_header")


def skip_tagged_fields(buf: Any, pos: int, end: int) -> int:
    """Skip a tagged-field section, staying within [pos, end)."""
    if pos < end and buf[pos] == 0:  # almost always: no tagged fields
        return pos + 1
    count, pos = read_uvarint(buf, pos, end)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos, end)
        size, pos = read_uvarint(buf, pos, end)
        pos += size
        if pos > end:
            raise DecodeError("tagged field runs past the end of the frame", "bad_header")
    return pos


def parse_request_header(buf: Any, start: int, end: int) -> tuple[int, int, int, int, int]:
    """(api_key, api_version, correlation_id, client_id_len, body_offset) of a request.

    `buf[start:end]` is one frame without its size prefix. client_id itself is
    at ``start + 10`` for ``client_id_len`` bytes (-1 means null). Tagged
    fields are skipped only for (api_key, version) pairs known to be flexible:
    for unknown pairs the body offset is just past client_id.
    """
    if end - start < 10:
        raise DecodeError(f"request header needs 10 bytes, frame has {end - start}", "bad_header")
    api_key, api_version, correlation_id, cid_len = _HEADER.unpack_from(buf, start)
    pos = start + 10
    if cid_len >= 0:
        pos += cid_len
        if pos > end:
            raise DecodeError(
                f"client_id length {cid_len} runs past the end of the frame", "bad_header"
            )
    elif cid_len != -1:
        raise DecodeError(f"negative client_id length {cid_len}", "bad_header")
    if api_key < 0:
        raise DecodeError(f"negative api_key {api_key}", "bad_header")
    if api_version < 0:
        raise DecodeError(f"negative api_version {api_version}", "bad_header")
    # Only for versions we know: a future version's header is not ours to judge.
    tags = _HEADER_TAGS.get((api_key, api_version))
    if tags is not None and tags[0]:
        pos = skip_tagged_fields(buf, pos, end)
    return api_key, api_version, correlation_id, cid_len, pos


def parse_response_header(
    buf: Any, start: int, end: int, api_key: int, api_version: int
) -> tuple[int, int]:
    """(correlation_id, body_offset) of a response to (api_key, api_version)."""
    if end - start < 4:
        raise DecodeError(f"response header needs 4 bytes, frame has {end - start}", "bad_header")
    correlation_id = _I32.unpack_from(buf, start)[0]
    pos = start + 4
    tags = _HEADER_TAGS.get((api_key, api_version))
    if tags is not None and tags[1]:
        pos = skip_tagged_fields(buf, pos, end)
    return correlation_id, pos


def decode_client_id(buf: Any, start: int, cid_len: int) -> str | None:
    if cid_len < 0:
        return None
    # Kafka writes client_id as UTF-8; a peer that does not is still forwarded.
    return str(buf[start + 10 : start + 10 + cid_len], "utf-8", "replace")


# --------------------------------------------------------------------------- bodies

_decoders: dict[tuple[int, int, bool], Any] = {}


def _body_decoder(api_key: int, version: int, request: bool) -> Any:
    """kafka-python's generated decoder for one (api, version, direction).

    We call the generated ``f(data, pos) -> (obj, pos)`` rather than
    ``cls.decode`` because only it reports where decoding stopped, which is how
    a truncated or over-long body is told apart from a good one (the generated
    code slices strings without bounds checks).
    """
    key = (api_key, version, request)
    fn = _decoders.get(key)
    if fn is None:
        cls = (
            schema.request_class(api_key, version)
            if request
            else schema.response_class(api_key, version)
        )
        if cls is None:
            return None
        primary = cls[None]
        flexible = cls.flexible_version_q(version)
        fn = primary._struct.compiled_decode_from(
            version, compact=flexible, tagged=flexible, data_class=primary
        )
        _decoders[key] = fn
    return fn


def decode_body(api_key: int, version: int, request: bool, data: Any, start: int, end: int) -> Any:
    """Decode ``data[start:end]`` as a body; BodyError if it runs past `end`.

    Returns None for an (api_key, version) kafka-python does not know.
    """
    fn = _body_decoder(api_key, version, request)
    if fn is None:
        return None
    view = data if type(data) is memoryview else memoryview(data)
    if end != len(view):
        view = view[:end]
    try:
        obj, pos = fn(view, start)
    except BODY_ERRORS as exc:
        raise BodyError(f"{type(exc).__name__}: {exc}") from None
    if pos > end:
        raise BodyError(f"body runs to offset {pos}, past the frame's end at {end}")
    # Bytes after the body are ignored, as Kafka's own parser does (librdkafka
    # 2.16 sends three stray bytes after an all-topics Metadata v12 request).
    return obj


def _to_container(data_class: Any, struct_field: Any, version: int, value: Any) -> Any:
    """Recursively turn dicts into kafka-python data containers for encoding."""
    if not isinstance(value, dict):
        return value
    fields = struct_field.fields
    converted: dict[str, Any] = {}
    for name, item in value.items():
        field = fields.get(name)
        if field is None:
            raise ValueError(f"{struct_field.name}: unknown field {name!r}")
        if field.is_struct():
            item = _to_container(field.data_class, field, version, item)
        elif field.is_struct_array() and item is not None:
            inner = field.array_of
            item = [_to_container(field.data_class, inner, version, v) for v in item]
        converted[name] = item
    return data_class(version=version, **converted)


def build_body(api_key: int, version: int, request: bool, body: Any) -> Any:
    """A kafka-python message instance for `body` (an instance or a dict)."""
    cls = (
        schema.request_class(api_key, version)
        if request
        else schema.response_class(api_key, version)
    )
    if cls is None:
        kind = "request" if request else "response"
        raise ValueError(f"no kafka-python {kind} schema for api_key={api_key} v{version}")
    if isinstance(body, dict):
        primary = cls[None]
        return _to_container(primary, primary._struct, version, body)
    if api_key != body.API_KEY or body.is_request() != request:
        raise ValueError(f"{type(body).__name__} is not a {cls.__name__}")
    return body


def encode_body(api_key: int, version: int, request: bool, body: Any) -> bytes:
    msg = build_body(api_key, version, request, body)
    if not hasattr(msg, "_header"):
        # Decoded messages are built without __init__ and lack `_header`,
        # which kafka-python's encode (via its version setter) reads.
        msg._header = None
    return msg.encode(version=version)


def _encode_str16(value: str | None) -> bytes:
    if value is None:
        return b"\xff\xff"
    raw = value.encode("utf-8")
    return struct.pack(">h", len(raw)) + raw


def encode_request(
    api_key: int, version: int, correlation_id: int, client_id: str | None, body: Any
) -> bytes:
    """A complete size-prefixed request frame. `body`: message instance or dict."""
    payload = encode_body(api_key, version, True, body)
    head = struct.pack(">hhi", api_key, version, correlation_id) + _encode_str16(client_id)
    if schema.request_header_version(api_key, version) == 2:
        head += b"\x00"
    return _SIZE.pack(len(head) + len(payload)) + head + payload


def encode_response(api_key: int, version: int, correlation_id: int, body: Any) -> bytes:
    """A complete size-prefixed response frame. `body`: message instance or dict."""
    payload = encode_body(api_key, version, False, body)
    if schema.response_header_version(api_key, version) == 1:
        head = struct.pack(">ib", correlation_id, 0)
    else:
        head = _I32.pack(correlation_id)
    return _SIZE.pack(len(head) + len(payload)) + head + payload


def decode_request(frame: bytes | memoryview) -> tuple[RequestHeaderInfo, Any]:
    """Split and decode one request frame given *without* its size prefix.

    Returns (header, body); body is None when kafka-python has no schema for
    the (api_key, version). Raises DecodeError on a malformed header and
    DecodeError(reason="bad_body") on a body that does not decode.
    """
    end = len(frame)
    api_key, version, corr, cid_len, body_at = parse_request_header(frame, 0, end)
    header = RequestHeaderInfo(api_key, version, corr, decode_client_id(frame, 0, cid_len), body_at)
    try:
        body = decode_body(api_key, version, True, frame, body_at, end)
    except BodyError as exc:
        raise DecodeError(
            f"{schema.api_name(api_key)} v{version} request body: {exc}", "bad_body"
        ) from None
    return header, body


def decode_response(api_key: int, version: int, frame: bytes | memoryview) -> tuple[int, Any]:
    """Decode one response frame (without size prefix) to (correlation_id, body)."""
    end = len(frame)
    corr, body_at = parse_response_header(frame, 0, end, api_key, version)
    try:
        body = decode_body(api_key, version, False, frame, body_at, end)
    except BodyError as exc:
        raise DecodeError(
            f"{schema.api_name(api_key)} v{version} response body: {exc}", "bad_body"
        ) from None
    return corr, body
