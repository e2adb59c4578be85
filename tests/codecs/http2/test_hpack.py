"""HPACK: in sync over thousands of blocks, a cache that never lies, safe encoders."""

from __future__ import annotations

import random

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DOWNSTREAM, UPSTREAM, DecodeError
from protoproxy_codecs.http2 import PREFACE, HeaderDecoder, Http2Codec, encode_context_free
from protoproxy_codecs.http2 import frames as F


def _request(rng: random.Random, i: int) -> list[tuple[str, str]]:
    headers = [
        (":method", rng.choice(["GET", "POST", "PUT"])),
        (":scheme", "http"),
        (":path", f"/svc/{rng.randrange(50)}"),
        (":authority", "example"),
    ]
    for _ in range(rng.randrange(6)):
        headers.append((f"x-h{rng.randrange(40)}", f"v{rng.randrange(10 ** rng.randrange(1, 6))}"))
    if i % 7 == 0:
        headers.append(("x-big", "z" * rng.randrange(100, 3000)))  # evicts a lot
    return headers


def test_decoder_stays_in_sync_over_thousands_of_blocks_with_resizes() -> None:
    """Encode with a real hpack.Encoder (table resizes as the peer's SETTINGS
    change) and check every block the codec decodes, through SETTINGS acks."""
    rng = random.Random(1234)
    enc = hpack.Encoder()
    codec = Http2Codec()
    codec.feed(UPSTREAM, PREFACE + F.build_settings())
    codec.feed(DOWNSTREAM, F.build_settings() + F.build_settings(ack=True))
    codec.feed(UPSTREAM, F.build_settings(ack=True))
    sid = 1
    for i in range(3000):
        if i % 250 == 125:
            size = rng.choice([0, 64, 256, 1024, 4096, 8192])
            codec.feed(DOWNSTREAM, F.build_settings([(F.SettingId.HEADER_TABLE_SIZE, size)]))
            codec.feed(UPSTREAM, F.build_settings(ack=True))
            enc.header_table_size = size  # emits a size update in the next block
        headers = _request(rng, i)
        block = enc.encode(headers, huffman=bool(i & 1))
        (msg,) = codec.feed(UPSTREAM, F.build_header_block(sid, block, end_stream=True))
        assert msg.info["headers"] == tuple(headers), i
        codec.feed(DOWNSTREAM, F.build_header_block(sid, b"\x88", end_stream=True))  # :status 200
        sid += 2
    assert codec.open_streams == 0
    assert codec.take_exchanges()[-1].status == "200"


def test_size_update_above_the_acked_setting_is_a_compression_error() -> None:
    codec = Http2Codec()
    codec.feed(UPSTREAM, PREFACE + F.build_settings())
    codec.feed(DOWNSTREAM, F.build_settings([(F.SettingId.HEADER_TABLE_SIZE, 100)]))
    codec.feed(UPSTREAM, F.build_settings(ack=True))
    block = b"\x3f\xe1\x1f" + b"\x82"  # size update to 4096, then :method GET
    with pytest.raises(DecodeError) as info:
        codec.feed(UPSTREAM, F.build_header_block(1, block))
    assert info.value.reason == "compression_error"


@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["a", "b", "c", "x-long"]), st.sampled_from(["1", "2", "33"])
            ),
            max_size=5,
        ),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_cached_decoder_matches_a_plain_decoder(
    blocks: list[list[tuple[str, str]]], indexing: list[bool]
) -> None:
    """Repeated blocks hit the cache; every result equals an uncached decode,
    including repeats of blocks that inserted into the table."""
    enc = hpack.Encoder()
    enc.header_table_size = 128  # small table: frequent evictions
    ours = HeaderDecoder(65536)
    plain = hpack.Decoder()
    seen: list[bytes] = []
    for i, headers in enumerate(blocks):
        # Either a fresh block or a verbatim replay of an earlier one.
        block = enc.encode(headers) if indexing[i] or not seen else seen[i % len(seen)]
        seen.append(block)
        try:
            expected = tuple(plain.decode(block))
        except hpack.HPACKError:
            expected = None
        if expected is None:  # a replay invalid against the current table
            with pytest.raises(DecodeError):
                ours.decode(block)
            return
        assert ours.decode(block) == expected
        assert list(ours._table.dynamic_entries) == list(plain.header_table.dynamic_entries)


def test_cache_hits_on_repeated_non_mutating_blocks() -> None:
    enc = hpack.Encoder()
    dec = HeaderDecoder(65536)
    headers = [(":status", "200"), ("content-type", "application/grpc"), ("x-id", "7")]
    for _ in range(10):
        assert dec.decode(enc.encode(headers)) == tuple(headers)
    assert dec.hits >= 8  # the first block inserted; the rest are pure references


def test_context_free_block_leaves_the_table_alone() -> None:
    enc = hpack.Encoder()
    dec = hpack.Decoder()
    dec.decode(enc.encode([("x-a", "1"), ("x-b", "2"), (":path", "/q")]))
    before = list(dec.header_table.dynamic_entries)
    headers = [
        (":status", "200"),
        ("content-type", "application/grpc"),
        ("grpc-status", "14"),
        ("x-a", "1"),
    ]
    assert dec.decode(encode_context_free(headers)) == headers
    assert list(dec.header_table.dynamic_entries) == before
    assert dec.decode(enc.encode([("x-a", "1"), ("x-b", "2")])) == [("x-a", "1"), ("x-b", "2")]


def test_mirror_encoder_continues_the_destination_table() -> None:
    """After relaying blocks verbatim, switch to re-encoding: the real receiver
    (an hpack.Decoder fed the same relayed bytes) decodes the re-encoded blocks."""
    rng = random.Random(7)
    src = hpack.Encoder()
    receiver = hpack.Decoder()
    codec = Http2Codec()
    codec.feed(UPSTREAM, PREFACE + F.build_settings())
    sid = 1
    for i in range(30):
        block = src.encode(_request(rng, i))
        codec.feed(UPSTREAM, F.build_header_block(sid, block, end_stream=True))
        receiver.decode(block)
        codec.feed(DOWNSTREAM, F.build_settings() if i == 0 else b"")
        codec.feed(DOWNSTREAM, F.build_header_block(sid, b"\x88", end_stream=True))
        sid += 2
    mirror = codec.reencoder(UPSTREAM)
    for i in range(200):
        headers = _request(rng, i)
        (msg,) = codec.feed(
            UPSTREAM, F.build_header_block(sid, src.encode(headers), end_stream=True)
        )
        out = mirror.encode(msg.info["headers"])
        assert receiver.decode(out) == headers
        codec.feed(DOWNSTREAM, F.build_header_block(sid, b"\x88", end_stream=True))
        sid += 2


@given(
    st.lists(
        st.tuples(st.sampled_from(["x-a", "x-b", ":path"]), st.text("ab", max_size=4)), max_size=6
    ),
    st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=5),
    st.data(),
)
def test_field_level_decoder_agrees_with_hpack_on_any_bytes(
    prime: list[tuple[str, str]], blocks: list[bytes], data: st.DataObject
) -> None:
    """Our field splitter must accept exactly what hpack accepts and decode it
    the same; garbage and mutated real blocks included."""
    enc = hpack.Encoder()
    real = enc.encode(prime)
    ours = HeaderDecoder(4096)
    plain = hpack.Decoder(max_header_list_size=4096)
    mutated = bytearray(real)
    if mutated:
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] ^= data.draw(st.integers(1, 255))
    for block in [real, bytes(mutated), *blocks]:
        try:
            expected = tuple(plain.decode(block))
        except hpack.HPACKError:
            with pytest.raises(DecodeError):
                ours.decode(block)
            return  # the connection is over once a block fails
        assert ours.decode(block) == expected
        assert list(ours._table.dynamic_entries) == list(plain.header_table.dynamic_entries)


@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), st.integers(64, 4096))
def test_literal_cache_replays_inserting_fields_like_a_plain_decoder(
    picks: list[int], table_size: int
) -> None:
    """nginx-style responses: the same literal-with-indexing fields (static
    names) in every block. Replays come from the literal cache and must still
    insert and evict exactly as hpack does (field by field, or a whole block
    replayed); fields naming a dynamic entry are never served from a cache."""
    fields = [
        b"\x88",  # :status 200
        b"\x76\x89\xaa\x63\x55\xe5\x80\xae\x21\x2e\x1f",  # server: (literal, static name 54)
        b"\x61\x16" + bytes(range(0x41, 0x57)),  # date: literal with indexing, static name
        b"\x5f\x07" + b"abcdefg",  # content-type: literal with indexing (static name 31)
        b"\x40\x03x-a\x01v",  # literal name, incremental indexing
        b"\x7e\x03new",  # name from dynamic entry 62: table-dependent
    ]
    ours = HeaderDecoder(65536)
    ours.allow_table_size(table_size)
    plain = hpack.Decoder()
    plain.max_allowed_table_size = table_size
    if table_size != 4096:
        resize = hpack_int_prefix(table_size)
        assert ours.decode(resize) == tuple(plain.decode(resize))
    for i in picks:
        block = fields[i] + fields[(i + 2) % 5]
        try:
            expected = tuple(plain.decode(block))
        except hpack.HPACKError:
            with pytest.raises(DecodeError):
                ours.decode(block)
            return
        assert ours.decode(block) == expected
        assert list(ours._table.dynamic_entries) == list(plain.header_table.dynamic_entries)
    if len(picks) > 6:
        assert ours.literal_hits + ours.replay_hits > 0


def hpack_int_prefix(size: int) -> bytes:
    """A dynamic table size update to `size` (5-bit prefix integer)."""
    if size < 31:
        return bytes([0x20 | size])
    out = bytearray([0x3F])
    size -= 31
    while size >= 128:
        out.append(0x80 | (size & 0x7F))
        size >>= 7
    out.append(size)
    return bytes(out)


def _literal_block(name: bytes, value: bytes, rep: int) -> bytes:
    """One literal field: rep 0x40 (incremental indexing), 0x00 (without) or 0x10 (never)."""
    return bytes([rep]) + bytes([len(name)]) + name + bytes([len(value)]) + value


@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.just("new"),
                st.lists(st.sampled_from(["x-a", "x-b", "date", "server"]), max_size=4),
            ),
            st.tuples(st.just("replay"), st.integers(0, 50)),
            st.tuples(st.just("literal"), st.sampled_from([0x40, 0x00, 0x10]), st.integers(0, 3)),
            st.tuples(st.just("resize"), st.sampled_from([0, 40, 100, 4096])),
        ),
        max_size=60,
    )
)
def test_every_cache_layer_agrees_with_a_plain_decoder(ops: list[tuple]) -> None:
    """Block cache, replay cache and literal cache against plain hpack, over
    repeated blocks, inserting literals and acked table-size changes."""
    enc = hpack.Encoder()
    ours = HeaderDecoder(65536)
    plain = hpack.Decoder()
    seen: list[bytes] = []
    for i, op in enumerate(ops):
        if op[0] == "resize":
            ours.allow_table_size(op[1])
            plain.max_allowed_table_size = op[1]
            continue
        if op[0] == "new":
            block = enc.encode([(n, str(i % 3)) for n in op[1]])
        elif op[0] == "replay":
            if not seen:
                continue
            block = seen[op[1] % len(seen)]
        else:
            block = _literal_block(b"x-lit", b"v%d" % op[2], op[1])
        seen.append(block)
        try:
            expected = tuple(plain.decode(block))
        except hpack.HPACKError:
            with pytest.raises(DecodeError):
                ours.decode(block)
            return
        assert ours.decode(block) == expected, i
        assert list(ours._table.dynamic_entries) == list(plain.header_table.dynamic_entries)
        assert ours._table.maxsize == plain.header_table.maxsize


def test_replayed_block_still_needs_the_size_update_after_a_smaller_setting() -> None:
    block = _literal_block(b"server", b"nginx", 0x40)
    ours = HeaderDecoder(65536)
    for _ in range(3):
        ours.decode(block)  # the second and third are replays
    ours.allow_table_size(0)  # acked: the next block must shrink the table first
    with pytest.raises(DecodeError) as info:
        ours.decode(block)
    assert info.value.reason == "compression_error"


@given(
    value=st.binary(min_size=1, max_size=40).filter(lambda b: not set(b) & {0, 10, 13}),
    huffman=st.booleans(),
)
def test_non_utf8_values_decode_and_reencode_to_the_same_octets(
    value: bytes, huffman: bool
) -> None:
    """Field values are octets: a 0xff from a peer (hostile fakes sent one in a
    `-bin` trailer) must not end the connection, and re-encoding gives it back."""
    from protoproxy_codecs.http2.hpack_state import wire

    enc = hpack.Encoder()
    headers = [(b":status", b"200"), (b"x-raw-bin", value)]
    codec = Http2Codec()
    codec.feed(UPSTREAM, PREFACE + F.build_settings())
    codec.feed(DOWNSTREAM, F.build_settings())
    sid = 1
    block = enc.encode([(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http")])
    codec.feed(UPSTREAM, F.build_header_block(sid, block, end_stream=True))
    resp = hpack.Encoder().encode(headers, huffman=huffman)
    (msg,) = codec.feed(DOWNSTREAM, F.build_header_block(sid, resp, end_stream=True))
    name, got = msg.info["headers"][1]
    assert (name, wire(got)) == ("x-raw-bin", value)
    again = hpack.Decoder().decode(encode_context_free(msg.info["headers"]), raw=True)
    assert again[1] == (b"x-raw-bin", value)
