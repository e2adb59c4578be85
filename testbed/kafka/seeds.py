"""Seed records: JSON objects (from a ``.jsonl`` file or a POST body) into topic logs.

One object per record::

    {"key": "k1", "value": {"id": 1}, "headers": {"source": "seed"},
     "partition": 0, "timestamp": "2026-01-01T00:00:00Z"}

- ``key`` / ``value``: a string is written as its UTF-8 bytes, null as a null
  key or value (a tombstone), any other JSON value (object, array, number,
  boolean) as its compact JSON text;
- ``key_b64`` / ``value_b64``: raw bytes in base64, instead of ``key`` / ``value``;
- ``headers``: ``{name: string or null}``;
- ``headers_b64``: ``{name: base64}``, header values that are not text (what
  ``record`` writes for them); they follow the ``headers`` ones;
- ``partition``: default, Kafka's default partitioner: murmur2 of the key's
  bytes as the Java client computes it (``toPositive(murmur2(key)) % n``), or
  round-robin for records without a key;
- ``timestamp``: ms since the epoch or an ISO 8601 string (UTC unless it says);
  default, the time the seed is loaded.

A bad object is a `ConfigError` naming where it came from (``file:line``, or
``records[3]`` in a request body) and the field. Files are bounded (`MAX_FILE_BYTES`,
`MAX_LINE_BYTES`), and so is each value, by the line.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka.partitioner.default import murmur2
from kafka.record.default_records import DefaultRecordBatchBuilder

from protoproxy.config_errors import ConfigError

from .batches import read_header

if TYPE_CHECKING:
    from .cluster import FakeKafkaCluster

#: the largest seed file read
MAX_FILE_BYTES = 64 * 1024 * 1024
#: the longest line (one record) read
MAX_LINE_BYTES = 1024 * 1024
#: a seed batch's size: records past it start the next batch
_BATCH_BYTES = 1024 * 1024
FIELDS = (
    "key",
    "key_b64",
    "value",
    "value_b64",
    "headers",
    "headers_b64",
    "partition",
    "timestamp",
)


@dataclass(frozen=True, slots=True)
class SeedRecord:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    partition: int | None = None
    timestamp: int | None = None


class SeedError(ValueError):
    """One bad field: `field` is its name in the object ("" for the object itself)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _bytes_of(obj: Mapping[str, Any], plain: str, b64: str) -> bytes | None:
    if plain in obj and b64 in obj:
        raise SeedError(b64, f"give {plain} or {b64}, not both")
    if b64 in obj:
        text = obj[b64]
        if not isinstance(text, str):
            raise SeedError(b64, "must be a base64 string")
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SeedError(b64, "is not valid base64") from None
    value = obj.get(plain)
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _timestamp(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise SeedError("timestamp", "must be ms since the epoch or an ISO 8601 string")
    if isinstance(value, int):
        if not 0 <= value < 2**63:
            raise SeedError("timestamp", "must be a non-negative number of ms")
        return value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise SeedError("timestamp", f"{value!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int(when.timestamp() * 1000)
    raise SeedError("timestamp", "must be ms since the epoch or an ISO 8601 string")


def parse_record(obj: Any, partitions: int) -> SeedRecord:
    """One seed object, checked against a topic of `partitions` partitions."""
    if not isinstance(obj, dict):
        raise SeedError("", "a seed record is a JSON object")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise SeedError(unknown[0], f"unknown field; fields are {', '.join(FIELDS)}")
    key = _bytes_of(obj, "key", "key_b64")
    value = _bytes_of(obj, "value", "value_b64")
    headers_in = obj.get("headers")
    if headers_in is None:
        headers_in = {}
    if not isinstance(headers_in, dict):
        raise SeedError("headers", "must be an object of {name: string}")
    headers: list[tuple[str, bytes | None]] = []
    for name, text in headers_in.items():
        if text is not None and not isinstance(text, str):
            raise SeedError(f"headers.{name}", "a header value must be a string or null")
        headers.append((name, None if text is None else text.encode()))
    binary_in = obj.get("headers_b64") or {}
    if not isinstance(binary_in, dict):
        raise SeedError("headers_b64", "must be an object of {name: base64}")
    for name, text in binary_in.items():
        if not isinstance(text, str):
            raise SeedError(f"headers_b64.{name}", "a header value must be base64 text")
        try:
            headers.append((name, base64.b64decode(text, validate=True)))
        except (binascii.Error, ValueError):
            raise SeedError(f"headers_b64.{name}", "not base64") from None
    partition = obj.get("partition")
    if partition is not None and (
        isinstance(partition, bool)
        or not isinstance(partition, int)
        or not 0 <= partition < partitions
    ):
        raise SeedError("partition", f"must be a partition of the topic, 0 to {partitions - 1}")
    return SeedRecord(key, value, tuple(headers), partition, _timestamp(obj.get("timestamp")))


def parse_records(objs: Iterable[Any], partitions: int, where: str) -> list[SeedRecord]:
    """Seed objects from a request body; errors name ``where[i].field``."""
    out = []
    for i, obj in enumerate(objs):
        try:
            out.append(parse_record(obj, partitions))
        except SeedError as exc:
            path = f"{where}[{i}]" + (f".{exc.field}" if exc.field else "")
            raise ConfigError([(path, str(exc))]) from None
    return out


def load_file(path: Path, partitions: int) -> list[SeedRecord]:
    """A JSON-lines seed file; blank lines are skipped. Errors name ``file:line`` and the field."""
    source = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError([("", f"cannot read the seed file: {exc.strerror}")], source) from None
    if size > MAX_FILE_BYTES:
        raise ConfigError(
            [("", f"seed file is {size} bytes; the limit is {MAX_FILE_BYTES}")], source
        )
    out = []
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            where = f"{source}:{number}"
            if len(line) > MAX_LINE_BYTES:
                raise ConfigError([("", f"line is longer than {MAX_LINE_BYTES} bytes")], where)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except RecursionError:
                raise ConfigError([("", "nested too deeply")], where) from None
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                raise ConfigError([("", f"not JSON: {exc}")], where) from None
            try:
                out.append(parse_record(obj, partitions))
            except SeedError as exc:
                raise ConfigError([(exc.field, str(exc))], where) from None
    return out


def to_positive(n: int) -> int:
    """Java's Utils.toPositive: the int32 with its sign bit cleared."""
    return n & 0x7FFFFFFF


class Partitioner:
    """Kafka's default partitioner for seeds: murmur2 of the key, else round-robin."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._next = 0

    def __call__(self, record: SeedRecord) -> int:
        if record.partition is not None:
            return record.partition
        if record.key is not None:
            return to_positive(murmur2(record.key)) % self.partitions
        p = self._next
        self._next = (p + 1) % self.partitions
        return p


def append(cluster: FakeKafkaCluster, topic: str, records: list[SeedRecord]) -> dict[int, int]:
    """Write seed records to the topic's logs as producers' batches would be.

    Records for one partition that follow one another go in one batch (up to
    1 MiB). Returns how many records each partition received.
    """
    t = cluster.topology.topics[topic]
    place = Partitioner(len(t.partitions))
    now = int(time.time() * 1000)
    by_partition: dict[int, list[SeedRecord]] = {}
    for rec in records:
        by_partition.setdefault(place(rec), []).append(rec)
    for index, recs in sorted(by_partition.items()):
        p = t.partitions[index]
        for batch in _batches(recs, now):
            p.log.append(read_header(batch), memoryview(batch), p.leader_epoch)
            cluster.records_appended += read_header(batch).record_count
    return {i: len(r) for i, r in by_partition.items()}


def _batches(records: list[SeedRecord], now: int) -> Iterable[bytes]:
    # The builder always takes a batch's first record, however large.
    builder = _builder()
    count = 0
    for rec in records:
        ts = now if rec.timestamp is None else rec.timestamp
        if builder.append(count, ts, rec.key, rec.value, list(rec.headers)) is None:
            yield bytes(builder.build())
            builder, count = _builder(), 0
            builder.append(0, ts, rec.key, rec.value, list(rec.headers))
        count += 1
    if count:
        yield bytes(builder.build())


def _builder() -> DefaultRecordBatchBuilder:
    return DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=_BATCH_BYTES,
    )
