"""The tail's record view: batches built by kafka-python's own producer code, for
every compression type, decode to the records kafka-python's reader sees; every
preview, count and decompressed byte is bounded; garbage gives DecodeError only."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import cramjam
import lz4.frame
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record import MemoryRecords
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

from protoproxy_codecs.base import DecodeError
from protoproxy_codecs.kafka import compression, record_view
from protoproxy_codecs.kafka import records as records_mod
from protoproxy_codecs.kafka.record_view import Budget, ViewLimits, preview, preview_bytes

_EXAMPLES = max(10, settings().max_examples // 2)
#: large enough that nothing a test builds is cut, to compare whole values
WIDE = ViewLimits(
    preview_bytes=1 << 20,
    records_per_batch=1000,
    records_per_message=1000,
    batches_per_message=100,
    headers_per_record=100,
    decompressed_bytes=64 << 20,
)
CODECS = [0, 1, 2, 3, 4]

_records = st.lists(
    st.tuples(
        st.one_of(st.none(), st.binary(max_size=40)),  # key
        st.one_of(st.none(), st.binary(max_size=600), st.text(max_size=300).map(str.encode)),
        st.lists(
            st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=12))),
            max_size=3,
        ),
        st.integers(0, 10_000),  # timestamp delta
    ),
    min_size=1,
    max_size=12,
)


def v2_batch(records: list, compression_type: int, base_offset: int = 0) -> bytes:
    builder = DefaultRecordBatchBuilder(2, compression_type, False, -1, -1, -1, 1 << 30)
    for i, (key, value, headers, ts) in enumerate(records):
        builder.append(i, 1_700_000_000_000 + ts, key, value, headers)
    data = bytes(builder.build())
    return struct.pack(">q", base_offset) + data[8:]


def legacy_set(records: list, magic: int, compression_type: int) -> bytes:
    builder = LegacyRecordBatchBuilder(magic, compression_type, 1 << 30)
    for i, (key, value, _headers, ts) in enumerate(records):
        builder.append(i, 1_700_000_000_000 + ts if magic else None, key, value)
    return bytes(builder.build())


def shown(data: bytes, limits: ViewLimits = WIDE) -> list[tuple]:
    """(offset, timestamp, key, value, headers) of every record the view shows."""
    view = record_view.view(data, Budget(limits))
    assert "error" not in view, view["error"]
    out = []
    for batch in view["batches"]:
        assert "error" not in batch, batch["error"]
        for r in batch["records"]:
            headers = [
                (preview_bytes(h["key"]).decode(), preview_bytes(h["value"])) for h in r["headers"]
            ]
            out.append(
                (
                    r["offset"],
                    r["timestamp"],
                    preview_bytes(r["key"]),
                    preview_bytes(r["value"]),
                    headers,
                )
            )
    return out


def kafka_python_reads(data: bytes) -> list[tuple]:
    """The same records as kafka-python's consumer-side reader decodes them."""
    out = []
    records = MemoryRecords(data)
    while (batch := records.next_batch()) is not None:
        for r in batch:
            headers = [(k, v) for k, v in (getattr(r, "headers", None) or [])]
            out.append((r.offset, r.timestamp, r.key, r.value, headers))
    return out


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=compression.NAMES)
@settings(max_examples=_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(records=_records, base=st.integers(0, 2**40))
def test_v2_round_trip_every_compression(codec: int, records: list, base: int) -> None:
    data = v2_batch(records, codec, base)
    got = shown(data)
    assert got == kafka_python_reads(data)
    assert [r[2:4] for r in got] == [(k, v) for k, v, _h, _t in records]
    (batch,) = record_view.view(data)["batches"]
    # kafka-python keeps a batch uncompressed when compressing would grow it
    assert batch["compression"] == records_mod.batches(data)[0].compression_name
    assert batch["record_count"] == len(records)


@pytest.mark.parametrize(
    ("magic", "codec"), [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3)]
)
@settings(max_examples=max(5, _EXAMPLES // 3), suppress_health_check=[HealthCheck.too_slow])
@given(records=_records)
def test_legacy_message_sets_round_trip(magic: int, codec: int, records: list) -> None:
    data = legacy_set(records, magic, codec)
    got = shown(data)
    assert [r[:4] for r in got] == [r[:4] for r in kafka_python_reads(data)]
    assert [r[2:4] for r in got] == [(k, v) for k, v, _h, _t in records]


@settings(max_examples=_EXAMPLES)
@given(records=_records, codec=st.sampled_from(CODECS))
def test_default_limits_preview_first_256_bytes(records: list, codec: int) -> None:
    data = v2_batch(records, codec)
    (batch,) = record_view.view(data)["batches"]
    for r, (key, value, headers, _ts) in zip(batch["records"], records, strict=True):
        for p, full in [(r["key"], key), (r["value"], value)]:
            if full is None:
                assert p is None
                continue
            assert p["length"] == len(full)
            assert p["truncated"] == (len(full) > 256)
            head = preview_bytes(p)
            assert full.startswith(head) and len(head) <= 256
            assert len(full[:256]) - len(head) < 4  # only a split UTF-8 character is left out
        assert len(r["headers"]) == len(headers)


def test_preview_is_text_when_printable_and_hex_otherwise() -> None:
    assert preview(b"hello world\n", 256) == {
        "length": 12,
        "truncated": False,
        "text": "hello world\n",
    }
    assert preview(b"\x00\x01\xff", 256) == {"length": 3, "truncated": False, "hex": "0001ff"}
    assert preview(b"caf\xc3\xa9", 4) == {"length": 5, "truncated": True, "text": "caf"}
    assert preview(b"\xe2\x82\xac" * 200, 256)["text"] == "\u20ac" * 85
    assert preview(b"\x1b[31m", 256) == {"length": 5, "truncated": False, "hex": "1b5b33316d"}
    big = preview(b"\x00" * 100_000, 256)
    assert big == {"length": 100_000, "truncated": True, "hex": "00" * 256}


# -- bounds -----------------------------------------------------------------------------------


def test_records_per_batch_and_per_message_and_batches_are_capped() -> None:
    rows = [(None, b"v%d" % i, [], i) for i in range(50)]
    (batch,) = record_view.view(v2_batch(rows, 1))["batches"]
    assert len(batch["records"]) == 20 and batch["record_count"] == 50
    assert batch["truncated"] and batch["truncated_by"] == "records_per_batch"
    # one message, several records fields (partitions): the budget is shared
    budget = Budget()
    views = [record_view.view(v2_batch(rows, 0), budget) for _ in range(8)]
    assert sum(len(b["records"]) for v in views for b in v["batches"]) == 100
    assert views[-1]["batches"][0]["truncated_by"] == "records_per_message"
    many = b"".join(v2_batch(rows[:1], 0, i) for i in range(40))
    v = record_view.view(many)
    assert len(v["batches"]) == 32 and v["batches_not_shown"] == 8 and v["truncated"]


def _v2_header(records: bytes, count: int, codec: int) -> bytes:
    """A batch around `records` (already compressed); the view never checks the CRC."""
    length = 49 + len(records)
    return (
        struct.pack(">qiibIhiqqqhii", 0, length, 0, 2, 0, codec, count - 1, 0, 0, -1, -1, -1, count)
        + records
    )


def _varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: declared bytes of one record's value; snappy cannot compress past ~21:1
BOMB = {1: 256 << 20, 2: 16 << 20, 3: 256 << 20, 4: 256 << 20}


def _bomb_prefix(size: int) -> bytes:
    body_len = 1 + 1 + 1 + 1 + len(_varint(size)) + size + 1
    return _varint(body_len) + b"\x00" + _varint(0) + _varint(0) + _varint(-1) + _varint(size)


def _zeros(n: int, chunk: int = 1 << 20):
    block = bytes(chunk)
    for _ in range(n // chunk):
        yield block


def _bomb(codec: int) -> bytes:
    size = BOMB[codec]
    head = _bomb_prefix(size)
    if codec == 1:
        co = zlib.compressobj(9, zlib.DEFLATED, 31)
        body = co.compress(head) + b"".join(co.compress(z) for z in _zeros(size)) + co.flush()
    elif codec == 3:
        co = lz4.frame.LZ4FrameCompressor()
        body = co.begin() + co.compress(head) + b"".join(co.compress(z) for z in _zeros(size))
        body += co.flush()
    elif codec == 4:
        co = zstandard.ZstdCompressor().compressobj()
        body = co.compress(head) + b"".join(co.compress(z) for z in _zeros(size)) + co.flush()
    else:  # snappy, xerial framing: 32 KiB blocks as the Java client writes them
        zero_block = bytes(cramjam.snappy.compress_raw(bytes(32 << 10)))
        first = bytes(cramjam.snappy.compress_raw(head))
        blocks = [first] + [zero_block] * (size // (32 << 10))
        body = compression.XERIAL_MAGIC + struct.pack(">ii", 1, 1)
        body += b"".join(struct.pack(">i", len(b)) + b for b in blocks)
    return _v2_header(body, 1, codec)


@pytest.mark.parametrize("codec", [1, 2, 3, 4], ids=compression.NAMES[1:])
def test_a_compression_bomb_stays_bounded(codec: int) -> None:
    data = _bomb(codec)
    assert len(data) < BOMB[codec] // 20
    tracemalloc.start()
    try:
        view = record_view.view(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (batch,) = view["batches"]
    assert "error" not in batch, batch.get("error")
    assert batch["truncated"] and batch["truncated_by"] == "decompressed_bytes"
    assert batch["decompressed_bytes"] <= 1 << 20
    (rec,) = batch["records"]
    assert rec["partial"] and rec["value"]["length"] == BOMB[codec] and rec["value"]["truncated"]
    assert rec["value"]["hex"] == "00" * 256
    assert peak < 3 << 20, f"{peak} bytes allocated for a {len(data)}-byte batch"


def test_raw_snappy_past_the_limit_is_refused_from_its_declared_size() -> None:
    head = _bomb_prefix(4 << 20)
    raw = bytes(cramjam.snappy.compress_raw(head + bytes(4 << 20)))  # librdkafka: no framing
    (batch,) = record_view.view(_v2_header(raw, 1, 2))["batches"]
    assert batch["truncated_by"] == "decompressed_bytes" and batch["records"] == []
    assert batch["decompressed_bytes"] == 0


@pytest.mark.parametrize("codec", [1, 2, 3, 4], ids=compression.NAMES[1:])
def test_decompression_limit_gives_a_valid_prefix(codec: int) -> None:
    rows = [(None, bytes([i]) * 3000, [], i) for i in range(40)]
    data = v2_batch(rows, codec)
    limits = ViewLimits(decompressed_bytes=50_000, records_per_batch=40, records_per_message=40)
    (batch,) = record_view.view(data, Budget(limits))["batches"]
    assert "error" not in batch
    assert batch["truncated_by"] == "decompressed_bytes"
    recs = batch["records"]
    assert 1 <= len(recs) < 40
    assert [r["offset"] for r in recs] == list(range(len(recs)))
    for i, r in enumerate(recs[:-1]):
        assert "partial" not in r and preview_bytes(r["value"]) == bytes([i]) * 256
    last = recs[-1]
    assert last.get("partial") or preview_bytes(last["value"]) == bytes([len(recs) - 1]) * 256


# -- bad bytes -------------------------------------------------------------------------------


def test_fetch_response_cut_at_max_bytes_is_truncated_bytes_not_an_error() -> None:
    rows = [(b"k", b"v", [], 0)]
    data = v2_batch(rows, 0) + v2_batch(rows, 1)[:30]
    v = record_view.view(data)
    assert v["truncated_bytes"] == 30 and v["truncated"]
    assert "error" not in v and len(v["batches"]) == 1


def test_a_corrupt_compressed_batch_is_an_error_note_and_the_next_batch_still_shows() -> None:
    rows = [(b"k", b"value " * 20, [], 0)]
    bad = bytearray(v2_batch(rows, 1))
    bad[61 + 12] ^= 0xFF  # inside the deflate stream
    data = bytes(bad) + v2_batch(rows, 0, 1)
    v = record_view.view(data)
    assert "error" in v["batches"][0] and v["batches"][0]["error"].startswith("gzip")
    assert v["batches"][1]["records"][0]["offset"] == 1


def test_broken_framing_raises_decode_error_and_view_notes_it() -> None:
    good = v2_batch([(None, b"x", [], 0)], 0)
    bad = good + struct.pack(">qi", 0, -5) + bytes(10)
    with pytest.raises(DecodeError):
        list(record_view.batches(bad))
    v = record_view.view(bad)
    assert len(v["batches"]) == 1 and "batch length" in v["error"]


@settings(max_examples=_EXAMPLES * 4)
@given(st.binary(max_size=300))
def test_garbage_gives_decode_error_and_nothing_else(data: bytes) -> None:
    try:
        list(record_view.batches(data))
    except DecodeError:
        pass
    record_view.view(data)  # never raises


#: (magic, compression) of every format a records field may hold
FORMATS = [(2, c) for c in CODECS] + [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3)]


@settings(max_examples=_EXAMPLES * 2, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=_records,
    fmt=st.sampled_from(FORMATS),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 10_000),
)
def test_damaged_batches_give_decode_error_and_nothing_else(
    records: list, fmt: tuple[int, int], flips: list, cut: int
) -> None:
    magic, codec = fmt
    built = v2_batch(records, codec) if magic == 2 else legacy_set(records, magic, codec)
    data = bytearray(built)
    for at, mask in flips:
        data[at % len(data)] ^= mask
    data = bytes(data[: max(1, len(data) - cut % 40)])
    try:
        list(record_view.batches(data, Budget(ViewLimits(decompressed_bytes=4096))))
    except DecodeError:
        pass
    v = record_view.view(data)
    for b in v["batches"]:
        assert len(b["records"]) <= 20


def test_the_decompression_budget_is_shared_by_the_batches_of_a_message() -> None:
    rows = [(None, bytes([i]) * 3000, [], i) for i in range(10)]  # ~30 KB per batch
    data = b"".join(v2_batch(rows, 1, 10 * n) for n in range(3))
    limits = ViewLimits(decompressed_bytes=50_000)
    first, second, third = record_view.view(data, Budget(limits))["batches"]
    assert not first["truncated"] and len(first["records"]) == 10
    assert second["truncated_by"] == "decompressed_bytes"
    assert first["decompressed_bytes"] + second["decompressed_bytes"] == 50_000
    assert third["decompressed_bytes"] == 0 and third["records"] == []
    assert third["truncated_by"] == "decompressed_bytes"


def test_a_legacy_wrapper_past_the_records_budget_stays_compressed() -> None:
    rows = [(b"k", b"v", [], 0)] * 3
    data = legacy_set(rows, 1, 1)
    budget = Budget(ViewLimits(records_per_message=0))
    (batch,) = record_view.view(data, budget)["batches"]
    assert batch["record_count"] is None and batch["truncated_by"] == "records_per_message"
    assert "decompressed_bytes" not in batch


@pytest.mark.parametrize("codec", [1, 2, 3], ids=["gzip", "snappy", "lz4"])
def test_a_broker_stamped_v1_wrapper_gives_absolute_offsets(codec: int) -> None:
    rows = [(b"k%d" % i, b"v%d" % i, [], i) for i in range(50)]
    data = legacy_set(rows, 1, codec)
    data = struct.pack(">q", 149) + data[8:]  # a broker stamps the last inner offset
    (batch,) = record_view.view(data)["batches"]
    assert batch["record_count"] == 50 and batch["truncated_by"] == "records_per_batch"
    assert "offsets" not in batch
    got = [(r["offset"], preview_bytes(r["value"])) for r in batch["records"]]
    assert got == [(r[0], r[3]) for r in kafka_python_reads(data)][:20]
    assert got[0] == (100, b"v0")


@pytest.mark.parametrize("length", [-1, 0, 4])
def test_a_batch_too_short_for_its_magic_byte_is_a_decode_error(length: int) -> None:
    data = struct.pack(">qi", 0, length) + bytes(20)
    with pytest.raises(DecodeError, match="batch length"):
        list(record_view.batches(data))
