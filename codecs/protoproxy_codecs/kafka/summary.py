"""The few body facts metrics need, pulled from decoded kafka-python messages.

Walkers are generated from the schema (which fields lead to an ``error_code``),
not written per API, so a new API version needs no code here. Produce and
Fetch get dedicated summaries because record counts are their whole point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import records as _records
from . import schema

Walker = Callable[[Any, list[int]], None]

_error_walkers: dict[tuple[int, int], Walker | None] = {}


def _compile_error_walker(struct: Any, version: int) -> Walker | None:
    # (name, kind, sub-walker) in schema order, which is wire order for
    # untagged fields; kind: 0 error code, 1 struct, 2 struct array.
    steps: list[tuple[str, int, Walker | None]] = []
    for field in struct.fields.values():
        if not field.for_version_q(version) or field.tagged_field_q(version):
            continue
        if field.type_str == "int16" and field.name.endswith("error_code"):
            steps.append((field.name, 0, None))
        elif field.is_struct():
            sub = _compile_error_walker(field, version)
            if sub is not None:
                steps.append((field.name, 1, sub))
        elif field.is_struct_array():
            sub = _compile_error_walker(field.array_of, version)
            if sub is not None:
                steps.append((field.name, 2, sub))
    if not steps:
        return None

    def walk(obj: Any, out: list[int]) -> None:
        for name, kind, sub in steps:
            value = getattr(obj, name)
            if kind == 0:
                if value:
                    out.append(value)
            elif value is None:
                continue
            elif kind == 1:
                sub(value, out)  # type: ignore[misc]
            else:
                for item in value:
                    sub(item, out)  # type: ignore[misc]

    return walk


def error_codes(api_key: int, version: int, body: Any) -> list[int]:
    """Every non-zero error code in a decoded response, in wire order.

    The codec's hot path gets the same list from the scanner; this walk over
    a kafka-python object is for views already decoded (and for tests).
    """
    key = (api_key, version)
    try:
        walker = _error_walkers[key]
    except KeyError:
        cls = schema.response_class(api_key, version)
        walker = None if cls is None else _compile_error_walker(cls[None]._struct, version)
        _error_walkers[key] = walker
    out: list[int] = []
    if walker is not None:
        walker(body, out)
    return out


def error_counts(codes: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for code in codes:
        name = schema.error_name(code)
        counts[name] = counts.get(name, 0) + 1
    return counts


def _topic_key(name: str | None, topic_id: Any) -> str:
    """The topic's name, or its id (v13+ Produce/Fetch carry only ids)."""
    if name:
        return name
    return str(topic_id) if topic_id is not None else ""


class RecordsTally:
    """Per topic-partition record counts and bytes, plus totals."""

    __slots__ = ("by_partition", "bytes", "records", "topics")

    def __init__(self) -> None:
        self.topics: list[str] = []
        # topic -> partition -> [records, bytes]
        self.by_partition: dict[str, dict[int, list[int]]] = {}
        self.records = 0
        self.bytes = 0

    def topic(self, topic: str) -> dict[int, list[int]]:
        parts = self.by_partition.get(topic)
        if parts is None:
            parts = self.by_partition[topic] = {}
            self.topics.append(topic)
        return parts

    def add(self, topic: str, partition: int, data: Any) -> None:
        parts = self.topic(topic)
        if data is None:
            parts[partition] = [0, 0]
            return
        s = _records.summarize(data)
        parts[partition] = [s.records, s.size]
        self.records += s.records
        self.bytes += s.size


def produce_request(body: Any) -> RecordsTally:
    tally = RecordsTally()
    for topic in body.topic_data or ():
        key = _topic_key(topic.name, topic.topic_id)
        tally.topic(key)
        for part in topic.partition_data or ():
            tally.add(key, part.index, part.records)
    return tally


def fetch_response(body: Any) -> RecordsTally:
    tally = RecordsTally()
    for topic in body.responses or ():
        key = _topic_key(topic.topic, topic.topic_id)
        tally.topic(key)
        for part in topic.partitions or ():
            tally.add(key, part.partition_index, part.records)
    return tally


def fetch_request_topics(body: Any) -> list[str]:
    return [_topic_key(t.topic, t.topic_id) for t in body.topics or ()]


class Facts:
    """What the scanner's events say about one body."""

    __slots__ = (
        "acks",
        "errors",
        "failed",
        "partition_errors",
        "tagged_sections",
        "tally",
        "throttle_ms",
        "trailing",
        "transactional_id",
        "watermarks",
    )

    def __init__(self) -> None:
        self.errors: list[int] = []
        #: (topic, partition) pairs whose error code was not zero
        self.failed: set[tuple[str, int]] | None = None
        #: (topic, partition, error code) for each non-zero partition-level code
        self.partition_errors: list[tuple[str, int, int]] | None = None
        #: (topic, partition, high watermark) from Fetch responses (-1: unknown, left out)
        self.watermarks: list[tuple[str, int, int]] | None = None
        self.tally: RecordsTally | None = None
        self.acks: int | None = None
        self.transactional_id: str | None = None
        self.throttle_ms = 0
        self.tagged_sections = 0
        self.trailing = 0


def _event_topic(value: Any) -> str:
    """A topic event's key: the name, or the id as text (v13+ carry only ids)."""
    return value if type(value) is str else ("" if value is None else str(value))


def digest(events: list[tuple[str, Any]]) -> Facts:
    """Fold scanner events (in wire order) into errors, acks and records per partition."""
    facts = Facts()
    tally = None
    parts: dict[int, list[int]] | None = None
    partition = -1
    topic = ""  # the topic the partition events that follow belong to
    # Produce responses: an error code after a partition index fails that partition
    in_ack_partition = False
    for tag, value in events:
        if tag == "records":
            if parts is None:
                continue
            if value is None:
                parts[partition] = [0, 0]
                continue
            s = _records.summarize(value)
            parts[partition] = [s.records, s.size]
            tally.records += s.records  # type: ignore[union-attr]
            tally.bytes += s.size  # type: ignore[union-attr]
        elif tag == "partition":
            partition = value
        elif tag == "hw":
            if value >= 0:
                if facts.watermarks is None:
                    facts.watermarks = []
                facts.watermarks.append((topic, partition, value))
        elif tag == "topic":
            if tally is None:
                tally = facts.tally = RecordsTally()
            topic = key = _event_topic(value)
            parts = tally.by_partition.get(key)
            if parts is None:
                parts = tally.by_partition[key] = {}
                tally.topics.append(key)
        elif tag == "perror":
            facts.errors.append(value)
            if facts.partition_errors is None:
                facts.partition_errors = []
            facts.partition_errors.append((topic, partition, value))
            if in_ack_partition:
                if facts.failed is None:
                    facts.failed = set()
                facts.failed.add((topic, partition))
        elif tag == "error":
            facts.errors.append(value)
        elif tag == "ptopic":
            topic = _event_topic(value)
        elif tag == "ack_partition":
            partition = value
            in_ack_partition = True
        elif tag == "ack_topic":
            topic = _event_topic(value)
        elif tag == "throttle":
            facts.throttle_ms = value
        elif tag == "acks":
            facts.acks = value
        elif tag == "txn":
            facts.transactional_id = value
        elif tag == "tags":
            facts.tagged_sections += 1
        elif tag == "trailing":
            facts.trailing = value
    return facts
