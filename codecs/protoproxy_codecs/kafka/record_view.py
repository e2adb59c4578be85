"""Records decoded for people to read: batches opened, records previewed, all bounded.

``records.py`` reads batch headers for metrics and never decompresses; this
module is for the message tail, which shows the records themselves: offset,
timestamp, key, value and headers. What it shows is bounded however large or
hostile the input (see ``ViewLimits``):

- every key, value and header value is a *preview*: its first
  ``preview_bytes`` bytes, as UTF-8 text when they are printable and as hex
  otherwise, with the full ``length`` and a ``truncated`` flag;
- records shown per batch and per message, batches per message and headers
  per record are capped;
- decompression stops at ``decompressed_bytes`` per message (compression.py
  never allocates more), and the batch says it was cut there.

A records field is walked entry by entry (RecordBatch v2, or legacy
MessageSet v0/v1 messages, which share the ``offset, length`` prefix and
keep the magic byte at offset 16). Bytes that break the entry framing raise
``DecodeError`` and end the walk; bytes that are wrong *inside* a batch whose
length is sound (a corrupt compressed stream, a record running past its
batch) become that batch's ``error`` and the walk goes on with the next one.
A partial entry at the very end is what a Fetch response cut at
``max_bytes`` looks like, so it is reported as ``truncated_bytes``.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..base import DecodeError
from . import compression

_ENTRY = struct.Struct(">qi")
_V2 = struct.Struct(">qiibIhiqqqhii")  # the 61-byte RecordBatch v2 header
V2_HEADER = 61
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_LEGACY_MIN = {0: 26, 1: 34}  # entry header, crc, magic, attributes, [timestamp], two lengths
ATTR_COMPRESSION = 0x07
ATTR_LOG_APPEND_TIME = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
_PRINTABLE_WS = frozenset("\t\n\r")


@dataclass(frozen=True, slots=True)
class ViewLimits:
    """What one message's record view may show (docs/admin-api.md lists them)."""

    preview_bytes: int = 256
    records_per_batch: int = 20
    records_per_message: int = 100
    batches_per_message: int = 32
    headers_per_record: int = 16
    decompressed_bytes: int = 1 << 20  # per message, over all its batches


DEFAULT_LIMITS = ViewLimits()


class Budget:
    """What is left to show of one message: shared by every records field in it."""

    __slots__ = ("batches", "decompressed", "limits", "records")

    def __init__(self, limits: ViewLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.batches = limits.batches_per_message
        self.records = limits.records_per_message
        self.decompressed = limits.decompressed_bytes


# -- previews -----------------------------------------------------------------------------


def preview(data: Any, limit: int, length: int | None = None) -> dict[str, Any]:
    """The first `limit` bytes of `data`: text when printable UTF-8, else hex.

    `length` is the field's full size when `data` holds only part of it (a
    value cut by the decompression limit).
    """
    full = len(data) if length is None else length
    head = bytes(data[:limit])
    out: dict[str, Any] = {"length": full, "truncated": len(head) < full}
    text = _text(head, cut=len(head) < full)
    if text is not None:
        out["text"] = text
    else:
        out["hex"] = head.hex()
    return out


def _text(head: bytes, cut: bool) -> str | None:
    # An incremental decoder leaves a multi-byte character split by the cut out.
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=not cut)
    except UnicodeDecodeError:
        return None
    if text.isprintable() or all(c.isprintable() or c in _PRINTABLE_WS for c in text):
        return text
    return None


def preview_bytes(p: dict[str, Any] | None) -> bytes | None:
    """The bytes a preview shows (its first bytes when ``truncated``)."""
    if p is None:
        return None
    return p["text"].encode() if "text" in p else bytes.fromhex(p["hex"])


# -- reading records ------------------------------------------------------------------------


class _Cut(Exception):
    """The data ended where the decompression limit cut it, not where the batch does."""


class _PartialRecord(Exception):
    """A record the decompression limit cut, with the fields read before the cut."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__()
        self.record = record


class _Reader:
    """Reads record fields from `buf[pos:end]`; `cut` says the data stops short."""

    __slots__ = ("buf", "cut", "end", "pos")

    def __init__(self, buf: memoryview, pos: int, end: int, cut: bool) -> None:
        self.buf = buf
        self.pos = pos
        self.end = end
        self.cut = cut

    def short(self, what: str) -> Exception:
        return _Cut() if self.cut else DecodeError(f"{what} runs past the end", "bad_records")

    def varint(self, what: str, max_bytes: int = 5) -> int:
        """A zigzag varint (varlong with max_bytes=10)."""
        value = shift = 0
        buf, pos, end = self.buf, self.pos, self.end
        for _ in range(max_bytes):
            if pos >= end:
                raise self.short(what)
            b = buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                self.pos = pos
                return (value >> 1) ^ -(value & 1)
            shift += 7
        raise DecodeError(f"{what}: varint longer than {max_bytes} bytes", "bad_records")

    def byte(self, what: str) -> int:
        if self.pos >= self.end:
            raise self.short(what)
        self.pos += 1
        return self.buf[self.pos - 1]

    def field(self, n: int, what: str, limit: int) -> tuple[dict[str, Any] | None, bool]:
        """A bytes field of declared length `n`: (preview, whether it was cut short)."""
        if n == -1:
            return None, False
        if n < 0:
            raise DecodeError(f"{what} length {n}", "bad_records")
        start = self.pos
        avail = self.end - start
        if n > avail:
            if not self.cut:
                raise DecodeError(f"{what} of {n} bytes runs past the end", "bad_records")
            self.pos = self.end
            return preview(self.buf[start : self.end], limit, n), True
        self.pos = start + n
        return preview(self.buf[start : start + n], limit), False


def _v2_record(
    r: _Reader, base_offset: int, base_ts: int, log_append_ts: int | None, limits: ViewLimits
) -> dict[str, Any]:
    """One v2 record. One that the decompression limit cut is raised as a
    _PartialRecord holding what was read, marked ``partial``."""
    length = r.varint("record length")
    start = r.pos
    if length < 0:
        raise DecodeError(f"record length {length}", "bad_records")
    if start + length > r.end and not r.cut:
        raise DecodeError(f"record of {length} bytes runs past its batch", "bad_records")
    rec_end = start + length
    outer_end, outer_cut = r.end, r.cut
    cut_here = outer_cut and rec_end > outer_end
    r.end, r.cut = min(outer_end, rec_end), cut_here
    rec: dict[str, Any] = {}
    try:
        r.byte("record attributes")
        ts_delta = r.varint("timestamp delta", 10)
        off_delta = r.varint("offset delta")
        rec["offset"] = base_offset + off_delta
        rec["timestamp"] = log_append_ts if log_append_ts is not None else base_ts + ts_delta
        rec["key"], short = r.field(r.varint("key length"), "key", limits.preview_bytes)
        if short:
            raise _Cut
        rec["value"], short = r.field(r.varint("value length"), "value", limits.preview_bytes)
        if short:
            raise _Cut
        count = r.varint("header count")
        if count < 0:
            raise DecodeError(f"header count {count}", "bad_records")
        headers = rec["headers"] = []
        for _ in range(min(count, limits.headers_per_record)):
            key, short = r.field(r.varint("header key length"), "header key", limits.preview_bytes)
            if key is None:
                raise DecodeError("null header key", "bad_records")
            entry = {"key": key, "value": None}
            headers.append(entry)
            if short:
                raise _Cut
            entry["value"], short = r.field(
                r.varint("header value length"), "header value", limits.preview_bytes
            )
            if short:
                raise _Cut
        if count > limits.headers_per_record:
            rec["headers_total"] = count
        elif r.pos != rec_end and not cut_here:
            raise DecodeError(
                f"record has {rec_end - r.pos} bytes after its headers", "bad_records"
            )
    except _Cut:
        rec["partial"] = True
        r.end, r.cut = outer_end, True
        raise _PartialRecord(rec) from None
    r.end, r.cut = outer_end, outer_cut
    r.pos = rec_end
    return rec


def _open(
    attrs: int, body: memoryview, budget: Budget, batch: dict[str, Any]
) -> tuple[memoryview, bool]:
    """A batch's record bytes, decompressed within the budget: (bytes, cut short)."""
    codec = attrs & ATTR_COMPRESSION
    if codec == compression.NONE:
        return body, False
    if budget.decompressed <= 0:
        batch["decompressed_bytes"] = 0
        return memoryview(b""), True
    out = compression.decompress(codec, body, budget.decompressed)
    budget.decompressed -= len(out.data)
    batch["decompressed_bytes"] = len(out.data)
    return out.data, not out.complete


def _take(batch: dict[str, Any], budget: Budget, count: int) -> int:
    """How many of the batch's `count` records to show; notes why not all."""
    can = min(budget.records, budget.limits.records_per_batch)
    if count > can:
        batch["truncated"] = True
        batch["truncated_by"] = (
            "records_per_message"
            if budget.records < budget.limits.records_per_batch
            else "records_per_batch"
        )
        return max(can, 0)
    return count


def _cut(batch: dict[str, Any]) -> None:
    batch["truncated"] = True
    batch["truncated_by"] = "decompressed_bytes"


def _v2_batch(entry: memoryview, budget: Budget) -> dict[str, Any]:
    if len(entry) < V2_HEADER:
        raise DecodeError(
            f"record batch of {len(entry)} bytes is shorter than its header", "bad_records"
        )
    (base, _, leader_epoch, _, _, attrs, last_delta, first_ts, max_ts, pid, epoch, seq, count) = (
        _V2.unpack_from(entry)
    )
    log_append = bool(attrs & ATTR_LOG_APPEND_TIME)
    batch: dict[str, Any] = {
        "magic": 2,
        "base_offset": base,
        "size": len(entry),
        "compression": compression.name(attrs & ATTR_COMPRESSION),
        "record_count": count,
        "last_offset_delta": last_delta,
        "partition_leader_epoch": leader_epoch,
        "first_timestamp": first_ts,
        "max_timestamp": max_ts,
        "timestamp_type": "log_append_time" if log_append else "create_time",
        "producer_id": pid,
        "producer_epoch": epoch,
        "base_sequence": seq,
        "transactional": bool(attrs & ATTR_TRANSACTIONAL),
        "control": bool(attrs & ATTR_CONTROL),
        "truncated": False,
        "records": [],
    }
    if count < 0:
        batch["error"] = f"record count {count}"
        return batch
    show = _take(batch, budget, count)
    if show == 0 and count:
        return batch
    shown = batch["records"]
    try:
        data, cut = _open(attrs, entry[V2_HEADER:], budget, batch)
        r = _Reader(data, 0, len(data), cut)
        append_ts = max_ts if log_append else None
        try:
            for _ in range(show):
                shown.append(_v2_record(r, base, first_ts, append_ts, budget.limits))
        except _PartialRecord as part:
            shown.append(part.record)
            _cut(batch)
        except _Cut:
            _cut(batch)
        else:
            if show == count and not cut and r.pos != r.end:
                raise DecodeError(f"{r.end - r.pos} bytes after the batch's records", "bad_records")
    except DecodeError as exc:
        batch["error"] = str(exc)
    budget.records -= len(shown)
    return batch


# -- legacy message sets (magic 0 and 1) ----------------------------------------------------


def _legacy_message(
    entry: memoryview, limits: ViewLimits, cut: bool
) -> tuple[int, int, int | None, dict | None, dict | None, memoryview | None]:
    """(offset, attributes, timestamp, key preview, value preview, value bytes) of one message."""
    offset, _ = _ENTRY.unpack_from(entry)
    magic, attrs = entry[16], entry[17]
    pos = 18
    ts = None
    if magic == 1:
        (ts,) = _I64.unpack_from(entry, pos)
        pos += 8
    r = _Reader(entry, pos, len(entry), cut)
    key, short = _legacy_bytes(r, "key", limits)
    value: dict[str, Any] | None = None
    raw: memoryview | None = None
    if not short:
        start = r.pos
        value, short = _legacy_bytes(r, "value", limits)
        if value is not None and not short:
            raw = entry[start + 4 : r.pos]
    return offset, attrs, ts, key, value, raw


def _legacy_bytes(r: _Reader, what: str, limits: ViewLimits) -> tuple[dict | None, bool]:
    if r.end - r.pos < 4:
        raise r.short(f"{what} length")
    (n,) = _I32.unpack_from(r.buf, r.pos)
    r.pos += 4
    return r.field(n, what, limits.preview_bytes)


def _legacy_batch(magic: int, offset: int) -> dict[str, Any]:
    return {
        "magic": magic,
        "base_offset": offset,
        "size": 0,
        "compression": "none",
        "record_count": 0,
        "truncated": False,
        "records": [],
    }


def _legacy_wrapper(entry: memoryview, budget: Budget) -> dict[str, Any]:
    """A compressed legacy message: its value is a message set of its own.

    Only the first records it may show are previewed; the rest are walked by
    their headers alone (bounded by the decompression limit), for the count and
    for the last inner offset that v1 offsets are relative to.
    """
    limits = budget.limits
    offset, magic, attrs = _ENTRY.unpack_from(entry)[0], entry[16], entry[17]
    batch = _legacy_batch(magic, offset)
    batch["size"] = len(entry)
    batch["compression"] = compression.name(attrs & ATTR_COMPRESSION)
    if budget.records <= 0:  # nothing to show: leave it compressed
        batch.update(record_count=None, truncated=True, truncated_by="records_per_message")
        return batch
    can = min(budget.records, limits.records_per_batch)
    shown = batch["records"]
    try:
        _o, _a, ts, _k, _v, raw = _legacy_message(entry, limits, False)
        if raw is None:
            raise DecodeError("compressed message without a value", "bad_records")
        data, cut = _open(attrs, raw, budget, batch)
        log_append = magic == 1 and bool(attrs & ATTR_LOG_APPEND_TIME)
        count = last = 0
        pos, end = 0, len(data)
        while end - pos >= 12:
            inner_offset, length = _ENTRY.unpack_from(data, pos)
            size = 12 + length
            if length < 0:
                raise DecodeError(f"inner message length {length}", "bad_records")
            partial = pos + size > end
            if partial and not cut:
                raise DecodeError("inner message runs past the end", "bad_records")
            part = data[pos : min(pos + size, end)]
            if len(part) < _LEGACY_MIN[magic]:
                if partial:
                    break
                raise DecodeError(f"inner message of {size} bytes", "bad_records")
            if part[16] != magic:
                raise DecodeError("inner message is not of its wrapper's magic", "bad_records")
            if part[17] & ATTR_COMPRESSION:
                raise DecodeError("nested compressed message", "bad_records")
            if count < can:
                try:
                    o, _a, t, k, v, _ = _legacy_message(part, limits, partial)
                except _Cut:
                    break
                shown.append(
                    {"offset": o, "timestamp": ts if log_append else t, "key": k, "value": v}
                )
            elif partial:
                break
            count += 1
            last = inner_offset
            pos += size
        if pos != end and not cut:
            raise DecodeError(f"{end - pos} bytes after the inner messages", "bad_records")
        batch["record_count"] = count
        if cut:
            _cut(batch)
        elif count > can:
            _take(batch, budget, count)
        # v1 inner offsets are relative; the wrapper carries the last one's absolute
        # offset (a producer's wrapper often does not: then they stay relative, as
        # kafka-python's reader leaves them)
        shift = offset - last if magic == 1 and count and not cut else -1
        if magic == 1 and shift < 0:
            batch["offsets"] = "relative"
        for r in shown:
            r["offset"] += max(shift, 0)
            r["headers"] = []
    except DecodeError as exc:
        batch["error"] = str(exc)
    budget.records -= len(shown)
    return batch


# -- the walk -------------------------------------------------------------------------------


def batches(data: Any, budget: Budget | None = None) -> Iterator[dict[str, Any]]:
    """Views of the batches in a records field, in order, within `budget`.

    Yields one dict per v2 batch or compressed legacy message, and one per
    run of uncompressed legacy messages. Raises DecodeError where the entry
    framing itself is broken (views yielded before stay valid). Ends with a
    ``{"truncated_bytes": n}`` item when a partial entry trails, and with
    ``{"batches_not_shown": n}`` when the budget ran out first.
    """
    if budget is None:
        budget = Budget()
    view = memoryview(data)
    end = len(view)
    pos = 0
    group: dict[str, Any] | None = None
    while pos < end:
        if end - pos < 17:
            break
        offset, length = _ENTRY.unpack_from(view, pos)
        size = 12 + length
        if length < 5:  # not even the magic byte
            raise DecodeError(f"batch length {length}", "bad_records")
        if pos + size > end:
            break
        entry = view[pos : pos + size]
        magic = entry[16]
        if magic > 2:
            raise DecodeError(f"unknown record magic {magic}", "bad_records")
        if magic < 2 and size < _LEGACY_MIN[magic]:
            raise DecodeError(f"legacy message of {size} bytes", "bad_records")
        plain_legacy = magic < 2 and not entry[17] & ATTR_COMPRESSION
        if group is not None and not (plain_legacy and group["magic"] == magic):
            yield group
            group = None
        if budget.batches <= 0 and group is None:
            yield {"batches_not_shown": _count_entries(view, pos)}
            return
        if plain_legacy:
            if group is None:
                budget.batches -= 1
                group = _legacy_batch(magic, offset)
            _legacy_plain(group, entry, budget)
        elif magic == 2:
            budget.batches -= 1
            yield _v2_batch(entry, budget)
        else:
            budget.batches -= 1
            yield _legacy_wrapper(entry, budget)
        pos += size
    if group is not None:
        yield group
    if pos < end:
        yield {"truncated_bytes": end - pos}


def _legacy_plain(group: dict[str, Any], entry: memoryview, budget: Budget) -> None:
    """One uncompressed legacy message, added to the run it belongs to."""
    group["size"] += len(entry)
    group["record_count"] += 1
    shown = group["records"]
    if "error" in group:
        return
    if budget.records <= 0 or len(shown) >= budget.limits.records_per_batch:
        group["truncated"] = True
        group["truncated_by"] = "records_per_batch" if budget.records > 0 else "records_per_message"
        return
    try:
        o, _a, t, k, v, _ = _legacy_message(entry, budget.limits, False)
    except DecodeError as exc:
        group["error"] = str(exc)
        return
    shown.append({"offset": o, "timestamp": t, "key": k, "value": v, "headers": []})
    budget.records -= 1


def _count_entries(view: memoryview, pos: int) -> int:
    n, end = 0, len(view)
    while end - pos >= 12:
        length = _ENTRY.unpack_from(view, pos)[1]
        if length < 0 or pos + 12 + length > end:
            break
        n += 1
        pos += 12 + length
    return n


def view(data: Any, budget: Budget | None = None) -> dict[str, Any]:
    """A records field as shown in the tail: its batches, and what was left out or broken.

    Never raises on bad bytes: a DecodeError from the walk becomes ``error``
    next to the batches read before it.
    """
    out: dict[str, Any] = {"size": len(data), "batches": []}
    shown = out["batches"]
    try:
        for item in batches(data, budget):
            if "records" in item:
                shown.append(item)
            else:
                out.update(item)
    except DecodeError as exc:
        out["error"] = str(exc)
    out["truncated"] = bool(
        out.get("batches_not_shown")
        or out.get("truncated_bytes")
        or any(b["truncated"] for b in shown)
    )
    return out
