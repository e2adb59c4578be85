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
    direct: list[str] = []
    children: list[tuple[str, bool, Walker]] = []
    for field in struct.fields.values():
        if not field.for_version_q(version):
            continue
        if field.type_str == "int16" and field.name.endswith("error_code"):
            direct.append(field.name)
        elif field.is_struct():
            sub = _compile_error_walker(field, version)
            if sub is not None:
                children.append((field.name, False, sub))
        elif field.is_struct_array():
            sub = _compile_error_walker(field.array_of, version)
            if sub is not None:
                children.append((field.name, True, sub))
    if not direct and not children:
        return None

    def walk(obj: Any, out: list[int]) -> None:
        for name in direct:
            code = getattr(obj, name)
            if code:
                out.append(code)
        for name, is_array, sub in children:
            value = getattr(obj, name)
            if value is None:
                continue
            if is_array:
                for item in value:
                    sub(item, out)
            else:
                sub(value, out)

    return walk


def error_codes(api_key: int, version: int, body: Any) -> list[int]:
    """Every non-zero error code in a decoded response, in wire order."""
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
    if name is not None:
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

    def add(self, topic: str, partition: int, data: Any) -> None:
        parts = self.by_partition.get(topic)
        if parts is None:
            parts = self.by_partition[topic] = {}
            self.topics.append(topic)
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
        for part in topic.partition_data or ():
            tally.add(key, part.index, part.records)
    return tally


def fetch_response(body: Any) -> RecordsTally:
    tally = RecordsTally()
    for topic in body.responses or ():
        key = _topic_key(topic.topic, topic.topic_id)
        for part in topic.partitions or ():
            tally.add(key, part.partition_index, part.records)
    return tally


def fetch_request_topics(body: Any) -> list[str]:
    return [_topic_key(t.topic, t.topic_id) for t in body.topics or ()]
