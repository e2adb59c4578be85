"""Hypothesis strategies generated from kafka-python's schemas.

Values are drawn per field type and version straight from the schema, so
every (api_key, version) gets a generator without a line written per API.
Only fields present at the version are set; everything else keeps the
schema default, which is also what decoding yields.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import strategies as st

from protoproxy_codecs.kafka import schema

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}

_text = st.text(max_size=12)
_bytes = st.binary(max_size=24)
# The zero UUID decodes as None, so it is never drawn; None stands for it.
_uuids = st.one_of(st.none(), st.integers(1, 2**128 - 1).map(lambda i: uuid.UUID(int=i)))
_bitfield = st.one_of(st.none(), st.sets(st.integers(0, 30), max_size=4))
_MAX_ITEMS = 3


def simple_values(type_str: str, nullable: bool) -> st.SearchStrategy[Any]:
    if type_str in _INT_RANGES:
        lo, hi = _INT_RANGES[type_str]
        return st.integers(lo, hi)
    if type_str == "bool":
        return st.booleans()
    if type_str == "float64":
        return st.floats(allow_nan=False)
    if type_str == "uuid":
        return _uuids
    if type_str == "bitfield":
        return _bitfield
    if type_str == "string":
        return st.one_of(st.none(), _text) if nullable else _text
    if type_str in ("bytes", "records"):
        return st.one_of(st.none(), _bytes) if nullable else _bytes
    raise AssertionError(f"no strategy for schema type {type_str!r}")


def struct_values(struct: Any, version: int, data_class: Any, in_tag: bool) -> st.SearchStrategy:
    """A data-class instance with every field present at `version` drawn."""
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in struct.fields.values():
        if not field.for_version_q(version):
            continue
        tagged = field.tagged_field_q(version)
        if in_tag and tagged:
            # kafka-python encodes structs inside tagged fields without their
            # own tagged fields, so those keep their defaults.
            continue
        parts[field.name] = field_values(field, version, in_tag or tagged)
    return st.fixed_dictionaries(parts).map(lambda kw: data_class(version=version, **kw))


def field_values(field: Any, version: int, in_tag: bool) -> st.SearchStrategy[Any]:
    nullable = field.nullable_for_version_q(version)
    if field.is_struct():
        inner = struct_values(field, version, field.data_class, in_tag)
    elif field.is_struct_array():
        items = struct_values(field.array_of, version, field.data_class, in_tag)
        inner = st.lists(items, max_size=_MAX_ITEMS)
    elif field.is_array():
        elem = field.array_of
        inner = st.lists(simple_values(elem.type_str, False), max_size=_MAX_ITEMS)
    else:
        return simple_values(field.type_str, nullable)
    return st.one_of(st.none(), inner) if nullable else inner


def message_values(api_key: int, version: int, request: bool) -> st.SearchStrategy[Any]:
    cls = (
        schema.request_class(api_key, version)
        if request
        else schema.response_class(api_key, version)
    )
    primary = cls[None]
    return struct_values(primary._struct, version, primary, False)


def all_versions() -> list[tuple[int, int]]:
    """Every (api_key, version) kafka-python can decode, in order."""
    out = []
    for key in sorted(schema.tables().max_version):
        for version in range(schema.tables().max_version[key] + 1):
            out.append((key, version))
    return out


def chunks(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """`data` split at arbitrary points (empty chunks included)."""
    n = len(data)
    return st.lists(st.integers(0, n), max_size=8).map(
        lambda cuts: [
            data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), n], strict=True)
        ]
    )
