"""Stubs checked against the schema when they are loaded, not when a call comes.

A stub whose `output.data` has a field the response type lacks would otherwise
surface as an INTERNAL error in the middle of a test, far from the file that
caused it. Here every stub's method must exist in the fake's schema and every
answer message must parse as the method's output type; the error names the
stub's file (or "api" for a live POST) and the path inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf import json_format

from .schema import Schema

#: Keys an answer-carrying object may have (GripMock's `output`, our extensions).
_ANSWER_KEYS = ("output",)


class StubCheckError(ValueError):
    """A stub that does not fit the schema."""


def _is_template(value: Any) -> bool:
    """A templated message is filled in per call; its values cannot be checked here."""
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(_is_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_is_template(v) for v in value)
    return False


def _messages(output: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Each answer message of an `output` (data, stream items) with its path."""
    if not isinstance(output, dict):
        return
    if "data" in output and output["data"] is not None:
        yield f"{where}.data", output["data"]
    stream = output.get("stream")
    if isinstance(stream, list):
        for i, item in enumerate(stream):
            if isinstance(item, dict) and set(item) <= {"data", "delay"} and "data" in item:
                yield f"{where}.stream[{i}].data", item["data"]
            else:
                yield f"{where}.stream[{i}]", item


def _outputs(stub: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every answer a stub holds: `output`, each of `sequence`, each bidi step."""
    if "output" in stub:
        yield "output", stub["output"]
    for key in ("sequence", "steps", "script"):
        items = stub.get(key)
        if isinstance(items, list):
            for i, item in enumerate(items):
                if isinstance(item, dict) and "output" in item:
                    yield f"{key}[{i}].output", item["output"]
                elif isinstance(item, dict):
                    yield f"{key}[{i}]", item


def check_stub(stub: dict[str, Any], schema: Schema) -> None:
    """Raise StubCheckError unless `stub` names a method of `schema` and its
    answers parse as that method's output type."""
    where = stub.get("source") or stub.get("_source") or "api"
    ident = stub.get("id")
    label = f"{where}" + (f" (stub {ident})" if ident else "")
    service, method = stub.get("service"), stub.get("method")
    if not isinstance(service, str) or not isinstance(method, str):
        raise StubCheckError(f"{label}: a stub needs `service` and `method`")
    found = schema.find_method(service, method)
    if found is None:
        known = ", ".join(sorted(schema.methods)) or "none"
        raise StubCheckError(
            f"{label}: {service}/{method} is not a method of this fake's schema "
            f"({schema.source}); its methods: {known}"
        )
    for path, output in _outputs(stub):
        for msg_path, message in _messages(output, path):
            if _is_template(message):
                continue
            if not isinstance(message, dict):
                raise StubCheckError(f"{label}: {msg_path}: a message is a JSON object")
            try:
                json_format.ParseDict(message, found.output(), ignore_unknown_fields=False)
            except json_format.ParseError as exc:
                raise StubCheckError(
                    f"{label}: {msg_path}: not a {found.output.DESCRIPTOR.full_name}: {exc}"
                ) from None
