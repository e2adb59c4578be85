"""WireMock's string value matchers (`equalTo`, `matches`, `equalToJson`...), with distances.

Each matcher answers a distance in [0, 1], 0 meaning an exact match, the way
WireMock's `MatchResult` does: the near-miss report ranks stubs by these
distances, so a typo'd header value ranks a stub closer than a wrong path.
Distances follow WireMock's: normalised Levenshtein for `equalTo`, 0/1 for
regexes and `contains`, differing-node count over the larger document's node
count for `equalToJson`.

Matchers are built once per mapping (regexes compiled, JSONPath parsed) and
are immutable, so matching a request against 10,000 mappings compiles nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import MappingError
from .json_match import JsonPathQuery, json_distance

#: A regex longer than this is refused: WireMock users write short patterns, and
#: a pattern is compiled once per mapping, so this bounds memory, not time.
MAX_REGEX_CHARS = 4096
#: Levenshtein is O(n*m); past this many cells the distance is estimated (1.0 if unequal).
MAX_LEVENSHTEIN_CELLS = 1_000_000


def levenshtein_rows(a: str, b: str) -> int:
    """Edit distance, the textbook two-row dynamic programme (the reference for the fast one)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def levenshtein(a: str, b: str) -> int:
    """Edit distance by Myers/Hyyro bit vectors: one pass of integer operations per
    character of `b`, so ranking a request against 10,000 stubs stays cheap."""
    if not a:
        return len(b)
    if not b:
        return len(a)
    peq: dict[str, int] = {}
    for i, c in enumerate(a):
        peq[c] = peq.get(c, 0) | (1 << i)
    mask = (1 << len(a)) - 1
    last = 1 << (len(a) - 1)
    pv, mv, score = mask, 0, len(a)
    for c in b:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def normalised_levenshtein(expected: str, actual: str) -> float:
    """WireMock's `EqualToPattern` distance: edits over the longer string's length."""
    if expected == actual:
        return 0.0
    longest = max(len(expected), len(actual))
    if len(expected) * len(actual) > MAX_LEVENSHTEIN_CELLS:
        return 1.0
    return levenshtein(expected, actual) / longest


def compile_regex(pattern: Any, where: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise MappingError(where, f"a regex must be a string, not {type(pattern).__name__}")
    if len(pattern) > MAX_REGEX_CHARS:
        raise MappingError(where, f"regex of {len(pattern)} characters (limit {MAX_REGEX_CHARS})")
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise MappingError(where, f"bad regex {pattern!r}: {exc}") from None


@dataclass(frozen=True)
class ValueMatcher:
    """One string matcher. `key` is its WireMock name; `spec` the JSON it was built from."""

    key: str
    spec: dict[str, Any]
    test: Callable[[str | None], float] = field(compare=False, repr=False)

    def match(self, value: str | None) -> float:
        return self.test(value)

    def to_json(self) -> dict[str, Any]:
        return dict(self.spec)

    def is_exact(self, value: str | None) -> bool:
        """Does it match? Serving asks only this, so `equalTo` skips its Levenshtein distance."""
        if self.key == "equalTo":
            if value is None:
                return False
            expected = self.spec["equalTo"]
            if self.spec.get("caseInsensitive"):
                return expected.casefold() == value.casefold()
            return bool(expected == value)
        return self.test(value) == 0


def _equal_to(spec: dict[str, Any], where: str) -> Callable[[str | None], float]:
    expected = spec["equalTo"]
    if not isinstance(expected, str):
        raise MappingError(where, "equalTo takes a string")
    _bool_option(spec, "caseInsensitive", where)
    if spec.get("caseInsensitive"):
        folded = expected.casefold()

        def test_ci(value: str | None) -> float:
            return 1.0 if value is None else normalised_levenshtein(folded, value.casefold())

        return test_ci

    def test(value: str | None) -> float:
        return 1.0 if value is None else normalised_levenshtein(expected, value)

    return test


def _contains(spec: dict[str, Any], where: str, negate: bool) -> Callable[[str | None], float]:
    key = "doesNotContain" if negate else "contains"
    expected = spec[key]
    if not isinstance(expected, str):
        raise MappingError(where, f"{key} takes a string")

    def test(value: str | None) -> float:
        if value is None:
            # WireMock 3.13: a missing header, parameter or body passes doesNotContain
            return 0.0 if negate else 1.0
        return 0.0 if (expected in value) != negate else 1.0

    return test


def _matches(spec: dict[str, Any], where: str, negate: bool) -> Callable[[str | None], float]:
    key = "doesNotMatch" if negate else "matches"
    regex = compile_regex(spec[key], f"{where}.{key}")

    def test(value: str | None) -> float:
        if value is None:
            return 0.0 if negate else 1.0  # as doesNotContain
        # Java's String.matches: the whole value must match.
        return 0.0 if (regex.fullmatch(value) is not None) != negate else 1.0

    return test


def _absent(spec: dict[str, Any], where: str) -> Callable[[str | None], float]:
    if spec["absent"] is not True and spec["absent"] is not False:
        raise MappingError(where, "absent takes true")

    def test(value: str | None) -> float:
        return 0.0 if value is None else 1.0

    return test


def _binary_equal_to(spec: dict[str, Any], where: str) -> Callable[[str | None], float]:
    raw = spec["binaryEqualTo"]
    try:
        expected = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
    except binascii.Error:
        expected = None
    if expected is None:
        raise MappingError(where, "binaryEqualTo takes base64 text")

    def test(value: str | None) -> float:
        if value is None:
            return 1.0
        return 0.0 if value.encode("utf-8", "surrogateescape") == expected else 1.0

    return test


def _equal_to_json(spec: dict[str, Any], where: str) -> Callable[[str | None], float]:
    raw = spec["equalToJson"]
    if isinstance(raw, str):
        try:
            expected = json.loads(raw)
        except ValueError as exc:
            raise MappingError(where, f"equalToJson is not JSON: {exc}") from None
    else:
        expected = raw
    _bool_option(spec, "ignoreArrayOrder", where)
    _bool_option(spec, "ignoreExtraElements", where)
    ignore_order = bool(spec.get("ignoreArrayOrder"))
    ignore_extra = bool(spec.get("ignoreExtraElements"))

    def test(value: str | None) -> float:
        if value is None:
            return 1.0
        try:
            actual = json.loads(value)
        except ValueError:
            return 1.0
        return json_distance(expected, actual, ignore_order, ignore_extra)

    return test


def _matches_json_path(spec: dict[str, Any], where: str) -> Callable[[str | None], float]:
    raw = spec["matchesJsonPath"]
    sub: ValueMatcher | None = None
    if isinstance(raw, dict):
        expression = raw.get("expression")
        rest = {k: v for k, v in raw.items() if k != "expression"}
        if not rest:
            raise MappingError(f"{where}.matchesJsonPath", "needs a matcher beside 'expression'")
        sub = parse_value_matcher(rest, f"{where}.matchesJsonPath")
    else:
        expression = raw
    query = JsonPathQuery.parse(expression, f"{where}.matchesJsonPath")

    def test(value: str | None) -> float:
        if value is None:
            return 1.0
        try:
            document = json.loads(value)
        except ValueError:
            return 1.0
        if sub is None:
            return 0.0 if query.present(document) else 1.0
        results = query.strings(document, for_json=sub.key == "equalToJson")
        if not results and sub.key == "absent":
            results = [None]
        if not results:
            return 1.0
        return min(sub.match(r) for r in results)

    return test


def _combined(spec: dict[str, Any], where: str, key: str) -> Callable[[str | None], float]:
    parts = spec[key]
    if not isinstance(parts, list) or not parts:
        raise MappingError(f"{where}.{key}", "takes a non-empty list of matchers")
    matchers = [parse_value_matcher(p, f"{where}.{key}[{i}]") for i, p in enumerate(parts)]

    def test_and(value: str | None) -> float:
        return sum(m.match(value) for m in matchers) / len(matchers)

    def test_or(value: str | None) -> float:
        return min(m.match(value) for m in matchers)

    return test_and if key == "and" else test_or


def _bool_option(spec: Mapping[str, Any], key: str, where: str) -> None:
    if key in spec and not isinstance(spec[key], bool):
        raise MappingError(f"{where}.{key}", "must be true or false")


#: matcher name -> builder; and the options each accepts beside its own key.
_BUILDERS: dict[
    str, tuple[Callable[[dict[str, Any], str], Callable[[str | None], float]], set[str]]
] = {
    "equalTo": (_equal_to, {"caseInsensitive"}),
    "contains": (lambda s, w: _contains(s, w, False), set()),
    "doesNotContain": (lambda s, w: _contains(s, w, True), set()),
    "matches": (lambda s, w: _matches(s, w, False), set()),
    "doesNotMatch": (lambda s, w: _matches(s, w, True), set()),
    "absent": (_absent, set()),
    "binaryEqualTo": (_binary_equal_to, set()),
    "equalToJson": (_equal_to_json, {"ignoreArrayOrder", "ignoreExtraElements"}),
    "matchesJsonPath": (_matches_json_path, set()),
    "and": (lambda s, w: _combined(s, w, "and"), set()),
    "or": (lambda s, w: _combined(s, w, "or"), set()),
}

MATCHER_NAMES = tuple(_BUILDERS)


def parse_value_matcher(spec: Any, where: str) -> ValueMatcher:
    """`{"equalTo": "x", "caseInsensitive": true}` -> a ValueMatcher, or MappingError at `where`."""
    if not isinstance(spec, dict):
        raise MappingError(where, f"a matcher must be an object, not {type(spec).__name__}")
    keys = [k for k in spec if k in _BUILDERS]
    if len(keys) != 1:
        unknown = [k for k in spec if k not in _BUILDERS and not _is_option(k)]
        if unknown:
            raise MappingError(where, f"unknown matcher {unknown[0]!r}")
        if not keys:
            raise MappingError(where, "no matcher (one of " + ", ".join(MATCHER_NAMES) + ")")
        raise MappingError(where, "more than one matcher: " + ", ".join(keys))
    key = keys[0]
    builder, options = _BUILDERS[key]
    for other in spec:
        if other != key and other not in options:
            raise MappingError(where, f"unknown option {other!r} for {key}")
    return ValueMatcher(key, dict(spec), builder(spec, where))


def _is_option(key: str) -> bool:
    return key in {"caseInsensitive", "ignoreArrayOrder", "ignoreExtraElements"}


def equal_to(value: str) -> ValueMatcher:
    return parse_value_matcher({"equalTo": value}, "")


def regex_matcher(value: str, where: str) -> ValueMatcher:
    return parse_value_matcher({"matches": value}, where)
