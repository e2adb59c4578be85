"""The rows of WireMock's "Request was not matched" table, as its `Diff` class builds them.

Checked against WireMock 3.13's output: `[path] /x` for urlPath, `X-Id: abc`
for an equalTo header and `X-C [contains] : k` otherwise, `Query: q = a`,
`Cookie: s=1`, a body row as `[equalToJson]` over the pretty-printed JSON,
a scenario row, and blank spacer rows after the URL, the headers, the query
and the cookies. A missing header, query parameter or cookie says
"is not present"; a differing one "does not match".
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .json_match import JsonPathQuery, jackson_pretty
from .request_pattern import cookie_distance

if TYPE_CHECKING:
    from .matchers import ValueMatcher
    from .request_pattern import RequestPattern, RequestView


@dataclass(frozen=True)
class DiffLine:
    """One row: the stub's side, the request's side, and the `<<<<<` message (None: matched)."""

    attribute: str
    expected: str
    actual: str
    message: str | None = None

    @property
    def matched(self) -> bool:
        return self.message is None


SPACER = DiffLine("", "", "")


def expected_text(matcher: ValueMatcher) -> str:
    """WireMock's `getExpected()` of a matcher."""
    value = matcher.spec.get(matcher.key)
    if matcher.key == "absent":
        return "(absent)"
    if matcher.key == "equalToJson":
        parsed = json.loads(value) if isinstance(value, str) else value
        return jackson_pretty(parsed)
    if matcher.key == "matchesJsonPath":
        return value["expression"] if isinstance(value, dict) else str(value)
    if matcher.key in ("and", "or"):
        return f" {matcher.key.upper()} ".join(_sub_expected(v) for v in value)
    return str(value)


def _sub_expected(spec: dict[str, Any]) -> str:
    key = next(iter(spec))
    return f"{key} {spec[key]}"


def _operator(matcher: ValueMatcher, default: str) -> str:
    return default if matcher.key == "equalTo" else f" [{matcher.key}] "


def _message(attribute: str, values: list[str], distance: float) -> str | None:
    if distance == 0:
        return None
    return f"{attribute} is not present" if not values else f"{attribute} does not match"


def _best(values: list[str], matcher: ValueMatcher) -> str | None:
    return min(values, key=matcher.match) if values else None


def _body_rows(matcher: ValueMatcher, body: str) -> DiffLine:
    distance = matcher.match(body or None)  # an empty body is none, as in WireMock
    message = None if distance == 0 else "Body does not match"
    if matcher.key == "matchesJsonPath":
        spec = matcher.spec["matchesJsonPath"]
        if isinstance(spec, dict):
            sub_key = next(k for k in spec if k != "expression")
            printed = f"{spec['expression']} [{sub_key}] {spec[sub_key]}"
            try:
                found = JsonPathQuery.parse(spec["expression"], "").strings(json.loads(body))
            except ValueError:
                found = []
            return DiffLine("Body", printed, found[0] if found else body, message)
        return DiffLine("Body", str(spec), body, message)
    if matcher.key == "binaryEqualTo":
        return DiffLine(
            "Body",
            str(matcher.spec["binaryEqualTo"]),
            base64.b64encode(body.encode()).decode(),
            message,
        )
    shown = body
    if matcher.key == "equalToJson":
        try:
            shown = jackson_pretty(json.loads(body))
        except ValueError:
            shown = body
    return DiffLine("Body", f"[{matcher.key}]\n{expected_text(matcher)}", "\n" + shown, message)


def diff_lines(pattern: RequestPattern, req: RequestView) -> list[DiffLine]:
    lines = [
        DiffLine(
            "Method",
            pattern.method,
            req.method,
            None if pattern.method_distance(req) == 0 else "HTTP method does not match",
        ),
        DiffLine(
            "URL",
            pattern.url.describe(),
            req.url,
            None if pattern.url.match(req) == 0 else "URL does not match",
        ),
        SPACER,
    ]
    for name, matcher in pattern.headers:
        values = req.header_values(name)
        got = _best(values, matcher)
        expected = name + _operator(matcher, "") + ": " + expected_text(matcher)
        actual = "" if got is None else f"{name}: {got}"
        lines.append(
            DiffLine("Header", expected, actual, _message("Header", values, matcher.match(got)))
        )
    if pattern.headers:
        lines.append(SPACER)
    for name, matcher in pattern.query:
        values = req.query.get(name, [])
        got = _best(values, matcher)
        expected = f"Query: {name}" + _operator(matcher, " = ") + expected_text(matcher)
        actual = "" if got is None else f"{name}: {got}"
        lines.append(
            DiffLine("Query", expected, actual, _message("Query", values, matcher.match(got)))
        )
    if pattern.query:
        lines.append(SPACER)
    for name, matcher in pattern.cookies:
        values = req.cookies.get(name, [])
        got = _best(values, matcher)
        expected = f"Cookie: {name}" + _operator(matcher, "=") + expected_text(matcher)
        distance = cookie_distance(values, matcher)
        lines.append(DiffLine("Cookie", expected, got or "", _message("Cookie", values, distance)))
    if pattern.cookies:
        lines.append(SPACER)
    lines.extend(_body_rows(m, req.body_text) for m in pattern.body)
    return lines
