"""The 404 body for an unmatched request: WireMock's "Request was not matched" table.

WireMock answers an unmatched request with a plain-text, two-column diff of the
closest stub against the request (PlainTextDiffRenderer, 119 columns wide),
each differing row flagged `<<<<< ... does not match`. Users read it in test
logs, so the layout follows WireMock's: title, `Closest stub | Request`
header, the stub's name, then one row per attribute.
"""

from __future__ import annotations

import textwrap

from .diff import DiffLine

CONSOLE_WIDTH = 119
NO_STUBS = "No response could be served as there are no stub mappings in this WireMock instance."
#: Rows wider than this many lines are cut (a 1 MiB body in a 404 helps nobody).
MAX_LINES_PER_CELL = 40


def _middle() -> int:
    return CONSOLE_WIDTH // 2 - 1


def _column() -> int:
    return CONSOLE_WIDTH // 2 - 2


def _wrap(text: str) -> list[str]:
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        lines.extend(
            textwrap.wrap(raw, _column(), drop_whitespace=False, replace_whitespace=False) or [""]
        )
        if len(lines) >= MAX_LINES_PER_CELL:
            return [*lines[:MAX_LINES_PER_CELL], "..."]
    return lines


def _single(left: str, right: str | None, message: str | None) -> str:
    line = left.ljust(_middle() + 1) + "|"
    if right:
        line += " "
        line += (right.ljust(_middle() - 6) + "<<<<< " + message) if message else right
    elif message:
        line += "".ljust(_middle() - 5) + "<<<<< " + message
    return line + "\n"


def _row(left: str, right: str, message: str | None) -> str:
    lefts, rights = _wrap(left), _wrap(right)
    out = _single(lefts[0], rights[0], message)
    for i in range(1, max(len(lefts), len(rights))):
        out += _single(
            lefts[i] if i < len(lefts) else "", rights[i] if i < len(rights) else "", None
        )
    return out


def render_not_matched(stub_name: str | None, lines: list[DiffLine]) -> str:
    title = "Request was not matched"
    pad = " " * (_middle() - len(title) // 2)
    out = f"\n{pad}{title}\n{pad}{'=' * len(title)}\n\n"
    out += "-" * CONSOLE_WIDTH + "\n"
    out += "|" + " Closest stub".ljust(_middle()) + "|" + " Request".ljust(_middle()) + "|\n"
    out += "-" * CONSOLE_WIDTH + "\n"
    out += _single("", None, None)
    if stub_name:
        out += _row(stub_name, "", None)
        out += _single("", None, None)
    for line in lines:
        if line.attribute == "Body" and line.matched:
            continue
        out += _row(line.expected, line.actual, line.message)
    out += _single("", None, None)
    out += "-" * CONSOLE_WIDTH + "\n"
    return out
