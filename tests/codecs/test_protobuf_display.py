"""The protobuf display decoder: schemaless and typed, on real and random bytes."""

from __future__ import annotations

import gzip
import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, json_format
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DecodeError, Direction
from protoproxy_codecs.protobuf_display import (
    DescriptorCatalog,
    RawLimits,
    decode_raw,
    display_grpc_message,
    inflate,
)
from testbed.grpc.protos import testbed_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTORS = (ROOT / "fixtures" / "protos" / "testbed.desc").read_bytes()
PKG = "protoproxy.testbed.v1"
# Large enough that nothing generated below is cut short, so round trips are exact.
WIDE = RawLimits(max_text=1 << 20, max_fields=1 << 20)


@pytest.fixture(scope="module")
def catalog() -> DescriptorCatalog:
    return DescriptorCatalog.from_bytes(DESCRIPTORS)


# -- strategies: random messages of the testbed proto ----------------------------

i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
f32 = st.floats(width=32, allow_nan=False)
text = st.text(max_size=30)


@st.composite
def samples(draw: st.DrawFn, depth: int = 2) -> pb.Sample:
    msg = pb.Sample(
        f_double=draw(st.floats(allow_nan=False)),
        f_float=draw(f32),
        f_int32=draw(i32),
        f_int64=draw(i64),
        f_uint32=draw(u32),
        f_uint64=draw(u64),
        f_sint32=draw(i32),
        f_sint64=draw(i64),
        f_fixed32=draw(u32),
        f_fixed64=draw(u64),
        f_sfixed32=draw(i32),
        f_sfixed64=draw(i64),
        f_bool=draw(st.booleans()),
        f_string=draw(text),
        f_bytes=draw(st.binary(max_size=30)),
        colour=draw(st.integers(0, 3)),
        packed_ints=draw(st.lists(i64, max_size=5)),
        names=draw(st.lists(text, max_size=3)),
        counts=draw(st.dictionaries(text, i32, max_size=3)),
    )
    if draw(st.booleans()):
        msg.choice_text = draw(text)
    else:
        msg.choice_number = draw(u64)
    if depth:
        if draw(st.booleans()):
            msg.child.CopyFrom(draw(samples(depth - 1)))
        msg.children.extend(draw(st.lists(samples(depth - 1), max_size=2)))
    return msg


behaviours = st.builds(
    pb.Behaviour,
    latency_ms=u32,
    status_code=st.integers(0, 16),
    status_message=text,
    count=u32,
    fail_after=u32,
)
requests = st.builds(
    pb.Request, behaviour=behaviours, payload=st.binary(max_size=40), tag=text, sample=samples()
)
responses = st.builds(
    pb.Response,
    seq=u64,
    payload=st.binary(max_size=40),
    tag=text,
    metadata=st.dictionaries(text, text, max_size=3),
    method=text,
)


# -- a reference encoder for the raw form, to check round trips ------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_raw(fields: list[dict[str, Any]]) -> bytes:
    out = bytearray()
    for f in fields:
        n, kind, value = f["field"], f["type"], f["value"]
        if kind == "varint":
            out += _varint(n << 3) + _varint(value)
        elif kind == "fixed64":
            out += _varint(n << 3 | 1) + struct.pack("<Q", value)
        elif kind == "fixed32":
            out += _varint(n << 3 | 5) + struct.pack("<I", value)
        elif kind == "group":
            out += _varint(n << 3 | 3) + encode_raw(value) + _varint(n << 3 | 4)
        else:
            body = {
                "string": lambda v: v.encode(),
                "bytes": bytes.fromhex,
                "message": encode_raw,
            }[kind](value)
            out += _varint(n << 3 | 2) + _varint(len(body)) + body
    return bytes(out)


# -- schemaless ------------------------------------------------------------------


def test_known_encoding() -> None:
    # The example from the protobuf encoding guide, plus a string, a group and a fixed32.
    data = b"\x08\x96\x01" + b"\x12\x07testing" + b"\x1b\x08\x01\x1c" + b"\x25\x00\x00\x80\x3f"
    assert decode_raw(data) == [
        {"field": 1, "type": "varint", "value": 150},
        {"field": 2, "type": "string", "value": "testing"},
        {"field": 3, "type": "group", "value": [{"field": 1, "type": "varint", "value": 1}]},
        {"field": 4, "type": "fixed32", "value": 0x3F800000, "float": 1.0},
    ]


def test_negative_varint_and_non_finite_doubles() -> None:
    msg = pb.Sample(f_int64=-1, f_double=math.inf)
    fields = decode_raw(msg.SerializeToString())
    assert fields[0] == {"field": 1, "type": "fixed64", "value": 0x7FF0 << 48, "double": "Infinity"}
    assert fields[1]["signed"] == -1 and fields[1]["value"] == 2**64 - 1


def test_nested_message_and_bytes() -> None:
    msg = pb.Request(
        tag="t", sample=pb.Sample(f_bytes=b"\x00\x01\xff", child=pb.Sample(f_bool=True))
    )
    fields = decode_raw(msg.SerializeToString())
    assert fields[0] == {"field": 3, "type": "string", "value": "t"}
    sample = fields[1]
    assert sample["type"] == "message"
    assert sample["value"][0] == {"field": 15, "type": "bytes", "value": "0001ff"}
    assert sample["value"][1]["value"] == [{"field": 13, "type": "varint", "value": 1}]


def test_garbage_keeps_what_came_before() -> None:
    good = pb.Response(seq=7, tag="ok").SerializeToString()
    fields = decode_raw(good + b"\x0f")  # wire type 7 does not exist
    assert fields[:2] == decode_raw(good)
    assert fields[2] == {"error": "bad_wire_type", "offset": len(good)}
    assert decode_raw(b"\x00")[-1]["error"] == "bad_field_number"
    assert decode_raw(b"\x12\x05ab")[-1]["error"] == "truncated_length_delimited"
    assert decode_raw(b"\x1b\x08\x01")[-1]["error"] == "unterminated_group"
    assert decode_raw(b"\x0c")[-1]["error"] == "unexpected_end_group"
    assert decode_raw(b"\x08" + b"\xff" * 11)[-1]["error"] == "varint_too_long"


def test_limits_bound_the_work_and_the_output() -> None:
    deep = b""
    for _ in range(40):  # 40 levels of field 1 = nested message
        deep = b"\x0a" + bytes([len(deep)]) + deep if len(deep) < 128 else deep
    limits = RawLimits(max_depth=3, max_fields=5, max_input=64, max_text=4)
    nested = decode_raw(deep, limits)
    depth = 0
    node: Any = nested
    while isinstance(node, list) and node and node[0].get("type") == "message":
        node = node[0]["value"]
        depth += 1
    assert depth <= 3
    assert decode_raw(b"\x08\x01" * 10, limits)[-1]["error"] == "too_many_fields"
    assert decode_raw(b"\x08\x01" * 40, RawLimits(max_input=64))[-1] == {
        "error": "input_too_large",
        "offset": 64,
        "length": 80,
    }
    cut = decode_raw(b"\x12\x0aabcdefghij", limits)[0]
    assert (cut["value"], cut["length"]) == ("abcd", 10)


def test_buffers_other_than_bytes() -> None:
    data = pb.Request(tag="x", payload=b"\x00").SerializeToString()
    assert decode_raw(memoryview(data)) == decode_raw(data) == decode_raw(bytearray(data))
    wide = memoryview(data + b"\x00" * (-len(data) % 4)).cast("I")
    assert decode_raw(wide)[:2] == decode_raw(data)


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    fields = decode_raw(data)
    json.dumps(fields, allow_nan=False)  # JSON-able, strictly
    errors = [i for i, f in enumerate(fields) if "error" in f]
    assert errors in ([], [len(fields) - 1])
    if not errors:
        # Clean decodes are faithful: re-encoding gives back the same fields, in
        # no more bytes (random bytes may hold overlong varints, which shrink).
        again = encode_raw(fields)
        assert len(again) <= len(data)
        assert decode_raw(again) == fields


@given(st.one_of(requests, responses, samples()))
def test_real_messages_round_trip(msg: Any) -> None:
    data = msg.SerializeToString()
    fields = decode_raw(data, WIDE)
    assert not any("error" in f for f in fields)
    assert encode_raw(fields) == data
    json.dumps(fields, allow_nan=False)


@given(samples())
def test_scalars_read_as_written(msg: pb.Sample) -> None:
    by_number = {f["field"]: f for f in decode_raw(msg.SerializeToString(), WIDE)}
    if msg.f_uint64:
        assert by_number[6]["value"] == msg.f_uint64
    if msg.f_sint32:
        zigzag = by_number[7]["value"]
        assert (zigzag >> 1) ^ -(zigzag & 1) == msg.f_sint32
    if msg.f_fixed32:
        assert by_number[9]["value"] == msg.f_fixed32
    if msg.f_double:
        bits = struct.unpack("<Q", struct.pack("<d", msg.f_double))[0]
        assert by_number[1]["value"] == bits
        if math.isfinite(msg.f_double):
            assert by_number[1]["double"] == msg.f_double
    if msg.f_string and msg.f_string.isprintable():
        assert by_number[14] == {"field": 14, "type": "string", "value": msg.f_string}


def test_agrees_with_protoc_decode_raw() -> None:
    """protoc's own --decode_raw reads the same numbers from the same bytes."""
    msg = pb.Sample(f_uint64=2**64 - 1, f_int32=-2, f_fixed32=7, f_sfixed64=-9, f_string="hi there")
    data = msg.SerializeToString()
    out = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "--decode_raw"],
        input=data,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    theirs = dict(line.split(": ", 1) for line in out.splitlines())
    ours = {str(f["field"]): f for f in decode_raw(data)}
    assert set(theirs) == set(ours)
    assert int(theirs["6"]) == ours["6"]["value"]
    assert int(theirs["3"]) == ours["3"]["value"]
    assert int(theirs["9"], 16) == ours["9"]["value"]  # protoc shows fixed32 in hex
    assert int(theirs["12"], 16) == ours["12"]["value"]
    assert theirs["14"] == '"hi there"' and ours["14"]["value"] == "hi there"


# -- typed -----------------------------------------------------------------------


@given(samples())
def test_typed_matches_json_format(msg: pb.Sample) -> None:
    catalog = DescriptorCatalog.from_bytes(DESCRIPTORS)
    expected = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    assert catalog.decode(f"{PKG}.Sample", msg.SerializeToString()) == expected


def test_method_paths(catalog: DescriptorCatalog) -> None:
    types = catalog.method(f"/{PKG}.TestService/Bidi")
    assert types is not None
    assert (types.request, types.response) == (f"{PKG}.Request", f"{PKG}.Response")
    assert types.client_streaming and types.server_streaming
    assert len(catalog.methods()) == 4
    request = pb.Request(tag="up").SerializeToString()
    response = pb.Response(seq=3).SerializeToString()
    path = f"/{PKG}.TestService/Unary"
    assert catalog.display_call(path, Direction.UPSTREAM, request) == {
        "type": f"{PKG}.Request",
        "json": {"tag": "up"},
    }
    assert catalog.display_call(path, Direction.DOWNSTREAM, response)["json"] == {"seq": "3"}
    assert catalog.display_call("/no.Such/Method", Direction.UPSTREAM, request) == {
        "raw": decode_raw(request)
    }


def test_typed_failures(catalog: DescriptorCatalog) -> None:
    with pytest.raises(DecodeError) as err:
        catalog.decode(f"{PKG}.Nope", b"")
    assert err.value.reason == "protobuf_unknown_type"
    with pytest.raises(DecodeError) as err:
        catalog.decode(f"{PKG}.Request", b"\x0a\x05ab")
    assert err.value.reason == "protobuf_bad_payload"
    shown = catalog.display(b"\x0a\x05ab", f"{PKG}.Request")
    assert shown["error"] == "protobuf_bad_payload"
    assert shown["raw"][-1]["error"] == "truncated_length_delimited"


@given(st.binary(max_size=200), st.sampled_from(["Request", "Response", "Sample", "Behaviour"]))
def test_typed_display_never_raises(data: bytes, name: str) -> None:
    shown = DescriptorCatalog.from_bytes(DESCRIPTORS).display(data, f"{PKG}.{name}")
    json.dumps(shown, allow_nan=False)
    assert ("json" in shown) != ("error" in shown)


def test_bad_descriptor_sets() -> None:
    with pytest.raises(DecodeError):
        DescriptorCatalog.from_bytes(b"\xff\xff\xff")
    orphan = descriptor_pb2.FileDescriptorSet()
    orphan.file.add(name="a.proto", dependency=["missing.proto"])
    with pytest.raises(DecodeError):
        DescriptorCatalog.from_bytes(orphan.SerializeToString())


def test_well_known_imports_are_filled_in() -> None:
    fds = descriptor_pb2.FileDescriptorSet()
    file = fds.file.add(name="ts.proto", package="t", syntax="proto3")
    file.dependency.append("google/protobuf/timestamp.proto")
    holder = file.message_type.add(name="Holder")
    holder.field.add(
        name="at",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        type_name=".google.protobuf.Timestamp",
    )
    catalog = DescriptorCatalog.from_bytes(fds.SerializeToString())
    assert catalog.decode("t.Holder", b"\x0a\x02\x08\x01") == {"at": "1970-01-01T00:00:01Z"}


# -- gRPC messages ------------------------------------------------------------------


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def test_compressed_grpc_messages(catalog: DescriptorCatalog) -> None:
    data = pb.Response(seq=5, tag="z" * 100).SerializeToString()
    path = f"/{PKG}.TestService/ServerStream"
    for encoding, packed in (("gzip", _gzip(data)), ("deflate", zlib.compress(data))):
        shown = display_grpc_message(
            packed,
            compressed=True,
            encoding=encoding,
            catalog=catalog,
            path=path,
            direction=Direction.DOWNSTREAM,
        )
        assert shown == {"type": f"{PKG}.Response", "json": {"seq": "5", "tag": "z" * 100}}
    assert display_grpc_message(memoryview(data)) == {"raw": decode_raw(data)}
    assert display_grpc_message(data, compressed=True)["error"] == "grpc_unknown_encoding"
    assert display_grpc_message(data, compressed=True, encoding="snappy")["error"] == (
        "grpc_unknown_encoding"
    )
    assert display_grpc_message(data, compressed=True, encoding="gzip")["error"] == (
        "grpc_bad_compression"
    )
    truncated = _gzip(data)[:-12]
    assert display_grpc_message(truncated, compressed=True, encoding="gzip")["error"] == (
        "grpc_bad_compression"
    )


def test_inflate_is_bounded() -> None:
    bomb = _gzip(b"\x00" * 1_000_000)
    with pytest.raises(DecodeError) as err:
        inflate(bomb, "gzip", 64 * 1024)
    assert err.value.reason == "grpc_inflated_too_large"
    assert inflate(bomb, "gzip", 1_000_000) == b"\x00" * 1_000_000
    shown = display_grpc_message(
        bomb, compressed=True, encoding="gzip", limits=RawLimits(max_input=1000)
    )
    assert shown["error"] == "grpc_inflated_too_large"


@given(st.binary(max_size=200), st.sampled_from(["gzip", "deflate", "identity", "br"]))
def test_grpc_display_never_raises(data: bytes, encoding: str) -> None:
    json.dumps(display_grpc_message(data, compressed=True, encoding=encoding), allow_nan=False)


def test_descriptor_sets_in_any_order_and_conflicts() -> None:
    fds = descriptor_pb2.FileDescriptorSet()
    user = fds.file.add(name="user.proto", package="q", dependency=["base.proto"])
    user.message_type.add(name="U").field.add(
        name="b", number=1, type=11, label=1, type_name=".q.B"
    )
    base = fds.file.add(name="base.proto", package="q")
    base.message_type.add(name="B").field.add(name="x", number=1, type=5, label=1)
    catalog = DescriptorCatalog.from_bytes(fds.SerializeToString())  # user before base
    assert catalog.decode("q.U", b"\x0a\x02\x08\x07") == {"b": {"x": 7}}
    catalog.add(fds)  # the same files again are no-ops

    clash = descriptor_pb2.FileDescriptorSet()
    clash.file.add(name="other.proto", package="q").message_type.add(name="B")
    with pytest.raises(DecodeError) as err:
        catalog.add(clash)
    assert err.value.reason == "descriptor_set_invalid"
