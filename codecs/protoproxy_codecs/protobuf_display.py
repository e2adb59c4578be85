"""Protobuf payloads made readable, for the tail, the access log and the admin API.

Two ways in:

- `decode_raw` needs no schema, like ``protoc --decode_raw``: field numbers,
  wire types and values. A length-delimited field is ambiguous on the wire, so
  it is shown as readable text when it is printable UTF-8, else as a nested
  message when it parses as one, else as text or hex bytes.
- `DescriptorCatalog` decodes with types, from a FileDescriptorSet (what
  ``protoc --descriptor_set_out`` writes), by full type name or by gRPC method
  path, into google.protobuf.json_format's JSON mapping.

Display must never take the proxy down, so nothing here raises on bad payload
bytes: results carry an ``error`` marker instead, with whatever decoded before
the fault. Only malformed *configuration* (a descriptor set that does not
parse) raises, and then only DecodeError. Everything a payload controls (depth,
number of fields, size, the length of shown text) is bounded by RawLimits.

Sans-IO: callers read descriptor files; this module only takes bytes.
"""

from __future__ import annotations

import importlib
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf import message as pb_message

from .base import DecodeError, Direction, Limits

# Wire types (encoding.md in the protobuf docs).
VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
MAX_FIELD_NUMBER = (1 << 29) - 1
_U64 = (1 << 64) - 1
_unpack_u32 = struct.Struct("<I").unpack_from
_unpack_u64 = struct.Struct("<Q").unpack_from
_unpack_f32 = struct.Struct("<f").unpack_from
_unpack_f64 = struct.Struct("<d").unpack_from
# Whitespace that still counts as "readable text" for the string-or-message guess.
_TEXT_WHITESPACE = str.maketrans("", "", "\t\n\r")

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RawLimits:
    """Bounds on what one payload can make the decoder do or produce."""

    max_depth: int = 16  # nesting of messages and groups
    max_fields: int = 10_000  # entries in the whole result
    max_input: int = Limits().max_message_size
    max_text: int = 1024  # characters of a string, or bytes of a bytes value, shown

    def __post_init__(self) -> None:
        # Nesting is parsed by recursion: keep it far from Python's stack limit.
        if not 0 <= self.max_depth <= 100:
            raise ValueError(f"max_depth must be within 0..100, not {self.max_depth}")


DEFAULT_LIMITS = RawLimits()


class _Bad(Exception):
    """Internal: the bytes stop being a message at `offset`."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def _float(value: float) -> float | str:
    """JSON has no NaN or infinities; spell them as json_format does."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


class _RawDecoder:
    """One pass over one payload; parses nested messages in place, without slicing."""

    __slots__ = ("budget", "buf", "guessing", "limits", "view")

    def __init__(self, data: bytes | bytearray | memoryview, limits: RawLimits) -> None:
        view = memoryview(data)
        if view.format != "B":
            view = view.cast("B")
        # Index bytes directly (fastest); other buffers through the byte view.
        self.buf = data if isinstance(data, bytes | bytearray) else view
        self.view = view
        self.limits = limits
        self.budget = _Budget(limits.max_fields)
        self.guessing = False  # inside a "could these bytes be a message?" attempt

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        buf = self.buf
        result = 0
        shift = 0
        start = pos
        while pos < end:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                if byte == 0 and self.guessing and pos - start > 1:
                    # Encoders never pad varints; bytes that need padding to
                    # parse are more likely not a message at all.
                    raise _Bad("overlong_varint", start)
                return result & _U64, pos
            shift += 7
            if shift >= 70:
                raise _Bad("varint_too_long", start)
        raise _Bad("truncated_varint", start)

    def message(
        self, pos: int, end: int, depth: int, group: int = 0, out: list[JSON] | None = None
    ) -> tuple[list[JSON], int]:
        """Fields from pos to end (or to the END_GROUP of `group`); raises _Bad."""
        fields: list[JSON] = [] if out is None else out
        budget = self.budget
        buf = self.buf
        while pos < end:
            tag_at = pos
            tag = buf[pos]
            if tag < 0x80:  # one-byte tags (fields 1..15) are the common case
                pos += 1
            else:
                tag, pos = self.varint(pos, end)
            number, wire = tag >> 3, tag & 7
            if number == 0 or number > MAX_FIELD_NUMBER:
                raise _Bad("bad_field_number", tag_at)
            if wire == EGROUP:
                if number != group:
                    raise _Bad("unexpected_end_group", tag_at)
                return fields, pos
            if budget.left <= 0:
                raise _Bad("too_many_fields", tag_at)
            budget.left -= 1
            if wire == VARINT:
                if pos < end and buf[pos] < 0x80:
                    value = buf[pos]
                    pos += 1
                else:
                    value, pos = self.varint(pos, end)
                entry: JSON = {"field": number, "type": "varint", "value": value}
                if value >> 63:
                    entry["signed"] = value - (1 << 64)
            elif wire == I64:
                if pos + 8 > end:
                    raise _Bad("truncated_fixed64", pos)
                (value,) = _unpack_u64(buf, pos)
                (real,) = _unpack_f64(buf, pos)
                entry = {"field": number, "type": "fixed64", "value": value, "double": _float(real)}
                pos += 8
            elif wire == I32:
                if pos + 4 > end:
                    raise _Bad("truncated_fixed32", pos)
                (value,) = _unpack_u32(buf, pos)
                (real,) = _unpack_f32(buf, pos)
                entry = {"field": number, "type": "fixed32", "value": value, "float": _float(real)}
                pos += 4
            elif wire == LEN:
                if pos < end and buf[pos] < 0x80:
                    size = buf[pos]
                    pos += 1
                else:
                    size, pos = self.varint(pos, end)
                if size > end - pos:
                    raise _Bad("truncated_length_delimited", pos)
                entry = self.length_delimited(number, pos, pos + size, depth)
                pos += size
            elif wire == SGROUP:
                if depth >= self.limits.max_depth:
                    raise _Bad("too_deep", tag_at)
                inner, pos = self.message(pos, end, depth + 1, group=number)
                entry = {"field": number, "type": "group", "value": inner}
            else:
                raise _Bad("bad_wire_type", tag_at)
            fields.append(entry)
        if group:
            raise _Bad("unterminated_group", end)
        return fields, pos

    def length_delimited(self, number: int, start: int, end: int, depth: int) -> JSON:
        if start == end:
            return {"field": number, "type": "string", "value": ""}
        chunk = self.view[start:end]
        try:
            text: str | None = str(chunk, "utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and (
            text.isprintable() or text.translate(_TEXT_WHITESPACE).isprintable()
        ):
            return self.text(number, text)
        if depth < self.limits.max_depth:
            saved, was_guessing = self.budget.left, self.guessing
            self.guessing = True
            try:
                inner, _ = self.message(start, end, depth + 1)
            except _Bad:
                self.budget.left = saved  # a failed guess must not eat the budget
            else:
                return {"field": number, "type": "message", "value": inner}
            finally:
                self.guessing = was_guessing
        shown = self.limits.max_text
        entry: JSON = {"field": number, "type": "bytes", "value": chunk[:shown].hex()}
        if end - start > shown:
            entry["length"] = end - start
        return entry

    def text(self, number: int, text: str) -> JSON:
        shown = self.limits.max_text
        if len(text) <= shown:
            return {"field": number, "type": "string", "value": text}
        return {"field": number, "type": "string", "value": text[:shown], "length": len(text)}


def decode_raw(
    data: bytes | bytearray | memoryview, limits: RawLimits = DEFAULT_LIMITS
) -> list[JSON]:
    """Schemaless decode to a JSON-able list of fields; never raises on bad bytes.

    Each entry is ``{"field": n, "type": t, "value": v}`` with t one of varint,
    fixed32 (plus "float"), fixed64 (plus "double"), string, bytes (hex),
    message and group (value: a nested list). A varint with the top bit set
    also carries its int64 reading as "signed". Values shown cut short carry
    their full "length". If the bytes go bad, the fields decoded so far are
    followed by one ``{"error": reason, "offset": n}`` entry.
    """
    decoder = _RawDecoder(data, limits)
    size = len(decoder.view)
    end = min(size, limits.max_input)
    fields: list[JSON] = []
    try:
        # Top-level fields land in `fields` as they decode, so a fault late in
        # the payload keeps everything before it.
        decoder.message(0, end, 0, out=fields)
    except _Bad as bad:
        fields.append({"error": bad.reason, "offset": bad.offset})
        return fields
    if end < size:
        fields.append({"error": "input_too_large", "offset": end, "length": size})
    return fields


# -- typed decoding --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MethodTypes:
    """What a gRPC method carries, from its service descriptor."""

    path: str  # /package.Service/Method
    request: str  # full message type names, without the leading dot
    response: str
    client_streaming: bool
    server_streaming: bool


class DescriptorCatalog:
    """Message types from FileDescriptorSets, by full name or by gRPC method path.

    The catalog has its own descriptor pool, so user schemas never clash with
    the protobuf modules loaded in this process. Well-known types a set leaves
    out (built without ``--include_imports``) are taken from the default pool.
    """

    def __init__(self, limits: RawLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._pool = descriptor_pool.DescriptorPool()
        self._files: set[str] = set()
        self._methods: dict[str, MethodTypes] = {}
        self._classes: dict[str, type[pb_message.Message]] = {}

    @classmethod
    def from_bytes(
        cls, descriptor_set: bytes, limits: RawLimits = DEFAULT_LIMITS
    ) -> DescriptorCatalog:
        catalog = cls(limits)
        catalog.add(descriptor_set)
        return catalog

    def add(self, descriptor_set: bytes | descriptor_pb2.FileDescriptorSet) -> None:
        """Load a serialized FileDescriptorSet; DecodeError if it is not a valid one."""
        if isinstance(descriptor_set, descriptor_pb2.FileDescriptorSet):
            fds = descriptor_set
        else:
            try:
                fds = descriptor_pb2.FileDescriptorSet.FromString(bytes(descriptor_set))
            except pb_message.DecodeError as exc:
                raise DecodeError(
                    f"not a FileDescriptorSet: {exc}", "descriptor_set_invalid"
                ) from None
        by_name = {f.name: f for f in fds.file}
        for name in by_name:
            self._add_file(name, by_name, ())
        for file in fds.file:
            self._index_services(file)

    def _add_file(
        self,
        name: str,
        by_name: dict[str, descriptor_pb2.FileDescriptorProto],
        stack: tuple[str, ...],
    ) -> None:
        """Add `name` after its dependencies (sets need not be in dependency order)."""
        if name in self._files:
            return
        if name in stack:
            raise DecodeError(f"import cycle through {name}", "descriptor_set_invalid")
        file = by_name.get(name)
        if file is None:
            file = _well_known(name)
        for dep in file.dependency:
            self._add_file(dep, by_name, (*stack, name))
        try:
            self._pool.Add(file)
        except (TypeError, ValueError) as exc:  # conflicting or broken definitions
            raise DecodeError(f"cannot load {name}: {exc}", "descriptor_set_invalid") from None
        self._files.add(name)

    def _index_services(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        prefix = f"{file.package}." if file.package else ""
        for service in file.service:
            for method in service.method:
                path = f"/{prefix}{service.name}/{method.name}"
                self._methods[path] = MethodTypes(
                    path=path,
                    request=method.input_type.lstrip("."),
                    response=method.output_type.lstrip("."),
                    client_streaming=method.client_streaming,
                    server_streaming=method.server_streaming,
                )

    # -- lookups --------------------------------------------------------------

    def methods(self) -> dict[str, MethodTypes]:
        return dict(self._methods)

    def method(self, path: str) -> MethodTypes | None:
        return self._methods.get(path)

    def message_class(self, type_name: str) -> type[pb_message.Message]:
        """The message class for a full type name; DecodeError if it is not known."""
        cls = self._classes.get(type_name)
        if cls is None:
            try:
                descriptor = self._pool.FindMessageTypeByName(type_name)
            except KeyError:
                raise DecodeError(
                    f"unknown message type {type_name!r}", "protobuf_unknown_type"
                ) from None
            cls = message_factory.GetMessageClass(descriptor)
            self._classes[type_name] = cls
        return cls

    # -- decoding -------------------------------------------------------------

    def decode(self, type_name: str, data: bytes | bytearray | memoryview) -> JSON:
        """Decode as `type_name` to json_format's JSON mapping; DecodeError on failure."""
        payload = data if isinstance(data, bytes) else bytes(data)
        if len(payload) > self.limits.max_input:
            raise DecodeError(
                f"{len(payload)}-byte payload exceeds the display limit", "protobuf_too_large"
            )
        message = self.message_class(type_name)()
        try:
            message.ParseFromString(payload)
        except pb_message.DecodeError as exc:
            raise DecodeError(f"not a {type_name}: {exc}", "protobuf_bad_payload") from None
        try:
            return json_format.MessageToDict(
                message, preserving_proto_field_name=True, descriptor_pool=self._pool
            )
        except (json_format.Error, ValueError, TypeError) as exc:  # e.g. an Any of unknown type
            raise DecodeError(f"cannot render {type_name}: {exc}", "protobuf_bad_payload") from None

    def display(self, data: bytes | bytearray | memoryview, type_name: str | None = None) -> JSON:
        """Best-effort view: typed when possible, else raw with the reason; never raises.

        ``{"type": name, "json": {...}}`` on success; ``{"type": name, "error":
        reason, "detail": text, "raw": [...]}`` when typed decoding fails;
        ``{"raw": [...]}`` with no type.
        """
        if type_name is None:
            return {"raw": decode_raw(data, self.limits)}
        try:
            return {"type": type_name, "json": self.decode(type_name, data)}
        except DecodeError as exc:
            return {
                "type": type_name,
                "error": exc.reason,
                "detail": str(exc),
                "raw": decode_raw(data, self.limits),
            }

    def display_call(
        self, path: str, direction: Direction, data: bytes | bytearray | memoryview
    ) -> JSON:
        """One gRPC message of the call to `path`: requests go UPSTREAM, responses DOWNSTREAM."""
        types = self._methods.get(path)
        if types is None:
            return {"raw": decode_raw(data, self.limits)}
        type_name = types.request if direction is Direction.UPSTREAM else types.response
        return self.display(data, type_name)


def _well_known(name: str) -> descriptor_pb2.FileDescriptorProto:
    """A dependency missing from the set, if protobuf itself ships it."""
    if name.startswith("google/protobuf/") and name.endswith(".proto"):
        # Loading the module registers the file in the default pool.
        module = "google.protobuf." + name[len("google/protobuf/") : -len(".proto")] + "_pb2"
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    try:
        found = descriptor_pool.Default().FindFileByName(name)
    except KeyError:
        raise DecodeError(f"missing dependency {name}", "descriptor_set_invalid") from None
    return descriptor_pb2.FileDescriptorProto.FromString(found.serialized_pb)


# -- gRPC messages ------------------------------------------------------------------

# grpc-encoding -> zlib wbits. gRPC's "deflate" is the zlib format (RFC 1950).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflate(data: bytes | bytearray | memoryview, encoding: str, limit: int) -> bytes:
    """Undo gRPC message compression, producing at most `limit` bytes.

    A compressed message is a decompression bomb waiting to happen, so the
    output is capped rather than trusted. DecodeError for an unknown encoding,
    corrupt or truncated data, or output past the limit.
    """
    if encoding == "identity":
        return bytes(data)
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise DecodeError(f"unsupported grpc-encoding {encoding!r}", "grpc_unknown_encoding")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit)
    except zlib.error as exc:
        raise DecodeError(f"bad {encoding} data: {exc}", "grpc_bad_compression") from None
    if inflater.unconsumed_tail:
        raise DecodeError(
            f"{encoding} message inflates past {limit} bytes", "grpc_inflated_too_large"
        )
    if not inflater.eof:
        raise DecodeError(f"truncated {encoding} data", "grpc_bad_compression")
    return out


def display_grpc_message(
    payload: bytes | bytearray | memoryview,
    *,
    compressed: bool = False,
    encoding: str | None = None,
    catalog: DescriptorCatalog | None = None,
    path: str | None = None,
    direction: Direction = Direction.UPSTREAM,
    limits: RawLimits = DEFAULT_LIMITS,
) -> JSON:
    """The display form of one gRPC message payload (after the 5-byte prefix).

    `compressed` is the message's flag and `encoding` the call's grpc-encoding.
    Typed when `catalog` knows `path`, else raw. Never raises: a payload that
    cannot be inflated comes back as ``{"error": reason, "detail": text}``.
    """
    if compressed:
        if encoding is None:
            return {
                "error": "grpc_unknown_encoding",
                "detail": "compressed message without grpc-encoding",
            }
        try:
            payload = inflate(payload, encoding, limits.max_input)
        except DecodeError as exc:
            return {"error": exc.reason, "detail": str(exc)}
    if catalog is not None and path is not None:
        return catalog.display_call(path, direction, payload)
    return {"raw": decode_raw(payload, limits)}
