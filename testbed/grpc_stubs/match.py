"""GripMock's matchers over protobuf-JSON dicts: equals, contains, matches, glob, anyOf.

A request arrives as ``MessageToDict(..., preserving_proto_field_name=True)``:
proto field names, int64 as strings, enums as names, and fields at their default
value left out. Stub authors write lowerCamelCase or proto names and plain
numbers, so a stub key is looked up under both spellings, a number equals its
numeric string, and a field the request left out equals its zero value.

Every check returns the reason it failed (a path and what differed) instead of
a bare bool: the near-miss report is built from those reasons.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Present to mark "the request has no such field", distinct from a null value.
MISSING: Any = object()
#: A reason is None (matched) or text naming the path and the difference.
Reason = str | None


def snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def lookup(obj: Mapping[str, Any], key: str) -> Any:
    """The value under `key`, its proto name or its lowerCamelCase name; MISSING if none."""
    if key in obj:
        return obj[key]
    for alias in (snake(key), camel(key)):
        if alias in obj:
            return obj[alias]
    return MISSING


def is_zero(value: Any) -> bool:
    """Protobuf's default values, which MessageToDict leaves out of the request."""
    if isinstance(value, bool):
        return value is False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        return value in ("", "0")
    return value is None or value == [] or value == {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def scalar_equal(want: Any, got: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return type(want) is type(got) and want == got
    if want == got:
        return True
    if isinstance(want, str) and isinstance(got, str):
        return False
    a, b = _number(want), _number(got)
    return a is not None and b is not None and a == b


def show(value: Any) -> str:
    if value is MISSING:
        return "(absent)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


# -- equals ---------------------------------------------------------------------------


def equal(want: Any, got: Any, path: str, unordered: bool) -> Reason:
    """Deep equality; a nested object must have exactly the stub's fields (absent = zero)."""
    if got is MISSING:
        return None if is_zero(want) else f"{path}: want {show(want)}, got (absent)"
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{path}: want an object, got {show(got)}"
        for key, value in want.items():
            reason = equal(value, lookup(got, key), _join(path, key), unordered)
            if reason:
                return reason
        wanted = {snake(k) for k in want} | {camel(k) for k in want} | set(want)
        for key, value in got.items():
            if key not in wanted and not is_zero(value):
                return f"{path}: unexpected field {key!r} = {show(value)}"
        return None
    if isinstance(want, list):
        if not isinstance(got, list):
            return f"{path}: want a list, got {show(got)}"
        if len(want) != len(got):
            return f"{path}: want {len(want)} items, got {len(got)}"
        if unordered:
            return _multiset(want, got, path, lambda w, g, p: equal(w, g, p, True))
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            reason = equal(w, g, _join(path, i), unordered)
            if reason:
                return reason
        return None
    if isinstance(got, dict | list):
        return f"{path}: want {show(want)}, got {show(got)}"
    return None if scalar_equal(want, got) else f"{path}: want {show(want)}, got {show(got)}"


def _multiset(want: list[Any], got: list[Any], path: str, check: Any) -> Reason:
    """Each wanted item takes one distinct received item (greedy; enough for test data)."""
    free = list(range(len(got)))
    for i, w in enumerate(want):
        for j in free:
            if check(w, got[j], _join(path, j)) is None:
                free.remove(j)
                break
        else:
            return f"{path}: no item matches {show(w)} (item {i} of the stub)"
    return None


# -- contains -------------------------------------------------------------------------


def contained(want: Any, got: Any, path: str) -> Reason:
    """Structural subset: unlisted fields ignored, listed list items present in any order."""
    if got is MISSING:
        return None if is_zero(want) else f"{path}: want {show(want)}, got (absent)"
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{path}: want an object, got {show(got)}"
        for key, value in want.items():
            reason = contained(value, lookup(got, key), _join(path, key))
            if reason:
                return reason
        return None
    if isinstance(want, list):
        if not isinstance(got, list):
            return f"{path}: want a list, got {show(got)}"
        return _multiset(want, got, path, contained)
    if isinstance(got, dict | list):
        return f"{path}: want {show(want)}, got {show(got)}"
    return None if scalar_equal(want, got) else f"{path}: want {show(want)}, got {show(got)}"


# -- matches / glob ----------------------------------------------------------------------


def text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def glob_regex(pattern: str) -> str:
    """Go's ``path.Match``: ``*`` and ``?`` stop at ``/``, ``[!a-z]`` negates, ``\\`` escapes."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise re.error(f"unclosed '[' in glob {pattern!r}")
            body = pattern[i + 1 : end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("(?!/)[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def patterned(want: Any, got: Any, path: str, full: bool, unordered: bool = False) -> Reason:
    """`want` holds compiled patterns in the shape of the request: objects recurse,
    lists match item by item, a pattern tests the value's text."""
    if got is MISSING:
        if not isinstance(want, re.Pattern):
            return f"{path}: want {show(want)}, got (absent)"
        # an absent scalar is protobuf's default: its text is "" (``^$`` matches it)
        got = ""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{path}: want an object, got {show(got)}"
        for key, value in want.items():
            reason = patterned(value, lookup(got, key), _join(path, key), full, unordered)
            if reason:
                return reason
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) < len(want):
            return f"{path}: want a list of at least {len(want)} items, got {show(got)}"
        if unordered:
            return _multiset(want, got, path, lambda w, g, p: patterned(w, g, p, full, True))
        for i, w in enumerate(want):
            reason = patterned(w, got[i], _join(path, i), full)
            if reason:
                return reason
        return None
    if isinstance(got, dict | list):
        return f"{path}: want text matching {show(want.pattern)}, got {show(got)}"
    text = text_of(got)
    found = want.fullmatch(text) if full else want.search(text)
    return None if found else f"{path}: {show(text)} does not match {show(want.pattern)}"


# -- one matcher block ----------------------------------------------------------------------


@dataclass
class Matcher:
    """One `input`/`headers` block (or one `anyOf` alternative), compiled."""

    equals: dict[str, Any] = field(default_factory=dict)
    contains: dict[str, Any] = field(default_factory=dict)
    matches: dict[str, Any] = field(default_factory=dict)
    glob: dict[str, Any] = field(default_factory=dict)
    any_of: list[Matcher] = field(default_factory=list)
    unordered: bool = False
    #: header matching: names case-insensitive, values compared as strings
    headers: bool = False

    def check(self, got: Any, path: str) -> Reason:
        if not isinstance(got, Mapping):
            # a well-known type's JSON (StringValue is a string): only a catch-all matches
            if self.equals or self.contains or self.matches or self.glob or self.any_of:
                return f"{path}: the request is {show(got)}, not an object with fields"
            return None
        if self.headers:
            got = {k.lower(): v for k, v in got.items()}
        for key, want in self.equals.items():
            value = got.get(key, MISSING) if self.headers else lookup(got, key)
            if self.headers:
                if value is MISSING or str(value) != str(want):
                    return f"{path}.equals.{key}: want {show(want)}, got {show(value)}"
                continue
            reason = equal(want, value, f"{path}.equals.{key}", self.unordered)
            if reason:
                return reason
        for key, want in self.contains.items():
            if self.headers:
                value = got.get(key, MISSING)
                if value is MISSING or str(value) != str(want):
                    return f"{path}.contains.{key}: want {show(want)}, got {show(value)}"
                continue
            reason = contained(want, lookup(got, key), f"{path}.contains.{key}")
            if reason:
                return reason
        for name, block, full in (("matches", self.matches, False), ("glob", self.glob, True)):
            for key, want in block.items():
                value = got.get(key, MISSING) if self.headers else lookup(got, key)
                reason = patterned(want, value, f"{path}.{name}.{key}", full, self.unordered)
                if reason:
                    return reason
        if self.any_of:
            reasons = [alt.check(got, f"{path}.anyOf[{i}]") for i, alt in enumerate(self.any_of)]
            if all(reasons):
                return "; ".join(r for r in reasons if r)
        return None

    def weight(self) -> int:
        """Specificity: an exact field counts more than a partial or a pattern one."""
        own = 3 * _fields(self.equals) + 2 * _fields(self.contains)
        own += _fields(self.matches) + _fields(self.glob)
        return own + (min(alt.weight() for alt in self.any_of) if self.any_of else 0)


def _fields(block: dict[str, Any]) -> int:
    return sum(_leaves(v) for v in block.values())


def _leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values()) or 1
    if isinstance(value, list):
        return sum(_leaves(v) for v in value) or 1
    return 1
