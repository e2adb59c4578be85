"""Stubs checked against the schema when they are loaded, not when a call comes.

A stub whose `output.data` has a field the response type lacks would otherwise
surface as an INTERNAL error in the middle of a test, far from the file that
caused it, and a matcher on a misspelt request field would silently never
match. Here every stub's method must exist in the fake's schema, every field a
matcher names must exist in the request type, and every answer message must
parse as the method's output type; the error names the stub's file (or "api"
for a live POST) and the path inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf import any_pb2, json_format
from google.protobuf.descriptor import Descriptor

from .schema import Schema
from .wire import from_dict


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


def _messages(output: Any, where: str, streams: bool) -> Iterator[tuple[str, Any]]:
    """Each answer message of an `output` (data, stream items) with its path;
    `streams` for a method that answers with a stream, where GripMock v1 wrote
    the messages as a `data` list."""
    if not isinstance(output, dict):
        return
    data = output.get("data")
    if isinstance(data, list) and streams:
        for i, item in enumerate(data):
            yield f"{where}.data[{i}]", item
    elif data is not None:
        yield f"{where}.data", data
    stream = output.get("stream")
    if isinstance(stream, list):
        for i, item in enumerate(stream):
            if isinstance(item, dict) and "_gripmock" in item:
                meta = item["_gripmock"]
                if isinstance(meta, dict) and {"error", "code", "details"} & set(meta):
                    return  # GripMock's error element: the stream ends here
                yield f"{where}.stream[{i}]", {k: v for k, v in item.items() if k != "_gripmock"}
            elif isinstance(item, dict) and set(item) <= {"data", "delay"} and "data" in item:
                yield f"{where}.stream[{i}].data", item["data"]
            else:
                yield f"{where}.stream[{i}]", item


def _outputs(stub: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every answer a stub holds: its `output`, or each entry of its `sequence`."""
    if "output" in stub:
        yield "output", stub["output"]
    items = stub.get("sequence")
    if isinstance(items, list):
        for i, item in enumerate(items):
            yield f"sequence[{i}]", item


def _details(output: Any, where: str) -> Iterator[tuple[str, Any]]:
    """The rich error details of an output, and of GripMock's stream error element."""
    if not isinstance(output, dict):
        return
    if isinstance(output.get("details"), list):
        yield f"{where}.details", output["details"]
    stream = output.get("stream")
    for i, item in enumerate(stream if isinstance(stream, list) else []):
        meta = item.get("_gripmock") if isinstance(item, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get("details"), list):
            yield f"{where}.stream[{i}]._gripmock.details", meta["details"]


def _check_details(details: list[Any], schema: Schema, where: str) -> None:
    """Each detail must be an Any of a type the fake knows (google.rpc's error
    details, or the user's own), with fields that fit it."""
    for i, detail in enumerate(details):
        if not isinstance(detail, dict) or _is_template(detail):
            continue  # the engine refuses a non-object; a template is filled per call
        kind = detail.get("@type", detail.get("type"))
        if not isinstance(kind, str):
            raise StubCheckError(f"{where}[{i}]: needs '@type' (or 'type'), a type URL")
        body = {k: v for k, v in detail.items() if k not in ("@type", "type")}
        try:
            json_format.ParseDict(
                {"@type": kind, **body}, any_pb2.Any(), descriptor_pool=schema.pool
            )
        except (json_format.ParseError, TypeError, KeyError) as exc:
            raise StubCheckError(f"{where}[{i}]: not a usable {kind}: {exc}") from None


#: A stub's matcher keys, as given or in snake_case (the engine takes both).
_MATCH_BLOCKS = ("equals", "contains", "matches", "glob")


def _matchers(stub: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every request matcher of a stub: `input`, each of `inputs`, `inputsAny`."""
    if "input" in stub:
        yield "input", stub["input"]
    for key in ("inputs", "inputsAny", "inputs_any"):
        items = stub.get(key)
        if isinstance(items, list):
            for i, item in enumerate(items):
                yield f"{key}[{i}]", item


def _check_matcher(matcher: Any, message: Descriptor, where: str) -> None:
    """A matcher on a field the request type lacks never matches: refuse it,
    naming the fields there are (a camelCase JSON name gets its proto name)."""
    if not isinstance(matcher, dict):
        return  # the engine has refused it already
    for kind in _MATCH_BLOCKS:
        block = matcher.get(kind)
        if isinstance(block, dict):
            _check_fields(block, message, f"{where}.{kind}")
    for key in ("anyOf", "any_of"):
        alternatives = matcher.get(key)
        if isinstance(alternatives, list):
            for i, alt in enumerate(alternatives):
                _check_matcher(alt, message, f"{where}.{key}[{i}]")


def _check_fields(block: dict[str, Any], message: Descriptor, where: str) -> None:
    for name, value in block.items():
        field = message.fields_by_name.get(name)
        if field is None:
            by_json = {f.json_name: f.name for f in message.fields}
            hint = f"; the proto name of {name!r} is {by_json[name]!r}" if name in by_json else ""
            known = ", ".join(f.name for f in message.fields) or "none"
            raise StubCheckError(
                f"{where}.{name}: {message.full_name} has no field {name!r} "
                f"(its fields: {known}){hint}"
            )
        sub = field.message_type
        if (
            sub is not None
            and isinstance(value, dict)
            and not sub.GetOptions().map_entry
            and not sub.full_name.startswith("google.protobuf.")
        ):
            _check_fields(value, sub, f"{where}.{name}")


def check_stub(stub: dict[str, Any], schema: Schema, where: str) -> None:
    """Raise StubCheckError unless `stub` names a method of `schema` and its
    answers parse as that method's output type. `where` names the stub: its
    file and place in it (``stubs/a.yaml: [2]``), or ``api``."""
    ident = stub.get("id")
    label = where + (f" (stub {ident})" if ident else "")
    service, method = stub.get("service"), stub.get("method")
    if not isinstance(service, str) or not isinstance(method, str):
        raise StubCheckError(f"{label}: a stub needs `service` and `method`")
    found = schema.find_method(service, method.rpartition("/")[2])
    if found is None:
        known = ", ".join(sorted(schema.methods)) or "none"
        raise StubCheckError(
            f"{label}: {service}/{method} is not a method of this fake's schema "
            f"({schema.source}); its methods: {known}"
        )
    for path, matcher in _matchers(stub):
        _check_matcher(matcher, found.input.DESCRIPTOR, f"{label}: {path}")
    for path, output in _outputs(stub):
        for details_path, details in _details(output, path):
            _check_details(details, schema, f"{label}: {details_path}")
        streams = found.kind in ("server_stream", "bidi")
        for msg_path, message in _messages(output, path, streams):
            if _is_template(message):
                continue
            try:
                from_dict(message, found.output)
            except json_format.ParseError as exc:
                raise StubCheckError(
                    f"{label}: {msg_path}: not a {found.output.DESCRIPTOR.full_name}: {exc}"
                ) from None
