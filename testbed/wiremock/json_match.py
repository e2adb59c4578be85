"""JSON comparison for `equalToJson` and JSONPath for `matchesJsonPath` / `{{jsonPath}}`.

WireMock compares with JsonUnit: numbers compare by value (1 == 1.0), the
placeholders `${json-unit.any-string}`, `any-number`, `any-boolean`, `ignore`
and `regex` work in the expected document, `ignoreArrayOrder` compares arrays
as multisets, and `ignoreExtraElements` ignores extra object fields *and*
extra array items. The distance is the count of differing nodes over the
larger document's node count, as WireMock's `EqualToJsonPattern` reports it.

JSONPath is Jayway's dialect in WireMock; here it is `jsonpath-ng`'s extended
parser, which reads the common forms (`$.a.b`, `$.a[0]`, `$..id`, `$.a[*]`,
filters `[?(@.id == 2)]`). A "definite" path (no filter, wildcard or deep
scan) that finds nothing is absent, as in Jayway.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as jsonpath_parse

from .errors import MappingError

#: Past this many element pairs, ignoreArrayOrder pairs elements greedily.
MAX_ARRAY_PAIRS = 250_000
MAX_EXPRESSION_CHARS = 1024
_PLACEHOLDER = re.compile(r"^[$#]\{json-unit\.([a-z-]+)\}(.*)$", re.DOTALL)


def _size(node: Any) -> int:
    if isinstance(node, dict):
        return 1 + sum(_size(v) for v in node.values())
    if isinstance(node, list):
        return 1 + sum(_size(v) for v in node)
    return 1


def _is_number(node: Any) -> bool:
    return isinstance(node, int | float) and not isinstance(node, bool)


def _placeholder(expected: str, actual: Any) -> int | None:
    """Diff count for a JsonUnit placeholder, or None if `expected` is no placeholder."""
    found = _PLACEHOLDER.match(expected)
    if found is None:
        return None
    kind, rest = found.groups()
    if kind == "ignore" or kind == "ignore-element":
        return 0
    if kind == "any-string":
        return 0 if isinstance(actual, str) else 1
    if kind == "any-number":
        return 0 if _is_number(actual) else 1
    if kind == "any-boolean":
        return 0 if isinstance(actual, bool) else 1
    if kind == "regex":
        try:
            return 0 if isinstance(actual, str) and re.fullmatch(rest, actual) else 1
        except re.error:
            return 1
    return None


def diff_count(expected: Any, actual: Any, ignore_order: bool, ignore_extra: bool) -> int:
    """How many nodes differ (0 = equal under the options)."""
    if isinstance(expected, str):
        placeholder = _placeholder(expected, actual)
        if placeholder is not None:
            return placeholder
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return _size(expected)
        count = 0
        for key, value in expected.items():
            if key in actual:
                count += diff_count(value, actual[key], ignore_order, ignore_extra)
            elif not (
                isinstance(value, str) and _PLACEHOLDER.match(value) and "ignore-element" in value
            ):
                count += _size(value)  # even ${json-unit.ignore} needs the field (JsonUnit)
        if not ignore_extra:
            count += sum(_size(v) for k, v in actual.items() if k not in expected)
        return count
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return _size(expected)
        if ignore_order:
            return _unordered(expected, actual, ignore_extra)
        count = 0
        for i, value in enumerate(expected):
            count += (
                diff_count(value, actual[i], False, ignore_extra)
                if i < len(actual)
                else _size(value)
            )
        if not ignore_extra:
            count += sum(_size(v) for v in actual[len(expected) :])
        return count
    if _is_number(expected) and _is_number(actual):
        return 0 if expected == actual else 1
    if type(expected) is not type(actual):
        return 1
    return 0 if expected == actual else 1


def _unordered(expected: list[Any], actual: list[Any], ignore_extra: bool) -> int:
    """Multiset comparison: a maximum matching of equal elements, the rest counted."""
    if len(expected) * len(actual) > MAX_ARRAY_PAIRS:
        return _greedy(expected, actual, ignore_extra)
    equal = [
        [j for j, a in enumerate(actual) if diff_count(e, a, True, ignore_extra) == 0]
        for e in expected
    ]
    owner: dict[int, int] = {}

    def assign(i: int, seen: set[int]) -> bool:
        for j in equal[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or assign(owner[j], seen):
                owner[j] = i
                return True
        return False

    matched = {i for i in range(len(expected)) if assign(i, set())}
    count = sum(_size(e) for i, e in enumerate(expected) if i not in matched)
    if not ignore_extra:
        count += sum(_size(a) for j, a in enumerate(actual) if j not in owner)
    return count


def _greedy(expected: list[Any], actual: list[Any], ignore_extra: bool) -> int:
    left = list(actual)
    count = 0
    for e in expected:
        for j, a in enumerate(left):
            if diff_count(e, a, True, ignore_extra) == 0:
                del left[j]
                break
        else:
            count += _size(e)
    if not ignore_extra:
        count += sum(_size(a) for a in left)
    return count


def json_distance(expected: Any, actual: Any, ignore_order: bool, ignore_extra: bool) -> float:
    count = diff_count(expected, actual, ignore_order, ignore_extra)
    if count == 0:
        return 0.0
    return min(1.0, count / max(_size(expected), _size(actual)))


def jackson_pretty(value: Any, indent: int = 0, drop_nulls: bool = False) -> str:
    """JSON as Jackson's default pretty printer writes it (`"a" : 1`, arrays `[ 1, 2 ]`).

    `drop_nulls`: WireMock's `Json.write` leaves out null fields (`{"z": null}` is `{ }`)."""
    pad = "  " * (indent + 1)
    if isinstance(value, dict):
        shown = {k: v for k, v in value.items() if not (drop_nulls and v is None)}
        if not shown:
            return "{ }"
        items = [
            f"{pad}{json.dumps(k, ensure_ascii=False)} : {jackson_pretty(v, indent + 1, drop_nulls)}"
            for k, v in shown.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list):
        if not value:
            return "[ ]"
        return "[ " + ", ".join(jackson_pretty(v, indent, drop_nulls) for v in value) + " ]"
    return json.dumps(value, ensure_ascii=False)


def java_string(value: Any) -> str:
    """`String.valueOf` of what Jayway returns: true/false lower-case, whole floats as '1.0'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


@dataclass(frozen=True)
class JsonPathQuery:
    expression: str
    compiled: Any
    definite: bool

    @classmethod
    def parse(cls, expression: Any, where: str) -> JsonPathQuery:
        if not isinstance(expression, str) or not expression:
            raise MappingError(where, "a JSONPath expression must be a non-empty string")
        if len(expression) > MAX_EXPRESSION_CHARS:
            raise MappingError(
                where, f"JSONPath of {len(expression)} characters (limit {MAX_EXPRESSION_CHARS})"
            )
        try:
            compiled = jsonpath_parse(expression)
        except (
            JsonPathLexerError,
            JsonPathParserError,
            ValueError,
            TypeError,
            AttributeError,
        ) as exc:
            raise MappingError(where, f"bad JSONPath {expression!r}: {exc}") from None
        definite = not any(token in expression for token in ("[?", "*", "..", ",", ":"))
        return cls(expression, compiled, definite)

    def values(self, document: Any) -> list[Any]:
        try:
            return [m.value for m in self.compiled.find(document)]
        except (TypeError, ValueError, KeyError, AttributeError, IndexError):
            return []

    def present(self, document: Any) -> bool:
        """WireMock 3.13's plain `matchesJsonPath`: found, and not null, {} or []."""
        found = self.values(document)
        if not found:
            return False
        if self.definite:
            return found[0] is not None and found[0] != {} and found[0] != []
        return True

    def strings(self, document: Any, for_json: bool = False) -> list[str]:
        """The values a sub-matcher sees (Jayway's `getExpressionResult`)."""
        found = self.values(document)
        if not found:
            return []
        if self.definite:
            value = found[0]
            if value is None:
                return []
            if isinstance(value, list) and not for_json:
                return [java_string(v) for v in value]
            if isinstance(value, dict) and not for_json:
                return [jackson_pretty(value, drop_nulls=True)]  # WireMock's Json.write: pretty
            return [
                json.dumps(value, separators=(",", ":"))
                if isinstance(value, dict | list)
                else java_string(value)
            ]
        if for_json:
            return [json.dumps(found, separators=(",", ":"))]
        return [java_string(v) for v in found]
