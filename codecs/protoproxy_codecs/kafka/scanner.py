"""A validating skim over Kafka bodies, generated from kafka-python's schemas.

Why not just decode with kafka-python on the hot path? Two reasons:
- cost: metrics need a handful of values (error codes, topic names, record
  slices), not a tree of objects;
- safety: kafka-python's generated decoder copies the rest of the buffer
  (``bytes(data[pos:])``) at every non-empty tagged-field section, so a frame
  packed with tiny tagged sections costs time quadratic in its size.

The scanner walks every field of the schema for one (api, version, direction),
checks that the body does not run past the frame (bytes after it are ignored,
as Kafka's parser ignores them, and reported), and emits a flat list
of events for the few fields asked for. Its cost is linear in the body size.
Code is generated per struct and version (like kafka-python's own decoder) and
compiled once; nothing here names an API's fields except the small
``WANTED`` table of what metrics need.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from . import schema


class ScanError(Exception):
    """The body does not match its schema."""


# Field paths (dot-joined snake_case names from the message root) whose values
# become events, per (api_key, is_request). Error codes are always collected;
# inside a struct that holds a wanted partition index (tag "partition" or
# "ack_partition") they become PARTITION_ERROR_EVENTs, which follow that
# partition's event, so errors can be told per topic and partition.
WANTED: dict[tuple[int, bool], dict[str, str]] = {
    (0, True): {
        "acks": "acks",
        "transactional_id": "txn",
        "topic_data.name": "topic",
        "topic_data.topic_id": "topic",
        "topic_data.partition_data.index": "partition",
        "topic_data.partition_data.records": "records",
    },
    (0, False): {  # which partitions' error codes say "not acknowledged"
        "responses.name": "ack_topic",
        "responses.topic_id": "ack_topic",
        "responses.partition_responses.index": "ack_partition",
    },
    (1, True): {"topics.topic": "topic", "topics.topic_id": "topic"},
    (1, False): {
        "responses.topic": "topic",
        "responses.topic_id": "topic",
        "responses.partitions.partition_index": "partition",
        "responses.partitions.high_watermark": "hw",
        "responses.partitions.records": "records",
    },
    # Per-partition error codes of the control APIs, for errors by topic/partition.
    (2, False): {  # ListOffsets
        "topics.name": "ptopic",
        "topics.partitions.partition_index": "partition",
    },
    (8, False): {  # OffsetCommit
        "topics.name": "ptopic",
        "topics.topic_id": "ptopic",
        "topics.partitions.partition_index": "partition",
    },
    (9, False): {  # OffsetFetch: v0-7 one group, v8+ batched groups
        "topics.name": "ptopic",
        "topics.partitions.partition_index": "partition",
        "groups.topics.name": "ptopic",
        "groups.topics.topic_id": "ptopic",
        "groups.topics.partitions.partition_index": "partition",
    },
    (23, False): {  # OffsetForLeaderEpoch
        "topics.topic": "ptopic",
        "topics.partitions.partition": "partition",
    },
}

# Tags that mark a struct as one partition's (see WANTED).
PARTITION_TAGS = frozenset(("partition", "ack_partition"))

# Event tag for a non-empty tagged-field section; its value is the count.
TAGS_EVENT = "tags"
ERROR_EVENT = "error"
PARTITION_ERROR_EVENT = "perror"  # an error code in a partition's struct
THROTTLE_EVENT = "throttle"  # a response's non-zero top-level throttle_time_ms
TRAILING_EVENT = "trailing"  # bytes after the body's last field (value: count)

_FIXED = {
    "int8": ("b", 1),
    "int16": ("h", 2),
    "uint16": ("H", 2),
    "int32": ("i", 4),
    "int64": ("q", 8),
    "float64": ("d", 8),
    "bool": ("?", 1),
    "bitfield": ("I", 4),
    "uuid": (None, 16),
}

Scanner = Callable[[Any, int], list[tuple[str, Any]]]


def _uvarint_tail(data: Any, pos: int, first: int) -> tuple[int, int]:
    """Rest of an unsigned varint whose first byte (>= 0x80) was `first`."""
    value = first & 0x7F
    shift = 7
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise ScanError("varint longer than 5 bytes")


def _skip_tags(data: Any, pos: int, ev: list) -> int:
    """A non-empty tagged-field section (the caller handled the 0 fast path)."""
    b = data[pos]
    count, pos = (b, pos + 1) if b < 0x80 else _uvarint_tail(data, pos + 1, b)
    for _ in range(count):
        b = data[pos]
        pos += 1
        if b >= 0x80:
            _, pos = _uvarint_tail(data, pos, b)
        b = data[pos]
        pos += 1
        size, pos = (b, pos) if b < 0x80 else _uvarint_tail(data, pos, b)
        pos += size
    ev.append((TAGS_EVENT, count))
    return pos


class _Gen:
    """Source builder for one (api, version, direction)."""

    def __init__(self, version: int, flexible: bool, wanted: dict[str, str], request: bool) -> None:
        self.version = version
        self.flexible = flexible
        self.wanted = wanted
        self.request = request
        self.lines: list[str] = []
        self.n = 0
        # In a partition's struct: "perror" as the error tag, and error codes
        # read before the partition index, held until it has been emitted.
        self.error_tag = ERROR_EVENT
        self.deferred: list[str] | None = None
        self.globs: dict[str, Any] = {
            "unpack_from": struct.unpack_from,
            "_uvarint_tail": _uvarint_tail,
            "_skip_tags": _skip_tags,
            "_uuid": __import__("uuid").UUID,
            "ScanError": ScanError,
        }

    def var(self, prefix: str) -> str:
        self.n += 1
        return f"_{prefix}{self.n}"

    def emit(self, ind: str, line: str) -> None:
        self.lines.append(ind + line)

    def uvarint(self, ind: str, name: str) -> None:
        b = self.var("b")
        self.emit(ind, f"{b} = data[pos]")
        self.emit(ind, f"if {b} < 0x80: {name} = {b}; pos += 1")
        self.emit(ind, f"else: {name}, pos = _uvarint_tail(data, pos + 1, {b})")

    def length(self, ind: str, name: str, fmt: str, size: int) -> None:
        """A length/count prefix: compact varint-1 in flexible versions."""
        if self.flexible:
            self.uvarint(ind, name)
            self.emit(ind, f"{name} -= 1")
        else:
            self.emit(ind, f'{name} = unpack_from(">{fmt}", data, pos)[0]')
            self.emit(ind, f"pos += {size}")

    def struct(self, ind: str, struct: Any, path: str) -> None:
        outer = self.error_tag, self.deferred
        fields = [
            f
            for f in struct.fields.values()
            if f.for_version_q(self.version) and not f.tagged_field_q(self.version)
        ]
        if any(self.wanted.get(self._path(path, f)) in PARTITION_TAGS for f in fields):
            self.error_tag, self.deferred = PARTITION_ERROR_EVENT, []
        else:
            self.error_tag, self.deferred = ERROR_EVENT, None
        self._fields(ind, fields, path)
        self.error_tag, self.deferred = outer

    @staticmethod
    def _path(path: str, field: Any) -> str:
        return f"{path}.{field.name}" if path else field.name

    def _fields(self, ind: str, fields: list[Any], path: str) -> None:
        skip = 0  # adjacent fixed-size fields nobody wants are skipped in one step
        for field in fields:
            fpath = self._path(path, field)
            fixed = _FIXED.get(field.type_str)
            if (
                fixed is not None
                and fpath not in self.wanted
                and not _is_error_code(field)
                and not self._is_throttle(fpath)
                and not field.is_array()
            ):
                skip += fixed[1]
                continue
            if skip:
                self.emit(ind, f"pos += {skip}")
                skip = 0
            self.field(ind, field, fpath)
        if skip:
            self.emit(ind, f"pos += {skip}")
        if self.flexible:
            self.emit(ind, "if data[pos] == 0: pos += 1")
            self.emit(ind, "else: pos = _skip_tags(data, pos, ev)")

    def _is_throttle(self, path: str) -> bool:
        return path == "throttle_time_ms" and not self.request

    def min_size(self, struct: Any) -> int:
        """Fewest bytes one instance can take: bounds loop counts by bytes left."""
        total = 1 if self.flexible else 0
        small = 1 if self.flexible else None
        for field in struct.fields.values():
            if not field.for_version_q(self.version) or field.tagged_field_q(self.version):
                continue
            if field.is_struct():
                nullable = field.nullable_for_version_q(self.version)
                total += 1 if nullable else self.min_size(field)
            elif field.is_array() or field.is_struct_array():
                total += small or 4
            elif field.type_str in _FIXED:
                total += _FIXED[field.type_str][1]
            elif field.type_str == "string":
                total += small or 2
            else:
                total += small or 4
        return total

    def field(self, ind: str, field: Any, path: str) -> None:
        want = self.wanted.get(path)
        type_str = field.type_str
        if field.is_struct():
            if field.nullable_for_version_q(self.version):
                self.emit(ind, "if data[pos] == 0xFF: pos += 1")
                self.emit(ind, "else:")
                self.emit(ind + "    ", "pos += 1")
                self.struct(ind + "    ", field, path)
            else:
                self.struct(ind, field, path)
            return
        if field.is_struct_array():
            n = self.var("n")
            self.length(ind, n, "i", 4)
            least = self.min_size(field.array_of)
            if least < 1:
                raise AssertionError(f"scanner: zero-size elements in {path}")
            self.emit(
                ind, f"if {n} * {least} > end - pos: raise ScanError('{path}: count too large')"
            )
            i = self.var("i")
            self.emit(ind, f"for {i} in range({n}):")
            self.struct(ind + "    ", field.array_of, path)
            return
        if field.is_array():
            self.array(ind, field.array_of.type_str)
            return
        if type_str in _FIXED:
            fmt, size = _FIXED[type_str]
            v = self.var("v")
            if fmt is None:
                self.emit(ind, "if pos + 16 > end: raise ScanError('uuid runs past the end')")
                self.emit(ind, f"{v} = _uuid(bytes=bytes(data[pos:pos + 16]))")
                self.emit(ind, f"if {v}.int == 0: {v} = None")
            else:
                self.emit(ind, f'{v} = unpack_from(">{fmt}", data, pos)[0]')
            if _is_error_code(field):
                if self.deferred is not None:
                    self.deferred.append(v)  # emitted after the partition index
                else:
                    self.emit(ind, f'if {v}: ev.append(("{self.error_tag}", {v}))')
            if self._is_throttle(path):
                self.emit(ind, f'if {v}: ev.append(("{THROTTLE_EVENT}", {v}))')
            if want:
                self.emit(ind, f'ev.append(("{want}", {v}))')
                if want in PARTITION_TAGS and self.deferred is not None:
                    for held in self.deferred:
                        self.emit(ind, f'if {held}: ev.append(("{self.error_tag}", {held}))')
                    self.deferred = None  # later error codes go out as they are read
            self.emit(ind, f"pos += {size}")
            return
        if type_str == "string":
            n = self.var("n")
            self.length(ind, n, "h", 2)
            if want:
                self.emit(ind, f"if {n} < 0: ev.append(('{want}', None))")
                self.emit(ind, "else:")
                self.emit(
                    ind, f"    if pos + {n} > end: raise ScanError('string runs past the end')"
                )
                self.emit(ind, f"    ev.append(('{want}', str(data[pos:pos + {n}], 'utf-8')))")
            self.emit(ind, f"if {n} > 0: pos += {n}")
            return
        if type_str in ("bytes", "records"):
            n = self.var("n")
            self.length(ind, n, "i", 4)
            if want:
                self.emit(ind, f"if {n} < 0: ev.append(('{want}', None))")
                self.emit(ind, "else:")
                self.emit(ind, f"    if pos + {n} > end: raise ScanError('bytes run past the end')")
                self.emit(ind, f"    ev.append(('{want}', data[pos:pos + {n}]))")
            self.emit(ind, f"if {n} > 0: pos += {n}")
            return
        raise AssertionError(f"scanner: unsupported schema type {type_str!r}")

    def array(self, ind: str, elem: str) -> None:
        n = self.var("n")
        self.length(ind, n, "i", 4)
        if elem in _FIXED:
            self.emit(ind, f"if {n} > 0: pos += {n} * {_FIXED[elem][1]}")
            self.emit(ind, "if pos > end: raise ScanError('array runs past the end')")
            return
        if elem != "string":
            raise AssertionError(f"scanner: unsupported array element {elem!r}")
        least = 1 if self.flexible else 2
        self.emit(ind, f"if {n} * {least} > end - pos: raise ScanError('array count too large')")
        i, m = self.var("i"), self.var("m")
        self.emit(ind, f"for {i} in range({n}):")
        self.length(ind + "    ", m, "h", 2)
        self.emit(ind + "    ", f"if {m} > 0: pos += {m}")


def _is_error_code(field: Any) -> bool:
    return field.type_str == "int16" and field.name.endswith("error_code")


_scanners: dict[tuple[int, int, bool], Scanner | None] = {}


def _compile(api_key: int, version: int, request: bool) -> Scanner | None:
    cls = (
        schema.request_class(api_key, version)
        if request
        else schema.response_class(api_key, version)
    )
    if cls is None:
        return None
    gen = _Gen(
        version, cls.flexible_version_q(version), WANTED.get((api_key, request), {}), request
    )
    gen.lines.append("def scan(data, pos):")
    gen.emit("    ", "end = len(data)")
    gen.emit("    ", "ev = []")
    gen.struct("    ", cls[None]._struct, "")
    gen.emit(
        "    ", "if pos > end: raise ScanError(f'body runs to {pos}, past the frame end {end}')"
    )
    # Trailing bytes are ignored like Kafka's parser does, but reported.
    gen.emit("    ", f"if pos < end: ev.append(('{TRAILING_EVENT}', end - pos))")
    gen.emit("    ", "return ev")
    source = "\n".join(gen.lines)
    name = f"<kafka-scan:{cls.__name__}>"
    exec(compile(source, name, "exec"), gen.globs)
    return gen.globs["scan"]


def scanner(api_key: int, version: int, request: bool) -> Scanner | None:
    """The compiled scanner for one (api, version, direction), or None if unknown."""
    key = (api_key, version, request)
    try:
        return _scanners[key]
    except KeyError:
        fn = _scanners[key] = _compile(api_key, version, request)
        return fn


SCAN_ERRORS = (ScanError, struct.error, IndexError, ValueError, TypeError, OverflowError)


def scan(api_key: int, version: int, request: bool, data: Any, start: int) -> list | None:
    """Events for the body ``data[start:]`` (a memoryview ending at the frame end).

    Raises ScanError when the body does not fit; None for unknown APIs.
    """
    fn = scanner(api_key, version, request)
    if fn is None:
        return None
    try:
        return fn(data, start)
    except SCAN_ERRORS as exc:
        if isinstance(exc, ScanError):
            raise
        raise ScanError(f"{type(exc).__name__}: {exc}") from None
