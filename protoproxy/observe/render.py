"""Tail entries as JSON for /messages: filters, lazy decoding, redaction.

This is where the cost of decoding is paid, once per entry served rather than
per message relayed. Everything served passes through the redaction rules:
secret Kafka frames show sizes only, credential headers show `<redacted>`,
and raw bytes are never served (an HTTP/1 head's raw bytes hold its headers).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protoproxy_codecs.kafka import record_view
from protoproxy_codecs.protobuf_display import DescriptorCatalog, RawLimits, display_grpc_message

from .redact import REDACTED, SECRET_HEADERS, header_pairs
from .tail import MAX_ENTRY_RENDERED, Entry

_DISPLAY = RawLimits()
_MAX_DEPTH = 8
_MAX_ITEMS = 200
_MAX_BYTES_SHOWN = 256
_SKIP_INFO = frozenset({"headers", "grpc_messages", "secret", "size", "injected", "not_forwarded"})
_BYTES = (bytes, bytearray, memoryview)


@dataclass(frozen=True, slots=True)
class Query:
    """/messages filters; every one given must match."""

    listener: str | None = None
    protocol: str | None = None
    api: str | None = None  # Kafka API name, e.g. Produce
    topic: str | None = None  # Kafka topic named by the request
    method: str | None = None  # gRPC method: full path or its last part
    conn: int | None = None
    decode: bool = True

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Query:
        conn = params.get("conn")
        return cls(
            listener=params.get("listener") or None,
            protocol=params.get("protocol") or None,
            api=params.get("api") or None,
            topic=params.get("topic") or None,
            method=params.get("method") or None,
            conn=int(conn) if conn and conn.isdigit() else None,
            decode=params.get("decode", "1") not in ("0", "false", "no"),
        )

    def matches(self, e: Entry) -> bool:
        if self.listener is not None and e.listener != self.listener:
            return False
        if self.conn is not None and e.conn_id != self.conn:
            return False
        # gRPC rides on HTTP/2: "grpc" selects HTTP/2 streams that carry a call.
        if (
            self.protocol is not None
            and self.protocol != e.protocol
            and not (self.protocol == "grpc" and e.protocol == "http2" and e.method)
        ):
            return False
        info = e.message.info or {}
        if self.api is not None and info.get("api") != self.api:
            return False
        if self.topic is not None:
            topics = info.get("topics") or ()
            if self.topic not in topics:
                return False
        if self.method is not None:
            m = e.method
            if m is None or not (m == self.method or m.rsplit("/", 1)[-1] == self.method):
                return False
        return True


def entry_json(
    e: Entry, decode: bool = True, catalog: DescriptorCatalog | None = None
) -> dict[str, Any]:
    msg = e.message
    info = msg.info or {}
    secret = bool(info.get("secret"))
    out: dict[str, Any] = {
        "seq": e.seq,
        "time": e.ts,
        "conn": e.conn_id,
        "listener": e.listener,
        "protocol": e.protocol,
        "direction": e.direction.name.lower(),
        "kind": msg.kind,
        "size": info.get("size", len(msg.raw)) if secret else len(msg.raw),
        "key": _jsonable(msg.key, 0),
    }
    if e.method is not None:
        out["method"] = e.method
    injected = info.get("injected")
    if injected is not None:
        out["injected"] = True  # made up by the proxy: no peer sent it
        out["fault"] = injected
    not_forwarded = info.get("not_forwarded")
    if not_forwarded is not None:
        out["forwarded"] = False  # a fault answered it; its receiver never saw it
        out["fault"] = not_forwarded
    out["info"] = {k: _jsonable(v, 0) for k, v in info.items() if k not in _SKIP_INFO}
    headers = info.get("headers")
    if headers is not None:
        out["headers"] = header_pairs(headers)
    if secret:
        out["secret"] = True
        out["view"] = REDACTED
        return out
    events = info.get("grpc_messages")
    if events:
        out["grpc_messages"] = [
            {
                "index": ev.index,
                "compressed": bool(ev.compressed),
                "length": len(ev.payload),
                **(
                    {
                        "display": display_grpc_message(
                            ev.payload,
                            compressed=False,
                            limits=_DISPLAY,
                            catalog=catalog,
                            path=e.method,
                            direction=e.direction,
                        )
                    }
                    if decode and not ev.compressed
                    else {}
                ),
            }
            for ev in events
        ]
    if decode and e.protocol == "kafka":
        out["view"] = _kafka_view(msg.view)
    return out


def dumps(obj: object) -> str:
    return json.dumps(obj, default=str, separators=(",", ":"))


#: What a served entry gives up, in this order, when its JSON is too large.
_SHED = (("view", "grpc_messages", "info"), ("headers",))


def entry_text(
    e: Entry,
    decode: bool = True,
    catalog: DescriptorCatalog | None = None,
    limit: int = MAX_ENTRY_RENDERED,
) -> str:
    """`entry_json` as JSON text of at most about `limit` bytes.

    Decoded views are bounded in items and depth, not in bytes, and a few KB
    on the wire can decode to megabytes; past `limit` the decoded parts are
    replaced by ``"truncated": {"rendered_bytes": n}``, the entry's summary
    (seq, sizes, kind, method...) staying whole.
    """
    out = entry_json(e, decode, catalog)
    text = dumps(out)
    if len(text) <= limit:
        return text
    full = len(text)
    for keys in _SHED:
        for k in keys:
            out.pop(k, None)
        out["truncated"] = {"rendered_bytes": full}
        text = dumps(out)
        if len(text) <= limit:
            break
    return text


def _kafka_view(view: Any) -> Any:
    """A decoded Kafka body; its ``records`` fields opened into records.

    kafka-python's raw field values (``json=False``) keep bytes as bytes, so
    they are shown bounded as hex, and record sets by `record_view`, within
    one budget per message.
    """
    if view is None:
        return None
    to_dict = getattr(view, "to_dict", None)
    budget = record_view.Budget()
    if to_dict is not None:
        try:
            return _jsonable(to_dict(json=False), 0, budget)
        except (TypeError, ValueError, AttributeError, KeyError):
            return {"repr": repr(view)[:1000]}
    return _jsonable(view, 0, budget)


def _jsonable(v: Any, depth: int, records: record_view.Budget | None = None) -> Any:
    """Bounded conversion to JSON types: deep or huge decoded bodies are cut.

    With a `records` budget, a bytes value under the key ``records`` is a
    Kafka record set and is shown as its records.
    """
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if depth >= _MAX_DEPTH:
        return "..."
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, _BYTES):
        b = bytes(v[:_MAX_BYTES_SHOWN])
        d: dict[str, Any] = {"hex": b.hex()}
        if len(v) > _MAX_BYTES_SHOWN:
            d["length"] = len(v)
        return d
    if isinstance(v, Mapping):
        items = list(v.items())[:_MAX_ITEMS]
        return {
            str(k): (
                record_view.view(x, records)
                if records is not None and k == "records" and isinstance(x, _BYTES)
                else _jsonable(x, depth + 1, records)
            )
            for k, x in items
        }
    if isinstance(v, (list, tuple, set, frozenset)):
        seq = list(v)
        out = [_jsonable(x, depth + 1, records) for x in seq[:_MAX_ITEMS]]
        if len(seq) > _MAX_ITEMS:
            out.append(f"... {len(seq) - _MAX_ITEMS} more")
        return out
    if hasattr(v, "_asdict"):
        return _jsonable(v._asdict(), depth + 1, records)
    return repr(v)[:200]


def collect_secrets(entries: list[Entry], into: set[str]) -> set[str]:
    """Values of credential headers among `entries`, to scrub wherever else they show.

    A service may echo a request's metadata in its response body (the
    testbed's does); the header itself is redacted, and this catches the echo.
    """
    for e in entries:
        info = e.message.info
        if not info:
            continue
        headers = info.get("headers")
        if not headers:
            continue
        for name, value in headers:
            if isinstance(name, bytes):
                name = name.decode("latin-1")
                value = value.decode("latin-1")
            if name.lower() in SECRET_HEADERS and len(value) >= 4:
                into.add(value)
    return into


def scrub_literals(text: str, secrets: set[str]) -> str:
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return text
