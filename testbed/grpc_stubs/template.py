"""A small, safe subset of GripMock's Go-template syntax for response strings.

GripMock renders ``{{.Request.name}}``, ``{{index .Headers "x-user"}}``,
``{{.Request.id | upper}}`` with Go's text/template. Here the same spellings
are parsed into a tiny tree at load time (a broken template is a StubError
then, not a failed call later) and evaluated over JSON data only: field access
reads dict keys and list indices, never Python attributes, and the functions
are a fixed table. Output is capped, so a template cannot grow without bound.

Grammar (inside ``{{ }}``)::

    pipeline := command ('|' command)*          piped value becomes the last argument
    command  := FUNC arg* | arg
    arg      := '.' | .Field.path | "str" | `raw` | number | true | false | nil
              | '(' pipeline ')' ['.' field.path]
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from testbed.grpc_stubs.match import MISSING, lookup

#: Longest text one template may render; longer output fails the call's rendering.
MAX_OUTPUT = 1 << 20
#: Deepest nesting of parentheses in one action.
MAX_DEPTH = 16

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*") | (?P<raw>`[^`]*`) |
      (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?) |
      (?P<field>(?:\.[A-Za-z_][\w-]*)+|\.) |
      (?P<ident>[A-Za-z_][\w.]*) |
      (?P<op>[()|])
    )""",
    re.X,
)


class TemplateError(ValueError):
    """A template that does not parse, or fails while rendering."""


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]


@dataclass(frozen=True)
class Lit:
    value: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Sub:
    pipeline: tuple[Any, ...]
    path: tuple[str, ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot read {text[pos:]!r} in {{{{{text}}}}}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def pipeline(self, depth: int) -> tuple[Any, ...]:
        if depth > MAX_DEPTH:
            raise TemplateError(f"too deeply nested: {{{{{self.text}}}}}")
        commands = [self.command(depth)]
        while (tok := self.peek()) and tok == ("op", "|"):
            self.i += 1
            commands.append(self.command(depth))
        return tuple(commands)

    def command(self, depth: int) -> Any:
        tok = self.peek()
        if tok is None:
            raise TemplateError(f"empty command in {{{{{self.text}}}}}")
        if tok[0] == "ident" and tok[1] not in ("true", "false", "nil"):
            if tok[1] not in FUNCS:
                raise TemplateError(
                    f"unknown function {tok[1]!r} (known: {', '.join(sorted(FUNCS))})"
                )
            self.i += 1
            args = []
            while (t := self.peek()) and t != ("op", "|") and t != ("op", ")"):
                args.append(self.arg(depth))
            return Call(tok[1], tuple(args))
        arg = self.arg(depth)
        if (t := self.peek()) and t != ("op", "|") and t != ("op", ")"):
            raise TemplateError(f"{t[1]!r} follows a value in {{{{{self.text}}}}}: call a function")
        return arg

    def arg(self, depth: int) -> Any:
        tok = self.peek()
        if tok is None:
            raise TemplateError(f"missing argument in {{{{{self.text}}}}}")
        kind, value = tok
        self.i += 1
        if kind == "str":
            return Lit(json.loads(value))
        if kind == "raw":
            return Lit(value[1:-1])
        if kind == "num":
            return Lit(float(value) if any(c in value for c in ".eE") else int(value))
        if kind == "field":
            return Field(tuple(p for p in value.split(".") if p))
        if kind == "ident" and value in ("true", "false", "nil"):
            return Lit({"true": True, "false": False, "nil": None}[value])
        if kind == "ident":
            if value not in FUNCS:
                raise TemplateError(f"unknown function {value!r}")
            return Call(value, ())
        if value == "(":
            inner = self.pipeline(depth + 1)
            if self.peek() != ("op", ")"):
                raise TemplateError(f"unclosed '(' in {{{{{self.text}}}}}")
            self.i += 1
            path: tuple[str, ...] = ()
            if (t := self.peek()) and t[0] == "field":
                self.i += 1
                path = tuple(p for p in t[1].split(".") if p)
            return Sub(inner, path)
        raise TemplateError(f"unexpected {value!r} in {{{{{self.text}}}}}")

    def parse(self) -> tuple[Any, ...]:
        pipe = self.pipeline(0)
        if self.peek() is not None:
            raise TemplateError(f"unexpected {self.peek()[1]!r} in {{{{{self.text}}}}}")  # type: ignore[index]
        return pipe


@dataclass(frozen=True)
class Template:
    """A string with actions: literal parts and parsed pipelines, alternating."""

    source: str
    parts: tuple[Any, ...]

    def render(self, ctx: Mapping[str, Any]) -> Any:
        """The rendered text; a string that is one action alone keeps the value's type
        (``"{{len .Requests}}"`` gives 3, not "3"), as protobuf JSON takes either."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            value = _run(self.parts[0], ctx)
            if not isinstance(value, str | int | float | bool | list | dict):
                value = _text(value)
            elif isinstance(value, list | dict):
                value = json.loads(json.dumps(value, default=_text))
            if isinstance(value, str) and len(value) > MAX_OUTPUT:
                raise TemplateError(f"template output over {MAX_OUTPUT} bytes")
            return value
        out: list[str] = []
        size = 0
        for part in self.parts:
            text = part if isinstance(part, str) else _text(_run(part, ctx))
            size += len(text)
            if size > MAX_OUTPUT:
                raise TemplateError(f"template output over {MAX_OUTPUT} bytes")
            out.append(text)
        return "".join(out)


def compile_string(text: str) -> str | Template:
    """`text` itself when it has no ``{{``, else its parsed template."""
    if "{{" not in text:
        return text
    parts: list[Any] = []
    pos = 0
    for m in _ACTION.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        body = m.group(1)
        if body.startswith("/*"):
            pos = m.end()
            continue
        parts.append(_Parser(body).parse())
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    if any(isinstance(p, str) and "{{" in p for p in parts):
        raise TemplateError(f"unclosed '{{{{' in {text!r}")
    return Template(text, tuple(parts))


def render_tree(value: Any, ctx: Mapping[str, Any]) -> Any:
    """A compiled JSON tree with every template rendered."""
    if isinstance(value, Template):
        return value.render(ctx)
    if isinstance(value, dict):
        return {_text(render_tree(k, ctx)): render_tree(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [render_tree(v, ctx) for v in value]
    return value


# -- evaluation ---------------------------------------------------------------------


def _get(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        found = lookup(value, key)
        return None if found is MISSING else found
    if isinstance(value, list) and key.isdigit():
        i = int(key)
        return value[i] if i < len(value) else None
    return None


def _walk(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = _get(value, key)
        if value is None:
            return None
    return value


def _eval(node: Any, ctx: Mapping[str, Any], piped: list[Any]) -> Any:
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Field):
        return _walk(ctx.get(".", ctx), node.path) if node.path else ctx.get(".", ctx)
    if isinstance(node, Sub):
        return _walk(_run(node.pipeline, ctx), node.path)
    if isinstance(node, Call):
        args = [_eval(a, ctx, []) for a in node.args] + piped
        fn = FUNCS[node.name]
        try:
            return fn(ctx, *args)
        except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError, OverflowError) as e:
            raise TemplateError(f"{node.name}: {e}") from e
    raise TemplateError(f"cannot evaluate {node!r}")


def _run(pipeline: tuple[Any, ...], ctx: Mapping[str, Any]) -> Any:
    value: Any = None
    for i, command in enumerate(pipeline):
        piped = [value] if i else []
        if not isinstance(command, Call) and piped:
            raise TemplateError("only a function can take a piped value")
        value = _eval(command, ctx, piped)
    return value


def _text(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=_text)
    return str(value)


def _num(value: Any) -> float | int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    text = str(value)
    try:
        return int(text)
    except ValueError:
        return float(text)


def _nums(values: tuple[Any, ...]) -> list[float | int]:
    if len(values) == 1 and isinstance(values[0], list):
        values = tuple(values[0])
    return [_num(v) for v in values]


def _index(_: Any, value: Any, *keys: Any) -> Any:
    if not isinstance(value, list | Mapping) and keys and isinstance(keys[-1], list | Mapping):
        # `.x | split "_" | index 1` (GripMock's docs): the piped list comes last
        value, keys = keys[-1], (value, *keys[:-1])
    for key in keys:
        if isinstance(value, list):
            value = value[int(_num(key))]
        elif isinstance(value, Mapping):
            value = value.get(str(key))
        else:
            return None
    return value


def _split(_: Any, *args: Any) -> list[str]:
    # Go's template puts a piped value last: `.x | split "_"` is split("_", .x);
    # GripMock's own docs write both orders, so the separator is the shorter one.
    a, b = (str(x) for x in args)
    text, sep = (a, b) if len(a) >= len(b) else (b, a)
    return text.split(sep) if sep else list(text)


def _pick_time(ctx: Mapping[str, Any], value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if value is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(float(_num(value)), UTC)


def _format(ctx: Mapping[str, Any], *args: Any) -> str:
    if len(args) == 1:
        return _pick_time(ctx, None).isoformat()
    a, b = args
    t, layout = (a, b) if isinstance(a, datetime) else (b, a)
    if str(layout) in ("2006-01-02T15:04:05Z07:00", "RFC3339", "2006-01-02T15:04:05Z"):
        return _pick_time(ctx, t).strftime("%Y-%m-%dT%H:%M:%SZ")
    if str(layout) == "2006-01-02":
        return _pick_time(ctx, t).strftime("%Y-%m-%d")
    return _pick_time(ctx, t).isoformat()


def _uuid(ctx: Mapping[str, Any]) -> str:
    rng = ctx.get("_rng")
    bits = rng.getrandbits(128) if rng is not None else uuid.uuid4().int
    return str(uuid.UUID(int=bits, version=4))


def _sprintf(fmt: str, args: tuple[Any, ...]) -> str:
    """Go's %v/%s/%d/%%, filled in order; no Python format mini-language (it reaches attributes)."""
    values = iter(args)

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        return _text(next(values, "%!" + m.group(0)[1] + "(MISSING)"))

    return re.sub(r"%[-+# 0-9.]*[vsdfq%]", one, fmt)


def _default(_: Any, fallback: Any, value: Any = None) -> Any:
    return fallback if value in (None, "", 0, False, [], {}) else value


FUNCS: dict[str, Callable[..., Any]] = {
    "upper": lambda _, s: _text(s).upper(),
    "lower": lambda _, s: _text(s).lower(),
    "title": lambda _, s: _text(s).title(),
    "trim": lambda _, s: _text(s).strip(),
    "str": lambda _, v: _text(v),
    "sprintf": lambda _, fmt, *a: _sprintf(str(fmt), a),
    "split": _split,
    "join": lambda _, a, b: (
        str(b).join(map(_text, a)) if isinstance(a, list) else str(a).join(map(_text, b))
    ),
    "len": lambda _, v: len(v) if isinstance(v, str | list | dict) else 0,
    "index": _index,
    "json": lambda _, v: json.dumps(v, separators=(",", ":"), default=_text),
    "default": _default,
    "add": lambda _, a, b: _num(a) + _num(b),
    "sub": lambda _, a, b: _num(a) - _num(b),
    "div": lambda _, a, b: (_num(a) / _num(b)) if _num(b) else 0,
    "mod": lambda _, a, b: (_num(a) % _num(b)) if _num(b) else 0,
    "mul": lambda _, *v: math.prod(_nums(v)),
    "sum": lambda _, *v: sum(_nums(v)),
    "avg": lambda _, *v: (sum(n := _nums(v)) / len(n)) if _nums(v) else 0,
    "min": lambda _, *v: min(_nums(v)),
    "max": lambda _, *v: max(_nums(v)),
    "int": lambda _, v: int(_num(v)),
    "int64": lambda _, v: int(_num(v)),
    "float": lambda _, v: float(_num(v)),
    "round": lambda _, v: round(_num(v)),
    "floor": lambda _, v: math.floor(_num(v)),
    "ceil": lambda _, v: math.ceil(_num(v)),
    "eq": lambda _, a, b: a == b or _text(a) == _text(b),
    "ne": lambda _, a, b: not (a == b or _text(a) == _text(b)),
    "gt": lambda _, a, b: _num(a) > _num(b),
    "gte": lambda _, a, b: _num(a) >= _num(b),
    "lt": lambda _, a, b: _num(a) < _num(b),
    "lte": lambda _, a, b: _num(a) <= _num(b),
    "now": lambda ctx: datetime.now(UTC),
    "unix": lambda ctx, t=None: int(_pick_time(ctx, t).timestamp()),
    "format": _format,
    "uuid": _uuid,
    "extract": lambda _, msgs, key: (
        [_get(m, str(key)) for m in msgs] if isinstance(msgs, list) else []
    ),
    "string2base64": lambda _, s: base64.b64encode(_text(s).encode()).decode(),
    "bytes2base64": lambda _, s: base64.b64encode(_text(s).encode()).decode(),
}


def context(
    request: Any,
    headers: Mapping[str, str],
    *,
    requests: list[Any] | None = None,
    message_index: int = 0,
    stub_id: str = "",
    attempt: int = 1,
    max_attempts: int = 0,
    rng: Any = None,
) -> dict[str, Any]:
    """The names a template sees, spelled as GripMock spells them."""
    now = time.time()
    ctx: dict[str, Any] = {
        "Request": request,
        "Headers": dict(headers),
        "Requests": requests if requests is not None else [request],
        "MessageIndex": message_index,
        "RequestTime": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "StubID": stub_id,
        "AttemptNumber": attempt,
        "MaxAttempts": max_attempts,
        "_rng": rng,
    }
    ctx["Timestamp"] = ctx["RequestTime"]
    ctx["RequestID"] = stub_id
    ctx["AttemptIndex"] = attempt
    ctx["TotalAttempts"] = max_attempts
    ctx["."] = {k: v for k, v in ctx.items() if not k.startswith(("_", "."))}
    return ctx
