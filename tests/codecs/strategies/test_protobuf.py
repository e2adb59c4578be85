"""protobuf_messages round-trips for every message type of a 20+ message descriptor set,
and grpc_messages frames decode with our gRPC reader to the same message."""

from __future__ import annotations

import math

import cramjam
import pytest
from google.protobuf import descriptor as D
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.unknown_fields import UnknownFieldSet
from hypothesis import find, given, settings
from hypothesis import strategies as st

from protoproxy_codecs.base import UPSTREAM
from protoproxy_codecs.grpc.framing import MessageReader
from protoproxy_codecs.strategies import grpc_messages, protobuf_messages

PACKAGE = "fuzz.v1"


def _all_messages(desc: D.Descriptor) -> list[D.Descriptor]:
    out = [desc]
    for nested in desc.nested_types:
        if not nested.GetOptions().map_entry:
            out += _all_messages(nested)
    return out


def _names(pool: descriptor_pool.DescriptorPool) -> list[str]:
    file = pool.FindFileByName("allkinds.proto")
    return sorted(
        n
        for m in file.message_types_by_name.values()
        for n in [d.full_name for d in _all_messages(m)]
    )


NAMES = [
    "fuzz.v1.Choice", "fuzz.v1.Deep", "fuzz.v1.Deep.Inner", "fuzz.v1.Deep.Inner.Innermost",
    "fuzz.v1.Empty", "fuzz.v1.Enums", "fuzz.v1.Everything", "fuzz.v1.Fixed", "fuzz.v1.Floats",
    "fuzz.v1.GetItemRequest", "fuzz.v1.GetItemResponse", "fuzz.v1.HighNumbers", "fuzz.v1.Ints",
    "fuzz.v1.MessageMaps", "fuzz.v1.Optionals", "fuzz.v1.Packed", "fuzz.v1.RepeatedTexts",
    "fuzz.v1.ScalarMaps", "fuzz.v1.Texts", "fuzz.v1.Tree", "fuzz.v1.Unpacked", "fuzz.v1.Wrapper",
]  # fmt: skip


LEGACY = ["fuzz.v1.legacy.Config", "fuzz.v1.legacy.Needed"]


def test_the_fixture_has_every_field_kind(pool: descriptor_pool.DescriptorPool) -> None:
    assert _names(pool) == NAMES and len(NAMES) >= 20
    kinds = {f.type for n in NAMES + LEGACY for f in pool.FindMessageTypeByName(n).fields}
    every = {v for k, v in vars(D.FieldDescriptor).items() if k.startswith("TYPE_")}
    assert every - kinds == set()  # groups come from the proto2 file


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=max(5, settings().max_examples // 4))
@given(data=st.data())
def test_roundtrip(pool: descriptor_pool.DescriptorPool, name: str, data: st.DataObject) -> None:
    desc = pool.FindMessageTypeByName(name)
    msg = data.draw(protobuf_messages(desc))
    wire = msg.SerializeToString(deterministic=True)
    back = type(msg).FromString(wire)
    assert back.SerializeToString(deterministic=True) == wire
    if not _has_nan(msg):
        assert back == msg


def _has_nan(msg) -> bool:
    return "nan" in str(msg).lower()


@given(data=st.data())
def test_open_enums_keep_unknown_values(pool, data: st.DataObject) -> None:
    """Out-of-range enum values survive the round trip (proto3 enums are open)."""
    desc = pool.FindMessageTypeByName("fuzz.v1.Enums")
    msg = data.draw(protobuf_messages(desc))
    back = type(msg).FromString(msg.SerializeToString())
    assert back.color == msg.color and list(back.colors) == list(msg.colors)


@pytest.mark.parametrize("name", LEGACY)
@settings(max_examples=max(5, settings().max_examples // 4))
@given(data=st.data())
def test_proto2_required_groups_closed_enums(pool, name: str, data: st.DataObject) -> None:
    """Required fields are always set (else SerializeToString refuses), groups round-trip,
    and a closed enum only ever holds its members."""
    msg = data.draw(protobuf_messages(pool.FindMessageTypeByName(name)))
    assert msg.IsInitialized()
    wire = msg.SerializeToString(deterministic=True)
    back = type(msg).FromString(wire)
    assert back == msg and back.SerializeToString(deterministic=True) == wire
    if name.endswith("Config"):
        assert msg.level in (1, 2) and set(msg.levels) <= {1, 2}


def test_the_edges_are_drawn(pool) -> None:
    """The strategy reaches what decoders get wrong, not just middling values."""
    seen: set[str] = set()
    # draws per type, for about ten sightings of the rarest edge each: hypothesis
    # mixes constants from the modules loaded into its draws, so which examples a
    # derandomized run gets depends on what else the session imported
    budgets = {"Ints": 300, "Floats": 30, "Enums": 30, "Choice": 30, "ScalarMaps": 30}

    def collect(msg) -> None:
        name = msg.DESCRIPTOR.name
        if len(UnknownFieldSet(msg)):
            seen.add("unknown field")
        if name == "Ints":
            if msg.i64 == -(2**63):
                seen.add("int64 min")
            if msg.u64 == 2**64 - 1:
                seen.add("uint64 max")
        elif name == "Floats" and (math.isnan(msg.d) or math.isinf(msg.f)):
            seen.add("nan/inf")
        elif name == "Enums" and msg.color not in (0, 1, 2, -3):
            seen.add("unknown enum")
        elif name == "Choice" and msg.WhichOneof("value"):
            seen.add("oneof")
        elif name == "ScalarMaps" and len(msg.by_name):
            seen.add("map")

    for name, n in budgets.items():
        strategy = protobuf_messages(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        settings(max_examples=n, database=None, derandomize=True)(given(strategy)(collect))()
    want = {"int64 min", "uint64 max", "unknown enum", "oneof", "map", "nan/inf", "unknown field"}
    assert want <= seen


@given(data=st.data())
def test_grpc_messages_decode_with_our_reader(descriptor_set, data: st.DataObject) -> None:
    direction = data.draw(st.sampled_from(["request", "response"]))
    f = data.draw(grpc_messages(descriptor_set, "fuzz.v1.Catalog/GetItem", direction))
    reader = MessageReader(UPSTREAM, 1, max_size=1 << 20)
    (m,) = reader.feed(memoryview(f.frame))
    payload = bytes(m.payload)
    assert m.compressed == f.compressed
    if f.compressed:
        payload = bytes(cramjam.gzip.decompress(payload))
    cls = message_factory.GetMessageClass(f.value.DESCRIPTOR)
    assert cls.FromString(payload).SerializeToString(deterministic=True) == (
        f.value.SerializeToString(deterministic=True)
    )


def test_grpc_messages_names_a_missing_method(descriptor_set) -> None:
    with pytest.raises(ValueError, match=r"fuzz\.v1\.Catalog/Nope"):
        grpc_messages(descriptor_set, "fuzz.v1.Catalog/Nope")


def test_long_strings_are_drawn_and_shrink_to_the_shortest(pool) -> None:
    """A bug past some length (">300 characters") is found in a few draws, and shrinks to
    exactly the shortest failing string of the plainest character."""
    desc = pool.FindMessageTypeByName(f"{PACKAGE}.Texts")
    drawn: list[tuple[int, int]] = []

    @settings(max_examples=100, database=None, derandomize=True)
    @given(protobuf_messages(desc, unknown_fields=False))
    def collect(msg) -> None:
        drawn.append((len(msg.s), len(msg.b)))

    collect()
    assert sum(s > 300 for s, _ in drawn) >= 5  # s is set and long in about one draw in 9
    assert sum(b > 300 for _, b in drawn) >= 5
    assert max(max(s, b) for s, b in drawn) <= 1024
    shrunk = find(
        protobuf_messages(desc),
        lambda m: len(m.s) > 300,
        settings=settings(database=None, derandomize=True, max_examples=500),
    )
    assert shrunk.s == "0" * 301 and shrunk.b == b"" and not shrunk.flag
    assert shrunk.SerializeToString() == b"\x0a\xad\x02" + b"0" * 301  # nothing unknown
