"""Fenced code blocks of README.md and docs/*.md, with what the harness needs to run them.

A block is found by its opening fence; its info string is ``LANG WORD... KEY=VALUE...``
(e.g. ``yaml config file=my.yaml`` or ``json GET /stats``). An ``output`` block right
after a command block is that block's expected output, not an example of its own.
The line ``<!-- docs: no-run (why) -->`` right before a fence marks it not runnable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Languages whose blocks are examples: each is run or checked.
EXAMPLE_LANGS = frozenset({"sh", "yaml", "json", "python"})
#: Languages that are not examples: expected output, and plain text shown as is.
TEXT_LANGS = frozenset({"output", "text"})

#: The skip reason of a bare ``<!-- docs: no-run -->``: allowed, but say why if you can.
NO_REASON = "no reason given in the marker"

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+)(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs:\s*no-run\b(?P<rest>.*?)-->\s*$")
_REASON = re.compile(r"^\s*\((?P<reason>[^)]+)\)\s*$")


@dataclass
class Block:
    path: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    lang: str
    words: list[str]
    opts: dict[str, str]
    code: str
    #: None: runnable; otherwise the marker's reason (NO_REASON for a bare marker).
    no_run: str | None = None
    output: Block | None = None
    #: the non-blank line before the fence was the end of this command block
    follows: Block | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def parse(path: Path) -> list[Block]:
    """Every fenced block of one Markdown file, output blocks tied to their commands."""
    rel = path.relative_to(ROOT).as_posix()
    lines = path.read_text().split("\n")
    blocks: list[Block] = []
    last_close = -2  # index of the previous block's closing fence
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        close = re.compile(r"^\s*" + m.group("fence") + r"\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        if j == len(lines):
            raise ValueError(f"{rel}:{i + 1}: code fence never closed")
        info = m.group("info").split()
        lang = info[0] if info else ""
        words = [w for w in info[1:] if "=" not in w]
        opts = dict(w.split("=", 1) for w in info[1:] if "=" in w)
        indent = len(m.group("indent"))
        code = "\n".join(line[indent:] for line in lines[i + 1 : j])
        block = Block(rel, i + 1, lang, words, opts, code + "\n")
        prev = _previous_nonblank(lines, i)
        if prev is not None:
            mk = _MARKER.match(lines[prev])
            if mk:
                reason = _REASON.match(mk.group("rest"))
                block.no_run = reason.group("reason").strip() if reason else NO_REASON
            elif prev == last_close and blocks:
                block.follows = blocks[-1]
        if lang == "output" and block.follows is not None and block.follows.output is None:
            block.follows.output = block
        blocks.append(block)
        last_close = j
        i = j + 1
    return blocks


def _previous_nonblank(lines: list[str], i: int) -> int | None:
    k = i - 1
    while k >= 0 and not lines[k].strip():
        k -= 1
    return k if k >= 0 else None


def all_blocks() -> list[Block]:
    return [b for path in doc_files() for b in parse(path)]


def examples() -> list[Block]:
    """The blocks that are tests: one each."""
    return [b for b in all_blocks() if b.lang in EXAMPLE_LANGS]


def problems(blocks: list[Block]) -> list[str]:
    """Why a block is neither runnable nor properly marked: an empty list is good."""
    out: list[str] = []
    for b in blocks:
        if b.lang not in EXAMPLE_LANGS | TEXT_LANGS:
            out.append(
                f"{b.id}: fence {b.lang or '(no language)'!r}: tag it sh, yaml, json, python "
                "(run by CI), output (a command's expected output) or text (shown as is)"
            )
        if b.no_run is not None and b.lang not in EXAMPLE_LANGS:
            out.append(f"{b.id}: only examples can be marked no-run")
        if b.lang == "output" and (b.follows is None or b.follows.output is not b):
            out.append(f"{b.id}: an output block must come right after the block it shows")
        if b.lang == "output" and b.follows is not None and b.follows.lang not in ("sh", "python"):
            out.append(f"{b.id}: only sh and python blocks have output blocks")
    return out
