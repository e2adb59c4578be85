"""Kafka request and response frames for hypothesis, generated from kafka-python's schemas.

Values are drawn per field type and version straight from the schema, so
every (api_key, version) gets a generator without a line written per API: an
API kafka-python learns is covered the day it ships. Only fields present at
the version are set (tagged ones included, for flexible versions); everything
else keeps the schema default, which is also what decoding yields. Integers
lean on their edges, `records` fields carry real record batches
(`kafka_records`), and every frame has the header its version needs.
"""

from __future__ import annotations

import functools
import struct
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from hypothesis import strategies as st

from ..kafka import framing, schema
from ..kafka.api_keys import ApiKey
from .kafka_records import record_sets
from .varints import uvarint

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


#: how a `records` field is drawn for one (api_key, version)
RecordsFor = Callable[[int, int], st.SearchStrategy[bytes]]


def _edges(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Integers that visit their type's edges (and -1, 0, 1) far more than uniform draws do."""
    edges = sorted({lo, lo + 1, max(lo, -1), 0 if lo <= 0 else lo, 1, hi - 1, hi})
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def legacy_magic(api_key: int, version: int) -> int:
    """The record format a Produce/Fetch version carries: 0 and 1 before v3/v4, then 2."""
    if api_key == ApiKey.PRODUCE and version < 3:
        return 0 if version < 2 else 1
    if api_key == ApiKey.FETCH and version < 4:
        return 0 if version < 2 else 1
    return 2


def default_records(api_key: int, version: int) -> st.SearchStrategy[bytes]:
    return record_sets(magic=legacy_magic(api_key, version), max_batches=2)


def simple_values(
    type_str: str, nullable: bool, records: st.SearchStrategy[bytes] | None = None
) -> st.SearchStrategy[Any]:
    if type_str in _INT_RANGES:
        lo, hi = _INT_RANGES[type_str]
        return _edges(lo, hi)
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
    if type_str == "records" and records is not None:
        return st.one_of(st.none(), records) if nullable else records
    if type_str in ("bytes", "records"):
        return st.one_of(st.none(), _bytes) if nullable else _bytes
    raise AssertionError(f"no strategy for schema type {type_str!r}")


def struct_values(
    struct: Any,
    version: int,
    data_class: Any,
    in_tag: bool,
    records: st.SearchStrategy[bytes] | None = None,
) -> st.SearchStrategy:
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
        parts[field.name] = field_values(field, version, in_tag or tagged, records)
    return st.fixed_dictionaries(parts).map(lambda kw: data_class(version=version, **kw))


def field_values(
    field: Any, version: int, in_tag: bool, records: st.SearchStrategy[bytes] | None = None
) -> st.SearchStrategy[Any]:
    nullable = field.nullable_for_version_q(version)
    if field.is_struct():
        inner = struct_values(field, version, field.data_class, in_tag, records)
    elif field.is_struct_array():
        items = struct_values(field.array_of, version, field.data_class, in_tag, records)
        inner = st.lists(items, max_size=_MAX_ITEMS)
    elif field.is_array():
        elem = field.array_of
        inner = st.lists(simple_values(elem.type_str, False), max_size=_MAX_ITEMS)
    else:
        return simple_values(field.type_str, nullable, records)
    return st.one_of(st.none(), inner) if nullable else inner


@functools.cache
def message_values(
    api_key: int, version: int, request: bool, records: RecordsFor | None = None
) -> st.SearchStrategy[Any]:
    """kafka-python message instances of one (api_key, version, direction).

    Cached: the strategy tree of a big schema costs milliseconds to build and
    validate, more than drawing from it once.

    `records` says how `records` fields are drawn; None gives plain bytes
    (fast, what a codec that never opens batches needs), `default_records`
    gives real batches.
    """
    cls = (
        schema.request_class(api_key, version)
        if request
        else schema.response_class(api_key, version)
    )
    if cls is None:
        raise ValueError(f"kafka-python has no schema for api_key={api_key} v{version}")
    primary = cls[None]
    drawn = records(api_key, version) if records is not None else None
    return struct_values(primary._struct, version, primary, False, drawn)


def all_versions() -> list[tuple[int, int]]:
    """Every (api_key, version) kafka-python can decode, in order."""
    out = []
    for key in sorted(schema.tables().max_version):
        for version in range(schema.tables().max_version[key] + 1):
            out.append((key, version))
    return out


class KafkaFrame(NamedTuple):
    """One drawn frame: the wire bytes and what they mean."""

    api_key: int
    version: int
    correlation_id: int
    #: the kafka-python message instance the body encodes
    value: Any
    #: size-prefixed, with the request/response header of the version's header version
    frame: bytes
    client_id: str | None = None

    @property
    def is_request(self) -> bool:
        return self.value.is_request()


def _resolve(api: int | str | None) -> list[int]:
    if api is None:
        return sorted(schema.tables().max_version)
    key = api if isinstance(api, int) else schema.api_key_of(api)
    if key not in schema.tables().max_version:
        raise ValueError(f"kafka-python has no schema for api_key={key}")
    return [key]


def _pairs(api: int | str | list[int | str] | None, version: int | None) -> list[tuple[int, int]]:
    keys = (
        sorted({k for a in api for k in _resolve(a)})
        if isinstance(api, list | tuple)
        else _resolve(api)
    )
    out = []
    for key in keys:
        top = schema.tables().max_version[key]
        if version is not None:
            if not 0 <= version <= top:
                raise ValueError(f"{schema.api_name(key)} has versions 0..{top}, not {version}")
            out.append((key, version))
        else:
            out.extend((key, v) for v in range(top + 1))
    return out


_API_VERSIONS = int(ApiKey.API_VERSIONS)
#: tag numbers no schema uses: a receiver must skip them (KIP-482)
_UNKNOWN_TAGS = st.lists(st.integers(100, 20_000), unique=True, min_size=1, max_size=3)


@st.composite
def _tag_section(draw: st.DrawFn) -> bytes:
    tags = sorted(draw(_UNKNOWN_TAGS))  # in ascending order, as the protocol wants
    out = uvarint(len(tags))
    for tag in tags:
        payload = draw(st.binary(max_size=8))
        out += uvarint(tag) + uvarint(len(payload)) + payload
    return out


_TAG_SECTION = _tag_section()  # built once: a strategy per draw costs more than the draw


def _with_unknown_tags(
    draw: st.DrawFn, frame: bytes, header_tags_at: int | None, value: Any
) -> bytes:
    """`frame` with unknown tagged fields in its header and at the end of its body.

    Only empty tag sections are filled: the header's (at `header_tags_at`), and
    the body's top-level one when no known tagged field is set (then it is the
    frame's last byte). Decoders keep or skip them; the value is unchanged.
    """
    if header_tags_at is not None and draw(st.booleans()):
        assert frame[header_tags_at] == 0
        frame = frame[:header_tags_at] + draw(_TAG_SECTION) + frame[header_tags_at + 1 :]
    if not getattr(value, "tags", None) and frame[-1] == 0 and draw(st.booleans()):
        frame = frame[:-1] + draw(_TAG_SECTION)
    return struct.pack(">i", len(frame) - 4) + frame[4:]


_correlation_ids = _edges(-(2**31), 2**31 - 1)
_client_ids = st.one_of(st.none(), st.just(""), st.text(max_size=16))


@st.composite
def _requests(
    draw: st.DrawFn,
    pairs: tuple[tuple[int, int], ...],
    records: RecordsFor | None,
    unknown_tags: bool,
) -> KafkaFrame:
    key, ver = draw(st.sampled_from(pairs))
    body = draw(message_values(key, ver, True, records))
    corr = draw(_correlation_ids)
    client_id = draw(_client_ids)
    frame = framing.encode_request(key, ver, corr, client_id, body)
    if unknown_tags and schema.is_flexible(key, ver):
        cid = 0 if client_id is None else len(client_id.encode())
        frame = _with_unknown_tags(draw, frame, 4 + 10 + cid, body)
    return KafkaFrame(key, ver, corr, body, frame, client_id)


@st.composite
def _responses(
    draw: st.DrawFn,
    pairs: tuple[tuple[int, int], ...],
    records: RecordsFor | None,
    unknown_tags: bool,
) -> KafkaFrame:
    key, ver = draw(st.sampled_from(pairs))
    body = draw(message_values(key, ver, False, records))
    if key == _API_VERSIONS and ver >= 1:
        # A broker answers an error in ApiVersions with a v0 body, whatever
        # the version asked (clients read it so): a v1+ body has none.
        body.error_code = 0
    corr = draw(_correlation_ids)
    frame = framing.encode_response(key, ver, corr, body)
    if unknown_tags and schema.is_flexible(key, ver):
        header_tags = 8 if schema.response_header_version(key, ver) == 1 else None
        frame = _with_unknown_tags(draw, frame, header_tags, body)
    return KafkaFrame(key, ver, corr, body, frame)


def _hashable(api: int | str | list[int | str] | None) -> int | str | tuple[int | str, ...] | None:
    return tuple(api) if isinstance(api, list | tuple) else api


@functools.cache
def _cached(
    kind: str,
    api: int | str | tuple[int | str, ...] | None,
    version: int | None,
    records: RecordsFor | None,
    unknown_tags: bool,
) -> st.SearchStrategy[KafkaFrame]:
    pairs = tuple(_pairs(list(api) if isinstance(api, tuple) else api, version))
    build = _requests if kind == "request" else _responses
    return build(pairs, records, unknown_tags)


def kafka_requests(
    api: int | str | list[int | str] | None = None,
    version: int | None = None,
    records: RecordsFor | None = default_records,
    unknown_tags: bool = True,
) -> st.SearchStrategy[KafkaFrame]:
    """Valid request frames of `api` (a key, a name like "Produce", a list, or None for all)
    at `version` (None: every version kafka-python knows for it).

    `records` draws the `records` fields (None: plain bytes); `unknown_tags`
    adds tagged fields no schema knows to flexible versions' headers and bodies.
    The same arguments give the same (cached) strategy object.
    """
    return _cached("request", _hashable(api), version, records, unknown_tags)


def kafka_responses(
    api: int | str | list[int | str] | None = None,
    version: int | None = None,
    records: RecordsFor | None = default_records,
    unknown_tags: bool = True,
) -> st.SearchStrategy[KafkaFrame]:
    """Valid response frames, as `kafka_requests`; decode them knowing (api_key, version)."""
    return _cached("response", _hashable(api), version, records, unknown_tags)


def chunks(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """`data` split at arbitrary points (empty chunks included)."""
    n = len(data)
    return st.lists(st.integers(0, n), max_size=8).map(
        lambda cuts: [
            data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), n], strict=True)
        ]
    )
