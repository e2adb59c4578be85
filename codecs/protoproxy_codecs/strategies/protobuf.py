"""Protobuf messages for hypothesis, from any `google.protobuf` Descriptor.

Nothing is generated per message type: the descriptor is walked at draw time,
so a user's own .proto (compiled, or loaded from a descriptor set) gets a
strategy for free. The draws lean on what decoders get wrong: every scalar at
its edges (NaN and infinities for floats), strings and bytes of 256 to 1024 as
well as short ones, oneofs with one member set or none,
required fields always set (proto2), groups like messages,
maps, repeated and packed fields (empty too), nested messages down to
`max_depth`, unknown fields of every wire type, and for open enums (proto3)
values no enum member has.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any

from google.protobuf import descriptor as D
from google.protobuf import message_factory
from hypothesis import strategies as st

from .varints import uvarint

_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)
_U32 = (0, 2**32 - 1)
_U64 = (0, 2**64 - 1)
_RANGES: dict[int, tuple[int, int]] = {
    D.FieldDescriptor.TYPE_INT32: _I32,
    D.FieldDescriptor.TYPE_SINT32: _I32,
    D.FieldDescriptor.TYPE_SFIXED32: _I32,
    D.FieldDescriptor.TYPE_INT64: _I64,
    D.FieldDescriptor.TYPE_SINT64: _I64,
    D.FieldDescriptor.TYPE_SFIXED64: _I64,
    D.FieldDescriptor.TYPE_UINT32: _U32,
    D.FieldDescriptor.TYPE_FIXED32: _U32,
    D.FieldDescriptor.TYPE_UINT64: _U64,
    D.FieldDescriptor.TYPE_FIXED64: _U64,
}
_MAX_ITEMS = 4
#: lengths of the long strings and bytes: past the 255/256 and 300-ish limits that
#: servers check (or forget to), still cheap to draw and to send
_LONG = (256, 1024)
_FLOAT_EDGES = st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 1.0])
_BOOLS = st.booleans()
_FEW = st.integers(0, 2)
_WIRE_TYPES = st.sampled_from([0, 1, 2, 5])
_FIXED64 = st.binary(min_size=8, max_size=8)
_FIXED32 = st.binary(min_size=4, max_size=4)
_PAYLOAD = st.binary(max_size=16)
#: strategies are built once per field and reused by every draw: building (and
#: validating) them on each draw was most of a draw's cost
_cached = functools.lru_cache(maxsize=4096)


@_cached
def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = sorted(n for n in {lo, lo + 1, hi - 1, hi, -1, 0, 1, 127, 128} if lo <= n <= hi)
    return st.sampled_from(edges) | st.integers(lo, hi)


def _long_texts() -> st.SearchStrategy[str]:
    """Strings of 256..1024 characters: a short unit repeated to a drawn length, so a
    draw costs a few choices and shrinks to ``"0" * n`` for the smallest failing n."""
    return st.builds(
        lambda unit, n: (unit * n)[:n], st.text(min_size=1, max_size=8), st.integers(*_LONG)
    )


def _long_bytes() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda unit, n: (unit * n)[:n], st.binary(min_size=1, max_size=8), st.integers(*_LONG)
    )


def _closed(enum: D.EnumDescriptor) -> bool:
    return bool(getattr(enum, "is_closed", False))


@_cached
def scalar_values(field: D.FieldDescriptor) -> st.SearchStrategy[Any]:
    """Values of one non-message field, at its type's edges."""
    t = field.type
    if t in _RANGES:
        return _ints(*_RANGES[t])
    if t == D.FieldDescriptor.TYPE_BOOL:
        return _BOOLS
    if t == D.FieldDescriptor.TYPE_FLOAT:
        return _FLOAT_EDGES | st.floats(width=32)
    if t == D.FieldDescriptor.TYPE_DOUBLE:
        return _FLOAT_EDGES | st.just(sys.float_info.max) | st.just(5e-324) | st.floats()
    if t == D.FieldDescriptor.TYPE_STRING:
        return st.text(max_size=20) | st.just("") | st.just("\U0010ffff" * 3) | _long_texts()
    if t == D.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=32) | _long_bytes()
    if t == D.FieldDescriptor.TYPE_ENUM:
        known = st.sampled_from([v.number for v in field.enum_type.values])
        if _closed(field.enum_type):
            return known
        return known | _ints(*_I32)  # open enums keep values no member has
    raise ValueError(f"{field.full_name}: no strategy for field type {t}")


def _is_map(field: D.FieldDescriptor) -> bool:
    mt = field.message_type
    return mt is not None and mt.GetOptions().map_entry


def _is_repeated(field: D.FieldDescriptor) -> bool:
    # `label` is deprecated in newer protobuf releases, `is_repeated` is new
    rep = getattr(field, "is_repeated", None)
    if rep is not None:
        return bool(rep() if callable(rep) else rep)
    return field.label == D.FieldDescriptor.LABEL_REPEATED


def _is_required(field: D.FieldDescriptor) -> bool:
    req = getattr(field, "is_required", None)
    if req is not None:
        return bool(req() if callable(req) else req)
    return field.label == D.FieldDescriptor.LABEL_REQUIRED


@_cached
def _unknown_fields(descriptor: D.Descriptor) -> st.SearchStrategy[bytes]:
    """Encoded fields with numbers the message does not declare, of every wire type."""
    used = {f.number for f in descriptor.fields}
    ranges = [r for r in descriptor.extension_ranges]
    top = max(used, default=0)
    free = [n for n in range(top + 1, top + 40) if n not in used and n < 19000]
    free = [n for n in free if not any(lo <= n < hi for lo, hi in ranges)]
    if not free:
        return st.just(b"")

    numbers = st.sampled_from(free)

    def one(draw: st.DrawFn) -> bytes:
        number = draw(numbers)
        wire = draw(_WIRE_TYPES)
        key = uvarint(number << 3 | wire)
        if wire == 0:
            return key + uvarint(draw(_ints(*_U64)))
        if wire == 1:
            return key + draw(_FIXED64)
        if wire == 5:
            return key + draw(_FIXED32)
        payload = draw(_PAYLOAD)
        return key + uvarint(len(payload)) + payload

    return st.lists(st.composite(one)(), max_size=3).map(b"".join)


def protobuf_messages(
    descriptor: D.Descriptor, max_depth: int = 3, unknown_fields: bool = True
) -> st.SearchStrategy[Any]:
    """Instances of the message `descriptor` describes (its generated or dynamic class)."""
    cls = message_factory.GetMessageClass(descriptor)

    @st.composite
    def draw_message(draw: st.DrawFn) -> Any:
        return _fill(draw, cls(), descriptor, max_depth, unknown_fields)

    return draw_message()


def _fill(draw: st.DrawFn, msg: Any, desc: D.Descriptor, depth: int, unknown: bool) -> Any:
    chosen: dict[str, str | None] = {}
    for oneof in desc.oneofs:
        chosen[oneof.full_name] = draw(_oneof_members(oneof))
    for field in desc.fields:
        oneof = field.containing_oneof
        if oneof is not None and chosen[oneof.full_name] != field.name:
            continue
        required = _is_required(field)
        if depth <= 0 and not required and field.message_type is not None and not _is_map(field):
            continue  # the depth bound: only required messages go deeper
        if oneof is None and not _is_repeated(field) and not required and not draw(_BOOLS):
            continue  # singular fields: sometimes left unset
        _set(draw, msg, field, depth, unknown)
    if unknown and draw(_BOOLS):
        msg.MergeFromString(draw(_unknown_fields(desc)))
    return msg


@_cached
def _oneof_members(oneof: D.OneofDescriptor) -> st.SearchStrategy[str | None]:
    return st.sampled_from([None, *(f.name for f in oneof.fields)])


@_cached
def _map_keys(key_f: D.FieldDescriptor) -> st.SearchStrategy[list[Any]]:
    return st.lists(scalar_values(key_f), max_size=_MAX_ITEMS, unique=True)


@_cached
def _scalar_lists(field: D.FieldDescriptor) -> st.SearchStrategy[list[Any]]:
    return st.lists(scalar_values(field), max_size=_MAX_ITEMS)


def _sub(draw: st.DrawFn, target: Any, desc: D.Descriptor, depth: int, unknown: bool) -> None:
    _fill(draw, target, desc, depth - 1, unknown)


def _set(draw: st.DrawFn, msg: Any, field: D.FieldDescriptor, depth: int, unknown: bool) -> None:
    attr = field.name
    mt = field.message_type
    if _is_map(field):
        key_f = mt.fields_by_name["key"]
        val_f = mt.fields_by_name["value"]
        container = getattr(msg, attr)
        for key in draw(_map_keys(key_f)):
            if val_f.message_type is not None:
                if depth > 0:
                    _sub(draw, container[key], val_f.message_type, depth, unknown)
                else:
                    container[key].SetInParent()  # reading a key creates its entry
            else:
                container[key] = draw(scalar_values(val_f))
        return
    if _is_repeated(field):
        container = getattr(msg, attr)
        if mt is not None:
            if depth <= 0:
                return
            for _ in range(draw(_FEW)):  # few: the tree grows per level
                _sub(draw, container.add(), mt, depth, unknown)
        else:
            container.extend(draw(_scalar_lists(field)))
        return
    if mt is not None:
        if depth <= 0 and not _is_required(field):
            return
        sub = getattr(msg, attr)
        sub.SetInParent()  # present even when every field of it stays unset
        _sub(draw, sub, mt, depth, unknown)
        return
    setattr(msg, attr, draw(scalar_values(field)))
