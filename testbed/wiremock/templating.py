"""WireMock's response templating: a small Handlebars subset, parsed into tokens, never eval'd.

Supported, as WireMock documents them: `{{request.path}}`, `{{request.path.[0]}}`,
`{{request.pathSegments.[1]}}`, `{{request.url}}`, `{{request.method}}`,
`{{request.query.name}}` / `.[1]`, `{{request.headers.X-Id}}`,
`{{request.cookies.name}}`, `{{request.body}}`, `{{request.clientIp}}`,
and the helpers `jsonPath`, `randomValue` and `now`. Block helpers
(`{{#if}}`, `{{#each}}`) are not supported: a template using one fails to load
with a MappingError instead of rendering something WireMock would not.

WireMock 3 renders with HTML escaping off, so `{{x}}` and `{{{x}}}` are the same.
A missing value renders empty, as in Handlebars. Output is capped.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

from .errors import MappingError
from .json_match import JsonPathQuery, jackson_pretty, java_string
from .request_pattern import RequestView

#: A rendered body larger than this is an error (a `randomValue length=1e9` typo).
MAX_OUTPUT_CHARS = 4 * 1024 * 1024
MAX_RANDOM_LENGTH = 64 * 1024
MAX_TEMPLATE_CHARS = 4 * 1024 * 1024

_TAG = re.compile(r"\{\{(\{?)(.*?)\}?\}\}", re.DOTALL)
_ARG = re.compile(r"""\s*(?:(\w+)=)?('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"=]+)""")
HELPERS = ("jsonPath", "randomValue", "now")
RANDOM_ALPHABETS = {
    "ALPHANUMERIC": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "ALPHABETIC": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "NUMERIC": "0123456789",
    "HEXADECIMAL": "0123456789abcdef",
    "ALPHANUMERIC_AND_SYMBOLS": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
}


class TemplateError(ValueError):
    """Rendering failed (output too large); the engine answers 500 with this text, as WireMock does."""


@dataclass(frozen=True)
class Literal:
    value: Any  # str, int, float, bool


@dataclass(frozen=True)
class PathRef:
    parts: tuple[str, ...]


Arg = Literal | PathRef


@dataclass(frozen=True)
class Tag:
    helper: str | None  # None: a plain value
    args: tuple[Arg, ...]
    options: tuple[tuple[str, Arg], ...]


Piece = str | Tag


def _parse_path(text: str, where: str) -> PathRef:
    parts: list[str] = []
    rest = text
    while rest:
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise MappingError(where, f"unclosed [ in {text!r}")
            parts.append(rest[1:end])
            rest = rest[end + 1 :]
        else:
            dot = rest.find(".")
            if dot < 0:
                parts.append(rest)
                rest = ""
            else:
                parts.append(rest[:dot])
                rest = rest[dot:]
        if rest.startswith("."):
            rest = rest[1:]
            if not rest:
                raise MappingError(where, f"path ends with '.': {text!r}")
    return PathRef(tuple(parts))


def _parse_arg(text: str, where: str) -> Arg:
    if text[0] in "'\"":
        return Literal(re.sub(r"\\(.)", r"\1", text[1:-1]))
    if text in ("true", "false"):
        return Literal(text == "true")
    if re.fullmatch(r"-?\d+", text):
        return Literal(int(text))
    if re.fullmatch(r"-?\d+\.\d+", text):
        return Literal(float(text))
    return _parse_path(text, where)


def _parse_tag(body: str, where: str) -> Tag | None:
    text = body.strip()
    if text.startswith("!"):
        return None
    if not text:
        raise MappingError(where, "empty {{ }}")
    if text[0] in "#/^>&":
        raise MappingError(
            where, f"block and partial helpers are not supported: {{{{{text[:40]}}}}}"
        )
    tokens: list[tuple[str | None, str]] = []
    pos = 0
    while pos < len(text):
        found = _ARG.match(text, pos)
        if found is None or found.end() == pos:
            raise MappingError(where, f"cannot read {text[pos : pos + 40]!r} in a template tag")
        tokens.append((found.group(1), found.group(2)))
        pos = found.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    first_key, first = tokens[0]
    if first_key is not None or first[0] in "'\"(":
        raise MappingError(where, f"a tag starts with a helper or a path: {text[:40]!r}")
    if len(tokens) == 1 and first not in HELPERS:
        return Tag(None, (_parse_path(first, where),), ())
    if first not in HELPERS:
        raise MappingError(where, f"unknown helper {first!r} (supported: {', '.join(HELPERS)})")
    args = tuple(_parse_arg(v, where) for k, v in tokens[1:] if k is None)
    options = tuple((k, _parse_arg(v, where)) for k, v in tokens[1:] if k is not None)
    if first == "jsonPath":
        if len(args) != 2 or not isinstance(args[1], Literal) or not isinstance(args[1].value, str):
            raise MappingError(
                where,
                "jsonPath takes a value and a JSONPath string: {{jsonPath request.body '$.a'}}",
            )
        JsonPathQuery.parse(args[1].value, where)
    if first == "randomValue":
        length = dict(options).get("length")
        type_ = dict(options).get("type", Literal("ALPHANUMERIC"))
        if not isinstance(type_, Literal) or type_.value not in (*RANDOM_ALPHABETS, "UUID"):
            raise MappingError(
                where, f"randomValue type must be one of {', '.join([*RANDOM_ALPHABETS, 'UUID'])}"
            )
        if type_.value != "UUID":
            if not isinstance(length, Literal) or not isinstance(length.value, int):
                raise MappingError(where, "randomValue needs length=N")
            if not 0 <= length.value <= MAX_RANDOM_LENGTH:
                raise MappingError(where, f"randomValue length must be 0..{MAX_RANDOM_LENGTH}")
    return Tag(first, args, options)


@dataclass(frozen=True)
class Template:
    pieces: tuple[Piece, ...]

    @classmethod
    def parse(cls, text: str, where: str) -> Template:
        if len(text) > MAX_TEMPLATE_CHARS:
            raise MappingError(
                where, f"template of {len(text)} characters (limit {MAX_TEMPLATE_CHARS})"
            )
        pieces: list[Piece] = []
        pos = 0
        for found in _TAG.finditer(text):
            if found.start() > pos:
                pieces.append(text[pos : found.start()])
            body = found.group(2)
            if found.group(1) and body.endswith("}"):
                body = body[:-1]
            if body.startswith("!--"):
                pos = found.end()
                continue
            tag = _parse_tag(body, where)
            if tag is not None:
                pieces.append(tag)
            pos = found.end()
        if pos < len(text):
            pieces.append(text[pos:])
        return cls(tuple(pieces))

    @property
    def is_static(self) -> bool:
        return all(isinstance(p, str) for p in self.pieces)

    def render(self, context: RenderContext) -> str:
        out: list[str] = []
        size = 0
        for piece in self.pieces:
            text = piece if isinstance(piece, str) else context.tag(piece)
            size += len(text)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateError(f"template output over {MAX_OUTPUT_CHARS} characters")
            out.append(text)
        return "".join(out)


class ListOrSingle(list[str]):
    """WireMock's multi-value: prints as its first value, indexes as the list."""

    def __str__(self) -> str:
        return self[0] if self else ""


class UrlPath(list[str]):
    """`request.path`: prints as the path, indexes as its segments."""

    def __init__(self, path: str, segments: list[str]) -> None:
        super().__init__(segments)
        self.path = path

    def __str__(self) -> str:
        return self.path


class CaseInsensitive(dict[str, ListOrSingle]):
    def lookup(self, name: str) -> ListOrSingle | None:
        lower = name.lower()
        for key, value in self.items():
            if key.lower() == lower:
                return value
        return None


@dataclass
class RenderContext:
    """One request's view for templates; `rng` and `clock` come from the engine (seeded)."""

    req: RequestView
    rng: Random
    clock: Callable[[], dt.datetime]
    client_ip: str = ""
    absolute_url: str = ""

    def model(self) -> dict[str, Any]:
        headers = CaseInsensitive()
        for name, value in self.req.headers:
            headers.setdefault(name, ListOrSingle()).append(value)
        path = UrlPath(self.req.path, self.req.path_segments)
        return {
            "request": {
                "url": self.req.url,
                "path": path,
                "pathSegments": path,
                "method": self.req.method,
                "query": {k: ListOrSingle(v) for k, v in self.req.query.items()},
                "headers": headers,
                "cookies": {k: ListOrSingle(v) for k, v in self.req.cookies.items()},
                "body": self.req.body_text,
                "clientIp": self.client_ip,
                "absoluteUrl": self.absolute_url,
            }
        }

    def resolve(self, arg: Arg) -> Any:
        if isinstance(arg, Literal):
            return arg.value
        node: Any = self.model()
        for part in arg.parts:
            if part == "this":
                continue
            if isinstance(node, CaseInsensitive):
                node = node.lookup(part)
            elif isinstance(node, dict):
                node = node.get(part)
            elif isinstance(node, list) and re.fullmatch(r"\d+", part):
                index = int(part)
                node = node[index] if index < len(node) else None
            else:
                node = None
            if node is None:
                return None
        return node

    def tag(self, tag: Tag) -> str:
        if tag.helper is None:
            return _to_text(self.resolve(tag.args[0]))
        options = {k: self.resolve(v) for k, v in tag.options}
        if tag.helper == "jsonPath":
            return self._json_path(tag)
        if tag.helper == "randomValue":
            return self._random(options)
        return self._now(options)

    def _json_path(self, tag: Tag) -> str:
        source = _to_text(self.resolve(tag.args[0]))
        expression = self.resolve(tag.args[1])
        query = JsonPathQuery.parse(expression, "jsonPath")
        try:
            document = json.loads(source)
        except ValueError:
            return ""
        found = query.values(document)
        if not found:
            return ""
        value = found[0] if query.definite else found
        if value is None:
            return ""
        if isinstance(value, dict):
            return jackson_pretty(
                value, drop_nulls=True
            )  # WireMock 3.13 prints an object pretty, a list compact
        if isinstance(value, list):
            return json.dumps(value, separators=(",", ":"))
        return java_string(value)

    def _random(self, options: dict[str, Any]) -> str:
        kind = options.get("type", "ALPHANUMERIC")
        if kind == "UUID":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        alphabet = RANDOM_ALPHABETS[kind]
        text = "".join(self.rng.choice(alphabet) for _ in range(int(options.get("length", 0))))
        return text.upper() if options.get("uppercase") is True else text

    def _now(self, options: dict[str, Any]) -> str:
        moment = self.clock()
        offset = options.get("offset")
        if isinstance(offset, str):
            moment = moment + _parse_offset(offset)
        fmt = options.get("format")
        if fmt in ("epoch",):
            return str(int(moment.timestamp() * 1000))
        if fmt in ("unix",):
            return str(int(moment.timestamp()))
        if isinstance(fmt, str):
            return _java_date_format(moment, fmt)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_to_text(v)}" for k, v in value.items()) + "}"
    return str(value)


_UNITS = {
    "seconds": 1,
    "second": 1,
    "minutes": 60,
    "minute": 60,
    "hours": 3600,
    "hour": 3600,
    "days": 86400,
    "day": 86400,
    "weeks": 604800,
    "week": 604800,
}


def _parse_offset(text: str) -> dt.timedelta:
    found = re.fullmatch(r"\s*(-?\d+)\s+(\w+)\s*", text)
    if found is None or found.group(2).lower() not in _UNITS:
        return dt.timedelta()
    return dt.timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2).lower()])


_JAVA_DATE = [
    ("yyyy", "%Y"),
    ("yy", "%y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
]


def _java_date_format(moment: dt.datetime, fmt: str) -> str:
    """The common java.text.SimpleDateFormat letters (yyyy MM dd HH mm ss SSS, 'literal')."""
    out: list[str] = []
    pos = 0
    while pos < len(fmt):
        if fmt[pos] == "'":
            end = fmt.find("'", pos + 1)
            end = len(fmt) if end < 0 else end
            out.append(fmt[pos + 1 : end])
            pos = end + 1
            continue
        if fmt.startswith("SSS", pos):
            out.append(f"{moment.microsecond // 1000:03d}")
            pos += 3
            continue
        for java, py in _JAVA_DATE:
            if fmt.startswith(java, pos):
                out.append(moment.strftime(py))
                pos += len(java)
                break
        else:
            out.append(fmt[pos])
            pos += 1
    return "".join(out)
