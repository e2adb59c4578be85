"""A recorded gRPC call as a GripMock stub file.

The stub is what GripMock (v3) reads: ``service`` (full name), ``method``,
``input.equals`` (unary and server-streaming calls) or ``inputs`` (one
``equals`` per request message, client and bidi streams), and ``output`` with
``headers``, ``data`` (unary) or ``stream`` (every response message), ``code``
and ``error`` (status and message, left out when OK), ``details`` (the
``google.rpc.Status`` details of ``grpc-status-details-bin`` as Any JSON) and
``trailers`` (our extension).

Without a schema for the method, messages cannot be JSON: they are written
as base64 in fields of their own, ``equals_b64`` in an input and
``data_b64`` / ``stream_b64`` in the output, which keep the bytes for people
and tools; the stub engine (testbed/grpc_stubs) does not read them, so the
replay scenario leaves such services out (docs/testbed.md#record-and-replay).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from google.protobuf import any_pb2, json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError

from .model import GrpcCall, Headers
from .payloads import plain
from .redact import Redactor
from .schema import Schema

#: Response metadata that is the protocol's, not the service's.
_PROTOCOL_HEADERS = frozenset(
    {"content-type", "grpc-encoding", "grpc-accept-encoding", "te", "content-length"}
)
_STATUS_TRAILERS = frozenset({"grpc-status", "grpc-message", "grpc-status-details-bin"})


def call_key(call: GrpcCall, requests: list[bytes]) -> str:
    """The identity of a call for de-duplication: method and request messages."""
    h = hashlib.sha256(call.path.encode())
    for m in requests:
        h.update(len(m).to_bytes(8, "big"))
        h.update(m)
    return h.hexdigest()


def _get(headers: Headers, name: str) -> str | None:
    for k, v in headers:
        if k == name:
            return v
    return None


def _metadata(headers: Headers, skip: frozenset[str], redactor: Redactor) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        if k.startswith(":") or k in skip:
            continue
        if k.endswith("-bin"):
            try:
                v = base64.b64encode(binary_value(v)).decode()
            except (binascii.Error, ValueError, UnicodeEncodeError):
                continue
        v = redactor.value(k, v)
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def binary_value(text: str) -> bytes:
    """A ``-bin`` metadata value's bytes.

    grpc C-core peers that both allow "true binary metadata" (SETTINGS
    0xFE03) send the raw bytes behind a NUL byte instead of base64; the
    HPACK decoder gives them as latin-1 text.
    """
    if text.startswith("\x00"):
        return text[1:].encode("latin-1")
    return _b64decode(text)


def _any_json(item: any_pb2.Any, schema: Schema | None) -> dict[str, Any]:
    """An Any as protobuf JSON when its type is known, else its bytes in base64."""
    try:
        return json_format.MessageToDict(item, preserving_proto_field_name=True)
    except (TypeError, KeyError, json_format.Error):
        pass
    if schema is not None:
        try:
            return json_format.MessageToDict(
                item, preserving_proto_field_name=True, descriptor_pool=schema.pool
            )
        except (TypeError, KeyError, json_format.Error):
            pass
    return {"@type": item.type_url, "value_b64": base64.b64encode(item.value).decode()}


def _details(text: str | None, schema: Schema | None) -> list[dict[str, Any]] | None:
    if not text:
        return None
    try:
        from google.rpc import error_details_pb2, status_pb2  # noqa: F401 (registers the types)
    except ImportError:
        return None
    status = status_pb2.Status()
    try:
        status.ParseFromString(binary_value(text))
    except (ProtobufDecodeError, binascii.Error, ValueError, UnicodeEncodeError):
        return None
    return [_any_json(d, schema) for d in status.details]


def build_stub(
    call: GrpcCall,
    requests: list[bytes],
    responses: list[bytes],
    schema: Schema | None,
    redactor: Redactor,
) -> dict[str, Any]:
    """The stub for `call`, whose messages are already decompressed."""
    types = schema.method(call.path) if schema is not None else None
    stub: dict[str, Any] = {"service": call.service, "method": call.method}
    inputs: list[dict[str, Any]] = []
    outputs: list[Any] = []
    if types is not None:
        try:
            inputs = [{"equals": _message_json(types.request, m)} for m in requests]
            outputs = [_message_json(types.response, m) for m in responses]
        except ProtobufDecodeError:
            types = None  # bytes the schema does not describe: keep them as they are
    if types is not None:
        client_stream, server_stream = types.client_streaming, types.server_streaming
        data_key, stream_key, equals_key = "data", "stream", "equals"
    else:
        client_stream = len(requests) != 1
        server_stream = len(responses) > 1
        inputs = [{"equals_b64": base64.b64encode(m).decode()} for m in requests]
        outputs = [base64.b64encode(m).decode() for m in responses]
        data_key, stream_key, equals_key = "data_b64", "stream_b64", "equals_b64"
    if client_stream:
        if inputs:  # none sent: no matcher, which matches any call of the method
            stub["inputs"] = inputs
    else:
        stub["input"] = inputs[0] if inputs else {equals_key: {} if types else ""}
    output: dict[str, Any] = {}
    trailers_only = not call.trailers
    final = call.response_headers if trailers_only else call.trailers
    headers = _metadata(
        call.response_headers,
        _PROTOCOL_HEADERS | (_STATUS_TRAILERS if trailers_only else frozenset()),
        redactor,
    )
    if headers:
        output["headers"] = headers
    if server_stream:
        output[stream_key] = outputs
    elif outputs:
        output[data_key] = outputs[0]
    code_text = _get(final, "grpc-status")
    code = int(code_text) if code_text and code_text.isdigit() else 2
    if code:
        output["code"] = code
        output["error"] = _get(final, "grpc-message") or ""
        details = _details(_get(final, "grpc-status-details-bin"), schema)
        if details:
            output["details"] = details
    if not trailers_only:
        trailers = _metadata(call.trailers, _STATUS_TRAILERS, redactor)
        if trailers:
            output["trailers"] = trailers
    stub["output"] = output
    return stub


def _message_json(cls: Any, data: bytes) -> Any:
    msg = cls()
    msg.ParseFromString(data)
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def decoded_messages(
    items: list[tuple[int, bytes]], encoding: str | None, limit: int
) -> list[bytes] | None:
    """Every message decompressed; None if one uses a compression we cannot undo."""
    out: list[bytes] = []
    for flag, payload in items:
        m = plain(flag, payload, encoding, limit)
        if m is None:
            return None
        out.append(m)
    return out


def request_encoding(call: GrpcCall) -> str | None:
    return _get(call.request_headers, "grpc-encoding")


def response_encoding(call: GrpcCall) -> str | None:
    return _get(call.response_headers, "grpc-encoding")
