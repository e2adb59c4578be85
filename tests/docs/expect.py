"""Does a command's output match the ``output`` block shown after it?

Line by line, exact, except for these placeholders:

- a line that is only ``...`` matches any number of lines, none included;
- ``...`` inside a line matches any text on that line;
- ``{{>=X}}`` matches a number that is at least X (a lower bound: timings only go up
  under load, so docs never promise an upper one);
- ``{{REGEX}}`` matches the Python regular expression REGEX.

Trailing whitespace and trailing blank lines are ignored on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

_TOKEN = re.compile(r"\.\.\.|\{\{(.+?)\}\}")
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"

LineTest = Callable[[str], bool]


def _line_test(pattern: str) -> LineTest:
    parts: list[str] = []
    bounds: list[tuple[str, float]] = []
    pos = 0
    for m in _TOKEN.finditer(pattern):
        parts.append(re.escape(pattern[pos : m.start()]))
        inner = m.group(1)
        if inner is None:
            parts.append(".*?")
        elif inner.startswith(">="):
            name = f"ge{len(bounds)}"
            bounds.append((name, float(inner[2:])))
            parts.append(f"(?P<{name}>{_NUMBER})")
        else:
            parts.append(f"(?:{inner})")
        pos = m.end()
    parts.append(re.escape(pattern[pos:]))
    rx = re.compile("".join(parts))

    def test(line: str) -> bool:
        m = rx.fullmatch(line)
        return m is not None and all(float(m.group(n)) >= low for n, low in bounds)

    return test


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.rstrip().split("\n")]
    return lines if lines != [""] else []


def mismatch(expected: str, actual: str) -> str | None:
    """None when `actual` matches `expected`; otherwise where it first goes wrong."""
    want = _lines(expected)
    got = _lines(actual)
    tests = [None if w == "..." else _line_test(w) for w in want]
    best = [0, 0]  # the furthest expected line reached, and the output line there

    @cache
    def fits(i: int, j: int) -> bool:
        if i > best[0]:
            best[:] = [i, j]
        if i == len(want):
            return j == len(got)
        test = tests[i]
        if test is None:
            return any(fits(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and test(got[j]) and fits(i + 1, j + 1)

    if fits(0, 0):
        return None
    i, j = best
    shown = got[j] if j < len(got) else "(end of output)"
    wanted = want[i] if i < len(want) else "(end of expected output)"
    return f"expected line {i + 1}: {wanted!r}\n     got line {j + 1}: {shown!r}"
