"""One stub dict (GripMock's format plus our extensions), checked and compiled.

Checking happens once, when a stub is loaded: every problem is a StubError
naming the source and the path (``[2].output.code``), and matchers, regular
expressions and templates are compiled then, so a call never meets a broken stub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from testbed.grpc_stubs.match import Matcher, glob_regex
from testbed.grpc_stubs.reply import StubError, status_name
from testbed.grpc_stubs.template import TemplateError, compile_string

#: Longest delay a stub may ask for: a test waits, it does not hang.
MAX_DELAY = 3600.0
#: Most messages one stream (or sequence) may list.
MAX_ITEMS = 100_000

_STUB_KEYS = {
    "id",
    "service",
    "method",
    "priority",
    "input",
    "inputs",
    "inputsAny",
    "headers",
    "options",
    "output",
    "times",
    "sequence",
    "sequenceRepeat",
    "session",
    "_meta",
    "description",
}
_OUTPUT_KEYS = {
    "data",
    "stream",
    "error",
    "code",
    "details",
    "headers",
    "trailers",
    "delay",
    "failAfter",
}
_MATCHER_KEYS = {"equals", "contains", "matches", "glob", "anyOf", "ignoreArrayOrder"}
_REPEAT = ("last", "cycle", "exhaust")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _fail(where: str, message: str) -> StubError:
    # a file holding one stub has the root as its path: "a.yaml: output.code", not ": .output"
    where = where.replace(": .", ": ").lstrip(".").removesuffix(": ")
    return StubError(f"{where}: {message}")


def _norm_keys(obj: dict[str, Any], known: set[str], where: str) -> dict[str, Any]:
    """Accept `snake_case` spellings of our camelCase keys; refuse unknown keys by name."""
    from testbed.grpc_stubs.match import camel

    out: dict[str, Any] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise _fail(where, f"key {key!r} is not a string")
        name = key if key in known else camel(key)
        if name not in known:
            raise _fail(f"{where}.{key}", f"unknown field (known: {', '.join(sorted(known))})")
        if name in out:
            raise _fail(f"{where}.{key}", f"given twice (as {name!r} too)")
        out[name] = value
    return out


def parse_duration(value: Any, where: str) -> float:
    """GripMock's Go durations ("100ms", "1h30m", "2.5s") or a number of seconds."""
    if isinstance(value, bool) or value is None:
        raise _fail(where, f"want a duration like '100ms', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text in ("", "0"):
            return 0.0
        pos, seconds = 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNIT[m.group(2)]
            pos = m.end()
        if pos != len(text) or pos == 0:
            raise _fail(where, f"want a duration like '100ms' or '1.5s', got {value!r}")
    else:
        raise _fail(where, f"want a duration like '100ms', got {value!r}")
    if not 0 <= seconds <= MAX_DELAY:
        raise _fail(where, f"delay {value!r} is outside 0..{MAX_DELAY:g}s")
    return seconds


def _obj(value: Any, where: str, *, allow_none: bool = True) -> dict[str, Any]:
    if value is None and allow_none:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, f"want an object, got {type(value).__name__}")
    return value


def _patterns(value: Any, where: str, glob: bool) -> Any:
    if isinstance(value, dict):
        return {k: _patterns(v, f"{where}.{k}", glob) for k, v in value.items()}
    if isinstance(value, list):
        return [_patterns(v, f"{where}[{i}]", glob) for i, v in enumerate(value)]
    if isinstance(value, bool):
        value = "true" if value else "false"
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise _fail(where, f"want a pattern string, got {value!r}")
    if len(value) > 10_000:
        raise _fail(where, "pattern longer than 10000 characters")
    try:
        return re.compile(glob_regex(value) if glob else value)
    except re.error as e:
        raise _fail(where, f"bad {'glob' if glob else 'regular expression'} {value!r}: {e}") from e


def parse_matcher(
    value: Any, where: str, *, headers: bool = False, nested: bool = False
) -> Matcher:
    body = _norm_keys(_obj(value, where), _MATCHER_KEYS, where)
    m = Matcher(headers=headers)
    for name in ("equals", "contains"):
        block = _obj(body.get(name), f"{where}.{name}")
        if headers:
            block = {
                str(k).lower(): _header_value(v, f"{where}.{name}.{k}") for k, v in block.items()
            }
        setattr(m, name, block)
    for name in ("matches", "glob"):
        block = _obj(body.get(name), f"{where}.{name}")
        if headers:
            block = {str(k).lower(): v for k, v in block.items()}
        setattr(m, name, _patterns(block, f"{where}.{name}", name == "glob"))
    unordered = body.get("ignoreArrayOrder", False)
    if not isinstance(unordered, bool):
        raise _fail(f"{where}.ignoreArrayOrder", f"want true or false, got {unordered!r}")
    m.unordered = unordered
    alts = body.get("anyOf")
    if alts is not None:
        if nested:
            raise _fail(f"{where}.anyOf", "anyOf cannot nest inside anyOf (GripMock's rule)")
        if not isinstance(alts, list) or not alts:
            raise _fail(f"{where}.anyOf", "want a non-empty list of matchers")
        m.any_of = [
            parse_matcher(a, f"{where}.anyOf[{i}]", headers=headers, nested=True)
            for i, a in enumerate(alts)
        ]
    return m


def _header_value(value: Any, where: str) -> str:
    if isinstance(value, dict | list) or value is None:
        raise _fail(where, f"a header value is a string, got {value!r}")
    return (
        value
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


@dataclass
class StreamItem:
    message: Any
    delay: float | None


@dataclass
class Output:
    """One compiled `output` (or one entry of `sequence`)."""

    data: Any = None
    has_data: bool = False
    stream: list[StreamItem] = field(default_factory=list)
    has_stream: bool = False
    status: str = "OK"
    error: Any = ""
    details: list[Any] = field(default_factory=list)
    headers: dict[Any, Any] = field(default_factory=dict)
    trailers: dict[Any, Any] = field(default_factory=dict)
    delay: float = 0.0
    #: send this many stream messages, then end with `status`
    fail_after: int | None = None


def _compile(value: Any, where: str) -> Any:
    """Every string of a JSON tree (keys too) compiled, a bad one named by its path."""
    if isinstance(value, str):
        try:
            return compile_string(value)
        except TemplateError as e:
            raise _fail(where, f"template: {e}") from e
    if isinstance(value, dict):
        return {_compile(k, where): _compile(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_compile(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _metadata(value: Any, where: str) -> dict[Any, Any]:
    block = _obj(value, where)
    out: dict[str, str] = {}
    for key, v in block.items():
        if not isinstance(key, str) or not key or key != key.strip():
            raise _fail(where, f"bad metadata name {key!r}")
        out[key.lower()] = _header_value(v, f"{where}.{key}")
    return _compile(out, where)


def _details(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, "want a list of google.protobuf.Any objects ({type: ..., ...})")
    out = []
    for i, item in enumerate(value):
        item = _obj(item, f"{where}[{i}]", allow_none=False)
        kind = item.get("@type", item.get("type"))
        if not isinstance(kind, str) or "/" not in kind:
            raise _fail(
                f"{where}[{i}]",
                "needs 'type' (or '@type') with a full type URL, "
                "e.g. type.googleapis.com/google.rpc.ErrorInfo",
            )
        rest = {k: v for k, v in item.items() if k not in ("type", "@type")}
        out.append(_compile({"@type": kind, **rest}, f"{where}[{i}]"))
    return out


def _status(body: dict[str, Any], where: str) -> tuple[str, Any]:
    code, error = body.get("code"), body.get("error", "")
    if error is None:
        error = ""
    if not isinstance(error, str):
        raise _fail(f"{where}.error", f"want the status message as a string, got {error!r}")
    if code is None:
        # GripMock: an error without a code is ABORTED
        return ("ABORTED" if error else "OK"), _compile(error, f"{where}.error")
    name = status_name(code)
    if name is None:
        raise _fail(f"{where}.code", f"unknown status {code!r} (0-16 or a name like NOT_FOUND)")
    return name, _compile(error, f"{where}.error")


def parse_output(value: Any, where: str) -> Output:
    body = _norm_keys(_obj(value, where, allow_none=False), _OUTPUT_KEYS, where)
    out = Output()
    if "data" in body:
        out.has_data = True
        out.data = _compile(body["data"], f"{where}.data")
    stream = body.get("stream")
    if stream is not None:
        if not isinstance(stream, list):
            raise _fail(f"{where}.stream", "want a list of messages")
        if len(stream) > MAX_ITEMS:
            raise _fail(f"{where}.stream", f"more than {MAX_ITEMS} messages")
        out.has_stream = True
        for i, item in enumerate(stream):
            at = f"{where}.stream[{i}]"
            stop = _stream_item(out, item, at)
            if stop:
                out.fail_after = i
                break
    if out.fail_after is None:
        out.status, out.error = _status(body, where)
        out.details = _details(body.get("details"), f"{where}.details")
    out.headers = _metadata(body.get("headers"), f"{where}.headers")
    out.trailers = _metadata(body.get("trailers"), f"{where}.trailers")
    if "delay" in body:
        out.delay = parse_duration(body["delay"], f"{where}.delay")
    if "failAfter" in body:
        n = body["failAfter"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise _fail(f"{where}.failAfter", f"want a count of messages >= 0, got {n!r}")
        if out.status == "OK":
            raise _fail(f"{where}.failAfter", "needs code (and error) to fail with")
        if out.fail_after is not None and out.fail_after != n:
            raise _fail(f"{where}.failAfter", "conflicts with a _gripmock error item in stream")
        if n > len(out.stream):
            raise _fail(
                f"{where}.failAfter", f"{n} is more than the {len(out.stream)} stream messages"
            )
        out.fail_after = n
    return out


def _stream_item(out: Output, item: Any, at: str) -> bool:
    """Append one stream element; True when it is GripMock's `_gripmock` error element,
    which ends the stream there with its status."""
    delay: float | None = None
    if isinstance(item, dict) and "_gripmock" in item:
        meta = _norm_keys(
            _obj(item["_gripmock"], f"{at}._gripmock"),
            {"delay", "error", "code", "details"},
            f"{at}._gripmock",
        )
        if "delay" in meta:
            delay = parse_duration(meta["delay"], f"{at}._gripmock.delay")
        if {"error", "code", "details"} & set(meta):
            out.status, out.error = _status(meta, f"{at}._gripmock")
            out.details = _details(meta.get("details"), f"{at}._gripmock.details")
            return True
        item = {k: v for k, v in item.items() if k != "_gripmock"}
    elif isinstance(item, dict) and set(item) <= {"data", "delay"} and "data" in item:
        # our extension: {data: {...}, delay: "10ms"}
        if "delay" in item:
            delay = parse_duration(item["delay"], f"{at}.delay")
        item = item["data"]
    out.stream.append(StreamItem(_compile(item, at), delay))
    return False


@dataclass
class Stub:
    """A loaded stub: the dict as given (for get/all) and its compiled parts."""

    id: str
    raw: dict[str, Any]
    source: str
    order: int
    service: str
    method: str
    priority: int = 0
    input: Matcher | None = None
    inputs: list[Matcher] | None = None
    inputs_any: list[Matcher] = field(default_factory=list)
    headers: Matcher | None = None
    outputs: list[Output] = field(default_factory=list)
    times: int = 0
    repeat: str = "last"
    used: int = 0

    def describe(self) -> str:
        text = self.raw.get("description")
        return (
            f"{self.id}/{text}"
            if isinstance(text, str) and text
            else f"{self.id}/{self.service}.{self.method}"
        )

    def weight(self) -> int:
        total = self.headers.weight() if self.headers else 0
        if self.input:
            total += self.input.weight()
        for m in (self.inputs or []) + self.inputs_any:
            total += m.weight()
        return total


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 500:
        raise _fail(where, f"want a non-empty name, got {value!r}")
    return value.strip()


#: Deepest nesting of objects and lists in one stub (messages nest, but not without end).
MAX_DEPTH = 64


def check_tree(value: Any, where: str) -> None:
    """JSON's shape: string keys only, bounded depth (walked without recursion)."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        node, at, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _fail(at, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str):
                    raise _fail(at, f"key {key!r} is not a string")
                stack.append((item, f"{at}.{key}", depth + 1))
        elif isinstance(node, list):
            stack.extend((item, f"{at}[{i}]", depth + 1) for i, item in enumerate(node))
        elif not (node is None or isinstance(node, str | int | float | bool)):
            raise _fail(at, f"{type(node).__name__} is not a JSON value")


def parse_stub(value: Any, where: str, *, stub_id: str, source: str, order: int) -> Stub:
    check_tree(value, where)
    body = _norm_keys(_obj(value, where, allow_none=False), _STUB_KEYS, where)
    service = _name(body.get("service"), f"{where}.service")
    method = _name(body.get("method"), f"{where}.method")
    if "/" in method:
        method = method.rsplit("/", 1)[1]
    if "/" in service:
        raise _fail(f"{where}.service", f"a service name has no '/': {service!r}")
    stub = Stub(id=stub_id, raw=value, source=source, order=order, service=service, method=method)
    priority = body.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise _fail(f"{where}.priority", f"want an integer, got {priority!r}")
    stub.priority = priority
    if "input" in body and "inputs" in body:
        raise _fail(where, "give input or inputs, not both (GripMock's rule)")
    if "input" in body:
        stub.input = parse_matcher(body["input"], f"{where}.input")
    if "inputs" in body:
        items = body["inputs"]
        if not isinstance(items, list) or not items or len(items) > MAX_ITEMS:
            raise _fail(f"{where}.inputs", "want a non-empty list of matchers, one per message")
        stub.inputs = [parse_matcher(m, f"{where}.inputs[{i}]") for i, m in enumerate(items)]
    if "inputsAny" in body:
        items = body["inputsAny"]
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise _fail(f"{where}.inputsAny", "want a list of matchers")
        stub.inputs_any = [parse_matcher(m, f"{where}.inputsAny[{i}]") for i, m in enumerate(items)]
    if "headers" in body:
        stub.headers = parse_matcher(body["headers"], f"{where}.headers", headers=True)
    times, at = body.get("times"), f"{where}.times"
    options = _norm_keys(
        _obj(body.get("options"), f"{where}.options"), {"times"}, f"{where}.options"
    )
    if "times" in options:
        if times is not None:
            raise _fail(f"{where}.times", "given twice (as options.times too)")
        times, at = options["times"], f"{where}.options.times"
    if times is not None:
        if isinstance(times, bool) or not isinstance(times, int) or times < 0:
            raise _fail(at, f"want a count >= 0 (0 = unlimited), got {times!r}")
        stub.times = times
    if "output" in body and "sequence" in body:
        raise _fail(where, "give output or sequence, not both")
    if "sequence" in body:
        seq = body["sequence"]
        if not isinstance(seq, list) or not seq or len(seq) > MAX_ITEMS:
            raise _fail(f"{where}.sequence", "want a non-empty list of outputs")
        stub.outputs = [parse_output(o, f"{where}.sequence[{i}]") for i, o in enumerate(seq)]
    elif "output" in body:
        stub.outputs = [parse_output(body["output"], f"{where}.output")]
    else:
        raise _fail(f"{where}.output", "missing (what the stub answers)")
    repeat = body.get("sequenceRepeat", "last")
    if repeat not in _REPEAT:
        raise _fail(f"{where}.sequenceRepeat", f"want one of {', '.join(_REPEAT)}, got {repeat!r}")
    stub.repeat = repeat
    session = body.get("session")
    if session not in (None, ""):
        raise _fail(f"{where}.session", "GripMock sessions are not supported by the testbed")
    return stub
