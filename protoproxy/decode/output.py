"""Rows printed: a table, JSON lines, or access-log lines (docs/access-log.md's fields)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any

ACCESS_LOG_FIELDS = (
    "start", "duration", "upstream_connect", "request_duration", "upstream_service_time",
    "response_duration", "proxy_time", "fault_delay", "conn", "downstream", "upstream",
    "protocol", "operation", "status", "request_bytes", "response_bytes", "client_id",
    "record_count", "topics", "errors", "request_messages", "response_messages", "grpc_message",
)  # fmt: skip
_TABLE = (
    "conn",
    "protocol",
    "operation",
    "status",
    "correlation_id",
    "stream_id",
    "duration",
    "client_id",
)


_FRAME_TABLE = ("time", "conn", "direction", "stream_id", "type", "flags", "length")


def jsonl(rows: Iterable[dict[str, Any]], out: IO[str]) -> None:
    for r in rows:
        out.write(json.dumps(r, sort_keys=True) + "\n")


def access_log(rows: Iterable[dict[str, Any]], out: IO[str]) -> None:
    """Only the live access log's keys, in its order; listener is absent (no listener in a capture)."""
    for r in rows:
        out.write(json.dumps({k: r[k] for k in ACCESS_LOG_FIELDS if k in r}) + "\n")


def table(rows: Iterable[dict[str, Any]], out: IO[str], columns: tuple[str, ...] = _TABLE) -> None:
    lines = [[("" if r.get(k) is None else str(r.get(k))) for k in columns] for r in rows]
    widths = [max([len(k), *(len(line[i]) for line in lines)]) for i, k in enumerate(columns)]
    out.write("  ".join(k.ljust(w) for k, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for line in lines:
        out.write("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n")


def frame_table(rows: Iterable[dict[str, Any]], out: IO[str]) -> None:
    table(rows, out, _FRAME_TABLE)
