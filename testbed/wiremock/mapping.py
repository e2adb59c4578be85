"""Stub mappings in WireMock's JSON format: parse, validate, and give the same JSON back.

A mapping is validated whole when it is loaded (every matcher built, every
regex compiled, every response field checked), so a bad file fails at start
with its file and path, never on the first request that reaches it.
Unknown fields are errors: WireMock would ignore some of them, but a stub that
silently matches more than its author meant is the worse failure for a test.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import MappingError
from .request_pattern import RequestPattern

DEFAULT_PRIORITY = 5
STARTED = "Started"
#: A mapping file bigger than this is refused before it is read.
MAX_MAPPING_FILE_BYTES = 16 * 1024 * 1024
FAULTS = (
    "CONNECTION_RESET_BY_PEER",
    "EMPTY_RESPONSE",
    "MALFORMED_RESPONSE_CHUNK",
    "RANDOM_DATA_THEN_CLOSE",
)
TEMPLATE_TRANSFORMER = "response-template"
#: Delays longer than this are refused: a fake that hangs a test for hours is a typo.
MAX_DELAY_MS = 10 * 60 * 1000

MAPPING_KEYS = {
    "id",
    "uuid",
    "name",
    "priority",
    "request",
    "response",
    "scenarioName",
    "requiredScenarioState",
    "newScenarioState",
    "persistent",
    "metadata",
    "$schema",
    "insertionIndex",
    "postServeActions",
    "serveEventListeners",
}
RESPONSE_KEYS = {
    "status",
    "statusMessage",
    "headers",
    "body",
    "base64Body",
    "jsonBody",
    "bodyFileName",
    "fixedDelayMilliseconds",
    "delayDistribution",
    "fault",
    "transformers",
    "transformerParameters",
    "chunkedDribbleDelay",
    "proxyBaseUrl",
    "additionalProxyRequestHeaders",
    "removeProxyRequestHeaders",
    "fromConfiguredStub",
}
UNSUPPORTED_RESPONSE_KEYS = {
    "chunkedDribbleDelay",
    "proxyBaseUrl",
    "additionalProxyRequestHeaders",
    "removeProxyRequestHeaders",
}


@dataclass(frozen=True)
class Delay:
    """`fixedDelayMilliseconds` plus an optional `delayDistribution`, in milliseconds."""

    fixed_ms: float = 0.0
    kind: str = ""  # "", "lognormal", "uniform", "fixed"
    a: float = 0.0  # median | lower | milliseconds
    b: float = 0.0  # sigma | upper
    max_value: float | None = None  # lognormal's optional maxValue

    def draw_ms(self, rng: Any) -> float:
        """One delay, as WireMock's LogNormal (round(median * e^(sigma * N(0,1))), redrawn up to
        10 times above maxValue, then capped) and UniformDistribution (whole ms, lower..upper)."""
        extra = 0.0
        if self.kind == "lognormal":
            extra = float(round(self.a * math.exp(self.b * rng.gauss(0.0, 1.0))))
            if self.max_value is not None:
                for _ in range(10):
                    if extra <= self.max_value:
                        break
                    extra = float(round(self.a * math.exp(self.b * rng.gauss(0.0, 1.0))))
                extra = min(extra, self.max_value)
        elif self.kind == "uniform":
            extra = float(rng.randint(int(self.a), int(self.b)))
        elif self.kind == "fixed":
            extra = self.a
        return min(self.fixed_ms + extra, float(MAX_DELAY_MS))


@dataclass(frozen=True)
class ResponseDefinition:
    spec: dict[str, Any]
    status: int
    status_message: str | None
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    body_text: str | None  # the body as text when it came as text (templating works on it)
    body_file: str | None
    delay: Delay
    fault: str | None
    transformers: tuple[str, ...]

    @property
    def templated(self) -> bool:
        return TEMPLATE_TRANSFORMER in self.transformers

    def to_json(self) -> dict[str, Any]:
        """As WireMock shows it: `status` always there (200 when not given)."""
        return {"status": self.status, **self.spec}


@dataclass(frozen=True)
class StubMapping:
    id: str
    priority: int
    request: RequestPattern
    response: ResponseDefinition
    scenario: str | None
    required_state: str | None
    new_state: str | None
    spec: dict[str, Any]
    #: where it came from ("" for the admin API): files survive reset_mappings
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        """The mapping as WireMock 3's admin API shows it: the given JSON, with id and
        uuid, `request.method` ("ANY" when not given) and `response.status` (200)."""
        out: dict[str, Any] = {"id": self.id}
        for key, value in self.spec.items():
            out[key] = value
        request = self.request.to_json()
        if "method" not in request:
            request["method"] = "ANY"
        out["request"] = request
        out["response"] = self.response.to_json()
        out["uuid"] = self.id
        return out


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MappingError(where, f"must be an integer, not {json.dumps(value)[:40]}")
    if not low <= value <= high:
        raise MappingError(where, f"must be between {low} and {high}")
    return value


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingError(where, f"must be a number, not {json.dumps(value)[:40]}")
    if not (low <= value <= high) or math.isnan(value):
        raise MappingError(where, f"must be between {low:g} and {high:g}")
    return float(value)


def _optional_str(spec: dict[str, Any], key: str, where: str) -> str | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise MappingError(f"{where}.{key}", "must be a string")
    return value


def parse_headers(block: Any, where: str) -> tuple[tuple[str, str], ...]:
    """`{"A": "1", "B": ["2", "3"]}` -> pairs (WireMock allows a list for repeated headers)."""
    if block is None:
        return ()
    if not isinstance(block, dict):
        raise MappingError(where, "must be an object of name: value")
    out: list[tuple[str, str]] = []
    for name, value in block.items():
        values = value if isinstance(value, list) else [value]
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                raise MappingError(
                    f"{where}.{name}" + (f"[{i}]" if isinstance(value, list) else ""),
                    "must be a string",
                )
            out.append((name, v if isinstance(v, str) else json.dumps(v)))
    return tuple(out)


def _delay(spec: dict[str, Any], where: str) -> Delay:
    fixed = 0.0
    if spec.get("fixedDelayMilliseconds") is not None:
        fixed = _number(
            spec["fixedDelayMilliseconds"], f"{where}.fixedDelayMilliseconds", 0, MAX_DELAY_MS
        )
    dist = spec.get("delayDistribution")
    if dist is None:
        return Delay(fixed)
    dw = f"{where}.delayDistribution"
    if not isinstance(dist, dict):
        raise MappingError(dw, "must be an object with a type")
    kind = dist.get("type")
    fields = {
        "lognormal": ("median", "sigma", "maxValue"),
        "uniform": ("lower", "upper"),
        "fixed": ("milliseconds",),
    }
    if kind not in fields:
        raise MappingError(
            f"{dw}.type", f"unknown distribution {kind!r} (lognormal, uniform or fixed)"
        )
    for key in dist:
        if key != "type" and key not in fields[kind]:
            raise MappingError(f"{dw}.{key}", f"unknown field for a {kind} distribution")
    values = []
    for key in fields[kind]:
        if key == "maxValue":
            continue
        if key not in dist:
            raise MappingError(f"{dw}.{key}", "missing")
        high = 10.0 if key == "sigma" else float(MAX_DELAY_MS)
        values.append(_number(dist[key], f"{dw}.{key}", 0, high))
    if kind == "uniform" and values[0] > values[1]:
        raise MappingError(dw, "lower is above upper")
    max_value = None
    if kind == "lognormal" and dist.get("maxValue") is not None:
        max_value = _number(dist["maxValue"], f"{dw}.maxValue", 0, float(MAX_DELAY_MS))
        if max_value < values[0]:
            raise MappingError(f"{dw}.maxValue", "must be at least the median")
    return Delay(fixed, kind, values[0], values[1] if len(values) > 1 else 0.0, max_value)


def parse_response(spec: Any, where: str = "response") -> ResponseDefinition:
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise MappingError(where, "must be an object")
    for key in spec:
        if key not in RESPONSE_KEYS:
            raise MappingError(f"{where}.{key}", "unknown field")
        if key in UNSUPPORTED_RESPONSE_KEYS:
            raise MappingError(f"{where}.{key}", "not supported by the testbed's WireMock engine")
    status = _int(spec.get("status", 200), f"{where}.status", 100, 999)
    bodies = [k for k in ("body", "base64Body", "jsonBody", "bodyFileName") if k in spec]
    if len(bodies) > 1:
        raise MappingError(where, "only one of " + ", ".join(bodies))
    body: bytes | None = None
    body_text: str | None = None
    body_file: str | None = None
    if "body" in spec:
        if not isinstance(spec["body"], str):
            raise MappingError(f"{where}.body", "must be a string (use jsonBody for JSON)")
        body_text = spec["body"]
        body = body_text.encode()
    elif "base64Body" in spec:
        raw = spec["base64Body"]
        try:
            body = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
        except binascii.Error:
            body = None
        if body is None:
            raise MappingError(f"{where}.base64Body", "must be base64 text")
    elif "jsonBody" in spec:
        body_text = json.dumps(spec["jsonBody"], ensure_ascii=False, separators=(",", ":"))
        body = body_text.encode()
    elif "bodyFileName" in spec:
        body_file = _optional_str(spec, "bodyFileName", where)
        if body_file is None or not body_file:
            raise MappingError(f"{where}.bodyFileName", "must be a file name under __files/")
        if "{{" not in body_file:
            check_body_file_name(body_file, f"{where}.bodyFileName")
    fault = spec.get("fault")
    if fault is not None and fault not in FAULTS:
        raise MappingError(
            f"{where}.fault", f"unknown fault {fault!r} (one of {', '.join(FAULTS)})"
        )
    transformers = spec.get("transformers", [])
    if not isinstance(transformers, list) or not all(isinstance(t, str) for t in transformers):
        raise MappingError(f"{where}.transformers", "must be a list of names")
    for i, name in enumerate(transformers):
        if name != TEMPLATE_TRANSFORMER:
            raise MappingError(
                f"{where}.transformers[{i}]",
                f"unknown transformer {name!r} (only {TEMPLATE_TRANSFORMER})",
            )
    params = spec.get("transformerParameters")
    if params is not None and not isinstance(params, dict):
        raise MappingError(f"{where}.transformerParameters", "must be an object")
    return ResponseDefinition(
        spec=dict(spec),
        status=status,
        status_message=_optional_str(spec, "statusMessage", where),
        headers=parse_headers(spec.get("headers"), f"{where}.headers"),
        body=body,
        body_text=body_text,
        body_file=body_file,
        delay=_delay(spec, where),
        fault=fault,
        transformers=tuple(transformers),
    )


def check_body_file_name(name: str, where: str) -> PurePosixPath:
    """A body file stays inside `__files/`: no absolute paths, no `..`."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise MappingError(where, f"{name!r} leaves __files/")
    return path


def parse_mapping(spec: Any, new_id: str, where: str = "", source: str = "") -> StubMapping:
    """One mapping object -> StubMapping. `new_id` is used when the mapping names none."""
    prefix = f"{where}." if where else ""
    if not isinstance(spec, dict):
        raise MappingError(where, "a mapping must be a JSON object")
    for key in spec:
        if key not in MAPPING_KEYS:
            raise MappingError(f"{prefix}{key}", "unknown field")
    if "request" not in spec:
        raise MappingError(f"{prefix}request", "missing")
    mapping_id = spec.get("id") or spec.get("uuid") or new_id
    if not isinstance(mapping_id, str) or not 0 < len(mapping_id) <= 64:
        raise MappingError(f"{prefix}id", "must be a UUID string")
    priority = DEFAULT_PRIORITY
    if spec.get("priority") is not None:
        priority = _int(spec["priority"], f"{prefix}priority", 1, 2**31 - 1)
    scenario = _optional_str(spec, "scenarioName", where or "mapping")
    required = _optional_str(spec, "requiredScenarioState", where or "mapping")
    new_state = _optional_str(spec, "newScenarioState", where or "mapping")
    if (required or new_state) and not scenario:
        raise MappingError(
            f"{prefix}scenarioName", "required with requiredScenarioState/newScenarioState"
        )
    request = RequestPattern.parse(spec["request"], f"{prefix}request")
    response = parse_response(spec.get("response"), f"{prefix}response")
    name = spec.get("name")
    if name is not None and not isinstance(name, str):
        raise MappingError(f"{prefix}name", "must be a string")
    if spec.get("metadata") is not None and not isinstance(spec["metadata"], dict):
        raise MappingError(f"{prefix}metadata", "must be an object")
    clean = {k: v for k, v in spec.items() if k not in ("id", "uuid", "insertionIndex", "$schema")}
    return StubMapping(
        mapping_id, priority, request, response, scenario, required, new_state, clean, source
    )


def read_mapping_file(path: Path) -> list[Any]:
    """The mapping objects in one file: a single mapping, or `{"mappings": [...]}`."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MappingError("", f"cannot read: {exc.strerror}", str(path)) from None
    if size > MAX_MAPPING_FILE_BYTES:
        raise MappingError("", f"{size} bytes (limit {MAX_MAPPING_FILE_BYTES})", str(path))
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise MappingError("", f"not JSON: {exc}", str(path)) from None
    if isinstance(document, dict) and "mappings" in document and "request" not in document:
        items = document["mappings"]
        if not isinstance(items, list):
            raise MappingError("mappings", "must be a list", str(path))
        return items
    return [document]
