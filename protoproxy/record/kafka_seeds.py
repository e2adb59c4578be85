"""Produced records as the Kafka fake's seed lines (one JSON object a line).

A line has ``partition``, ``timestamp`` (ms), ``key`` or ``key_b64``,
``value`` or ``value_b64`` (text when the bytes are UTF-8, else base64; a
null key or value is left out), ``headers`` (name to text value, or null)
and ``headers_b64`` (name to base64, for values that are not UTF-8; the
seed loader, testbed/kafka/seeds.py, reads both). A header name repeated in
one record keeps its last value, and text headers come before binary ones on
replay. Header values named like secrets are redacted as HTTP headers are.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from protoproxy_codecs.base import DecodeError
from protoproxy_codecs.kafka import framing, record_view
from protoproxy_codecs.kafka.api_keys import ApiKey
from protoproxy_codecs.kafka.framing import BodyError

from .model import ProduceRequest
from .redact import Redactor


def _limits(max_bytes: int) -> record_view.ViewLimits:
    return record_view.ViewLimits(
        preview_bytes=max_bytes,
        records_per_batch=100_000,
        records_per_message=100_000,
        batches_per_message=10_000,
        headers_per_record=1000,
        decompressed_bytes=max_bytes,
    )


def _field(p: dict[str, Any] | None, name: str, into: dict[str, Any]) -> None:
    raw = record_view.preview_bytes(p)
    if raw is None:
        return
    if p is not None and "text" in p:
        into[name] = p["text"]
    else:
        into[f"{name}_b64"] = base64.b64encode(raw).decode()


class BadProduce(ValueError):
    """A Produce request the recorder could not read (counted, not fatal)."""


def produce_lines(
    req: ProduceRequest, redactor: Redactor, max_bytes: int
) -> Iterator[tuple[str, str]]:
    """(topic, seed line) for every record of the request."""
    try:
        body = framing.decode_body(
            int(ApiKey.PRODUCE), req.api_version, True, req.raw, req.body_at, len(req.raw)
        )
    except BodyError as exc:
        raise BadProduce(str(exc)) from None
    if body is None:
        raise BadProduce(f"Produce v{req.api_version} is not known")
    limits = _limits(max_bytes)
    for td in body.topic_data or ():
        topic = td.name
        for pd in td.partition_data or ():
            records = pd.records
            if not records:
                continue
            budget = record_view.Budget(limits)
            try:
                batches = list(record_view.batches(records, budget))
            except DecodeError as exc:
                raise BadProduce(f"{topic}[{pd.index}]: {exc}") from None
            for batch in batches:
                if batch.get("control") or batch.get("truncated"):
                    continue
                for rec in batch.get("records", ()):
                    if rec.get("partial"):
                        continue
                    yield topic, json.dumps(_line(pd.index, rec, redactor), ensure_ascii=False)


def _line(partition: int, rec: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    line: dict[str, Any] = {"partition": partition, "timestamp": rec.get("timestamp")}
    _field(rec.get("key"), "key", line)
    _field(rec.get("value"), "value", line)
    headers: dict[str, str | None] = {}
    binary: dict[str, str] = {}
    for h in rec.get("headers", ()):
        name_raw = record_view.preview_bytes(h["key"]) or b""
        name = name_raw.decode("utf-8", "replace")
        p = h["value"]
        if p is None:
            headers[name] = None
        elif "text" in p:
            headers[name] = redactor.value(name, p["text"])
        else:
            raw = record_view.preview_bytes(p) or b""
            value = base64.b64encode(raw).decode()
            binary[name] = redactor.value(name, value)
    if headers:
        line["headers"] = headers
    if binary:
        line["headers_b64"] = binary
    return line
