"""Our dynamic table and the lazy pre-block snapshot, against plain hpack."""

from __future__ import annotations

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protoproxy_codecs.base import DecodeError
from protoproxy_codecs.http2 import HeaderDecoder

_NAMES = ["x-a", "x-b", "date", "server", "x-" + "l" * 40]


def _literal(name: bytes, value: bytes) -> bytes:
    """A literal with incremental indexing and a literal name (replay-cacheable)."""
    return bytes([0x40, len(name)]) + name + bytes([len(value)]) + value


@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.just("new"),
                st.lists(st.sampled_from(_NAMES), max_size=5),
                st.integers(0, 2),
            ),
            st.tuples(st.just("replay"), st.integers(0, 50)),
            st.tuples(st.just("resize"), st.sampled_from([0, 40, 90, 150, 4096])),
            # the last block again and again, as nginx answers: the table reaches
            # a fixed point of it, which the decoder then skips
            st.tuples(st.just("repeat"), st.integers(1, 12)),
            # a block that indexes the newest dynamic entry (block-cacheable)
            st.tuples(st.just("index"), st.integers(0, 3)),
        ),
        max_size=60,
    )
)
def test_table_and_pre_block_snapshot_match_a_plain_decoder(ops: list[tuple]) -> None:
    """After every block the table equals hpack's, and the mirror encoder made
    "before the last block" starts from exactly the table before that block,
    also for replayed blocks that evict old entries or their own."""
    ours = HeaderDecoder(65536)
    plain = hpack.Decoder()
    seen: list[bytes] = []
    steps: list[tuple] = []
    for op in ops:
        steps.extend([("replay", -1)] * op[1] if op[0] == "repeat" else [op])
    for op in steps:
        if op[0] == "resize":
            # acked smaller/larger setting plus the size update a peer must send
            size = op[1]
            ours.allow_table_size(size)
            plain.max_allowed_table_size = size
            block = bytes([0x20 | size]) if size < 31 else bytes([0x3F]) + _tail(size - 31)
        elif op[0] == "new":
            block = b"".join(_literal(n.encode(), b"v%d" % op[2]) for n in op[1])
        elif op[0] == "index":
            block = bytes([0x80 | (62 + op[1])])
        else:
            if not seen:
                continue
            block = seen[op[1] % len(seen)]
        seen.append(block)
        before = (plain.header_table.maxsize, list(plain.header_table.dynamic_entries))
        try:
            expected = tuple(plain.decode(block))
        except hpack.HPACKError:
            with pytest.raises(DecodeError):
                ours.decode(block)
            return
        assert ours.decode(block) == expected
        assert list(ours._table.dynamic_entries) == list(plain.header_table.dynamic_entries)
        assert ours._table.maxsize == plain.header_table.maxsize
        mirror = ours.mirror_encoder(before_last_block=True)
        assert mirror.table_entries == before[1]
        assert mirror._encoder.header_table.maxsize == before[0]


def _tail(value: int) -> bytes:
    out = bytearray()
    while value >= 128:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def test_replay_that_evicts_its_own_entries_rebuilds_the_old_table() -> None:
    ours = HeaderDecoder(65536)
    ours.decode(b"\x3f\x3b")  # size update to 90 (31 + 59)
    ours.decode(_literal(b"x-old", b"1"))  # 38 bytes
    block = _literal(b"x-a", b"v1") + _literal(b"x-b", b"v1") + _literal(b"x-c", b"v1")
    ours.decode(block)  # each 37 bytes: the third evicts the first two... and x-old
    before = list(ours._table.dynamic_entries)
    ours.decode(block)  # a replay: evicts the previous block's entries and its own
    assert ours.replay_hits == 1
    assert ours.mirror_encoder(before_last_block=True).table_entries == before


def test_a_block_repeated_until_the_table_is_its_fixed_point_costs_no_table_change() -> None:
    """nginx sends the same inserting block in every response: once the table
    holds only copies of it, a repeat leaves the table as it was, and the decoder
    skips the inserts and evictions (the version stays) while staying equal to
    hpack's, before and after, with the block cache still valid in between."""
    ours = HeaderDecoder(65536)
    plain = hpack.Decoder()
    block = _literal(b"server", b"nginx") + _literal(b"date", b"Thu, 03 Dec 2026")
    index = bytes([0x80 | 62])  # the newest entry: read from the table, block-cached
    skipped = 0
    for _ in range(100):
        for b in (block, index):
            before = list(plain.header_table.dynamic_entries)
            version = ours._table.version
            assert ours.decode(b) == tuple(plain.decode(b))
            assert list(ours._table.dynamic_entries) == list(plain.header_table.dynamic_entries)
            assert ours.mirror_encoder(before_last_block=True).table_entries == before
            if b is block and ours._table.version == version:
                skipped += 1
    assert skipped >= 50  # 4096 bytes hold 43 such pairs: the 44th repeat is free
